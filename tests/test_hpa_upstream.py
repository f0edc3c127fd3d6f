"""Kubernetes' own HPA test vectors, replayed against `aifleet.autoscaler.hpa`.

Transcribed from kubernetes/kubernetes v1.35 `pkg/controller/podautoscaler` (replica_calculator_test.go,
horizontal_test.go): each case's id names the upstream test (and, for table tests, the row) it mirrors.
Only the paths the re-implementation covers are here: the Pods (plain) metric and External AverageValue
replica calculations, stabilization with and without a `behavior:` block, rate policies and scale-event
bookkeeping. CPU-utilization cases, which need pod requests and readiness timing, are left out.

Translations: upstream's `time.Now()` offsets become offsets from NOW; its "DesiredWithinRange" condition is
`None` here; Tolerances{scaleDown, scaleUp} becomes Tolerances(up=..., down=...). Upstream reuses one stale
slot per sync where this module drops stale entries, so stored-list lengths are not compared, only what the
stored entries decide.
"""

from __future__ import annotations

import pytest

from aifleet.api.autoscaling import ScaleDownRules, ScaleUpRules, ScalingPolicy
from aifleet.autoscaler.hpa import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Event,
    HPAState,
    PodMetric,
    Tolerances,
    changes_in_period,
    external_per_pod_replicas,
    hpa_sync,
    legacy_scale_up_limit,
    limit_by_rate,
    limit_legacy,
    pods_metric_replicas,
    record_scale_event,
    scale_down_limit,
    scale_up_limit,
    stabilize,
    stabilize_legacy,
)

NOW = 1_000_000.0
MINUTE = 60.0
MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1


def _policies(pods: int, pods_period: int, percent: int, percent_period: int) -> list[ScalingPolicy]:
    out = []
    if pods:
        out.append(ScalingPolicy(type="Pods", value=pods, period_seconds=pods_period))
    if percent:
        out.append(ScalingPolicy(type="Percent", value=percent, period_seconds=percent_period))
    return out


def up_rules(pods: int, pods_period: int, percent: int, percent_period: int, window: int) -> ScaleUpRules:
    """generateScalingRules for the scale-up direction (selectPolicy Max)."""
    return ScaleUpRules(
        stabilization_window_seconds=window, select_policy="Max", policies=_policies(pods, pods_period, percent, percent_period)
    )


def down_rules(pods: int, pods_period: int, percent: int, percent_period: int, window: int) -> ScaleDownRules:
    """generateScalingRules for the scale-down direction (selectPolicy Max)."""
    return ScaleDownRules(
        stabilization_window_seconds=window, select_policy="Max", policies=_policies(pods, pods_period, percent, percent_period)
    )


def uniform_events(changes: list[int], period: int) -> tuple[Event, ...]:
    """generateEventsUniformDistribution: each change in the middle of its share of the last `period` s.

    Upstream converts the age with time.Duration(float), which truncates to whole seconds.
    """
    segment = period / len(changes)
    return tuple((NOW - int(period - segment * (i + 1) + segment / 2), c) for i, c in enumerate(changes))


# ---------------------------------------------------------------------------------------------
# replica_calculator_test.go: the Pods (plain) metric path, GetMetricReplicas


def running(*values: float | None) -> list[PodMetric]:
    """Running pods; None is a pod without a metric. Readiness does not matter for a non-CPU metric."""
    return [PodMetric(value=v) for v in values]


@pytest.mark.parametrize(
    "pods, current, target, tolerances, expected",
    [
        pytest.param(running(20000, 10000, 30000), 3, 15000, Tolerances(), 4, id="TestReplicaCalcScaleUpCM"),
        # pod 3 unready and hot: for a non-CPU metric it is averaged in as it is
        pytest.param(running(50000, 10000, 30000), 3, 15000, Tolerances(), 6, id="TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale"),
        pytest.param(running(50000, 15000, 30000), 3, 15000, Tolerances(), 7, id="TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown"),
        pytest.param(running(*[12000] * 5), 5, 20000, Tolerances(), 3, id="TestReplicaCalcScaleDownCM"),
        pytest.param(running(20000, 21000, 21000), 3, 20000, Tolerances(), 3, id="TestReplicaCalcToleranceCM"),
        pytest.param(running(20000, 21000, 21000), 3, 20000, Tolerances(up=0.01, down=0.1), 4, id="TestReplicaCalcConfigurableToleranceCM"),
        # 5 pods, 3 report, their ratio is exactly 1: the two without a metric are left out, not counted as idle
        pytest.param(running(20000, 19000, 21000, None, None), 5, 20000, Tolerances(), 5, id="TestPlainMetricReplicaCalcMissingMetricsNoChangeEq"),
        # a rolling update's surge pod (3 pods for 2 replicas) has no metric yet: counting it at target must not
        # turn the scale-down into ceil(0.725 x 3) = 3 replicas
        pytest.param(running(10000, 10000, None), 2, 17000, Tolerances(), 2, id="TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM"),
    ],
)
def test_pods_metric(pods, current, target, tolerances, expected):
    assert pods_metric_replicas(pods, current, target, tolerances) == expected


