"""The capacity simulator and its CLI entry point."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from aifleet.autoscaler import policy
from aifleet.autoscaler import simulate as sim
from aifleet.autoscaler.simulate import (
    AifleetController,
    HPAController,
    SimConfig,
    Trace,
    load_trace,
    oracle,
    run,
    simulate,
    simulate_main,
    write_trace,
)

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "examples" / "traces"


def make(tmp_path, rows, name="t.csv"):
    p = tmp_path / name
    write_trace(p, [r[0] for r in rows], [r[1] for r in rows])
    return p


def step_trace(before=100.0, after=1000.0, at=1800, end=3600) -> Trace:
    t = np.array([0, at - 1, at, end], dtype=float)
    return Trace("step", t, np.array([before, before, after, after]))


def test_simulator_calls_the_operators_decide():
    assert sim.decide is policy.decide  # the same function object, not a copy


def test_load_trace_validates(tmp_path):
    ok = make(tmp_path, [(0, 1), (10, 2)])
    tr = load_trace(ok)
    assert tr.name == "t" and tr.duration == 10 and list(tr.rps) == [1, 2]
    (tmp_path / "hdr.csv").write_text("t,value\n0,1\n1,2\n")
    (tmp_path / "dec.csv").write_text("time_seconds,rps\n0,1\n0,2\n")
    (tmp_path / "neg.csv").write_text("time_seconds,rps\n0,1\n5,-2\n")
    (tmp_path / "nan.csv").write_text("time_seconds,rps\n0,1\n5,nan\n")
    (tmp_path / "one.csv").write_text("time_seconds,rps\n0,1\n")
    for bad in ("hdr", "dec", "neg", "nan", "one"):
        with pytest.raises(ValueError):
            load_trace(tmp_path / f"{bad}.csv")


def test_steady_traffic_costs_exactly_its_pods():
    tr = Trace("flat", np.array([0.0, 3600.0]), np.array([95.0, 95.0]))
    cfg = SimConfig(target_rps_per_pod=10, max_replicas=50)
    for r in run(tr, cfg):
        assert r.scale_events == 0 and r.peak_pods == 10
        assert r.pod_hours == pytest.approx(10 * 3601 / 3600)
        assert r.under_share == 0.0


def test_new_pods_serve_only_after_startup():
    cfg = SimConfig(target_rps_per_pod=10, max_replicas=200, pod_startup_seconds=60)
    r = simulate(step_trace(), HPAController(cfg), cfg)
    i = 1800
    assert r.ready[i] == 10 and r.total[i + 30] > 10  # ordered but not serving yet
    first_order = int(np.argmax(r.total > 10))
    assert r.ready[first_order + 59] == 10 and r.ready[first_order + 60] > 10
    assert r.under_share > 0.01
    slow = simulate(step_trace(), HPAController(SimConfig(10, 1, 200, 180)), SimConfig(10, 1, 200, 180))
    assert slow.under_share > r.under_share  # slower starts, more requests above capacity


def test_oracle_is_never_under_provisioned_and_needs_no_more_than_its_peak():
    cfg = SimConfig(target_rps_per_pod=10, max_replicas=200)
    o = oracle(step_trace(), cfg)
    assert o.under_share == 0.0 and o.peak_pods == 100
    assert o.pod_hours == pytest.approx((1800 * 10 + 1801 * 100) / 3600, rel=0.01)


def test_aifleet_without_lookahead_behaves_like_hpa():
    """Same reactive core: on a trace that only rises and stays, the two fleets are identical."""
    cfg = SimConfig(target_rps_per_pod=10, max_replicas=200)
    # The fast path is a floor HPA does not have: off here (on a step it scales up sooner than HPA).
    base = cfg.spec(lookahead=False)
    a_spec = base.model_copy(update={"fast_path": base.fast_path.model_copy(update={"enabled": False})})
    a = simulate(step_trace(), AifleetController(a_spec), cfg)
    h = simulate(step_trace(), HPAController(cfg), cfg)
    assert np.array_equal(a.total, h.total)


def test_lookahead_provisions_a_ramp_earlier_than_hpa():
    cfg = SimConfig(target_rps_per_pod=10, max_replicas=300)
    tr = Trace("ramp", np.array([0.0, 600, 4200, 4800]), np.array([100.0, 100, 1500, 1500]))
    la, hpa = (simulate(tr, c, cfg) for c in (sim.controller_for("aifleet-lookahead", cfg), HPAController(cfg)))
    assert la.under_share < hpa.under_share / 3


def test_controller_for_rejects_unknown_policy():
    with pytest.raises(ValueError, match="unknown policy"):
        sim.controller_for("keda", SimConfig())


def test_cli_prints_the_table_and_writes_a_png(tmp_path, capsys):
    trace = make(tmp_path, [(0, 100), (600, 100), (601, 800), (1800, 800)])
    png = tmp_path / "out.png"
    assert simulate_main([str(trace), "--plot", str(png), "--max-replicas", "200"]) == 0
    out = capsys.readouterr().out
    for name in ("aifleet ", "aifleet-lookahead", "hpa", "oracle", "pod-hours", "under-provisioned requests"):
        assert name in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_policy_choice_and_spec_file(tmp_path, capsys):
    trace = make(tmp_path, [(0, 100), (900, 100)])
    spec = tmp_path / "ais.yaml"
    spec.write_text("apiVersion: aifleet.dev/v1alpha1\nkind: AIService\nspec:\n  autoscaling:\n    targetRPSPerPod: 20\n    maxReplicas: 7\n")
    assert simulate_main([str(trace), "--policy", "hpa", "--spec", str(spec), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "target 20 rps/pod" in out and "| hpa (HPA with default behavior) |" in out and "oracle" not in out
    assert "without a behavior block" not in out


def test_both_hpa_baselines_are_labelled(tmp_path, capsys):
    trace = make(tmp_path, [(0, 100), (600, 100), (601, 800), (1800, 800)])
    assert simulate_main([str(trace), "--policy", "hpa", "--policy", "hpa-no-behavior", "--max-replicas", "200"]) == 0
    out = capsys.readouterr().out
    assert "HPA with default behavior" in out and "HPA without a behavior block" in out


def test_without_a_behavior_hpa_climbs_by_doubling():
    """The legacy path caps each sync at max(2 x current, 4); the default behavior allows +100% or +4 pods."""
    cfg = SimConfig(max_replicas=200)
    trace = step_trace(before=10, after=1000, at=61, end=900)

    def sizes(policy: str) -> list[int]:
        r = simulate(trace, sim.controller_for(policy, cfg), cfg)
        return [int(n) for i, n in enumerate(r.total) if i == 0 or n != r.total[i - 1]]

    assert sizes("hpa-no-behavior")[:5] == [1, 4, 8, 16, 32]
    assert sizes("hpa")[:5] == [1, 5, 10, 20, 40]


def test_cli_reports_bad_input(tmp_path, capsys):
    assert simulate_main([str(tmp_path / "missing.csv")]) == 2
    trace = make(tmp_path, [(0, 1), (10, 1)])
    assert simulate_main([str(trace), "--min-replicas", "5", "--max-replicas", "2"]) == 2
    assert "minReplicas must be <= maxReplicas" in capsys.readouterr().err


def test_committed_traces_are_small_and_reproducible(tmp_path):
    spec = importlib.util.spec_from_file_location("make_traces", ROOT / "benchmarks" / "make_traces.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    mod.main(tmp_path)
    names = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert names == [
        "diurnal.csv", "field_large.csv", "flash_crowd.csv", "noisy_flat.csv", "outage.csv", "periodic.csv", "ramp.csv",
        "spike.csv", "weekly.csv",
    ]
    for name in names:
        committed = (TRACES / name).read_bytes()
        assert committed == (tmp_path / name).read_bytes(), f"{name} differs from benchmarks/make_traces.py"
        assert committed.count(b"\n") < 3000
    field = load_trace(TRACES / "field_large.csv")
    assert 150 <= field.rps.min() <= 250 and 4500 <= np.percentile(field.rps, 99.5) <= 6000
    assert math.isclose(field.duration, 86400)


def test_cli_reads_a_request_log(tmp_path, capsys):
    """A request log of 10 min: 1 request a second, then 5 a second for the last 5 minutes."""
    arrivals = [float(t) for t in range(300)] + [300 + i / 5 for i in range(1500)]
    log = tmp_path / "access.csv"
    log.write_text("method,path,timestamp\n" + "".join(f"POST,/infer,{1_700_000_000 + t}\n" for t in arrivals))
    args = [str(log), "--policy", "hpa", "--target-rps-per-pod", "1", "--bin-seconds", "10"]
    assert simulate_main(args) == 0
    out = capsys.readouterr().out
    assert "a request log of 1800 requests over 9.8 min, counted per 10 s: mean 3.00 rps, busiest bin 5.00 rps" in out
    assert simulate_main([*args, "--column", "path"]) == 2  # not timestamps
    assert "line 2: not a timestamp" in capsys.readouterr().err
    tr = load_trace(log, column="2", bin_seconds=60)
    assert tr.requests == 1800 and list(tr.rps) == [1, 1, 1, 1, 1, 5, 5, 5, 5, 5]
