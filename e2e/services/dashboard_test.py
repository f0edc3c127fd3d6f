"""The dashboard's queries against a real Prometheus scraping a real Triton under real load, with no cluster.

The operator's own series come from its metrics module, served by its own /metrics server in this process and
fed by its scaling policy deciding on the real readings every poll, as the operator engine does; nothing is
resized (there is no cluster), so the replicas are what the policy decided. Every panel's every query must parse
(Prometheus answers errorType bad_data otherwise) and every panel must show data.

    scripts/pytest.sh e2e/services/dashboard_test.py -q
    AIFLEET_DASHBOARD_PICTURE=docs/dashboard.png scripts/pytest.sh e2e/services/dashboard_test.py -q  # + picture
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import dashboard
import pytest
from harness import LoadGenerator, Prometheus, TritonServer, free_port

from aifleet.api.autoscaling import AutoscalingSpec
from aifleet.api.children import triton_pod_regex
from aifleet.autoscaler.policy import Observation, decide
from aifleet.autoscaler.prometheus import PrometheusSource
from aifleet.autoscaler.state import AutoscalerState
from aifleet.observability import metrics
from aifleet.observability.health import Health, Servers

pytestmark = pytest.mark.services

NAMESPACE, NAME = "shop", "chat"
POD = "chat-triton-5d8f7c9b4-bcdfg"  # as pod discovery labels a pod of the fleet `chat`
POLL = 5
# Quiet, a rise the fleet scales up for, a fall it scales back down after its (short) scale-down window.
PROFILE = [(40, 8), (70, 40), (70, 12)]


def operator_engine(prometheus: str, stop: threading.Event) -> None:
    """The operator engine's poll loop without Kubernetes: read, decide, record; the fleet is what it decided,
    its pods ready one poll later."""
    spec = AutoscalingSpec.model_validate({
        "minReplicas": 1, "maxReplicas": 4, "targetRPSPerPod": 15, "pollIntervalSeconds": POLL,
        "podStartupSeconds": 0, "scaleDown": {"stabilizationWindowSeconds": 30},
        "metrics": {"address": prometheus, "warmupSeconds": 0,
                    "query": 'sum(rate(nv_inference_request_success{namespace="{namespace}",'
                             f'pod=~"{triton_pod_regex("{name}")}"}}[15s]))'},
    })
    source = PrometheusSource(prometheus, timeout_seconds=2)
    state, replicas, ready = AutoscalerState(), 1, 1
    while not stop.wait(POLL):
        started = time.monotonic()
        decision = decide(Observation(rps=source.query(spec.metrics.rendered_query(NAMESPACE, NAME)),
                                      current_replicas=replicas), state, spec, time.time())
        state, ready = decision.state, replicas
        metrics.record_desired(NAMESPACE, NAME, decision.desired_replicas, decision.rps)
        metrics.record_decision(NAMESPACE, NAME, decision.reason, decision.metric_error is not None)
        if decision.act:
            metrics.record_scale("up" if decision.desired_replicas > replicas else "down", NAMESPACE, NAME,
                                 decision.desired_replicas)
            replicas = decision.desired_replicas
        metrics.record_fleet(NAMESPACE, NAME, ready=True, replicas=replicas, ready_replicas=min(ready, replicas),
                             min_replicas=spec.min_replicas, max_replicas=spec.max_replicas,
                             target_rps_per_pod=spec.target_rps_per_pod)
        metrics.record_reconcile("changed" if decision.act else "unchanged", time.monotonic() - started)


def test_every_panel_query_parses_and_returns_data(tmp_path: Path) -> None:
    health = Health()
    port = free_port()
    servers = Servers(health, health_port=0, metrics_port=port, host="127.0.0.1")
    servers.start()
    stop = threading.Event()
    try:
        with TritonServer(tmp_path / "triton", delay_ms=20) as triton, \
                Prometheus(tmp_path / "prometheus", scrape_interval="1s", sd_refresh="1s") as prom:
            prom.set_targets("triton", [(triton.metrics_address, {"namespace": NAMESPACE, "pod": POD})])
            prom.set_targets("aifleet-operator", [f"127.0.0.1:{port}"])
            prom.wait_for_targets("triton")
            prom.wait_for_targets("aifleet-operator")
            engine = threading.Thread(target=operator_engine, args=(prom.url, stop), daemon=True)
            engine.start()
            started = time.time()
            with LoadGenerator(tmp_path / "load", [triton.http_address], PROFILE, workers=8) as load:
                report = load.wait()
            assert report["total_errors"] == 0, report["steps"]

            # A query Prometheus cannot parse is refused: the check below can fail.
            with pytest.raises(dashboard.QueryError, match="bad_data"):
                dashboard.instant(prom.url, "sum(rate(nv_inference_request_success[1m])")
            empty: list[str] = []
            for panel, queries in dashboard.panels(NAMESPACE, NAME):
                assert queries, panel["title"]
                answers = {q.ref: dashboard.instant(prom.url, q.expr) for q in queries}  # raises on bad_data
                print(f"{panel['title']}: " + ", ".join(f"{ref} {len(a)} series" for ref, a in answers.items()))
                if not any(answers.values()):
                    empty.append(panel["title"])
            assert not empty, f"panels without data: {empty}"

            picture = os.environ.get("AIFLEET_DASHBOARD_PICTURE")
            if picture:
                subprocess.run([sys.executable, str(dashboard.ROOT / "scripts" / "dashboard_picture.py"),
                                "--prometheus", prom.url, "--namespace", NAMESPACE, "--aiservice", NAME,
                                "--minutes", f"{(time.time() - started) / 60 + 0.5:.1f}", "--out", picture],
                               check=True, timeout=300)
    finally:
        stop.set()
        servers.stop()
        metrics.forget(NAMESPACE, NAME)
