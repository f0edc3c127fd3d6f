"""A new fleet whose Prometheus does not answer yet (installed with it, or a moment behind) is waiting for its
metrics, like one whose pods have not been scraped yet: no Warning until `metrics.warmupSeconds` are over, and
then one that reads as a sentence."""

from __future__ import annotations

import socket
import time

from aifleet.api import AIService
from aifleet.api.timestamps import format_timestamp
from aifleet.reconciler.observed import AppliedCache
from aifleet.reconciler.scaling import Autoscalers, autoscale


def closed_port() -> int:
    with socket.socket() as sock:  # a port nothing listens on: connection refused, as before Prometheus runs
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fleet(available_for: float) -> dict:
    since = format_timestamp(time.time() - available_for)
    return {"kind": "Deployment", "metadata": {"name": "chat-triton", "namespace": "shop", "resourceVersion": "1"},
            "spec": {"replicas": 1},
            "status": {"readyReplicas": 1, "conditions": [{"type": "Available", "status": "True",
                                                             "lastTransitionTime": since}]}}


def test_no_warning_while_the_fleet_warms_up_then_one_sentence(minimal):
    address = f"http://127.0.0.1:{closed_port()}"
    minimal["metadata"].update(name="chat", namespace="shop")
    minimal["spec"]["autoscaling"].update(minReplicas=1, metrics={"address": address, "warmupSeconds": 60,
                                                                  "timeoutSeconds": 1})
    ais = AIService.model_validate(minimal)
    autoscalers, applied = Autoscalers(), AppliedCache()
    events: list[tuple[str, str, str]] = []

    def emit(type_: str, reason: str, message: str) -> None:
        events.append((type_, reason, message))

    deployment = fleet(available_for=5)
    for _ in range(3):  # the first polls of a new fleet: Prometheus is not there yet
        decision = autoscale(ais, lambda *_: deployment, None, autoscalers, applied, emit)  # type: ignore[arg-type]
        assert decision is not None and decision.reason == "WaitingForMetrics", decision
        assert decision.message == f"cannot reach Prometheus at {address} yet, waiting while the fleet warms up: " \
                                   "holding 1 replica"
    assert events == []

    deployment = fleet(available_for=61)  # the warm-up is over and Prometheus still does not answer: an outage
    decision = autoscale(ais, lambda *_: deployment, None, autoscalers, applied, emit)  # type: ignore[arg-type]
    assert decision is not None and decision.reason == "MetricsUnavailable"
    assert events == [("Warning", "MetricsUnavailable",
                       f"cannot reach Prometheus at {address} (connection failed): holding 1 replica")]
