"""A periodic forecast of the RPS from its own history: pure functions, no I/O, no numpy.

`fit(views, spec)` looks for a period in one or more views of the history (each a uniform-step series from a
Prometheus range query, e.g. 6 h at 30 s and 4 days at 8 min) and returns a `SeasonalModel`, or a `NoPeriod`
saying why not. It only trusts a period that is clear on three counts:

* strong autocorrelation at the period (`minAutocorrelation`), on the samples present (a gap in the history,
  e.g. a Prometheus outage, is left out, not read as zero);
* a real trough: the profile's trough at least `minTroughRatio` below its peak (a flat line has nothing to
  forecast);
* a small back-test error: the profile built from all cycles but the last forecasts the last one within
  `maxBacktestError` of its mean traffic.

The back-test uses the per-phase median over the cycles, so one odd cycle (an outage, a retry storm) does not
move it; the forecast itself uses the per-phase upper quartile (a pod too many costs less than a request
above capacity). `peak(model, start, end)` is the highest profile value in [start, end]: the policy asks it for
the coming pod startup, and uses the answer as a floor, never above its own reactive decision's claim to the
current traffic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from pydantic import Field

from ..api.autoscaling import ForecastSpec
from ..api.base import ApiModel

# While no period is clear, the history is read this often at most (a new period shows after three cycles).
SEARCH_INTERVAL_SECONDS = 300

# A range query answers at most 11,000 points per series; the fit works on at most this many per view.
MAX_POINTS = 720


@dataclass(frozen=True)
class HistoryView:
    """One range query's answer: (unix time, rps) points on a uniform `step`; missing steps may be absent."""

    step: float
    points: tuple[tuple[float, float], ...]


class SeasonalModel(ApiModel):
    """A period found in the history, and the traffic profile over one period (serialisable, kept in state)."""

    period: float = Field(description="Seconds.")
    step: float = Field(description="Seconds between profile points.")
    origin: float = Field(description="Unix time of profile[0]; the profile repeats every `period` from there.")
    profile: list[float] = Field(description="Upper-quartile RPS per phase step over the cycles seen.")
    autocorrelation: float
    backtest_error: float = Field(description="Mean absolute error of the back-test over the last cycle's mean.")
    fitted_at: float = Field(description="Unix time of the newest point the model was fitted on.")


@dataclass(frozen=True)
class NoPeriod:
    reason: str  # why there is no forecast, as the end of a sentence


def _grid(view: HistoryView) -> tuple[float, list[float | None]]:
    """The view on its uniform grid from its first point, at most MAX_POINTS, gaps as None."""
    pts = sorted(view.points)
    if not pts:
        return 0.0, []
    step = view.step
    t0, t_end = pts[0][0], pts[-1][0]
    n = round((t_end - t0) / step) + 1
    if n > MAX_POINTS:  # keep the newest part
        t0 = t_end - (MAX_POINTS - 1) * step
        n = MAX_POINTS
    grid: list[float | None] = [None] * n
    for t, v in pts:
        i = round((t - t0) / step)
        if 0 <= i < n and math.isfinite(v):
            grid[i] = v
    return t0, grid


def autocorrelation(x: Sequence[float | None], lag: int) -> float:
    """Pearson correlation of the series with itself `lag` steps later, over the pairs where both are present."""
    n = sa = sb = saa = sbb = sab = 0.0
    for a, b in zip(x, x[lag:]):
        if a is None or b is None:
            continue
        n += 1
        sa += a
        sb += b
        saa += a * a
        sbb += b * b
        sab += a * b
    if n < 8:
        return 0.0
    cov = sab - sa * sb / n
    va, vb = saa - sa * sa / n, sbb - sb * sb / n
    if va <= 1e-12 * max(saa, 1.0) or vb <= 1e-12 * max(sbb, 1.0):
        return 0.0
    return cov / math.sqrt(va * vb)


def _upper_quartile(vals: list[float]) -> float:
    vals = sorted(vals)
    pos = 0.75 * (len(vals) - 1)
    i = int(pos)
    return vals[i] if i + 1 >= len(vals) else vals[i] + (vals[i + 1] - vals[i]) * (pos - i)


def _profile(x: Sequence[float | None], lag: int, cycles: int, upper: bool = False) -> list[float] | None:
    """The per-phase median (or upper quartile) of the last `cycles` whole cycles of x (phase 0 = the grid's
    start, mod lag)."""
    n = len(x)
    out: list[float] = []
    for phase in range(lag):
        vals = [v for v in x[phase::lag][-cycles:] if v is not None] if cycles else []
        if not vals:
            return None
        out.append(_upper_quartile(vals) if upper else median(vals))
    return out if len(out) == lag and n >= lag else None


