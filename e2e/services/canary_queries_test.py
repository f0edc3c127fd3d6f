"""The canary analysis's PromQL against a real Prometheus scraping two real Tritons under real load, with no
cluster: one labelled as a stable pod of the fleet `chat`, one as its canary pod, as pod discovery labels them.
The queries must parse, find each version by its pod pattern, and agree with the Tritons' own counters.

    scripts/pytest.sh e2e/services/canary_queries_test.py -q
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import LoadGenerator, Prometheus, TritonServer, http_get

from aifleet.api import AIService
from aifleet.autoscaler.canary import canary_queries, serving, start
from aifleet.autoscaler.prometheus import PrometheusSource
from aifleet.reconciler.canary import read_counters
from aifleet.renderer.inference import SUMMARY_LATENCIES

pytestmark = pytest.mark.services

NAMESPACE, NAME = "shop", "chat"
STABLE_POD = "chat-triton-5d8f7c9b4-qwx7z"  # hashes in Kubernetes's alphabet (no vowels)
CANARY_POD = "chat-triton-canary-7c9f8d6b5-xk2bz"
AIS = AIService.model_validate({
    "metadata": {"name": NAME, "namespace": NAMESPACE},
    "spec": {"inference": {"modelRepository": {"uri": "s3://models/chat"},
                           "canary": {"version": "24.09-py3", "trafficPercent": 50,
                                      "analysis": {"maxP95LatencyMs": 1000, "maxP95QueueMs": 1000}}},
             "autoscaling": {"pollIntervalSeconds": 5}},
})


def served(triton: TritonServer) -> float:
    """Successful inferences, from the Triton's own metrics endpoint."""
    text = http_get(triton.metrics_url)[1].decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("nv_inference_request_success{"))


def test_the_analysis_reads_each_version_and_the_share_from_real_counters(tmp_path: Path) -> None:
    # The canary's pods export latency summaries, as the renderer asks when the analysis judges latency.
    summaries = [SUMMARY_LATENCIES.split("=", 1)[1]]
    with TritonServer(tmp_path / "stable", delay_ms=5) as stable, \
            TritonServer(tmp_path / "canary", delay_ms=20, metrics_config=summaries) as canary, \
            Prometheus(tmp_path / "prometheus", scrape_interval="1s", sd_refresh="1s") as prom:
        prom.set_targets("triton", [(stable.metrics_address, {"namespace": NAMESPACE, "pod": STABLE_POD}),
                                    (canary.metrics_address, {"namespace": NAMESPACE, "pod": CANARY_POD})])
        prom.wait_for_targets("triton")
        assert AIS.spec.inference.canary is not None
        state = serving(start(AIS.spec.inference.canary, time.time()), True, time.time())
        # Three requests to the canary for each one to the stable Triton: the share the query must find is 75 %.
        LoadGenerator(tmp_path / "load", [canary.http_address, canary.http_address, canary.http_address,
                                          stable.http_address], [(30, 40)], workers=4).run()
        time.sleep(3)  # the last scrape
        source = PrometheusSource(prom.url, timeout_seconds=5)
        counters = read_counters(AIS, state, source, time.time())
        truth = served(canary), served(stable)
        print(f"\ncanary counters from Prometheus: {counters}; the Tritons' own: canary {truth[0]}, stable {truth[1]}")
        assert counters.success is not None and counters.failure == 0
        # Each request waits the model's 20 ms: its p95 is at least that, and not absurdly more.
        assert counters.p95_latency_ms is not None and 20 <= counters.p95_latency_ms < 1000, counters
        assert counters.p95_queue_ms is not None and counters.p95_queue_ms < 1000, counters
        # increase() extrapolates to the window's edges: close to, not exactly, the counter.
        assert truth[0] * 0.8 <= counters.success <= truth[0] * 1.2
        queries = canary_queries(NAMESPACE, NAME, 30, 5)
        share = source.query(queries.canary_share)
        print(f"canary share over the last minute: {share.value}")
        assert share.ok and share.value is not None
        assert abs(share.value - 100 * truth[0] / sum(truth)) <= 5