# ---------------------------------------------------------------------------------------------
# replica_calculator_test.go: External metric with an AverageValue target, GetExternalPerPodMetricReplicas


@pytest.mark.parametrize(
    "total, per_pod, status_replicas, tolerances, expected",
    [
        pytest.param(8600, 2150, 3, Tolerances(), 4, id="TestReplicaCalcScaleUpPerPodCMExternal"),
        pytest.param(8600, 2867, 5, Tolerances(), 3, id="TestReplicaCalcScaleDownPerPodCMExternal"),
        pytest.param(8600, 2900, 3, Tolerances(), 3, id="TestReplicaCalcTolerancePerPodCMExternal"),
        pytest.param(8600, 2800, 3, Tolerances(up=0.01, down=0.1), 4, id="TestReplicaCalcConfigurableTolerancePerPodCMExternal"),
        pytest.param(MAX_INT64, 1, 1, Tolerances(), MAX_INT32, id="TestExternalPerPodMetricReplicaOverflow"),
        pytest.param(MAX_INT64, MAX_INT64, 1, Tolerances(), 1, id="TestExternalPerPodMetricUsageOverflow"),
    ],
)
def test_external_average_value(total, per_pod, status_replicas, tolerances, expected):
    assert external_per_pod_replicas(total, per_pod, status_replicas, tolerances) == expected


# ---------------------------------------------------------------------------------------------
# horizontal_test.go: the legacy path (an HPA without a `behavior:` block)


@pytest.mark.parametrize(
    "current, desired, lo, hi, expected, reason",
    [
        pytest.param(5, 7, 3, 8, 7, None, id="prenormalized desired replicas within range"),
        pytest.param(3, 1, 2, 8, 2, "TooFewReplicas", id="prenormalized desired replicas < minReplicas"),
        pytest.param(1, 0, 0, 10, 0, None, id="prenormalized desired zeroed replicas within range"),
        pytest.param(20, 1000, 1, 10, 10, "TooManyReplicas", id="maxReplicas is the limit because maxReplicas < scaleUpLimit"),
        pytest.param(3, 1000, 1, 2000, legacy_scale_up_limit(3), "ScaleUpLimit", id="scaleUpLimit is the limit because scaleUpLimit < maxReplicas"),
    ],
)
def test_convert_desired_replicas_with_rules(current, desired, lo, hi, expected, reason):
    """TestConvertDesiredReplicasWithRules."""
    assert limit_legacy(desired, current, lo, hi) == (expected, reason)


def test_legacy_scale_up_limit_is_double_or_four():
    """calculateScaleUpLimit, as the TestConvertDesiredReplicasWithRules row above uses it."""
    assert [legacy_scale_up_limit(n) for n in (0, 1, 2, 3, 10)] == [4, 4, 4, 6, 20]


@pytest.mark.parametrize(
    "recommendations, proposal, expected",
    [
        pytest.param((), 5, 5, id="empty log"),
        pytest.param(((NOW - 2 * MINUTE, 4), (NOW - MINUTE, 5)), 3, 5, id="stabilize"),
        pytest.param(((NOW - 2 * MINUTE, 1), (NOW - MINUTE, 2)), 3, 3, id="no stabilize"),
        pytest.param(((NOW - 10 * MINUTE, 10), (NOW - 9 * MINUTE, 9)), 3, 3, id="no stabilize - old recommendations"),
        pytest.param(
            ((NOW - 10 * MINUTE, 10), (NOW - MINUTE, 4), (NOW - 2 * MINUTE, 5), (NOW - 9 * MINUTE, 9)), 3, 5,
            id="stabilize - old recommendations",
        ),
    ],
)
def test_normalize_desired_replicas(recommendations, proposal, expected):
    """TestNormalizeDesiredReplicas: stabilizeRecommendation with the default 5-minute window."""
    stabilized, kept = stabilize_legacy(recommendations, proposal, 300, NOW)
    assert stabilized == expected
    assert kept[-1] == (NOW, proposal) and all(t >= NOW - 300 for t, _ in kept)


