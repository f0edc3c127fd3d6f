"""The Grafana dashboard (charts/aifleet-operator/files/aifleet-dashboard.json): a valid layout, the variables its
queries use, and only series the operator and Triton export. Its queries run against a real Prometheus in
e2e/services/dashboard_test.py and, on the cluster, in e2e/test_observability.py."""

from __future__ import annotations

import json
import re

from aifleet.api.children import triton_pod_regex
from aifleet.observability import metrics
from conftest import ROOT

DASHBOARD = ROOT / "charts" / "aifleet-operator" / "files" / "aifleet-dashboard.json"
TRITON_METRICS = {"nv_inference_request_success", "nv_inference_request_failure", "nv_inference_queue_duration_us"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]


def test_variables_for_the_datasource_the_namespace_and_the_aiservice():
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert set(variables) == {"datasource", "namespace", "aiservice"}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["query"]["query"] == "label_values(aifleet_replicas, namespace)"
    assert "$namespace" in variables["aiservice"]["query"]["query"]
    used = {name for e in exprs() for name in re.findall(r"\$(\w+)", e)}
    assert used == {"namespace", "aiservice"}


def test_panels_fit_the_grid_without_overlapping():
    cells: set[tuple[int, int]] = set()
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, panel["title"]
        cells |= mine
        assert panel["targets"] and panel["description"], panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]


def test_it_shows_what_the_people_on_call_look_at():
    text = "\n".join(exprs())
    for needed in ("aifleet_observed_rps", "aifleet_ready_replicas{namespace=\"$namespace\", name=\"$aiservice\"} * "
                   "on (namespace, name) aifleet_target_rps_per_pod", "aifleet_replicas", "aifleet_desired_replicas",
                   "aifleet_min_replicas", "aifleet_max_replicas", "aifleet_scaling_reason",
                   "nv_inference_queue_duration_us", "nv_inference_request_failure", "aifleet_reconciles_total",
                   "aifleet_reconcile_errors_total"):
        assert needed in text, needed


def test_only_series_that_exist_and_the_renderers_pod_names():
    exported = {m.name + ("_total" if m.type == "counter" else "") for m in metrics.REGISTRY.collect()}
    exported |= {f"{m.name}_bucket" for m in metrics.REGISTRY.collect() if m.type == "histogram"}
    used = {n for e in exprs() for n in re.findall(r"\b(aifleet_[a-z_]+|nv_[a-z_]+)\b", e)}
    assert used - TRITON_METRICS <= exported, sorted(used - TRITON_METRICS - exported)
    for expr in exprs():
        for regex in re.findall(r'pod=~"([^"]+)"', expr):
            assert regex == triton_pod_regex("$aiservice"), expr
        if "nv_inference" in expr or 'name="$aiservice"' in expr:
            assert 'namespace="$namespace"' in expr, expr
