"""The fast path's and the forecaster's PromQL against a real Prometheus scraping a real Triton under real load,
with no cluster: the Triton is labelled as a pod of the fleet `chat`, as pod discovery labels it.

The fast path's default query (irate), batched and per service, must answer one sample close to the load's rate, and the forecaster's
history must come back from a range query of the RPS query, through the same source the operator uses.

    scripts/pytest.sh e2e/services/autoscaling_queries_test.py -q
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import LoadGenerator, Prometheus, TritonServer

from aifleet.api import AIService
from aifleet.autoscaler.batching import BatchingSource
from aifleet.autoscaler.prometheus import PrometheusSource
from aifleet.autoscaler.state import AutoscalerState
from aifleet.reconciler.scaling import read_fast_rps, read_history

pytestmark = pytest.mark.services

NAMESPACE, NAME = "shop", "chat"
POD = "chat-triton-5d8f7c9b4-qwx7z"
AIS = AIService.model_validate({
    "metadata": {"name": NAME, "namespace": NAMESPACE},
    "spec": {"inference": {"modelRepository": {"uri": "s3://models/chat"}},
             # a short history, so that a test of a minute reads all of it
             "autoscaling": {"pollIntervalSeconds": 5, "forecast": {"historySeconds": 3600}}},
})


def test_fast_rps_and_history_from_a_real_prometheus(tmp_path: Path) -> None:
    with TritonServer(tmp_path / "triton", delay_ms=2) as triton, \
            Prometheus(tmp_path / "prometheus", scrape_interval="1s", sd_refresh="1s") as prom:
        prom.set_targets("triton", [(triton.metrics_address, {"namespace": NAMESPACE, "pod": POD})])
        prom.wait_for_targets("triton")
        load = LoadGenerator(tmp_path / "load", [triton.http_address], [(40, 20)], workers=4)
        load.start()
        time.sleep(25)  # well into the load: rate() and irate() both have their data
        source = BatchingSource(PrometheusSource(prom.url, timeout_seconds=5))
        fast = read_fast_rps(AIS, source)  # the batched query (default queries)
        own = source.query(AIS.spec.autoscaling.fast_path.rendered_query(NAMESPACE, NAME))  # the per-service one
        report = load.wait()
        achieved = report["steps"][0]["achieved_rps"]
        print(f"\nfast-path rps during the load: {fast}; the load achieved {achieved} rps")
        assert fast is not None and fast.ok and fast.value is not None
        assert 0.5 * achieved <= fast.value <= 1.5 * achieved  # irate(): the rate between the last two scrapes
        assert own.ok and own.value is not None and 0.5 * achieved <= own.value <= 1.5 * achieved, own

        history = read_history(AIS, source, AutoscalerState(), time.time())
        assert history, "no view of the history came back"
        points = [p for view in history for p in view.points]
        print(f"history: {[(v.step, len(v.points)) for v in history]}; max {max(v for _, v in points):.1f} rps")
        # the 1-minute rate of the load: clearly above zero at some point of the history, never absurd
        assert max(v for _, v in points) >= 0.3 * achieved
        assert all(0 <= v <= 2 * achieved for _, v in points)
        # a re-fit is not due again right after one
        fitted = AutoscalerState(forecast_checked_at=time.time())
        assert read_history(AIS, source, fitted, time.time()) is None
