"""The canary's rollout at the reconciler's edge: state read back from status, a poll of the analysis through a
metric source, the events and the status it reports."""

from __future__ import annotations

from typing import Any

import yaml

from aifleet.api import AIService
from aifleet.autoscaler.sample import Sample
from aifleet.reconciler.canary import analyser, fleet_total, recorded, report, rollout
from conftest import EXAMPLES

DOC = yaml.safe_load((EXAMPLES / "canary.yaml").read_text())
AIS = AIService.model_validate(DOC)
T0 = 1_700_000_000.0


class Counters:
    """A metric source answering the analysis's queries from fixed canary counters."""

    def __init__(self, success: float, failure: float | None, p95_ms: float = 20.0, share: float = 25.0) -> None:
        self.answers = {"request_success": success, "request_failure": failure, "summary": p95_ms}
        self.share = share
        self.queries: list[str] = []

    def query(self, promql: str) -> Sample:
        self.queries.append(promql)
        if promql.startswith("100 *"):
            return Sample.of(self.share)
        for key, value in self.answers.items():
            if key in promql:
                return Sample.failure("empty") if value is None else Sample.of(value)
        raise AssertionError(promql)

    def query_many(self, promql: str, key_labels: Any = ()) -> Any:
        raise AssertionError(promql)


def _pass(
    previous: dict[str, Any], now: float, source: Counters | None, ready: bool = True
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    events: list[tuple[str, str, str]] = []
    analyse = None if source is None else analyser(lambda _, s=source: s, now)
    state = rollout(AIS, previous, now, analyse, lambda *e: events.append(e), ready)
    canary, conditions = report(AIS, state, lambda *_: None)
    return {"canary": canary, "conditions": conditions}, events


def test_the_window_opens_when_the_canary_serves_and_nothing_is_judged_before():
    status, events = _pass({}, T0 - 60, Counters(success=0, failure=9), ready=False)
    assert [e[1] for e in events] == ["CanaryStarted"]
    assert "windowStart" not in status["canary"] and "waiting" in status["canary"]["verdict"]
    status, events = _pass(status, T0, None)
    assert status["canary"]["windowStart"] and events == []


def test_a_failing_canary_is_rolled_back_with_the_signal_and_value_in_event_and_condition():
    status, events = _pass({}, T0, None)
    assert [e[1] for e in events] == ["CanaryStarted"]
    status, events = _pass(status, T0 + 30, Counters(success=160, failure=40))
    assert [e[:2] for e in events] == [("Warning", "CanaryRolledBack")]
    assert "failure ratio 0.200" in events[0][2]
    assert status["canary"]["phase"] == "RolledBack" and status["canary"]["share"] == 0
    (healthy,) = status["conditions"]
    assert (healthy["type"], healthy["status"], healthy["reason"]) == ("CanaryHealthy", "False", "RolledBack")
    assert "failure ratio 0.200" in healthy["message"]


def test_an_operator_restarted_mid_window_resumes_it():
    status, _ = _pass({}, T0, None)
    status, events = _pass(status, T0 + 200, Counters(success=500, failure=0))
    assert events == [] and status["canary"]["phase"] == "Watching"
    # A new process knows only the AIService's status: the window still started at T0.
    resumed = recorded(yaml.safe_load(yaml.safe_dump(status)))
    assert resumed is not None and resumed.window_start == status["canary"]["windowStart"]
    status, events = _pass(status, T0 + 300, Counters(success=900, failure=1))
    assert [e[1] for e in events] == ["CanaryStepped"]  # the example's step: 50 %
    assert status["canary"]["share"] == 50


def test_no_failure_series_with_requests_counted_is_no_failure():
    source = Counters(success=500, failure=None)
    status, _ = _pass({}, T0, None)
    status, _ = _pass(status, T0 + 60, source)
    assert status["canary"]["phase"] == "Watching"
    assert "failure ratio 0.000 over 500 requests" in status["canary"]["verdict"]
    assert status["canary"]["canary"]["observedShare"] == 25.0
    assert any('quantile="0.95"' in q for q in source.queries)  # the example judges latency too


def test_the_fleet_counts_the_canary_only_while_it_runs():
    sizes = {"sentiment-triton": 3, "sentiment-triton-canary": 1}

    def live(name: str) -> dict[str, Any]:
        return {"spec": {"replicas": sizes[name]}}

    status, _ = _pass({}, T0, None)
    running = recorded(status)
    assert fleet_total(AIS, running, live) == 4
    rolled_back = running.model_copy(update={"phase": "RolledBack", "share": 0}) if running else None
    assert fleet_total(AIS, rolled_back, live) == 3
    assert fleet_total(AIS, None, live) == 3
