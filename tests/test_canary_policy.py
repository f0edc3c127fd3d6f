"""The canary's pure policy: the split of the fleet, the analysis verdicts, and the rollout's moves."""

from __future__ import annotations

import pytest

from aifleet.api.canary import CanaryAnalysis
from aifleet.api.inference import CanarySpec
from aifleet.autoscaler.canary import (
    Counters,
    Judgement,
    Split,
    advance,
    current,
    judge,
    revision,
    serving,
    split,
    start,
    watched_seconds,
)
from conftest import ROOT


@pytest.mark.parametrize(
    ("total", "share", "expected"),
    [
        (4, 25, Split(3, 1)),  # exact
        (4, 10, Split(3, 1)),  # at least one canary pod: 25 % observed
        (10, 25, Split(7, 3)),  # 2.5 pods rounds half up to 3: 30 %
        (10, 24, Split(8, 2)),
        (20, 25, Split(15, 5)),
        (4, 90, Split(1, 3)),  # a stable pod stays while share < 100
        (4, 99, Split(1, 3)),
        (4, 0, Split(4, 0)),
        (4, 100, Split(0, 4)),
        (1, 25, Split(1, 1)),  # one pod cannot run two versions: the split fleet has two
        (2, 1, Split(1, 1)),
    ],
)
def test_split(total, share, expected):
    assert split(total, share, max_replicas=10) == expected


def test_split_waits_when_the_fleet_cannot_hold_two_versions():
    assert split(1, 25, max_replicas=1) == Split(1, 0)


@pytest.mark.parametrize("total", range(2, 41))
@pytest.mark.parametrize("share", [1, 5, 10, 25, 33, 50, 75, 99])
def test_split_precision_is_half_a_pod(total, share):
    got = split(total, share, max_replicas=100)
    assert got.total == total
    assert 1 <= got.canary <= total - 1
    # Rounded to the nearest pod, except where the one-pod floors hold it.
    floors = got.canary in (1, total - 1)
    assert floors or abs(got.canary_percent - share) <= 50 / total + 1e-9


ANALYSIS = CanaryAnalysis(watch_seconds=120, min_requests=100, max_failure_ratio=0.01, max_p95_latency_ms=200)


def test_one_in_five_failing_rolls_back_naming_the_signal_and_value():
    got = judge(ANALYSIS, Counters(success=80, failure=20, p95_latency_ms=10), watched_seconds=30)
    assert got.verdict == "RollBack"
    assert got.signal == "failureRatio"
    assert "failure ratio 0.200" in got.message and "20 failed of 100" in got.message


def test_one_early_failure_is_not_read_as_a_large_ratio():
    got = judge(ANALYSIS, Counters(success=2, failure=1), watched_seconds=10)
    assert got.verdict == "Continue"
    # ... but enough failures to be over the threshold whatever follows roll back before minRequests
    assert judge(ANALYSIS, Counters(success=2, failure=2), watched_seconds=10).verdict == "RollBack"


def test_zero_tolerance_rolls_back_on_the_first_failure():
    strict = ANALYSIS.model_copy(update={"max_failure_ratio": 0.0})
    assert judge(strict, Counters(success=5, failure=1), watched_seconds=1).verdict == "RollBack"


def test_slow_canary_rolls_back_on_latency():
    got = judge(ANALYSIS, Counters(success=500, failure=0, p95_latency_ms=350.5), watched_seconds=60)
    assert (got.verdict, got.signal) == ("RollBack", "p95Latency")
    assert "350.5 ms above 200 ms" in got.message


def test_queue_time_threshold():
    queued = CanaryAnalysis(max_p95_queue_ms=50)
    got = judge(queued, Counters(success=500, failure=0, p95_queue_ms=80), watched_seconds=10)
    assert (got.verdict, got.signal) == ("RollBack", "p95Queue")


def test_healthy_canary_continues_until_the_window_ends_then_promotes():
    healthy = Counters(success=1000, failure=1, p95_latency_ms=20)
    assert judge(ANALYSIS, healthy, watched_seconds=60).verdict == "Continue"
    got = judge(ANALYSIS, healthy, watched_seconds=120)
    assert got.verdict == "Promote"


def test_too_few_requests_never_promote():
    got = judge(ANALYSIS, Counters(success=50, failure=0, p95_latency_ms=20), watched_seconds=10_000)
    assert got.verdict == "Continue" and "waiting for 100 requests" in got.message


