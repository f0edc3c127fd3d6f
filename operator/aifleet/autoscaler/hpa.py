"""The Kubernetes HorizontalPodAutoscaler algorithm, re-implemented as pure functions.

Written from the behaviour of kube-controller-manager's `pkg/controller/podautoscaler`
(replica calculator + `normalizeDesiredReplicas` / `normalizeDesiredReplicasWithBehaviors`, Kubernetes
v1.35), so that it can serve as the baseline in the simulator and as the shared core of aifleet's own policy.
tests/test_hpa_upstream.py replays upstream's own test vectors against it. Semantics kept on purpose:

* Replica calculator: ratio = metric / target; inside the tolerance band (1 - 0.1 <= ratio <= 1 + 0.1, per
  direction since Kubernetes 1.33: behavior.scaleDown/scaleUp.tolerance) the answer is "no change", outside it
  is ceil(...). For an External metric with an AverageValue
  target (how KEDA and prometheus-adapter usually feed a Prometheus RPS), the ratio is taken against
  `status.replicas` - every pod that exists, ready or not - and the answer is ceil(total / target).
* Pods metrics (per-pod values) group pods first: deleting and failed pods are dropped, Pending pods
  ignored, pods without a metric are "missing": on a scale-down they count as using exactly the
  target, on a scale-up as using 0, and at a ratio of exactly 1 they are left out; ignored (unready) pods
  count as 0 on a scale-up only. If that correction flips the direction, or the pods it adds turn a
  scale-down into more replicas than now (a rolling update's surge pod), nothing changes. Only CPU metrics
  ignore Running-but-unready pods; for any other metric an unready pod that reports is averaged in as is.
* Missing metrics: if the only metric cannot be read, HPA does nothing (ScalingActive=False,
  FailedGet...Metric) and records no recommendation (but the first sync's); it never scales on missing data.
* Stabilization: the first sync of an HPA records the current size as a recommendation (so nothing
  shrinks inside the first scale-down window); every sync records the raw recommendation; the stabilized
  value starts at the current replicas, is raised to the minimum of the recommendations in the scale-up
  window and lowered to the maximum of those in the scale-down window.
* An HPA without a `behavior:` block is not given the v2 defaults: the controller takes its legacy path.
  The stabilized value is the maximum of the recommendations of the last
  --horizontal-pod-autoscaler-downscale-stabilization (300 s, the window's edge included) and this one; a
  scale-up is capped at max(2 x current, 4) per sync; a scale-down is not rate-limited; no scale events
  are kept.
* Rate policies: the replicas at the period's start are current - added + removed within the period;
  Pods adds/removes `value`, Percent multiplies (ceil up, truncate down); selectPolicy Max takes the
  largest change, Min the smallest, Disabled none. Then [min, max] and the ScalingLimited reason.
* Out-of-range current replicas are corrected before metrics are even read; spec.replicas == 0 with
  minReplicas > 0 means "autoscaling disabled".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

from ..api.autoscaling import LimitReason, ScaleDownRules, ScaleUpRules, ScalingPolicy

ScalingRules = ScaleUpRules | ScaleDownRules

Event = tuple[float, int]  # (unix seconds, replicas) for recommendations, (unix seconds, change) for scale events

TOLERANCE = 0.1


class Tolerances(NamedTuple):
    """The "no change" band around a ratio of 1, per direction (the replica calculator's Tolerances)."""

    up: float = TOLERANCE
    down: float = TOLERANCE

    def within(self, ratio: float) -> bool:
        return 1.0 - self.down <= ratio <= 1.0 + self.up


HPA_TOLERANCES = Tolerances()
# Default behavior (autoscaling/v2 defaulting, and the --horizontal-pod-autoscaler-downscale-stabilization flag)
DEFAULT_SCALE_UP = ScaleUpRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=[
        ScalingPolicy(type="Pods", value=4, period_seconds=15),
        ScalingPolicy(type="Percent", value=100, period_seconds=15),
    ],
)
DEFAULT_SCALE_DOWN = ScaleDownRules(
    stabilization_window_seconds=300,
    select_policy="Max",
    policies=[ScalingPolicy(type="Percent", value=100, period_seconds=15)],
)
# The legacy path (no `behavior:`): kube-controller-manager's --horizontal-pod-autoscaler-downscale-stabilization,
# and the scale-up cap max(2 x current, 4) that predates behaviors.
LEGACY_DOWNSCALE_STABILIZATION = 300
LEGACY_SCALE_UP_FACTOR = 2
LEGACY_SCALE_UP_MINIMUM = 4
# Keeps replica arithmetic in int32 territory whatever a metric says (HPA's replicas are int32).
_REPLICA_CEILING = 2**31 - 1


