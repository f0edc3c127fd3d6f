"""Prometheus scraping file_sd targets that a test sets at run time."""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from .net import HOST, ServiceError, free_port, http_get, http_post, wait_until
from .process import PathLike, Service, require_binary

Labels = Mapping[str, str]
Target = tuple[str, Labels]


class Prometheus(Service):
    """Prometheus scraping file_sd targets that tests set at run time.

    Config: one scrape job reading ``<state>/targets/*.json`` (re-read every
    ``sd_refresh``). ``set_targets(job, [("127.0.0.1:8002", {"pod": "a"}), ...])``
    writes ``targets/<job>.json`` with ``job=<job>`` plus the given labels on every
    target; an empty list removes them. The TSDB lives in ``<state>/data`` and survives
    stop()/start(), so a test can simulate an outage. ``url`` is the HTTP API root.
    """

    name = "prometheus"

    def __init__(self, state_dir: PathLike, *, port: Optional[int] = None, scrape_interval: str = "2s",
                 evaluation_interval: Optional[str] = None, sd_refresh: str = "2s",
                 rule_files: Sequence[PathLike] = (), extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
                 retention: str = "1d", host: str = HOST, binary: Optional[str] = None) -> None:
        super().__init__(state_dir)
        # Loopback, or the real node's bridge address so that pods (the operator's) can query it.
        self.host = host
        self.port = port or free_port()
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval or scrape_interval
        self.sd_refresh = sd_refresh
        self.rule_files = [str(p) for p in rule_files]
        self.extra_scrape_configs = list(extra_scrape_configs)
        self.retention = retention
        self.config_path = self.state_dir / "prometheus.yml"
        self.targets_dir = self.state_dir / "targets"
        self.data_dir = self.state_dir / "data"
        self.binary = binary or require_binary("prometheus")
        self.targets_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                       "evaluation_interval": self.evaluation_interval},
            "rule_files": self.rule_files,
            "scrape_configs": [{
                "job_name": "file_sd",
                "file_sd_configs": [{"files": [str(self.targets_dir / "*.json")],
                                     "refresh_interval": self.sd_refresh}],
            }, *self.extra_scrape_configs],
        }

    def _prepare(self) -> None:
        # YAML is a superset of JSON, so the stdlib is enough to write the config.
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")

    def _argv(self) -> list[str]:
        return [self.binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.data_dir}",
                f"--storage.tsdb.retention.time={self.retention}", f"--web.listen-address={self.host}:{self.port}",
                "--web.enable-lifecycle", "--log.level=info"]

    def _ready(self) -> bool:
        return http_get(f"{self.url}/-/ready", timeout=2)[0] == 200

    def set_targets(self, job: str, targets: Iterable[Union[Target, str]]) -> None:
        """Replace job ``job``'s targets; each is "host:port" or ("host:port", labels)."""
        groups = []
        for t in targets:
            addr, labels = (t, {}) if isinstance(t, str) else t
            groups.append({"targets": [addr], "labels": {"job": job, **{k: str(v) for k, v in labels.items()}}})
        path = self.targets_dir / f"{job}.json"
        if not groups:
            path.unlink(missing_ok=True)
            return
        # Write-then-rename so Prometheus never reads a half-written file.
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(groups, indent=2))
        os.replace(tmp, path)

    def reload(self) -> None:
        """Re-read prometheus.yml (after changing rule files or scrape configs)."""
        self._prepare()
        status, body = http_post(f"{self.url}/-/reload")
        if status != 200:
            raise ServiceError(f"reload failed: {status} {body!r}")

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>?params; returns ``data`` or raises on an error status."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_get(url)
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise ServiceError(f"GET {url}: {status} {doc.get('error', body[:200])}")
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the vector's samples as [{'metric': {...}, 'value': [ts, 'v']}]."""
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]

    def query_value(self, expr: str) -> Optional[float]:
        """The single value of a query returning at most one sample (None if empty)."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise ServiceError(f"{expr!r} returned {len(result)} series; aggregate it")
        return float(result[0]["value"][1])

    def active_targets(self) -> list[dict[str, Any]]:
        return self.api("targets", state="active")["activeTargets"]

    def wait_for_targets(self, job: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until ``count`` targets of ``job`` have been scraped successfully."""
        found: list[dict[str, Any]] = []

        def up() -> bool:
            found[:] = [t for t in self.active_targets()
                        if t["labels"].get("job") == job and t["health"] == "up"]
            return len(found) >= count

        wait_until(up, timeout, f"prometheus targets of job {job!r} up", self.process, interval=0.5)
        return found


# ------------------------------------------------------------------- Triton + loadgen
