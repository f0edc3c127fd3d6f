"""The closed-loop benchmark's arithmetic: the trace turned into load, and the figures of a run."""

from __future__ import annotations

import pytest
from closed_loop import SLO_MS, EngineResult, Sample, load_profile, table

from aifleet.autoscaler.traces import Series


def test_the_profile_is_the_trace_compressed_and_scaled_to_its_peak():
    series = Series(times=(0, 60, 120, 180), rps=(10, 20, 40, 20))
    profile = load_profile(series, minutes=1, peak_rps=80, step_s=15)
    assert [s for s, _ in profile] == [15] * 4
    # Each step the mean of the points in its quarter of the trace, scaled by 80 / 40.
    assert [r for _, r in profile] == [20, 40, 80, 40]


def test_a_step_with_no_point_holds_the_last_value():
    series = Series(times=(0, 100), rps=(5, 10))
    assert [r for _, r in load_profile(series, minutes=1, peak_rps=10, step_s=10)] == [5, 5, 5, 10, 10, 10]


def test_a_trace_without_traffic_is_refused():
    with pytest.raises(ValueError, match="no traffic"):
        load_profile(Series(times=(0, 60), rps=(0, 0)), minutes=1, peak_rps=10)


def window(start_s, ok, errors, p95, over_slo=0):
    return {"start_s": start_s, "ok": ok, "errors": errors, "p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 2,
            "over_slo": over_slo}


def test_the_figures_of_a_run():
    result = EngineResult("operator", [window(0, 600, 0, 60), window(60, 1200, 3, 300, 200), window(120, 600, 0, 70)],
                          [Sample(0, 1, 1), Sample(30, 1, 1), Sample(90, 2, 1), Sample(100, 2, 2), Sample(180, 1, 1)])
    assert result.minutes_within_slo == 2  # the second minute is over the SLO and has failures
    assert result.pod_seconds == 1 * 30 + 1 * 60 + 2 * 10 + 2 * 80
    assert result.scale_events == 2
    # Failures count against scaling only in minutes in which the fleet changed size: minute 1 (90 s, 100 s).
    assert result.errors_while_scaling == 3
    assert result.total("over_slo") == 200
    row = table([result]).splitlines()[-1]
    assert row.startswith("| operator | 2/3 |") and "| 2,403 | 3 | 200 | 3 | 270 | 2 |" in row, row
    assert SLO_MS == 100