def ceil_replicas(x: float) -> int:
    """ceil() that survives huge or non-finite ratios (a metric can be 1e308)."""
    if math.isnan(x):
        raise ValueError("NaN replica ratio")
    if x >= _REPLICA_CEILING:
        return _REPLICA_CEILING
    return max(0, math.ceil(x))


# ---------------------------------------------------------------------------------------------
# replica calculator


def external_per_pod_replicas(
    total: float, target_per_pod: float, status_replicas: int, tolerances: Tolerances = HPA_TOLERANCES
) -> int:
    """GetExternalPerPodMetricReplicas: an External metric with an AverageValue target.

    `status_replicas` counts every existing pod, ready or not: starting pods count as capacity here.
    """
    if status_replicas <= 0:
        return ceil_replicas(total / target_per_pod)
    if tolerances.within(total / (target_per_pod * status_replicas)):
        return status_replicas
    return ceil_replicas(total / target_per_pod)


@dataclass(frozen=True, slots=True)
class PodMetric:
    phase: Literal["Pending", "Running", "Succeeded", "Failed"] = "Running"
    deleting: bool = False
    value: float | None = None  # None: no metric for this pod


def pods_metric_replicas(
    pods: Sequence[PodMetric], current_replicas: int, target_per_pod: float, tolerances: Tolerances = HPA_TOLERANCES
) -> int | None:
    """calcPlainMetricReplicas with groupPods, for a non-CPU Pods metric. None means "no metrics" (error)."""
    ready: dict[int, float] = {}
    ignored: list[int] = []
    missing: list[int] = []
    for i, pod in enumerate(pods):
        if pod.deleting or pod.phase == "Failed":
            continue
        if pod.phase == "Pending":
            ignored.append(i)
            continue
        if pod.value is None:
            missing.append(i)
            continue
        ready[i] = pod.value  # non-CPU metric: an unready Running pod with a metric counts as is
    if not ready:
        return None
    ratio = sum(ready.values()) / (target_per_pod * len(ready))
    rebalance_ignored = bool(ignored) and ratio > 1.0
    if not rebalance_ignored and not missing:
        if tolerances.within(ratio):
            return current_replicas
        return ceil_replicas(ratio * len(ready))
    values = dict(ready)
    if ratio != 1.0:  # at exactly 1 the missing pods are left out, not counted as idle
        for i in missing:
            values[i] = target_per_pod if ratio < 1.0 else 0.0
    if rebalance_ignored:
        for i in ignored:
            values[i] = 0.0
    new_ratio = sum(values.values()) / (target_per_pod * len(values))
    if tolerances.within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current_replicas
    proposal = ceil_replicas(new_ratio * len(values))
    # Counting more pods than the current replicas (a surge pod during a rolling update) must not turn a
    # scale-down into a scale-up, nor the other way round.
    if (new_ratio < 1.0 and proposal > current_replicas) or (new_ratio > 1.0 and proposal < current_replicas):
        return current_replicas
    return proposal


# ---------------------------------------------------------------------------------------------
# behavior: stabilization and rate policies


def stabilize(
    recommendations: Sequence[Event],
    proposal: int,
    current: int,
    up_window: int,
    down_window: int,
    now: float,
) -> tuple[int, tuple[Event, ...]]:
    """stabilizeRecommendationWithBehaviors: returns (stabilized, recommendations incl. this one, pruned)."""
    up_cutoff, down_cutoff = now - up_window, now - down_window
    up_rec = down_rec = proposal
    for t, r in recommendations:
        if t > up_cutoff:
            up_rec = min(up_rec, r)
        if t > down_cutoff:
            down_rec = max(down_rec, r)
    stabilized = current
    if stabilized < up_rec:
        stabilized = up_rec
    if stabilized > down_rec:
        stabilized = down_rec
    keep_after = now - max(up_window, down_window)
    kept = (*(e for e in recommendations if e[0] > keep_after), (now, proposal))
    return stabilized, kept


