"""Status writes the operator does not need to send: live readings that barely moved, and a status the watch has
not delivered back yet."""

from __future__ import annotations

from aifleet.api.autoscaling import AutoscalingSpec
from aifleet.autoscaler.policy import Observation, decide
from aifleet.autoscaler.sample import Sample
from aifleet.autoscaler.state import AutoscalerState
from aifleet.reconciler.observed import AppliedCache
from aifleet.reconciler.scaling import operator_status, shown_decision, status_tolerance, warming_up
from aifleet.reconciler.sync import _changed, last_status

SPEC = AutoscalingSpec(minReplicas=1, maxReplicas=20, targetRPSPerPod=10)


def poll(rps: float, state: AutoscalerState, t: float, cur: int = 5):
    return decide(Observation(rps=Sample.of(rps, t), current_replicas=cur, ready_replicas=cur), state, SPEC, t)


def steady(values, cur=5):
    """Decisions of consecutive polls and what the status shows after each."""
    state, shown, out = AutoscalerState(), None, []
    for i, rps in enumerate(values):
        d = poll(rps, state, 1000.0 + 15 * i, cur)
        state = d.state
        shown = shown_decision(d, shown, status_tolerance(SPEC))
        out.append((d, shown))
    return out


def test_steady_traffic_keeps_the_status_still():
    runs = steady([48.0, 48.7, 47.9, 49.2, 48.4])
    shown = {id(s) for _, s in runs}
    assert len(shown) == 1  # one status for five polls: nothing to write after the first
    fields, _conditions = operator_status(runs[-1][1])
    assert fields["currentRPS"] == 48.0


def test_a_reading_beyond_the_tolerance_is_shown():
    runs = steady([48.0, 48.5, 53.5])  # 53.5 is 11% above 48: outside the 10% band
    assert runs[1][1] is runs[0][0]
    assert runs[2][1] is runs[2][0]
    assert operator_status(runs[2][1])[0]["currentRPS"] == 53.5


def test_a_new_decision_is_always_shown_even_with_close_readings():
    state = AutoscalerState()
    first = poll(50.0, state, 1000.0, cur=5)
    resize = poll(50.5, first.state, 1015.0, cur=3)  # same traffic, but the fleet is out of step: act
    assert resize.act
    assert shown_decision(resize, first, status_tolerance(SPEC)) is resize


def test_metric_failure_replaces_a_healthy_status():
    ok = poll(50.0, AutoscalerState(), 1000.0)
    failed = decide(Observation(rps=Sample.failure("empty"), current_replicas=5, ready_replicas=5), ok.state, SPEC, 1015.0)
    assert shown_decision(failed, ok, status_tolerance(SPEC)) is failed


def test_our_last_status_write_wins_over_an_older_watch_copy():
    applied = AppliedCache()
    watched = {"kind": "AIService", "metadata": {"namespace": "ns", "name": "a", "resourceVersion": "10"},
               "status": {"phase": "old"}}
    assert last_status(watched, applied) == {"phase": "old"}
    applied.remember({"kind": "AIService", "metadata": {"namespace": "ns", "name": "a", "resourceVersion": "11"},
                      "status": {"phase": "written"}})
    assert last_status(watched, applied) == {"phase": "written"}
    newer = {**watched, "metadata": {**watched["metadata"], "resourceVersion": "12"}, "status": {"phase": "newer"}}
    assert last_status(newer, applied) == {"phase": "newer"}


def _deployment(*conditions):
    return {"status": {"conditions": [dict(zip(("type", "status", "lastTransitionTime"), c)) for c in conditions]}}


def test_warm_up_follows_the_fleets_available_condition():
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert warming_up({}, 120, now)  # no status yet
    assert warming_up(_deployment(("Available", "False", "2027-01-15T07:00:00Z")), 120, now)
    assert warming_up(_deployment(("Available", "True", "2027-01-15T07:59:00Z")), 120, now)
    assert not warming_up(_deployment(("Progressing", "True", "2027-01-15T07:00:00Z"),
                                      ("Available", "True", "2027-01-15T07:57:00Z")), 120, now)


def test_waiting_for_metrics_is_unknown_not_a_failure():
    d = decide(Observation(rps=Sample.failure("empty"), current_replicas=2, ready_replicas=2, warming_up=True),
               AutoscalerState(), SPEC, 1000.0)
    _, conditions = operator_status(d)
    active = next(c for c in conditions if c["type"] == "ScalingActive")
    assert (active["status"], active["reason"]) == ("Unknown", "WaitingForMetrics")


def apply_merge_patch(target, patch):
    """RFC 7386, as the API server applies a merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


def test_a_key_gone_from_a_block_is_removed_so_the_next_pass_is_quiet():
    stored = {"replicas": 2, "autoscaling": {"currentRPS": None, "lastMetricError": "empty", "reason": "MetricsUnavailable",
                                             "nested": {"a": 1, "b": 2}}}
    stored["autoscaling"].pop("currentRPS")
    report = {"replicas": 2, "autoscaling": {"currentRPS": 35.0, "reason": "WithinTolerance", "nested": {"a": 1}}}
    patch = _changed(stored, report)
    assert patch == {"autoscaling": {"lastMetricError": None, "currentRPS": 35.0, "reason": "WithinTolerance",
                                     "nested": {"b": None}}}
    after = apply_merge_patch(stored, patch)
    assert after == report
    assert _changed(after, report) == {}


def test_a_child_we_just_created_is_not_created_again_before_the_watch_shows_it():
    now = [100.0]
    applied = AppliedCache(clock=lambda: now[0])
    ours = {"kind": "Service", "metadata": {"namespace": "ns", "name": "a", "resourceVersion": "7"}}
    applied.remember(ours)
    assert applied.newest("Service", "ns", "a", None)["metadata"]["resourceVersion"] == "7"  # ADDED still on the way
    now[0] += 31  # no event ever showed it: trust the watch again
    assert applied.newest("Service", "ns", "a", None) is None
    applied.remember(ours)
    applied.forget("Service", "ns", "a")  # the DELETED event
    assert applied.newest("Service", "ns", "a", None) is None