def test_missing_metrics_neither_roll_back_nor_promote():
    assert judge(ANALYSIS, Counters(), watched_seconds=10_000).verdict == "Continue"
    no_latency = Counters(success=1000, failure=0)
    assert judge(ANALYSIS, no_latency, watched_seconds=10_000).verdict == "Continue"


CANARY = CanarySpec(version="24.09-py3", traffic_percent=25, analysis=CanaryAnalysis(steps=[50, 100]))
T0 = 1_700_000_000.0


def test_a_new_canary_starts_a_window_and_a_restart_resumes_it():
    fresh = current(CANARY, None, T0)
    assert fresh is not None and fresh.action == "start"
    assert fresh.status.share == 25 and fresh.status.phase == "Watching"
    assert fresh.status.window_start is None  # not before its pods serve
    opened = serving(fresh.status, True, T0)
    # The state lives in status: read back later (another process), it is the same canary and window.
    resumed = current(CANARY, opened.model_validate(opened.to_wire()), T0 + 90)
    assert resumed is not None and resumed.action == "none"
    assert watched_seconds(resumed.status, T0 + 90) == pytest.approx(90)


def test_the_window_closes_while_the_canary_is_not_ready_and_reopens_after():
    opened = serving(start(CANARY, T0), True, T0)
    assert serving(opened, True, T0 + 50) == opened
    closed = serving(opened, False, T0 + 60)
    assert closed.window_start is None and watched_seconds(closed, T0 + 60) == 0
    assert watched_seconds(serving(closed, True, T0 + 70), T0 + 100) == pytest.approx(30)


def test_a_changed_canary_starts_over_but_a_changed_share_does_not():
    state = start(CANARY, T0)
    changed = current(CANARY.model_copy(update={"version": "24.10-py3"}), state, T0 + 10)
    assert changed is not None and changed.action == "start"
    moved = current(CANARY.model_copy(update={"traffic_percent": 40}), state, T0 + 10)
    assert moved is not None and moved.action == "none" and moved.status.share == 40
    assert revision(CANARY) == revision(CANARY.model_copy(update={"traffic_percent": 40}))


def test_share_zero_or_no_canary_ends_it():
    assert current(None, start(CANARY, T0), T0) is None
    assert current(CANARY.model_copy(update={"traffic_percent": 0}), start(CANARY, T0), T0) is None


def test_steps_then_promotion():
    passed = Judgement("Promote", "failure ratio 0.000 over 500 requests within 0.01 for 300 s")
    state = start(CANARY, T0)
    first = advance(CANARY, state, passed, T0 + 300)
    assert (first.action, first.status.share, first.status.step) == ("step", 50, 1)
    assert first.status.window_start is None  # a new window once the new share's pods are ready
    last = advance(CANARY, first.status, passed, T0 + 600)  # the next step is 100: promoted
    assert (last.action, last.status.phase, last.status.share) == ("promote", "Promoted", 0)
    assert advance(CANARY, last.status, passed, T0 + 900).action == "none"


def test_roll_back_is_final_for_that_canary():
    failed = Judgement("RollBack", "failure ratio 0.200 above 0.01 (20 failed of 100 requests)", "failureRatio")
    got = advance(CANARY, start(CANARY, T0), failed, T0 + 30)
    assert (got.action, got.status.phase, got.status.share) == ("rollback", "RolledBack", 0)
    assert "failure ratio 0.200" in got.status.verdict
    later = current(CANARY, got.status, T0 + 60)
    assert later is not None and later.status.phase == "RolledBack"


def test_an_ab_test_is_never_promoted_but_still_rolled_back():
    ab = CANARY.model_copy(update={"analysis": CanaryAnalysis(promotion="None")})
    state = start(ab, T0)
    assert state.phase == "Testing"
    passed = Judgement("Promote", "healthy")
    assert advance(ab, state, passed, T0 + 1000).action == "none"
    assert advance(ab, state, Judgement("RollBack", "bad", "failureRatio"), T0 + 1000).action == "rollback"


def test_the_readme_precision_table_is_what_the_split_gives():
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| fleet | 10 % | 25 % | 50 % |"):].split("\n\n")[0].splitlines()[2:]
    assert len(table) == 4
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        total = int(cells[0])
        for share, cell in zip((10, 25, 50), cells[1:], strict=True):
            pods, percent = cell.replace(" pod", "").split(" = ")
            got = split(total, share, max_replicas=100)
            assert (int(pods), int(percent.rstrip(" %"))) == (got.canary, round(got.canary_percent)), (total, share)