def changes_in_period(events: Sequence[Event], period_seconds: int, now: float) -> int:
    """getReplicasChangePerPeriod: replicas changed strictly within the last `period_seconds`."""
    cutoff = now - period_seconds
    return sum(change for t, change in events if t > cutoff)


def _policy_limit(
    current: int,
    up_events: Sequence[Event],
    down_events: Sequence[Event],
    rules: ScalingRules,
    now: float,
    pick: Callable[[int, int], int],
    propose: Callable[[int, ScalingPolicy], int],
) -> int:
    """The replica count the rate policies allow, each from the replicas at the start of its period."""
    if rules.select_policy == "Disabled":
        return current
    result: int | None = None
    for p in rules.policies:
        start = current - changes_in_period(up_events, p.period_seconds, now) + changes_in_period(down_events, p.period_seconds, now)
        proposed = propose(start, p)
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def _grown(start: int, p: ScalingPolicy) -> int:
    # Percent is rounded up so that a small fleet can still grow.
    return start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100))


def _shrunk(start: int, p: ScalingPolicy) -> int:
    # Percent is truncated, as int32(float64(...)).
    return start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100))


def scale_up_limit(current: int, up_events: Sequence[Event], down_events: Sequence[Event], rules: ScalingRules, now: float) -> int:
    """calculateScaleUpLimitWithScalingRules."""
    pick = min if rules.select_policy == "Min" else max
    return _policy_limit(current, up_events, down_events, rules, now, pick, _grown)


def scale_down_limit(current: int, up_events: Sequence[Event], down_events: Sequence[Event], rules: ScalingRules, now: float) -> int:
    """calculateScaleDownLimitWithBehaviors: the lowest replica count the policies allow."""
    # For scaling down the biggest change is the lowest count: Max change picks min(), Min change picks max().
    pick = max if rules.select_policy == "Min" else min
    return _policy_limit(current, up_events, down_events, rules, now, pick, _shrunk)


def limit_by_rate(
    desired: int,
    current: int,
    min_replicas: int,
    max_replicas: int,
    up_events: Sequence[Event],
    down_events: Sequence[Event],
    up_rules: ScalingRules,
    down_rules: ScalingRules,
    now: float,
) -> tuple[int, LimitReason | None]:
    """convertDesiredReplicasWithBehaviorRate: rate policies, then [min, max]; returns the limiting reason."""
    reason: LimitReason
    if desired > current:
        limit = max(scale_up_limit(current, up_events, down_events, up_rules, now), current)
        if max_replicas > limit:
            allowed, reason = limit, "ScaleUpLimit"
        else:
            allowed, reason = max_replicas, "TooManyReplicas"
        if desired > allowed:
            return allowed, reason
    elif desired < current:
        limit = min(scale_down_limit(current, up_events, down_events, down_rules, now), current)
        if min_replicas < limit:
            allowed, reason = limit, "ScaleDownLimit"
        else:
            allowed, reason = min_replicas, "TooFewReplicas"
        if desired < allowed:
            return allowed, reason
    return desired, None


def record_scale_event(
    up_events: Sequence[Event],
    down_events: Sequence[Event],
    previous: int,
    new: int,
    now: float,
    up_rules: ScalingRules,
    down_rules: ScalingRules,
) -> tuple[tuple[Event, ...], tuple[Event, ...]]:
    """storeScaleEvent, with events older than the longest period dropped (upstream reuses their slots)."""

    def keep(events: Sequence[Event], rules: ScalingRules) -> tuple[Event, ...]:
        longest = max((p.period_seconds for p in rules.policies), default=0)
        return tuple(e for e in events if e[0] > now - longest)

    up, down = keep(up_events, up_rules), keep(down_events, down_rules)
    if new > previous:
        up += ((now, new - previous),)
    elif new < previous:
        down += ((now, previous - new),)
    return up, down


# ---------------------------------------------------------------------------------------------
# the legacy path: an HPA without a `behavior:` block


def stabilize_legacy(
    recommendations: Sequence[Event], proposal: int, window: int, now: float
) -> tuple[int, tuple[Event, ...]]:
    """stabilizeRecommendation: the highest recommendation of the window (its edge included) and this one.

    It does not start from the current replicas: a scale-up is never held back, only a scale-down.
    Returns (stabilized, recommendations incl. this one, pruned).
    """
    cutoff = now - window
    kept = tuple(e for e in recommendations if e[0] >= cutoff)
    return max([proposal, *(r for _, r in kept)]), (*kept, (now, proposal))


