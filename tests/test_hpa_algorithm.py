"""The HPA re-implementation (`aifleet.autoscaler.hpa`), against the upstream controller's semantics."""

from __future__ import annotations

import pytest

from aifleet.api.autoscaling import ScaleDownRules, ScaleUpRules, ScalingPolicy
from aifleet.autoscaler.hpa import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    HPAState,
    PodMetric,
    external_per_pod_replicas,
    hpa_sync,
    limit_by_rate,
    pods_metric_replicas,
    record_scale_event,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)

T0 = 1_000_000.0


# ---------------------------------------------------------------------------------------------
# replica calculator


@pytest.mark.parametrize(
    "total, target, replicas, expected",
    [
        (1050, 100, 10, 10),  # ratio 1.05: inside the 0.1 band
        (909, 100, 10, 10),  # ratio 0.909: inside
        (1101, 100, 10, 12),  # ratio 1.101: outside -> ceil(11.01)
        (890, 100, 10, 9),  # ratio 0.89: outside -> ceil(8.9)
        (8.6, 2, 3, 5),  # ceil(4.3)
        (0, 100, 10, 0),  # the calculator may say 0; min replicas is applied later
        (500, 100, 0, 5),  # no replicas: straight to ceil
    ],
)
def test_external_average_value(total, target, replicas, expected):
    assert external_per_pod_replicas(total, target, replicas) == expected


def test_huge_metric_saturates_instead_of_overflowing():
    assert external_per_pod_replicas(1e308, 1e-3, 10) == 2**31 - 1


def test_pods_metric_missing_pods_damp_a_scale_down():
    # 4 pods report 50 (ratio 0.5), 2 have no metric yet: on a scale-down they count as exactly at target
    pods = [PodMetric(value=50)] * 4 + [PodMetric(value=None)] * 2
    # plain: ceil(0.5 * 4) = 2; with missing at target: ratio (200 + 200) / 600 = 0.667 -> ceil(4.0) = 4
    assert pods_metric_replicas(pods, 6, 100) == 4


def test_pods_metric_pending_pods_count_zero_on_scale_up():
    pods = [PodMetric(value=200)] * 4 + [PodMetric(phase="Pending")] * 4
    # ready ratio 2.0 -> 8; pending pods rebalanced at 0: ratio 800 / 800 = 1.0 -> inside the band: hold
    assert pods_metric_replicas(pods, 8, 100) == 8


def test_pods_metric_direction_flip_holds():
    # ratio > 1 over ready pods, but missing pods at 0 make it < 1: no change rather than a scale-down
    pods = [PodMetric(value=130)] * 2 + [PodMetric(value=None)] * 2
    assert pods_metric_replicas(pods, 4, 100) == 4


def test_pods_metric_unready_but_running_pods_dilute_non_cpu_metrics():
    """Only CPU ignores Running-but-unready pods; a loading Triton pod reporting 0 rps drags the average."""
    pods = [PodMetric(value=200)] * 4 + [PodMetric(value=0)] * 4
    assert pods_metric_replicas(pods, 8, 100) == 8  # ratio 800/800: HPA sees no shortfall


def test_pods_metric_no_metrics_is_an_error():
    assert pods_metric_replicas([PodMetric(value=None)] * 3, 3, 100) is None
    assert pods_metric_replicas([PodMetric(deleting=True, value=100), PodMetric(phase="Failed", value=100)], 2, 100) is None


# ---------------------------------------------------------------------------------------------
# behavior


def test_stabilize_min_in_up_window_max_in_down_window():
    recs = [(T0 - 200, 9), (T0 - 100, 4), (T0 - 20, 7)]
    # down window 300: highest recent recommendation wins over a lower proposal
    assert stabilize(recs, 3, 8, 0, 300, T0)[0] == 8  # current 8 < max 9: stays at current
    assert stabilize(recs, 3, 12, 0, 300, T0)[0] == 9
    # up window 150: the lowest recommendation in it (4) bounds a scale-up
    assert stabilize(recs, 20, 2, 150, 0, T0)[0] == 4
    assert stabilize(recs, 20, 2, 0, 0, T0)[0] == 20
    # the window is strict: a recommendation exactly window seconds old no longer counts
    assert stabilize([(T0 - 300, 50)], 3, 10, 0, 300, T0)[0] == 3
    _, kept = stabilize([*recs, (T0 - 400, 1)], 5, 5, 0, 300, T0)
    assert kept == ((T0 - 200, 9), (T0 - 100, 4), (T0 - 20, 7), (T0, 5))


@pytest.mark.parametrize("current, expected", [(1, 5), (2, 6), (4, 8), (10, 20), (100, 200)])
def test_default_scale_up_is_max_of_4_pods_and_100_percent(current, expected):
    assert scale_up_limit(current, (), (), DEFAULT_SCALE_UP, T0) == expected


