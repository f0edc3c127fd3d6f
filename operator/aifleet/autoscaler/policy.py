"""aifleet's scaling decision: one pure function, `decide(observation, state, spec, now)`.

No I/O and no clock: the caller reads metrics and pods, passes `now`, acts on the Decision and keeps
`decision.state` for the next poll. The operator and the simulator call this same function.

Pipeline (HPA-compatible where HPA has a notion, see `hpa.py`):
  1. paused annotation -> report only; replicas outside [min, max] -> corrected first.
  2. RPS -> reactive proposal ceil(rps / target), "no change" inside the tolerance band. The band is
     HPA's per-direction one (KEP-4951: 1 - scaleDown.tolerance <= ratio <= 1 + scaleUp.tolerance;
     defaults 0.01 / 0.02, `tolerance: 0.1` is exactly HPA), relative to the current replicas; with a floor
     that can act (look-ahead Act, the fast path, the forecast Act) it is relative to the fleet the
     measured traffic alone holds (`_measured_fleet`), so floor pods never become a measured
     recommendation that the scale-down window would hold for a whole window.
     The total RPS is used, not a per-pod average, so pods that are still loading models neither
     dilute the signal (HPA's Pods-metric weakness) nor count as capacity: they are capacity
     `podStartupSeconds` from now, which is why the look-ahead projects that far.
  3. optional queue signal -> may raise the proposal, never lower it.
  4. optional look-ahead -> linear trend of recent RPS projected podStartup + poll seconds ahead
     (pods ordered now serve from then until the next decision's pods arrive). Only a clearly
     rising trend counts, and never more growth than the last horizon showed (so a step is not
     extrapolated). The slope projected is the fitted one less one (correlation-corrected) standard
     error: what the data is confident of. The forecast is a floor on scale-up with no tolerance
     band (the trend test is the noise filter; with the band a rising fleet runs 10% hot before
     anything moves). The latest forecast supersedes earlier ones and lasts until its horizon has
     passed; it never enters the scale-down window. Preview computes and reports it without acting.
  5. stabilization windows, rate policies, [min, max] and the ScalingLimited reason (hpa.py).
  6. floors that act at once, past the scale-up rate policies (never past maxReplicas or a Disabled scale-up):
     the fast path (a short-window RPS asking for `scaleUpRatio` x the current replicas, held `holdSeconds`)
     and the periodic forecast (`forecast.py`: the coming peak a pod startup + poll ahead, when the history
     shows a clear period). Neither ever scales down, except the forecast when `forecast.scaleDown` opts in:
     then a clear forecast may end the scale-down window early, never below the reactive proposal.
  7. bad metrics never scale down: hold, or after N failures the fallback, never below current
     unless the spec allows it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from ..api.autoscaling import (
    DEFAULT_SCALE_DOWN_TOLERANCE,
    DEFAULT_SCALE_UP_TOLERANCE,
    PAUSED_ANNOTATION,
    AutoscalingSpec,
    AutoscalingStatus,
    DecidedBy,
    LimitReason,
    MetricErrorKind,
    ReasonCode,
)
from ..api.timestamps import format_timestamp
from .forecast import HistoryView, NoPeriod, SeasonalModel, fit, peak
from .hpa import Tolerances, ceil_replicas, external_per_pod_replicas, limit_by_rate, record_scale_event, stabilize
from .prometheus import redact_url
from .sample import Sample
from .state import AutoscalerState, TimedReplicas, TimedValue


@dataclass(frozen=True, slots=True)
class Observation:
    rps: Sample
    current_replicas: int  # the Deployment's spec.replicas
    ready_replicas: int | None = None  # None: all current replicas are ready
    queue: Sample | None = None
    paused: bool = False
    warming_up: bool = False  # the fleet has not been available for `metrics.warmupSeconds` yet
    fast_rps: Sample | None = None  # the fast path's short-window RPS
    history: tuple[HistoryView, ...] | None = None  # a fresh read of the RPS history (None: keep the last fit)


class _Readings(TypedDict, total=False):
    """The fields of a Decision that report what it was made on, shared by every branch of `decide`."""

    current_replicas: int
    rps: float | None
    queue: float | None
    metric_error: MetricErrorKind | None
    reactive_replicas: int | None
    queue_replicas: int | None
    projected_rps: float | None
    lookahead_replicas: int | None
    fast_rps: float | None
    fast_path_replicas: int | None
    forecast_rps: float | None
    forecast_replicas: int | None


@dataclass(frozen=True)
class Decision:
    desired_replicas: int  # always within [minReplicas, maxReplicas]
    current_replicas: int
    act: bool  # resize the Deployment to desired_replicas
    message: str  # e.g. "rps 4210 over target 100/pod: 35 -> 43 replicas"
    reason: ReasonCode  # one CamelCase word
    limited: LimitReason | None
    state: AutoscalerState
    rps: float | None = None
    reactive_replicas: int | None = None
    queue: float | None = None
    queue_replicas: int | None = None
    projected_rps: float | None = None
    lookahead_replicas: int | None = None
    metric_error: MetricErrorKind | None = None
    paused: bool = False
    fast_rps: float | None = None
    fast_path_replicas: int | None = None
    forecast_rps: float | None = None
    forecast_replicas: int | None = None
    decided_by: DecidedBy | None = None
    decided_by_margin: int | None = None  # replicas the deciding signal asked for above the reactive proposal


def is_paused(annotations: Mapping[str, str] | None) -> bool:
    """The KEDA-style pause switch: annotation `aifleet.dev/paused: "true"`."""
    return (annotations or {}).get(PAUSED_ANNOTATION, "").strip().lower() == "true"


def lookahead_horizon(spec: AutoscalingSpec) -> int:
    return spec.pod_startup_seconds + spec.poll_interval_seconds


def decide(obs: Observation, state: AutoscalerState, spec: AutoscalingSpec, now: float) -> Decision:
    lo, hi = spec.min_replicas, spec.max_replicas
    cur = max(0, int(obs.current_replicas))
    ready = cur if obs.ready_replicas is None else min(max(0, int(obs.ready_replicas)), cur)

    if not state.initialized:
        # Nothing remembered (first sight, or the operator restarted with state in memory only):
        # pretend the current size was just recommended, so shrinking waits a full scale-down window.
        seed = [TimedReplicas.model_construct(t=now, replicas=cur)] if lo <= cur <= hi else []
        state = state.model_copy(update={"initialized": True, "recommendations": seed})

    if obs.paused:
        return Decision(
            desired_replicas=_clamp(cur, lo, hi),
            current_replicas=cur,
            act=False,
            message=f"paused by annotation {PAUSED_ANNOTATION}: holding {replicas(cur)}",
            reason="Paused",
            limited=None,
            state=state,
            paused=True,
        )

    # -- read the signals --------------------------------------------------------------------
    stale_after = spec.metrics.stale_after_seconds
    rps_sample = obs.rps.checked(now, stale_after)
    rps = rps_sample.value if rps_sample.ok else None
    # A new fleet has no series until Prometheus has scraped its ready pods (a rate() needs two scrapes), and a
    # Prometheus installed with it may not answer yet: neither is an outage, so it neither warns nor counts
    # towards the fallback until the warm-up is over.
    waiting = (
        rps is None and (rps_sample.error == "empty" or rps_sample.unreachable) and obs.warming_up and not state.measured
    )
    failures = 0 if rps is not None else state.consecutive_failures + (0 if waiting else 1)
    samples = _remember_rps(state.rps_samples, rps, now, spec)
    state = state.model_copy(
        update={"consecutive_failures": failures, "rps_samples": samples, "measured": state.measured or rps is not None}
    )

    qspec = spec.metrics.queue
    queue: float | None = None
    if qspec is not None and obs.queue is not None:
        q = obs.queue.checked(now, stale_after)
        queue = q.value if q.ok else None

    common: _Readings = {"current_replicas": cur, "rps": rps, "queue": queue, "metric_error": rps_sample.error}
    if obs.history is not None and spec.forecast.enabled:
        model = fit(obs.history, spec.forecast)
        state = state.model_copy(
            update={
                "forecast_model": model if isinstance(model, SeasonalModel) else None,
                "forecast_note": _forecast_note(model),
                "forecast_checked_at": now,
            }
        )

    # -- out of range: fix before anything else (as HPA) ----------------------------------------
    if cur > hi or cur < lo:
        desired = hi if cur > hi else lo
        limited: LimitReason | None = "TooManyReplicas" if cur > hi else "TooFewReplicas"
        reason = f"{replicas(cur)} outside [minReplicas {lo}, maxReplicas {hi}]: {cur} -> {replicas(desired)}"
        return Decision(
            desired_replicas=desired, act=True, message=reason, reason="OutOfRange", limited=limited,
            state=_scaled(state, cur, desired, now, reason, spec), **common,
        )

    # -- proposals --------------------------------------------------------------------------
    target = spec.target_rps_per_pod
    reactive = _reactive_replicas(rps, cur, _measured_fleet(state, cur, spec), spec) if rps is not None else None
    queue_prop = _queue_replicas(queue, cur, spec) if queue is not None else None
    projected, la_prop = _lookahead(samples, rps, now, spec) if rps is not None else (None, None)
    common.update(
        {"reactive_replicas": reactive, "queue_replicas": queue_prop, "projected_rps": projected, "lookahead_replicas": la_prop}
    )
    fast_value, fast_floor, state = _fast_path(obs, cur, state, spec, now)
    forecast_value, forecast_floor = _forecast(state.forecast_model, now, spec)
    common.update(
        {"fast_rps": fast_value, "fast_path_replicas": fast_floor, "forecast_rps": forecast_value, "forecast_replicas": forecast_floor}
    )
    forecast_acts = forecast_floor is not None and spec.forecast.mode == "Act"

    # Measured signals: what the traffic asks for now. They go through the stabilization windows.
    candidates: list[tuple[int, str]] = []
    if reactive is not None:
        candidates.append((reactive, "rps"))
    if queue_prop is not None and (reactive is not None or queue_prop > cur):
        candidates.append((queue_prop, "queue"))  # with RPS missing, the queue may only raise

    # A forecast is a floor that lasts until its horizon has passed. It is not a recommendation: if the
    # measured traffic never asks for the pods it bought, they go when it expires instead of being held
    # for a whole scale-down window (what the traffic did ask for still waits the full window).
    horizon = lookahead_horizon(spec)
    forecasts = [f for f in state.lookahead_floor if f.t > now - horizon]
    if projected is not None and spec.lookahead.mode == "Act":
        forecasts.append(TimedValue.model_construct(t=now, value=projected))
    state = state.model_copy(update={"lookahead_floor": forecasts})
    # The newest forecast, made on the most data, supersedes the older ones still within their horizon
    # (the max of them bought pods for trends the newer data no longer shows). Without a new one
    # (the trend test failed this poll) the last forecast holds until its horizon has passed.
    strongest = forecasts[-1] if forecasts else None
    floor = ceil_replicas(strongest.value / target) if strongest is not None else None
    forecast_in = int(strongest.t + horizon - now) if strongest is not None else 0

    if not candidates and waiting:
        readings = common.copy()
        readings["metric_error"] = None
        if rps_sample.unreachable:
            why = f"cannot reach Prometheus at {redact_url(spec.metrics.address)} yet, waiting while the fleet warms up"
        else:
            why = "waiting for the fleet's first metrics"
        return Decision(
            desired_replicas=cur, act=False, message=f"{why}: holding {replicas(cur)}",
            reason="WaitingForMetrics", limited=None, state=state, **readings,
        )
    if not candidates:
        return _on_missing_metrics(metric_problem(rps_sample, spec), failures, cur, state, spec, now, common)

    proposal, driver = candidates[0]
    for value, name in candidates[1:]:
        if value > proposal:
            proposal, driver = value, name

    # -- behaviour: stabilization, rate policies, bounds -----------------------------------
    up, down = spec.scale_up, spec.scale_down
    recs = tuple((r.t, r.replicas) for r in state.recommendations)
    up_events = tuple((e.t, e.replicas) for e in state.scale_up_events)
    down_events = tuple((e.t, e.replicas) for e in state.scale_down_events)
    stabilized, recs = stabilize(recs, proposal, cur, up.stabilization_window_seconds, down.stabilization_window_seconds, now)
    if floor is not None and floor > stabilized:
        stabilized, proposal, driver = floor, max(proposal, floor), "lookahead"
        assert strongest is not None
        projected = strongest.value
    if forecast_acts and spec.forecast.scale_down and forecast_floor is not None:
        # Opt-in: a clear forecast ends the scale-down window early, never below what the traffic asks for now.
        early = max(proposal, forecast_floor)
        if early < stabilized and stabilized <= cur:
            stabilized, driver = early, "forecast"
    desired, limited = limit_by_rate(stabilized, cur, lo, hi, up_events, down_events, up, down, now)
    # Floors that act at once: the scale-up rate policies are for following measured traffic, not for pods a
    # sudden rise or a clear period has already asked for. Never past maxReplicas or a disabled scale-up.
    floors: list[tuple[int | None, str]] = [(fast_floor, "fast"), (forecast_floor if forecast_acts else None, "forecast")]
    for at_once, name in floors:
        if at_once is None or at_once <= desired:
            continue
        if at_once <= cur:  # a floor that holds: no scale-down below it while it lasts
            desired, driver, limited = at_once, name, None
        elif up.select_policy != "Disabled":
            desired, driver = min(at_once, hi), name
            limited = "TooManyReplicas" if at_once > hi else None
    state = state.model_copy(
        update={"recommendations": [TimedReplicas.model_construct(t=t, replicas=r) for t, r in recs]}
    )

    # Pods ordered by a recent scale-up and not ready yet have not served a single request: shrinking
    # now would throw away their start-up and order them again on the next wiggle.
    starting = cur - ready
    in_flight = (
        desired < cur
        and starting > 0
        and state.last_scale_up_time is not None
        and now - state.last_scale_up_time < spec.pod_startup_seconds
    )
    if in_flight:
        desired, limited = cur, None

    desired = _clamp(desired, lo, hi)  # belt and braces: limit_by_rate already keeps [min, max]
    if driver in ("fast", "forecast"):
        proposal = max(proposal, desired)
    reason, code = _describe(
        driver, proposal, stabilized, desired, limited, in_flight, starting, cur, rps, projected, forecast_in, queue, spec,
        fast_value, forecast_value,
    )
    decided_by = _DECIDED_BY[driver]
    margin = desired - reactive if reactive is not None and decided_by != "Reactive" else None
    if margin and desired != cur and driver in ("fast", "forecast"):
        reason += f" ({margin:+d} over the reactive proposal of {replicas(reactive or 0)})"
    if desired != cur:
        state = _scaled(state, cur, desired, now, reason, spec)
    else:
        state = _scaled(state, cur, cur, now, None, spec)  # prunes old scale events
    return Decision(
        desired_replicas=desired, act=desired != cur, message=reason, reason=code, limited=limited, state=state,
        decided_by=decided_by, decided_by_margin=margin, **common,
    )


_DECIDED_BY: dict[str, DecidedBy] = {
    "rps": "Reactive", "queue": "Queue", "lookahead": "Trend", "fast": "FastPath", "forecast": "Forecast",
}


def _fast_path(
    obs: Observation, cur: int, state: AutoscalerState, spec: AutoscalingSpec, now: float
) -> tuple[float | None, int | None, AutoscalerState]:
    """(short-window RPS, the floor it holds or None, state). A new floor only when the short-window RPS asks
    for at least scaleUpRatio x the current replicas; a floor holds for holdSeconds; a newer one replaces it."""
    fp = spec.fast_path
    if not fp.enabled:
        return None, None, state
    value = None
    if obs.fast_rps is not None:
        sample = obs.fast_rps.checked(now, spec.metrics.stale_after_seconds)
        value = sample.value if sample.ok else None
    floors = [f for f in state.fast_floor if f.t > now - fp.hold_seconds]
    if value is not None:
        need = ceil_replicas(value / spec.target_rps_per_pod)
        if need >= fp.scale_up_ratio * max(cur, 1):
            floors = [TimedReplicas.model_construct(t=now, replicas=need)]
    state = state.model_copy(update={"fast_floor": floors})
    return value, (floors[-1].replicas if floors else None), state


def _forecast(model: SeasonalModel | None, now: float, spec: AutoscalingSpec) -> tuple[float | None, int | None]:
    """(peak RPS, replicas) the forecast expects between now and the pods ordered now being ready + one poll."""
    if model is None or not spec.forecast.enabled:
        return None, None
    value = peak(model, now, now + lookahead_horizon(spec))
    return value, ceil_replicas(value / spec.target_rps_per_pod)


def _forecast_note(result: SeasonalModel | NoPeriod) -> str:
    if isinstance(result, NoPeriod):
        return f"no forecast: {result.reason}"
    return (
        f"period {fmt(result.period)}s found (autocorrelation {result.autocorrelation:.2f}, "
        f"back-test error {result.backtest_error:.0%})"
    )


# ---------------------------------------------------------------------------------------------
# pieces


def _clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))


def _measured_fleet(state: AutoscalerState, cur: int, spec: AutoscalingSpec) -> int:
    """The fleet the measured traffic alone holds: what the RPS tolerance band means by "no change".

    HPA's band answers "no change" relative to the current replicas. Once a forecast has raised the
    fleet above what the measurements asked for, "no change" relative to that records the forecast's
    pods as a measured recommendation, and the scale-down window then holds them for 5 minutes after
    the forecast expired. So while look-ahead acts, the band is taken against the largest recommendation the scale-down
    window held at the last poll (the stabilized measured-only size), never above the current
    replicas. The same holds for the fast path's and the forecast's floors. With no floor that can act
    (look-ahead, fast path and forecast off or in Preview): exactly `cur`, as HPA. The queue signal keeps `cur`: queue
    length and latency measure the fleet that actually runs, forecast pods included.
    """
    recs = state.recommendations
    floors = (
        (spec.lookahead.enabled and spec.lookahead.mode == "Act")
        or spec.fast_path.enabled
        or (spec.forecast.enabled and spec.forecast.mode == "Act")
    )
    if not floors or not recs:
        return cur
    last = recs[-1].t
    cutoff = last - spec.scale_down.stabilization_window_seconds
    held = max(r.replicas for r in recs if r.t > cutoff or r.t == last)
    return min(cur, max(held, spec.min_replicas))


def _reactive_replicas(rps: float, cur: int, measured: int, spec: AutoscalingSpec) -> int:
    """HPA's proposal, with "no change" meaning the measured fleet rather than forecast pods.

    With `measured == cur` (look-ahead off, or not above the measurements) this is exactly HPA's
    answer. Above it, it is HPA's answer for the measured fleet, but never below what the traffic
    needs right now, ceil(rps / target), up to the current replicas: dropping pods while the measured
    traffic already fills them would be a scale-down with the fleet above target.
    """
    target = spec.target_rps_per_pod
    proposal = external_per_pod_replicas(rps, target, measured, tolerances(spec))
    if measured < cur:
        proposal = max(proposal, min(cur, ceil_replicas(rps / target)))
    return proposal


def tolerances(spec: AutoscalingSpec) -> Tolerances:
    """Each direction's own tolerance (HPA's behavior.scaleUp/scaleDown.tolerance), else the spec's `tolerance`
    for both, else the defaults DEFAULT_SCALE_UP_TOLERANCE / DEFAULT_SCALE_DOWN_TOLERANCE."""
    both = spec.tolerance
    up, down = spec.scale_up.tolerance, spec.scale_down.tolerance
    if up is None:
        up = DEFAULT_SCALE_UP_TOLERANCE if both is None else both
    if down is None:
        down = DEFAULT_SCALE_DOWN_TOLERANCE if both is None else both
    return Tolerances(up=up, down=down)


def _remember_rps(samples: list[TimedValue], rps: float | None, now: float, spec: AutoscalingSpec) -> list[TimedValue]:
    if not spec.lookahead.enabled:
        return []
    cutoff = now - spec.lookahead.window_seconds
    kept = [s for s in samples if cutoff < s.t < now]
    if rps is not None:
        kept.append(TimedValue.model_construct(t=now, value=rps))
    return kept


def _queue_replicas(queue: float, cur: int, spec: AutoscalingSpec) -> int:
    q = spec.metrics.queue
    assert q is not None
    if q.type == "PendingRequests":  # additive across pods, like RPS
        return external_per_pod_replicas(queue, q.target, cur, tolerances(spec))
    ratio = queue / q.target  # a latency: scale the current fleet by how far it is off
    if tolerances(spec).within(ratio):
        return cur
    return ceil_replicas(cur * ratio)


# Successive polls (15 s apart) of a rate over a 1-minute window share most of their data, so their
# noise is strongly correlated and the textbook standard error of the slope is about sqrt(60/15) = 2
# times too small. "Clearly rising" is therefore 2 standard errors of the corrected kind: 4 naive ones.
SE_CORRECTION = 2.0
TREND_SIGNIFICANCE = 2 * SE_CORRECTION


def _trend(samples: list[TimedValue], now: float, window: int) -> tuple[float, float, float] | None:
    """Least-squares slope (rps/s), fitted level at `now` and the slope's naive standard error, when the
    slope is clearly positive, so that noise on a flat line does not buy pods."""
    pts = [(s.t, s.value) for s in samples if s.t > now - window]
    n = len(pts)
    if n < 3:
        return None
    try:  # x * x, not x ** 2: float ** raises OverflowError on huge values, * gives inf (checked below)
        mt = sum(t for t, _ in pts) / n
        mv = sum(v for _, v in pts) / n
        sxx = sum((t - mt) * (t - mt) for t, _ in pts)
        if sxx <= 0:
            return None
        slope = sum((t - mt) * (v - mv) for t, v in pts) / sxx
        residual = sum((v - mv - slope * (t - mt)) * (v - mv - slope * (t - mt)) for t, v in pts)
        se = math.sqrt(residual / (n - 2) / sxx)
        level = mv + slope * (now - mt)
    except (ArithmeticError, ValueError):
        return None
    if not (math.isfinite(slope) and math.isfinite(level) and math.isfinite(se)):
        return None
    if slope <= 0 or slope <= TREND_SIGNIFICANCE * se:
        return None
    return slope, level, se


def _lookahead(samples: list[TimedValue], rps: float, now: float, spec: AutoscalingSpec) -> tuple[float | None, int | None]:
    if not spec.lookahead.enabled:
        return None, None
    trend = _trend(samples, now, spec.lookahead.window_seconds)
    if trend is None:
        return None, None
    slope, _, se = trend
    # Project the growth the data is confident of: the slope less one corrected standard error (still
    # positive: the trend test asked for two).
    slope -= SE_CORRECTION * se
    horizon = lookahead_horizon(spec)
    # Start from what is measured: the fitted line ends above the data right after a step.
    # Never forecast more growth over the next horizon than the last horizon actually showed. A step
    # in traffic reaches a 1-minute rate as a steep 1-minute ramp; the window's fit keeps that slope
    # for a whole window after the step is over, the recent growth drops to zero soon after.
    before = [s.value for s in samples if s.t <= now - horizon]
    reference = before[-1] if before else samples[0].value
    projected = rps + min(slope * horizon, max(0.0, rps - reference))
    if not math.isfinite(projected):
        return None, None
    # No tolerance band here: the band is there to ignore noise, and the trend test already does that.
    # With the band, a rising fleet runs up to `tolerance` above target before anything happens.
    return projected, ceil_replicas(projected / spec.target_rps_per_pod)


def replicas(n: int) -> str:
    return f"{n} replica" if n == 1 else f"{n} replicas"


def metric_problem(sample: Sample, spec: AutoscalingSpec) -> str:
    """Why there is no RPS reading, as the start of a sentence. Nothing in it changes from poll to poll of one
    outage (a changing message would turn every poll into a status write)."""
    where = f"Prometheus at {redact_url(spec.metrics.address)}"
    detail = f" ({sample.detail})" if sample.detail else ""
    if sample.unreachable:
        return f"cannot reach {where}{detail}"
    return {
        "failed": f"the rps query to {where} failed{detail}",
        "empty": f"{where} has no rps series for this fleet",
        "stale": f"the latest rps sample is older than {spec.metrics.stale_after_seconds}s",
        "nan": "the rps query returned NaN",
        "invalid": f"the rps query returned an invalid value{detail}",
    }.get(sample.error or "missing", "no rps sample for this fleet")


def _on_missing_metrics(
    problem: str, failures: int, cur: int, state: AutoscalerState, spec: AutoscalingSpec, now: float, common: _Readings
) -> Decision:
    """Missing or bad RPS: never shrink because of it. Hold, or after N failures go to the fallback."""
    policy = spec.on_missing_metrics
    # The count is shown only while it matters (counting towards a fallback): a message that changes on every
    # poll of a long outage would turn every poll into a status write.
    counting = policy.action == "Fallback" and failures < policy.failures_before_fallback
    what = f"{problem} ({failures} of {policy.failures_before_fallback} failures before fallback)" if counting else problem
    if policy.action == "Fallback" and failures >= policy.failures_before_fallback and policy.fallback_replicas is not None:
        fb = policy.fallback_replicas
        goal = fb if policy.allow_fallback_below_current else max(fb, cur)
        desired = _clamp(goal, spec.min_replicas, spec.max_replicas)
        if desired != cur:
            reason = f"{what}: fallback {cur} -> {replicas(desired)}"
            return Decision(
                desired_replicas=desired, act=True, message=reason, reason="Fallback", limited=None,
                state=_scaled(state, cur, desired, now, reason, spec), decided_by="Fallback", **common,
            )
        return Decision(
            desired_replicas=cur, act=False, message=f"{what}: holding {replicas(cur)} (fallbackReplicas {fb})",
            reason="Fallback", limited=None, state=state, **common,
        )
    return Decision(
        desired_replicas=cur, act=False, message=f"{what}: holding {replicas(cur)}",
        reason="MetricsUnavailable", limited=None, state=state, **common,
    )


def _scaled(state: AutoscalerState, cur: int, new: int, now: float, reason: str | None, spec: AutoscalingSpec) -> AutoscalerState:
    up, down = record_scale_event(
        tuple((e.t, e.replicas) for e in state.scale_up_events),
        tuple((e.t, e.replicas) for e in state.scale_down_events),
        cur, new, now, spec.scale_up, spec.scale_down,
    )
    update: dict[str, Any] = {
        "scale_up_events": [TimedReplicas.model_construct(t=t, replicas=r) for t, r in up],
        "scale_down_events": [TimedReplicas.model_construct(t=t, replicas=r) for t, r in down],
    }
    if new != cur:
        update.update(last_scale_time=now, last_scale_reason=reason)
        if new > cur:
            update["last_scale_up_time"] = now
    return state.model_copy(update=update)


def fmt(x: float) -> str:
    """Numbers as people read them in a status line: 4210, 100, 10.5, 0.25."""
    if not math.isfinite(x) or abs(x) >= 1e9:
        return f"{x:.3g}"
    if abs(x) >= 100 or x == int(x):
        return f"{x:.0f}"
    return f"{x:.3g}"


def _describe(
    driver: str,
    proposal: int,
    stabilized: int,
    desired: int,
    limited: LimitReason | None,
    in_flight: bool,
    starting: int,
    cur: int,
    rps: float | None,
    projected: float | None,
    forecast_in: int,
    queue: float | None,
    spec: AutoscalingSpec,
    fast_rps: float | None = None,
    forecast_rps: float | None = None,
) -> tuple[str, ReasonCode]:
    target = f"target {fmt(spec.target_rps_per_pod)}/pod"
    if driver == "queue":
        q = spec.metrics.queue
        assert q is not None and queue is not None
        if q.type == "PendingRequests":
            signal, target = f"queue {fmt(queue)}", f"target {fmt(q.target)}/pod"
        else:
            signal, target = f"queue time {fmt(queue)}ms", f"target {fmt(q.target)}ms"
    elif driver == "fast":
        signal = f"fast path: short-window rps {fmt(fast_rps or 0.0)} (1-minute rps {fmt(rps or 0.0)})"
    elif driver == "forecast":
        signal = f"forecast: periodic peak of rps {fmt(forecast_rps or 0.0)} within {lookahead_horizon(spec)}s (rps now {fmt(rps or 0.0)})"
    elif driver == "lookahead":
        assert rps is not None and projected is not None
        signal = f"rps {fmt(rps)} rising to {fmt(projected)} in {forecast_in}s"
    else:
        assert rps is not None
        signal = f"rps {fmt(rps)}"
    direction = "over" if proposal > cur else "under"
    up_rules, down_rules = spec.scale_up, spec.scale_down
    suffix = {
        "TooManyReplicas": f" (capped at maxReplicas {spec.max_replicas})",
        "TooFewReplicas": f" (at minReplicas {spec.min_replicas})",
        "ScaleUpLimit": " (scale-up disabled)" if up_rules.select_policy == "Disabled" else " (limited by scaleUp policies)",
        "ScaleDownLimit": " (scale-down disabled)" if down_rules.select_policy == "Disabled" else " (limited by scaleDown policies)",
        None: "",
    }[limited]
    if limited is None and stabilized != proposal:
        window = up_rules if proposal > cur else down_rules
        suffix = f" (scale-{'up' if proposal > cur else 'down'} stabilization {window.stabilization_window_seconds}s)"
    if in_flight:
        suffix = f" ({starting} pods still starting)"

    if desired != cur:
        return f"{signal} {direction} {target}: {cur} -> {replicas(desired)}{suffix}", ("ScaleUp" if desired > cur else "ScaleDown")
    if proposal == cur:
        ratio = rps / (spec.target_rps_per_pod * cur) if rps is not None and driver == "rps" and cur > 0 else None
        band = tolerances(spec)
        within = ratio is not None and band.within(ratio)
        tol = band.up if ratio is not None and ratio >= 1.0 else band.down
        where = f"within {fmt(tol * 100)}% of {target}" if within else f"at {target}"
        return f"{signal} {where}: holding {replicas(cur)}", "WithinTolerance"
    code: ReasonCode = "Limited" if limited else "Stabilized"
    return f"{signal} {direction} {target}: holding {replicas(cur)}{suffix}", code


def to_status(decision: Decision) -> AutoscalingStatus:
    """The Decision as `status.autoscaling`."""
    st = decision.state
    return AutoscalingStatus(
        current_rps=decision.rps,
        projected_rps=decision.projected_rps,
        current_queue=decision.queue,
        reactive_replicas=decision.reactive_replicas,
        lookahead_replicas=decision.lookahead_replicas,
        queue_replicas=decision.queue_replicas,
        desired_replicas=decision.desired_replicas,
        reason=decision.reason,
        message=decision.message,
        limited=decision.limited,
        last_scale_time=format_timestamp(st.last_scale_time) if st.last_scale_time is not None else None,
        last_scale_reason=st.last_scale_reason,
        last_metric_error=decision.metric_error,
        paused=decision.paused,
        fast_rps=decision.fast_rps,
        fast_path_replicas=decision.fast_path_replicas,
        forecast_rps=decision.forecast_rps,
        forecast_replicas=decision.forecast_replicas,
        forecast_period_seconds=int(st.forecast_model.period) if st.forecast_model is not None else None,
        forecast_message=st.forecast_note,
        decided_by=decision.decided_by,
        decided_by_margin=decision.decided_by_margin,
    )