def _fit_view(view: HistoryView, spec: ForecastSpec) -> SeasonalModel | NoPeriod:
    t0, x = _grid(view)
    n = len(x)
    step = view.step
    lo = max(2, math.ceil(spec.min_period_seconds / step))
    hi = min(int(spec.max_period_seconds // step), n // 3)  # three whole cycles: two to learn, one to test
    if hi < lo:
        return NoPeriod(f"the history holds fewer than three cycles of {spec.min_period_seconds}s")
    present = sum(v is not None for v in x)
    if present < 0.7 * n:
        return NoPeriod("the history has too many gaps")
    acf = [autocorrelation(x, k) if lo <= k <= hi else -1.0 for k in range(hi + 1)]
    # The period is the best local peak of the autocorrelation; among near-equal peaks (multiples of one period)
    # the shortest wins, because its profile is learnt from the most cycles.
    peaks = [k for k in range(lo, hi + 1) if acf[k] >= acf[k - 1] and (k == hi or acf[k] >= acf[k + 1])]
    if not peaks:
        return NoPeriod("the autocorrelation has no peak")
    best = max(acf[k] for k in peaks)
    lag = min(k for k in peaks if acf[k] >= best - 0.05)
    r = acf[lag]
    if r < spec.min_autocorrelation:
        return NoPeriod(f"no clear period (best autocorrelation {r:.2f} at {lag * step:.0f}s, needs {spec.min_autocorrelation:g})")
    cycles = n // lag
    # Back-test: the last cycle forecast from the cycles before it.
    last = x[n - lag :]
    earlier = x[: n - lag]
    learnt = _profile(earlier, lag, cycles - 1)
    if learnt is None:
        return NoPeriod("a phase of the period has no data in the history")
    shift = (n - lag) % lag  # the phase of the last cycle's first point within `learnt`
    errors = [abs(v - learnt[(shift + i) % lag]) for i, v in enumerate(last) if v is not None]
    actual = [v for v in last if v is not None]
    mean_last = sum(actual) / len(actual) if actual else 0.0
    err = (sum(errors) / len(errors)) / mean_last if errors and mean_last > 0 else math.inf
    if err > spec.max_backtest_error:
        return NoPeriod(f"the period of {lag * step:.0f}s does not forecast its last cycle well (error {err:.0%})")
    # The floor uses the upper quartile of the cycles: a pod too many costs less than a request above capacity.
    profile = _profile(x, lag, cycles, upper=True)
    if profile is None:
        return NoPeriod("a phase of the period has no data in the history")
    top, bottom = max(profile), min(profile)
    if top <= 0 or (top - bottom) / top < spec.min_trough_ratio:
        return NoPeriod(f"the period of {lag * step:.0f}s has no real trough")
    return SeasonalModel(
        period=lag * step, step=step, origin=t0, profile=profile, autocorrelation=r, backtest_error=err,
        fitted_at=t0 + (n - 1) * step,
    )


def fit(views: Sequence[HistoryView], spec: ForecastSpec) -> SeasonalModel | NoPeriod:
    """The clearest period over the views (lowest back-test error), or why none is clear."""
    found: list[SeasonalModel] = []
    why: list[NoPeriod] = []
    for view in views:
        result = _fit_view(view, spec)
        (found if isinstance(result, SeasonalModel) else why).append(result)  # type: ignore[arg-type]
    if found:
        return min(found, key=lambda m: m.backtest_error)
    return why[0] if why else NoPeriod("no history")


def peak(model: SeasonalModel, start: float, end: float) -> float:
    """The highest profile value for any time in [start, end] (the profile repeats every period)."""
    n = len(model.profile)
    first = math.floor((start - model.origin) / model.step)
    last = math.ceil((end - model.origin) / model.step)
    count = min(last - first + 1, n)
    return max(model.profile[(first + i) % n] for i in range(count))


# Steps of the range queries: round numbers, so that common periods (15 min, 1 h, 1 day) are whole steps.
NICE_STEPS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


def _nice_step(span: float, poll_interval_seconds: int) -> float:
    least = max(span / (MAX_POINTS - 1), float(poll_interval_seconds))
    return float(next((s for s in NICE_STEPS if s >= least), math.ceil(least)))


def history_views(spec: ForecastSpec, poll_interval_seconds: int) -> list[tuple[float, float]]:
    """(span, step) of the range queries the operator reads: the whole history at a step that keeps it under
    MAX_POINTS, and, when that step is coarse, the last 6 h at a fine one (short periods such as batch jobs)."""
    span = float(spec.history_seconds)
    views = [(span, _nice_step(span, poll_interval_seconds))]
    short_span = min(span, 6 * 3600.0)
    short_step = _nice_step(short_span, poll_interval_seconds)
    if short_step < views[0][1]:
        views.append((short_span, short_step))
    return views


def refresh_interval(model_known: object, spec: ForecastSpec) -> float:
    """Seconds between reads of the history: `refreshSeconds` once a period is known, sooner while searching."""
    known = getattr(model_known, "forecast_model", None) is not None
    return float(spec.refresh_seconds if known else min(spec.refresh_seconds, SEARCH_INTERVAL_SECONDS))