def test_scale_up_limit_counts_changes_within_the_period():
    ups = ((T0 - 10, 6),)  # 6 pods added 10 s ago: the period started at current - 6
    assert scale_up_limit(12, ups, (), DEFAULT_SCALE_UP, T0) == 12  # start 6 -> max(10, 12)
    assert scale_up_limit(12, ((T0 - 15, 6),), (), DEFAULT_SCALE_UP, T0) == 24  # out of the 15 s period


def test_select_policy_min_and_disabled():
    rules = ScaleUpRules(select_policy="Min", policies=[ScalingPolicy(type="Pods", value=4, period_seconds=60),
                                                       ScalingPolicy(type="Percent", value=100, period_seconds=60)])
    assert scale_up_limit(10, (), (), rules, T0) == 14
    assert scale_up_limit(10, (), (), ScaleUpRules(select_policy="Disabled"), T0) == 10


def test_percent_rounding_up_for_growth_down_for_shrink():
    up = ScaleUpRules(policies=[ScalingPolicy(type="Percent", value=10, period_seconds=60)])
    assert scale_up_limit(3, (), (), up, T0) == 4  # ceil(3.3): a small fleet can always grow
    down = ScaleDownRules(policies=[ScalingPolicy(type="Percent", value=15, period_seconds=60)])
    assert scale_down_limit(10, (), (), down, T0) == 8  # int(8.5)


def test_scale_down_limits():
    assert scale_down_limit(10, (), (), DEFAULT_SCALE_DOWN, T0) == 0  # 100%: straight to the recommendation
    rules = ScaleDownRules(select_policy="Min", policies=[ScalingPolicy(type="Pods", value=2, period_seconds=60),
                                                         ScalingPolicy(type="Percent", value=50, period_seconds=60)])
    assert scale_down_limit(10, (), (), rules, T0) == 8  # the smaller change
    assert scale_down_limit(8, (), ((T0 - 30, 2),), rules, T0) == 8  # start 10, 2 already removed


def test_limit_by_rate_reasons():
    assert limit_by_rate(50, 10, 1, 100, (), (), DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN, T0) == (20, "ScaleUpLimit")
    assert limit_by_rate(50, 10, 1, 15, (), (), DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN, T0) == (15, "TooManyReplicas")
    assert limit_by_rate(1, 10, 3, 100, (), (), DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN, T0) == (3, "TooFewReplicas")
    slow = ScaleDownRules(policies=[ScalingPolicy(type="Pods", value=1, period_seconds=60)])
    assert limit_by_rate(1, 10, 1, 100, (), (), DEFAULT_SCALE_UP, slow, T0) == (9, "ScaleDownLimit")
    assert limit_by_rate(12, 10, 1, 100, (), (), DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN, T0) == (12, None)


def test_scale_events_are_recorded_and_pruned():
    up, down = record_scale_event(((T0 - 100, 3),), (), 10, 14, T0, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)
    assert up == ((T0, 4),) and down == ()
    up, down = record_scale_event(up, down, 14, 9, T0 + 5, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)
    assert up == ((T0, 4),) and down == ((T0 + 5, 5),)


# ---------------------------------------------------------------------------------------------
# one sync at a time


def sync(metric, replicas, state, now, lo=1, hi=100, target=100):
    return hpa_sync(metric, replicas, replicas, lo, hi, target, state, now)


def test_missing_metric_changes_nothing_and_records_nothing():
    synced = HPAState(initialized=True, recommendations=((T0 - 15, 10),))
    r = sync(None, 10, synced, T0)
    assert (r.desired, r.rescale, r.metric_ok) == (10, False, False) and r.state == synced
    # only the very first sync records something: the current size, whatever the metric says
    assert sync(None, 10, HPAState(), T0).state == HPAState(initialized=True, recommendations=((T0, 10),))
    assert sync(float("nan"), 10, HPAState(), T0).rescale is False


def test_out_of_range_and_disabled():
    assert sync(None, 150, HPAState(), T0).desired == 100
    assert sync(None, 0, HPAState(), T0).rescale is False  # spec.replicas 0: autoscaling disabled
    assert hpa_sync(500, 2, 2, 3, 10, 100, HPAState(), T0).desired == 3


def test_default_behaviour_end_to_end():
    state, replicas, now = HPAState(), 10, T0
    trajectory = []
    for metric in [5000] * 3 + [500] * 22:
        r = sync(metric, replicas, state, now)
        state, replicas = r.state, r.desired
        trajectory.append(replicas)
        now += 15
    assert trajectory[:3] == [20, 40, 50]  # +100% per 15 s until the 50 the metric asks for
    # down: the 50 recommended at t=30 stays in the 300 s window until t=330 (index 22)
    assert trajectory[3:22] == [50] * 19 and trajectory[22] == 5
