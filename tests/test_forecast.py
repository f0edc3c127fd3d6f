"""The periodic forecaster (autoscaler/forecast.py) and the fast scale-up path, through `policy.decide`."""

from __future__ import annotations

import math
import random

from aifleet.api.autoscaling import AutoscalingSpec, ForecastSpec
from aifleet.autoscaler.forecast import HistoryView, NoPeriod, SeasonalModel, fit, history_views, peak
from aifleet.autoscaler.policy import Observation, decide, to_status
from aifleet.autoscaler.sample import Sample
from aifleet.autoscaler.state import AutoscalerState

T0 = 1_700_000_000.0
STEP = 60.0


def bursts(hours: float, period: float = 900.0, seed: int = 1, hole: tuple[float, float] | None = None) -> HistoryView:
    """100 rps with a +600 rps batch for the first 240 s of every period; optionally a gap (no samples)."""
    rng = random.Random(seed)
    pts = []
    for i in range(int(hours * 3600 / STEP)):
        t = i * STEP
        if hole and hole[0] <= t < hole[1]:
            continue
        v = 100 + (600 if t % period < 240 else 0)
        pts.append((T0 + t, v * (1 + rng.gauss(0, 0.03))))
    return HistoryView(step=STEP, points=tuple(pts))


def test_period_found():
    model = fit([bursts(3)], ForecastSpec())
    assert isinstance(model, SeasonalModel)
    assert model.period == 900 and model.autocorrelation > 0.9 and model.backtest_error < 0.1
    end = T0 + 3 * 3600
    # The next batch starts at end (a multiple of 900 s): a window reaching into it sees it, one before does not.
    assert peak(model, end - 200, end - 130) < 150
    assert 650 <= peak(model, end - 60, end + 15) <= 760


def test_no_period_in_noise():
    rng = random.Random(7)
    pts = tuple((T0 + i * STEP, 300 * (1 + rng.gauss(0, 0.15))) for i in range(180))
    result = fit([HistoryView(step=STEP, points=pts)], ForecastSpec())
    assert isinstance(result, NoPeriod) and "no clear period" in result.reason


def test_no_period_without_three_cycles():
    result = fit([bursts(0.5)], ForecastSpec())
    assert isinstance(result, NoPeriod)


def test_a_flat_line_has_no_trough():
    pts = tuple((T0 + i * STEP, 300.0 + (i % 15 == 0) * 20) for i in range(240))
    result = fit([HistoryView(step=STEP, points=pts)], ForecastSpec())
    assert isinstance(result, NoPeriod) and "trough" in result.reason


def test_an_outage_in_the_history_is_a_gap_not_a_period_breaker():
    model = fit([bursts(3, hole=(3600, 4200))], ForecastSpec())
    assert isinstance(model, SeasonalModel) and model.period == 900
    # a traffic outage (served rps near zero for 10 min) in one cycle does not move the median profile either
    view = bursts(3)
    dipped = tuple((t, v * 0.05 if T0 + 3600 <= t < T0 + 4200 else v) for t, v in view.points)
    model = fit([HistoryView(step=STEP, points=dipped)], ForecastSpec())
    assert isinstance(model, SeasonalModel) and model.period == 900


def test_restart_the_history_alone_rebuilds_the_forecast():
    """A fresh state (an operator restart) with one range query's history acts at once: nothing in memory needed."""
    spec = AutoscalingSpec(max_replicas=200)
    now = T0 + 3 * 3600 - 45  # 45 s before the next batch: it lies within the pod startup + poll ahead
    obs = Observation(rps=Sample.of(100.0, now), current_replicas=10, history=(bursts(3),))
    d = decide(obs, AutoscalerState(), spec, now)
    assert d.decided_by == "Forecast" and d.act and d.desired_replicas >= 65
    assert d.forecast_replicas == d.desired_replicas and d.decided_by_margin == d.desired_replicas - 10
    assert "forecast" in d.message and "over the reactive proposal of 10 replicas" in d.message
    status = to_status(d)
    assert status.forecast_period_seconds == 900 and status.decided_by == "Forecast"


def test_forecast_preview_reports_without_acting():
    spec = AutoscalingSpec(max_replicas=200, forecast=ForecastSpec(mode="Preview"))
    now = T0 + 3 * 3600 - 45
    obs = Observation(rps=Sample.of(100.0, now), current_replicas=10, history=(bursts(3),))
    d = decide(obs, AutoscalerState(), spec, now)
    assert not d.act and d.desired_replicas == 10 and d.forecast_replicas is not None and d.forecast_replicas >= 65
    assert to_status(d).forecast_rps == d.forecast_rps


def test_forecast_never_lowers_the_reactive_decision():
    spec = AutoscalingSpec(max_replicas=200)
    now = T0 + 3 * 3600 + 400  # between batches: the forecast asks for ~10 pods
    obs = Observation(rps=Sample.of(1000.0, now), current_replicas=10, history=(bursts(3),))
    d = decide(obs, AutoscalerState(initialized=True), spec, now)
    assert d.desired_replicas >= 20 and d.decided_by == "Reactive"


def test_history_views_stay_under_the_point_limit_and_include_a_fine_one():
    views = history_views(ForecastSpec(), 15)
    assert all(span / step < 720 for span, step in views)
    assert min(step for _, step in views) == 60 and max(span for span, _ in views) == 4 * 86400


