"""The Grafana dashboard (charts/aifleet-operator/files/aifleet-dashboard.json) as its panels' PromQL, with the
dashboard's variables filled in, and run against a real Prometheus: what the e2e tests and
scripts/dashboard_picture.py share. Standard library only."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "charts" / "aifleet-operator" / "files" / "aifleet-dashboard.json"


@dataclass(frozen=True)
class Query:
    panel: str
    ref: str
    expr: str  # with the variables substituted
    legend: str


class QueryError(AssertionError):
    """Prometheus refused a query (errorType bad_data on a parse error)."""


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def substitute(text: str, variables: dict[str, str]) -> str:
    """Grafana's `$name` and `${name}` with the given values; unknown variables are left as they are."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def panels(namespace: str, aiservice: str) -> list[tuple[dict[str, Any], list[Query]]]:
    """Each panel with its queries, for one AIService."""
    variables = {"namespace": namespace, "aiservice": aiservice}
    return [(panel, [Query(panel["title"], t["refId"], substitute(t["expr"], variables), t.get("legendFormat", ""))
                     for t in panel.get("targets", [])])
            for panel in load()["panels"]]


def api(prometheus: str, path: str, **params: Any) -> Any:
    """GET /api/v1/<path>: the `data` of a success, QueryError with Prometheus' own message otherwise."""
    url = f"{prometheus.rstrip('/')}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            doc = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        doc = json.loads(exc.read() or b"{}")
    if doc.get("status") != "success":
        raise QueryError(f"{params.get('query', '')!r}: {doc.get('errorType')}: {doc.get('error')}")
    return doc["data"]


def instant(prometheus: str, expr: str) -> list[dict[str, Any]]:
    return api(prometheus, "query", query=expr)["result"]


def series(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    return api(prometheus, "query_range", query=expr, start=start, end=end, step=step)["result"]


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or str(labels)