# ---------------------------------------------------------------------------------------------
# horizontal_test.go: rate policies


def test_calculate_scale_up_limit_with_scaling_rules():
    """TestCalculateScaleUpLimitWithScalingRules: Min of +2 pods and +50% from 1 replica."""
    rules = ScaleUpRules(select_policy="Min", stabilization_window_seconds=300, policies=_policies(2, 60, 50, 60))
    assert scale_up_limit(1, (), (), rules, NOW) == 2


def test_calculate_scale_down_limit_with_behaviors():
    """TestCalculateScaleDownLimitWithBehaviors: Min of -2 pods and -50% from 5 replicas."""
    rules = ScaleDownRules(select_policy="Min", stabilization_window_seconds=300, policies=_policies(2, 60, 50, 60))
    assert scale_down_limit(5, (), (), rules, NOW) == 3


E3 = uniform_events([1, 5, 9], 120)

SCALING_WITH_RULES = [
    # (name, up events, down events, min, max, up rules, down rules, current, desired, expected, reason)
    ("prenormalized desired replicas within range", (), (), 3, 8, None, None, 5, 7, 7, None),
    ("prenormalized desired replicas < minReplicas", (), (), 2, 8, None, None, 3, 1, 2, "TooFewReplicas"),
    ("prenormalized desired replicas within range when minReplicas is 0", (), (), 0, 10, None, None, 1, 0, 0, None),
    ("maxReplicas is the limit because maxReplicas < scaleUpLimit", (), (), 1, 10, None, None, 20, 1000, 10, "TooManyReplicas"),
    ("desired replica count is more than the maximum replica count", (), (), 100, 150, None, None, 100, 1000, 150, "TooManyReplicas"),
    ("scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies", (), (), 1, 2000,
     up_rules(0, 0, 1, 60, 0), None, 3, 1000, 4, "ScaleUpLimit"),
    # upstream marks this row testThis and returns before asserting; it holds all the same
    ("scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined policies", (), (), 3, 2000,
     None, down_rules(20, 60, 0, 0, 0), 1000, 3, 980, "ScaleDownLimit"),
    ("scaleUp with default behavior", (), (), 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    ("scaleUp with pods policy larger than percent policy", (), (), 1, 1000, up_rules(100, 60, 100, 60, 0), None, 10, 500, 110, "ScaleUpLimit"),
    ("scaleUp with percent policy larger than pods policy", (), (), 1, 1000, up_rules(2, 60, 100, 60, 0), None, 10, 500, 20, "ScaleUpLimit"),
    ("scaleUp with spec MaxReplicas limitation with large pod policy", (), (), 1, 1000, up_rules(100, 60, 0, 0, 0), None, 10, 50, 50, None),
    ("scaleUp with spec MaxReplicas limitation with large percent policy", (), (), 1, 1000, up_rules(10000, 60, 0, 0, 0), None, 10, 50, 50, None),
    ("scaleUp with pod policy limitation", (), (), 1, 1000, up_rules(30, 60, 0, 0, 0), None, 10, 50, 40, "ScaleUpLimit"),
    ("scaleUp with percent policy limitation", (), (), 1, 1000, up_rules(0, 0, 200, 60, 0), None, 10, 50, 30, "ScaleUpLimit"),
    ("scaleDown with percent policy larger than pod policy", (), (), 1, 1000, None, down_rules(20, 60, 1, 60, 300), 100, 2, 80, "ScaleDownLimit"),
    ("scaleDown with pod policy larger than percent policy", (), (), 1, 1000, None, down_rules(2, 60, 1, 60, 300), 100, 2, 98, "ScaleDownLimit"),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy", (), (), 1, 1000,
     None, down_rules(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large pod policy", (), (), 1, 1000,
     None, down_rules(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large percent policy", (), (), 5, 1000,
     None, down_rules(0, 0, 100, 60, 300), 10, 2, 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation", (), (), 1, 1000, None, down_rules(5, 60, 0, 0, 300), 10, 2, 5, "ScaleDownLimit"),
    ("scaleDown with percent policy limitation", (), (), 1, 1000, None, down_rules(0, 0, 50, 60, 300), 10, 5, 5, None),
    ("scaleUp with spec MaxReplicas limitation with large pod policy and events", E3, (), 1, 200,
     up_rules(300, 60, 0, 0, 0), None, 100, 500, 200, "TooManyReplicas"),
    ("scaleUp with spec MaxReplicas limitation with large percent policy and events", E3, (), 1, 200,
     up_rules(0, 0, 10000, 60, 0), None, 100, 500, 200, "TooManyReplicas"),
    ("scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events", E3, (), 1, 1000,
     up_rules(5, 120, 0, 0, 0), None, 100, 500, 100, "ScaleUpLimit"),
    ("scaleUp with pod policy and previous scale up events", E3, (), 1, 1000, up_rules(150, 120, 0, 0, 0), None, 100, 500, 235, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up events", E3, (), 1, 1000, up_rules(0, 0, 200, 120, 0), None, 100, 500, 255, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up and down events", uniform_events([4], 120), uniform_events([2], 120), 1, 1000,
     up_rules(0, 0, 300, 300, 0), None, 6, 24, 16, "ScaleUpLimit"),
    ("scaleDown with default policy and previous events", (), E3, 1, 1000, None, None, 10, 5, 5, None),
    ("scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events", (), E3, 1, 1000,
     None, down_rules(115, 120, 0, 0, 300), 100, 0, 1, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large pod policy and previous events", (), E3, 5, 1000,
     None, down_rules(130, 120, 0, 0, 300), 100, 0, 5, "TooFewReplicas"),
    ("scaleDown with spec MinReplicas limitation with large percent policy and previous events", (), E3, 5, 1000,
     None, down_rules(0, 0, 100, 120, 300), 100, 2, 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation and previous events", (), E3, 1, 1000, None, down_rules(5, 120, 0, 0, 300), 100, 2, 100, "ScaleDownLimit"),
    ("scaleDown with percent policy limitation and previous events", (), uniform_events([2, 4, 6], 120), 1, 1000,
     None, down_rules(0, 0, 50, 120, 300), 100, 0, 56, "ScaleDownLimit"),
    ("scaleDown with percent policy and previous scale up and down events", uniform_events([2], 120), uniform_events([4], 120), 1, 1000,
     None, down_rules(0, 0, 50, 180, 0), 10, 1, 6, "ScaleDownLimit"),
    ("scaleDown with previous events preventing further scale down", (), uniform_events([10, 10, 10], 120), 1, 1000,
     None, down_rules(0, 0, 10, 120, 300), 100, 0, 100, "ScaleDownLimit"),
    ("scaleDown with with previous events still allowing more scale down", (), uniform_events([10, 10, 10], 120), 1, 1000,
     None, down_rules(0, 0, 1000, 120, 300), 10, 5, 5, None),
    ("check 'outdated' flag for events for one behavior for up", uniform_events([8, 12, 9, 11], 120), (), 1, 1000,
     up_rules(1000, 60, 0, 0, 0), None, 100, 200, 200, None),
    ("check that events were not marked 'outdated' for two different policies in the behavior for up",
     uniform_events([8, 12, 9, 11], 120), (), 1, 1000, up_rules(1000, 120, 100, 60, 0), None, 100, 200, 200, None),
    ("check that events were marked 'outdated' for two different policies in the behavior for up",
     uniform_events([8, 12, 9, 11], 120), (), 1, 1000, up_rules(1000, 30, 100, 60, 0), None, 100, 200, 200, None),
    ("check 'outdated' flag for events for one behavior for down", (), uniform_events([8, 12, 9, 11], 120), 1, 1000,
     None, down_rules(1000, 60, 0, 0, 300), 100, 5, 5, None),
    ("check that events were not marked 'outdated' for two different policies in the behavior for down",
     (), uniform_events([8, 12, 9, 11], 120), 1, 1000, None, down_rules(1000, 120, 100, 60, 300), 100, 5, 5, None),
    ("check that events were marked 'outdated' for two different policies in the behavior for down",
     (), uniform_events([8, 12, 9, 11], 120), 1, 1000, None, down_rules(1000, 30, 100, 60, 300), 100, 5, 5, None),
]


@pytest.mark.parametrize(
    "ups, downs, lo, hi, up, down, current, desired, expected, reason",
    [pytest.param(*row[1:], id=row[0]) for row in SCALING_WITH_RULES],
)
def test_scaling_with_rules(ups, downs, lo, hi, up, down, current, desired, expected, reason):
    """TestScalingWithRules: convertDesiredReplicasWithBehaviorRate; unset rules are the v2 defaults."""
    up, down = up or DEFAULT_SCALE_UP, down or DEFAULT_SCALE_DOWN
    assert limit_by_rate(desired, current, lo, hi, ups, downs, up, down, NOW) == (expected, reason)


# ---------------------------------------------------------------------------------------------
# horizontal_test.go: TestStoreScaleEvents (the rows with a behavior; without one nothing is stored,
# which test_without_a_behavior_no_scale_event_is_kept covers)


@pytest.mark.parametrize(
    "previous, policies, change_before, counted_after",
    [
        pytest.param((), (10, 60, 100, 60), 0, [5], id="empty entries with two-policy-behavior"),
        pytest.param(((NOW - 61, 7),), (10, 60, 100, 60), 0, [5], id="one outdated entry to be replaced with behavior"),
        pytest.param(((NOW - 58, 7),), (10, 60, 100, 60), 7, [7, 5], id="one actual entry to be not touched with behavior"),
        pytest.param(((NOW - 61, 7), (NOW - 59, 6)), (10, 60, 0, 0), 6, [6, 5], id="two entries, one of them to be replaced"),
        pytest.param(
            ((NOW - 29, 8), (NOW - 59, 6), (NOW - 61, 7), (NOW - 61, 9)), (10, 60, 100, 30), 14, [8, 6, 5],
            id="replace one entry, use policies with different periods",
        ),
        pytest.param(((NOW - 58, 7), (NOW - 59, 6)), (10, 120, 100, 30), 13, [7, 6, 5], id="two entries, both actual"),
    ],
)
def test_store_scale_events(previous, policies, change_before, counted_after):
    assert changes_in_period(previous, 60, NOW) == change_before
    up, down = up_rules(*policies, 0), down_rules(*policies, 0)
    # scale up 10 -> 15: the events that still count are upstream's stored events not marked outdated
    stored_up, _ = record_scale_event(previous, (), 10, 15, NOW, up, down)
    assert [c for _, c in stored_up] == counted_after
    _, stored_down = record_scale_event((), previous, 10, 5, NOW, up, down)
    assert [c for _, c in stored_down] == counted_after


# ---------------------------------------------------------------------------------------------
# horizontal_test.go: TestNormalizeDesiredReplicasWithBehavior (stabilizeRecommendationWithBehaviors)


@pytest.mark.parametrize(
    "recommendations, current, proposal, up_window, down_window, expected",
    [
        pytest.param((), 100, 5, 0, 0, 5, id="empty recommendations for scaling down"),
        pytest.param(((NOW - 2 * MINUTE, 4), (NOW - MINUTE, 5)), 100, 3, 0, 180, 5, id="simple scale down stabilization"),
        pytest.param(((NOW - 2 * MINUTE, 4), (NOW - MINUTE, 5)), 1, 7, 300, 0, 4, id="simple scale up stabilization"),
        pytest.param(((NOW - 2 * MINUTE, 1), (NOW - MINUTE, 2)), 100, 3, 300, 0, 3, id="no scale down stabilization"),
        pytest.param(((NOW - 2 * MINUTE, 4), (NOW - MINUTE, 5)), 1, 3, 0, 300, 3, id="no scale up stabilization"),
        pytest.param(
            ((NOW - 10 * MINUTE, 10), (NOW - 9 * MINUTE, 9)), 100, 3, 0, 0, 3, id="no scale down stabilization, reuse recommendation element"
        ),
        pytest.param(
            ((NOW - 10 * MINUTE, 10), (NOW - 9 * MINUTE, 9)), 1, 100, 0, 0, 100, id="no scale up stabilization, reuse recommendation element"
        ),
        pytest.param(
            ((NOW - 10 * MINUTE, 10), (NOW - MINUTE, 4), (NOW - 2 * MINUTE, 5), (NOW - 9 * MINUTE, 9)), 100, 3, 0, 180, 5,
            id="scale down stabilization, reuse one of obsolete recommendation element",
        ),
        pytest.param(
            ((NOW - 100 * MINUTE, 10), (NOW - MINUTE, 6), (NOW - 2 * MINUTE, 5), (NOW - 3 * MINUTE, 9)), 1, 100, 300, 0, 5,
            id="scale up stabilization, reuse one of obsolete recommendation element",
        ),
        pytest.param(
            ((NOW - 100 * MINUTE, 2), (NOW - 3 * MINUTE, 3)), 2, 1, 300, 300, 2,
            id="scale up and down stabilization, do not scale up when prenormalized rec goes down",
        ),
        pytest.param(
            ((NOW - 100 * MINUTE, 2), (NOW - 3 * MINUTE, 1)), 2, 3, 300, 300, 2,
            id="scale up and down stabilization, do not scale down when prenormalized rec goes up",
        ),
    ],
)
def test_normalize_desired_replicas_with_behavior(recommendations, current, proposal, up_window, down_window, expected):
    stabilized, kept = stabilize(recommendations, proposal, current, up_window, down_window, NOW)
    assert stabilized == expected and kept[-1] == (NOW, proposal)


# ---------------------------------------------------------------------------------------------
# horizontal_test.go: whole syncs. Upstream's controller tests build HPAs without a `behavior:` block, so
# they run the legacy path; the same holds with the v2 default behavior where the case says so. A CPU
# utilization of 100/300/500/250/250 m against 50% of 1 CPU is, as an External AverageValue, a total of
# 1400 against 500 per pod: a proposal of 3 replicas.


@pytest.mark.parametrize("behavior", [False, True], ids=["no behavior block", "default behavior"])
def test_scale_down_stabilize_initial_size(behavior):
    """TestScaleDownStabilizeInitialSize: the first sync records 5, so nothing shrinks inside the window."""
    r = hpa_sync(1400, 5, 5, 2, 6, 500, HPAState(), NOW, behavior=behavior)
    assert (r.desired, r.rescale) == (5, False)


@pytest.mark.parametrize("behavior", [False, True], ids=["no behavior block", "default behavior"])
def test_scale_down(behavior):
    """TestScaleDown: with the recommendations already initialised (and empty), 5 -> 3 at once."""
    r = hpa_sync(1400, 5, 5, 2, 6, 500, HPAState(initialized=True), NOW, behavior=behavior)
    assert (r.desired, r.rescale) == (3, True)


def test_stabilize_downscale():
    """TestStabilizeDownscale: 4 recommended a minute ago holds 4 pods; the 10 of ten minutes ago is gone."""
    state = HPAState(initialized=True, recommendations=((NOW - 10 * MINUTE, 10), (NOW - MINUTE, 4)))
    r = hpa_sync(200, 4, 4, 1, 5, 100, state, NOW, behavior=False)
    assert (r.desired, r.rescale) == (4, False)


@pytest.mark.parametrize("behavior", [False, True], ids=["no behavior block", "default behavior"])
def test_out_of_range_replicas_are_corrected_immediately(behavior):
    """TestScaleUpRCImmediately (1 below min 2 -> 2) and TestScaleDownRCImmediately (6 above max 5 -> 5)."""
    assert hpa_sync(0, 1, 1, 2, 6, 100, HPAState(), NOW, behavior=behavior).desired == 2
    assert hpa_sync(10_000, 6, 6, 2, 5, 100, HPAState(), NOW, behavior=behavior).desired == 5


def test_without_a_behavior_the_scale_up_cap_is_double_or_four_per_sync():
    """normalizeDesiredReplicas + convertDesiredReplicasWithRules, sync after sync: 1 -> 4 -> 8 -> 16 -> 20."""
    state, replicas, seen = HPAState(), 1, []
    for i in range(5):
        r = hpa_sync(2000, replicas, replicas, 1, 100, 100, state, NOW + 15 * i, behavior=False)
        state, replicas = r.state, r.desired
        seen.append((replicas, r.limited))
    assert seen == [(4, "ScaleUpLimit"), (8, "ScaleUpLimit"), (16, "ScaleUpLimit"), (20, None), (20, None)]


def test_without_a_behavior_no_scale_event_is_kept():
    """TestStoreScaleEvents, rows without a behavior: storeScaleEvent returns at once."""
    r = hpa_sync(2000, 1, 1, 1, 100, 100, HPAState(), NOW, behavior=False)
    assert r.rescale and r.state.up_events == () and r.state.down_events == ()


def test_without_a_behavior_the_window_edge_counts_and_the_fall_is_not_rate_limited():
    """stabilizeRecommendation keeps a recommendation exactly a window old; then the fall is immediate."""
    state = HPAState(initialized=True, recommendations=((NOW - 300, 20),))
    assert hpa_sync(500, 20, 20, 1, 100, 100, state, NOW, behavior=False).desired == 20
    assert hpa_sync(500, 20, 20, 1, 100, 100, state, NOW + 1, behavior=False).desired == 5