def _fast(rps_1m: float, rps_fast: float, cur: int, state: AutoscalerState, now: float, spec: AutoscalingSpec):
    obs = Observation(rps=Sample.of(rps_1m, now), current_replicas=cur, fast_rps=Sample.of(rps_fast, now))
    return decide(obs, state, spec, now)


def test_fast_path_scales_up_at_once_past_the_rate_policies():
    spec = AutoscalingSpec(max_replicas=200, forecast=ForecastSpec(enabled=False))
    d = _fast(250.0, 1000.0, 10, AutoscalerState(initialized=True), T0, spec)
    # the 1-minute rate asks for 25, the policies would allow 20; the 15 s rate asks for 100, now
    assert d.act and d.desired_replicas == 100 and d.decided_by == "FastPath" and d.decided_by_margin == 75
    assert d.message.startswith("fast path:") and to_status(d).fast_path_replicas == 100


def test_fast_path_ignores_a_small_rise_and_never_scales_down():
    spec = AutoscalingSpec(max_replicas=200, forecast=ForecastSpec(enabled=False))
    small = _fast(100.0, 150.0, 10, AutoscalerState(initialized=True), T0, spec)
    assert small.decided_by == "Reactive" and small.fast_path_replicas is None
    low = _fast(50.0, 10.0, 10, AutoscalerState(), T0, spec)
    assert low.fast_path_replicas is None and low.desired_replicas == 10  # held by the scale-down window, not the fast path


def test_fast_path_holds_then_lets_go():
    spec = AutoscalingSpec(max_replicas=200, forecast=ForecastSpec(enabled=False))
    d = _fast(100.0, 1000.0, 10, AutoscalerState(initialized=True), T0, spec)
    held = _fast(100.0, 100.0, d.desired_replicas, d.state, T0 + 30, spec)
    assert held.fast_path_replicas == 100 and held.desired_replicas == 100
    assert held.decided_by == "FastPath" and not held.act
    later = _fast(100.0, 100.0, 100, held.state, T0 + spec.fast_path.hold_seconds + 15, spec)
    assert later.fast_path_replicas is None and later.desired_replicas < 100


def test_fast_path_respects_max_replicas_and_disabled_scale_up():
    spec = AutoscalingSpec(max_replicas=40, forecast=ForecastSpec(enabled=False))
    d = _fast(100.0, 1000.0, 10, AutoscalerState(initialized=True), T0, spec)
    assert d.desired_replicas == 40
    off = AutoscalingSpec.model_validate({"maxReplicas": 200, "scaleUp": {"selectPolicy": "Disabled"}})
    d = _fast(100.0, 1000.0, 10, AutoscalerState(initialized=True), T0, off)
    assert d.desired_replicas == 10


def test_forecast_periods_are_validated():
    import pytest

    with pytest.raises(ValueError, match="minPeriodSeconds"):
        AutoscalingSpec.model_validate({"forecast": {"minPeriodSeconds": 7200, "maxPeriodSeconds": 3600}})
    assert math.isfinite(ForecastSpec().min_autocorrelation)


def test_a_range_answer_becomes_a_history_view_without_nan():
    from aifleet.autoscaler.prometheus import parse_range

    matrix = [{"metric": {}, "values": [[T0, "100"], [T0 + 60, "NaN"], [T0 + 120, "+Inf"], [T0 + 180, "120.5"]]}]
    view = parse_range(matrix, 60.0)
    assert view is not None and view.points == ((T0, 100.0), (T0 + 180, 120.5))
    assert parse_range([], 60.0) is None and parse_range(matrix * 2, 60.0) is None


def test_forecast_scale_down_is_opt_in():
    from aifleet.autoscaler.state import TimedReplicas

    now = T0 + 3 * 3600 + 400  # 160 s after a batch ended; the next starts in 500 s
    held = AutoscalerState(initialized=True, recommendations=[TimedReplicas(t=now - 150, replicas=70)])
    obs = Observation(rps=Sample.of(100.0, now), current_replicas=70, history=(bursts(3),))
    default = decide(obs, held, AutoscalingSpec(max_replicas=200), now)
    assert default.desired_replicas == 70 and not default.act  # the scale-down window holds the batch's pods
    opted = decide(obs, held, AutoscalingSpec(max_replicas=200, forecast=ForecastSpec(scale_down=True)), now)
    assert opted.act and opted.desired_replicas < 20 and opted.decided_by == "Forecast"


def test_hpa_controller_sweep_settings():
    """The simulator's HPA at tolerance 0.1 and a 300 s window is the default one; a shorter window spends less."""
    import numpy as np

    from aifleet.autoscaler.hpa import Tolerances
    from aifleet.autoscaler.simulate import HPAController, SimConfig, Trace, simulate

    cfg = SimConfig(max_replicas=100)
    tr = Trace("bump", np.array([0.0, 600, 601, 1200, 1201, 2400]), np.array([100.0, 100, 500, 500, 100, 100]))
    default = simulate(tr, HPAController(cfg), cfg)
    same = simulate(tr, HPAController(cfg, tolerances=Tolerances(0.1, 0.1), scale_down_window=300), cfg)
    short = simulate(tr, HPAController(cfg, scale_down_window=60), cfg)
    assert np.array_equal(default.total, same.total)
    assert short.pod_hours < default.pod_hours