def legacy_scale_up_limit(current: int) -> int:
    """calculateScaleUpLimit: at most double, and at least 4, per sync."""
    return max(LEGACY_SCALE_UP_FACTOR * current, LEGACY_SCALE_UP_MINIMUM)


def limit_legacy(desired: int, current: int, min_replicas: int, max_replicas: int) -> tuple[int, LimitReason | None]:
    """convertDesiredReplicasWithRules: [min, min(max, scale-up cap)]; no rate limit on the way down."""
    reason: LimitReason
    if max_replicas > (cap := legacy_scale_up_limit(current)):
        allowed, reason = cap, "ScaleUpLimit"
    else:
        allowed, reason = max_replicas, "TooManyReplicas"
    if desired < min_replicas:
        return min_replicas, "TooFewReplicas"
    if desired > allowed:
        return allowed, reason
    return desired, None


# ---------------------------------------------------------------------------------------------
# one HPA sync, end to end


@dataclass(frozen=True)
class HPAState:
    initialized: bool = False  # the first sync has recorded the current size as a recommendation
    recommendations: tuple[Event, ...] = ()
    up_events: tuple[Event, ...] = ()
    down_events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class HPAResult:
    desired: int
    rescale: bool
    limited: LimitReason | None
    metric_ok: bool
    state: HPAState = field(default_factory=HPAState)


def hpa_sync(
    metric_total: float | None,
    spec_replicas: int,
    status_replicas: int,
    min_replicas: int,
    max_replicas: int,
    target_per_pod: float,
    state: HPAState,
    now: float,
    *,
    scale_up: ScalingRules = DEFAULT_SCALE_UP,
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN,
    tolerances: Tolerances = HPA_TOLERANCES,
    behavior: bool = True,
    downscale_stabilization_seconds: int = LEGACY_DOWNSCALE_STABILIZATION,
) -> HPAResult:
    """reconcileAutoscaler for one External AverageValue metric; `metric_total` None means the read failed.

    `behavior` False is an HPA without a `behavior:` block: `scale_up` and `scale_down` are then unused and
    the legacy path applies, with `downscale_stabilization_seconds` as its window (the controller's flag).
    """
    if not state.initialized:
        # recordInitialRecommendation: before anything else, even if this sync ends up doing nothing
        state = replace(state, initialized=True, recommendations=((now, spec_replicas),))
    limited: LimitReason | None = None
    if spec_replicas == 0 and min_replicas != 0:
        return HPAResult(0, False, None, metric_total is not None, state)  # autoscaling disabled
    if spec_replicas > max_replicas:
        desired, limited = max_replicas, "TooManyReplicas"
    elif spec_replicas < min_replicas:
        desired, limited = min_replicas, "TooFewReplicas"
    else:
        if metric_total is None or not math.isfinite(metric_total) or metric_total < 0:
            return HPAResult(spec_replicas, False, None, False, state)  # FailedGetExternalMetric: no change
        proposal = external_per_pod_replicas(metric_total, target_per_pod, status_replicas, tolerances)
        if behavior:
            stabilized, recs = stabilize(
                state.recommendations,
                proposal,
                spec_replicas,
                scale_up.stabilization_window_seconds,
                scale_down.stabilization_window_seconds,
                now,
            )
            desired, limited = limit_by_rate(
                stabilized, spec_replicas, min_replicas, max_replicas, state.up_events, state.down_events, scale_up, scale_down, now
            )
        else:
            stabilized, recs = stabilize_legacy(state.recommendations, proposal, downscale_stabilization_seconds, now)
            desired, limited = limit_legacy(stabilized, spec_replicas, min_replicas, max_replicas)
        state = replace(state, recommendations=recs)
    rescale = desired != spec_replicas
    if rescale and behavior:  # storeScaleEvent keeps nothing without a behavior: nothing would read it
        up, down = record_scale_event(state.up_events, state.down_events, spec_replicas, desired, now, scale_up, scale_down)
        state = replace(state, up_events=up, down_events=down)
    return HPAResult(desired, rescale, limited, True, state)
