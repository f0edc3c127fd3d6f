"""Replay a traffic trace through autoscaling policies and compare what they cost and miss.

The model, kept deliberately simple and identical for every policy:
* traffic: an rps series (`time_seconds,rps`) or a request log binned into one (`traces`), interpolated
  linearly onto a 1-second grid;
* the metric a policy sees at time t is the mean RPS of the last `metric_window_seconds`
  (what Prometheus' `rate(...[1m])` gives), read every `poll_interval_seconds`; the fast path sees the mean of
  the last `fast_window_seconds` (`irate()` over 15 s scrapes), and the forecaster reads the history of the
  1-minute rate as range queries would answer it (every `forecast.refreshSeconds`);
* a new pod costs money at once but serves only `pod_startup_seconds` later; a scale-down removes
  the newest pods first (the ReplicaSet deletes not-ready pods first);
* capacity is ready pods x targetRPSPerPod; traffic above it is "under-provisioned".

Policies: aifleet (`policy.decide`, the operator's own function) with look-ahead off and on, the HPA
re-implementation (`hpa.hpa_sync`, External metric AverageValue target) once with the default `behavior:`
and once without a `behavior:` block (the controller's legacy path, what most HPAs run), and an oracle with
perfect foresight whose pods are ready exactly when needed (per poll interval: the peak of the coming
interval), the lower bound on pod-hours at zero under-provisioning.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..api.autoscaling import AutoscalingSpec, LookaheadSpec, ScaleDownRules
from .forecast import HistoryView, history_views, refresh_interval
from .hpa import DEFAULT_SCALE_DOWN, HPA_TOLERANCES, HPAState, Tolerances, hpa_sync
from .policy import Observation, decide
from .sample import Sample
from .simulate_cli import DESCRIPTION, POLICIES, POLICY_LABELS, add_arguments
from .state import AutoscalerState
from .traces import parse_trace

# The simulated clock starts at a realistic Unix time so timestamps look like the operator's.
EPOCH = 1_700_000_000.0


# ---------------------------------------------------------------------------------------------
# traces


@dataclass(frozen=True)
class Trace:
    name: str
    times: np.ndarray  # seconds from the start, increasing
    rps: np.ndarray
    requests: int | None = None  # read from a request log of this many requests (None: an rps series)
    bin_seconds: float | None = None  # ...counted per bin of this many seconds

    @property
    def duration(self) -> int:
        return int(self.times[-1] - self.times[0])


def load_trace(path: str | Path, column: str | None = None, bin_seconds: float = 1.0) -> Trace:
    """An rps series or a request log from a CSV file (`traces.parse_trace` says which files are which)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            series = parse_trace(f, column=column, bin_seconds=bin_seconds)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return Trace(path.stem, np.array(series.times), np.array(series.rps), series.requests, series.bin_seconds)


def write_trace(path: str | Path, times: Sequence[float], rps: Sequence[float]) -> None:
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["time_seconds", "rps"])
        for t, r in zip(times, rps):
            w.writerow([f"{t:g}", f"{r:.2f}"])


# ---------------------------------------------------------------------------------------------
# configuration and controllers


@dataclass(frozen=True)
class SimConfig:
    target_rps_per_pod: float = 10.0
    min_replicas: int = 1
    max_replicas: int = 1000
    pod_startup_seconds: int = 60
    poll_interval_seconds: int = 15
    metric_window_seconds: int = 60
    fast_window_seconds: int = 15  # the fast path's irate(): the rate between the last two 15 s scrapes

    def spec(self, lookahead: bool) -> AutoscalingSpec:
        return AutoscalingSpec(
            target_rps_per_pod=self.target_rps_per_pod,
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            pod_startup_seconds=self.pod_startup_seconds,
            poll_interval_seconds=self.poll_interval_seconds,
            lookahead=LookaheadSpec(enabled=lookahead),
        )


class Controller(Protocol):
    name: str

    def step(self, now: float, observed_rps: float, current: int, ready: int, signals: Signals) -> int:
        """Return the replica count to run from now on."""
        ...


@dataclass
class Signals:
    """What a Prometheus would also answer: the short-window rate and the 1-minute rate's history."""

    fast_rps: float
    history: list[tuple[float, float]]  # (unix time, observed rps) at every poll so far


@dataclass
class AifleetController:
    spec: AutoscalingSpec
    name: str = "aifleet"
    state: AutoscalerState = field(default_factory=AutoscalerState)

    def step(self, now: float, observed_rps: float, current: int, ready: int, signals: Signals) -> int:
        fc = self.spec.forecast
        history = None
        checked = self.state.forecast_checked_at
        if fc.enabled and (checked is None or now - checked >= refresh_interval(self.state, fc)):
            history = tuple(_range_query(signals.history, now, span, step) for span, step in history_views(fc, self.spec.poll_interval_seconds))
        obs = Observation(
            rps=Sample.of(observed_rps, now), current_replicas=current, ready_replicas=ready,
            fast_rps=Sample.of(signals.fast_rps, now), history=history,
        )
        d = decide(obs, self.state, self.spec, now)
        self.state = d.state
        return d.desired_replicas if d.act else current


def _range_query(history: list[tuple[float, float]], now: float, span: float, step: float) -> HistoryView:
    """What a Prometheus range query of the 1-minute rate over [now - span, now] at `step` answers."""
    start = bisect.bisect_left(history, (now - span, -math.inf))
    points = []
    next_t = -math.inf
    for t, v in history[start:]:
        if t >= next_t:
            points.append((t, v))
            next_t = t + step - 1e-6
    return HistoryView(step=step, points=tuple(points))


@dataclass
class HPAController:
    cfg: SimConfig
    name: str = "hpa"
    behavior: bool = True  # False: an HPA without a `behavior:` block
    tolerances: Tolerances = HPA_TOLERANCES  # the controller's --horizontal-pod-autoscaler-tolerance (or per direction)
    scale_down_window: int = DEFAULT_SCALE_DOWN.stabilization_window_seconds
    state: HPAState = field(default_factory=HPAState)
    _down: ScaleDownRules = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._down = DEFAULT_SCALE_DOWN.model_copy(update={"stabilization_window_seconds": self.scale_down_window})

    def step(self, now: float, observed_rps: float, current: int, ready: int, signals: Signals) -> int:
        # status.replicas counts every pod that exists, ready or not: that is what HPA divides by.
        r = hpa_sync(
            observed_rps, current, current, self.cfg.min_replicas, self.cfg.max_replicas,
            self.cfg.target_rps_per_pod, self.state, now, behavior=self.behavior, tolerances=self.tolerances,
            scale_down=self._down,
            downscale_stabilization_seconds=self.scale_down_window,
        )
        self.state = r.state
        return r.desired


def controller_for(policy: str, cfg: SimConfig, spec: AutoscalingSpec | None = None) -> Controller:
    if policy == "hpa":
        return HPAController(cfg)
    if policy == "hpa-no-behavior":
        return HPAController(cfg, name=policy, behavior=False)
    if policy in ("aifleet", "aifleet-lookahead"):
        base = spec or cfg.spec(lookahead=False)
        enabled = policy == "aifleet-lookahead"
        base = base.model_copy(update={"lookahead": base.lookahead.model_copy(update={"enabled": enabled})})
        AutoscalingSpec.model_validate(base.model_dump())  # the spec must still be valid
        return AifleetController(base, name=policy)
    raise ValueError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")


# ---------------------------------------------------------------------------------------------
# simulation


@dataclass(frozen=True)
class SimResult:
    policy: str
    t: np.ndarray  # seconds, 1-second grid
    demand: np.ndarray  # rps
    ready: np.ndarray  # ready pods
    total: np.ndarray  # pods that exist (ready or starting): what is paid for
    pod_hours: float
    under_share: float  # requests above ready capacity / all requests
    under_time_share: float  # share of seconds with demand above ready capacity
    scale_events: int
    peak_pods: int


def demand_grid(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(0, trace.duration + 1, 1.0)
    return t, np.interp(t, trace.times - trace.times[0], trace.rps)


def _summarise(policy: str, t: np.ndarray, demand: np.ndarray, ready: np.ndarray, total: np.ndarray, events: int, target: float) -> SimResult:
    capacity = ready * target
    short = np.maximum(demand - capacity, 0.0)
    served_total = float(demand.sum())
    return SimResult(
        policy=policy,
        t=t,
        demand=demand,
        ready=ready,
        total=total,
        pod_hours=float(total.sum()) / 3600.0,
        under_share=float(short.sum()) / served_total if served_total > 0 else 0.0,
        under_time_share=float((short > 1e-9).mean()),
        scale_events=events,
        peak_pods=int(total.max()),
    )


def simulate(trace: Trace, controller: Controller, cfg: SimConfig) -> SimResult:
    t, demand = demand_grid(trace)
    cum = np.concatenate([[0.0], np.cumsum(demand)])
    n = len(t)
    target = cfg.target_rps_per_pod

    # Start warm: the fleet the first traffic needs, already ready (the same for every policy).
    start = min(max(math.ceil(demand[0] / target), cfg.min_replicas), cfg.max_replicas)
    ready_at: list[float] = [-math.inf] * start  # sorted; the newest pods are at the end
    ready_series = np.zeros(n)
    total_series = np.zeros(n)
    events = 0
    signals = Signals(fast_rps=0.0, history=[])
    for i in range(n):
        now = t[i]
        if i % cfg.poll_interval_seconds == 0:
            lo = max(0, i - cfg.metric_window_seconds + 1)
            observed = (cum[i + 1] - cum[lo]) / (i + 1 - lo)
            fast_lo = max(0, i - cfg.fast_window_seconds + 1)
            signals.fast_rps = float((cum[i + 1] - cum[fast_lo]) / (i + 1 - fast_lo))
            signals.history.append((EPOCH + now, float(observed)))
            current = len(ready_at)
            ready = bisect.bisect_right(ready_at, now)
            desired = controller.step(EPOCH + now, float(observed), current, ready, signals)
            if desired > current:
                ready_at.extend([now + cfg.pod_startup_seconds] * (desired - current))
                events += 1
            elif desired < current:
                del ready_at[desired:]
                events += 1
        ready_series[i] = bisect.bisect_right(ready_at, now)
        total_series[i] = len(ready_at)
    return _summarise(controller.name, t, demand, ready_series, total_series, events, target)


def oracle(trace: Trace, cfg: SimConfig) -> SimResult:
    """Perfect foresight, instant pods: each poll interval runs exactly the pods its peak needs."""
    t, demand = demand_grid(trace)
    step = cfg.poll_interval_seconds
    pods = np.zeros(len(t))
    events, last = 0, None
    for i in range(0, len(t), step):
        need = math.ceil(float(demand[i : i + step].max()) / cfg.target_rps_per_pod - 1e-9)
        need = min(max(need, cfg.min_replicas), cfg.max_replicas)
        pods[i : i + step] = need
        if last is not None and need != last:
            events += 1
        last = need
    return _summarise("oracle", t, demand, pods, pods, events, cfg.target_rps_per_pod)


def run(trace: Trace, cfg: SimConfig, policies: Sequence[str] = POLICIES, spec: AutoscalingSpec | None = None) -> list[SimResult]:
    out = []
    for p in policies:
        out.append(oracle(trace, cfg) if p == "oracle" else simulate(trace, controller_for(p, cfg, spec), cfg))
    return out


# ---------------------------------------------------------------------------------------------
# reporting


def format_table(results: Sequence[SimResult], markdown: bool = True) -> str:
    oracle_hours = next((r.pod_hours for r in results if r.policy == "oracle"), None)
    header = ["policy", "pod-hours", "under-provisioned requests", "time under-provisioned", "scale events", "peak pods"]
    if oracle_hours:
        header.insert(2, "vs oracle")
    rows = []
    for r in results:
        row = [
            POLICY_LABELS.get(r.policy, r.policy), f"{r.pod_hours:.1f}", f"{r.under_share * 100:.2f}%", f"{r.under_time_share * 100:.1f}%",
            str(r.scale_events), str(r.peak_pods),
        ]
        if oracle_hours:
            row.insert(2, f"{(r.pod_hours / oracle_hours - 1) * 100:+.1f}%")
        rows.append(row)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def fmt_row(row: Sequence[object]) -> str:
        return "  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths)))

    return "\n".join([fmt_row(header)] + [fmt_row(row) for row in rows])


def plot(results: Sequence[SimResult], cfg: SimConfig, path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.policy != "oracle"] or list(results)
    fig, axes = plt.subplots(len(shown), 1, figsize=(11, 2.4 * len(shown) + 0.6), sharex=True, squeeze=False)
    hours = shown[0].t / 3600.0
    span_h = hours[-1] > 3
    x = hours if span_h else shown[0].t / 60.0
    for ax, r in zip(axes[:, 0], shown):
        ax.fill_between(x, r.demand, color="0.8", label="traffic (rps)", linewidth=0)
        ax.plot(x, r.ready * cfg.target_rps_per_pod, color="tab:blue", lw=1.0, label="ready capacity")
        ax.plot(x, r.total * cfg.target_rps_per_pod, color="tab:orange", lw=0.7, ls="--", label="pods paid for (x target)")
        short = r.demand > r.ready * cfg.target_rps_per_pod
        ax.fill_between(x, 0, r.demand.max() * 1.05, where=short, color="tab:red", alpha=0.12, linewidth=0, label="under-provisioned")
        ax.set_ylabel("rps")
        ax.set_title(
            f"{POLICY_LABELS.get(r.policy, r.policy)}: {r.pod_hours:.1f} pod-h, {r.under_share * 100:.2f}% requests above capacity, "
            f"{r.scale_events} scale events, peak {r.peak_pods} pods",
            fontsize=9, loc="left",
        )
        ax.margins(x=0)
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=4)
    axes[-1, 0].set_xlabel("hours" if span_h else "minutes")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# CLI: aifleet simulate TRACE.csv [--policy ...] [--plot out.png]


def _load_spec(path: str) -> AutoscalingSpec:
    import yaml

    doc = yaml.safe_load(Path(path).read_text()) or {}
    if isinstance(doc, dict) and "spec" in doc:  # a whole AIService manifest
        doc = (doc.get("spec") or {}).get("autoscaling") or {}
    return AutoscalingSpec.model_validate(doc)


def simulate_main(argv: Sequence[str] | None = None) -> int:
    """`aifleet simulate` on its own: parse `argv` and run."""
    parser = argparse.ArgumentParser(prog="aifleet simulate", description=DESCRIPTION)
    add_arguments(parser)
    return simulate_command(parser.parse_args(argv))


def simulate_command(args: argparse.Namespace) -> int:
    """Run the simulation the parsed options of `aifleet simulate` describe."""
    try:
        trace = load_trace(args.trace, args.column, args.bin_seconds)
        spec = _load_spec(args.spec) if args.spec else None
    except (OSError, ValueError) as exc:
        print(f"aifleet simulate: {exc}", file=sys.stderr)
        return 2
    if spec is not None:
        cfg = SimConfig(
            spec.target_rps_per_pod, spec.min_replicas, spec.max_replicas, spec.pod_startup_seconds,
            spec.poll_interval_seconds, args.metric_window_seconds,
        )
    else:
        cfg = SimConfig(
            args.target_rps_per_pod, args.min_replicas, args.max_replicas, args.pod_startup_seconds,
            args.poll_interval_seconds, args.metric_window_seconds,
        )
        try:
            cfg.spec(lookahead=False)  # the same checks the API server makes
        except ValueError as exc:
            print(f"aifleet simulate: {exc}", file=sys.stderr)
            return 2
    policies = args.policy or list(POLICIES)
    results = run(trace, cfg, policies, spec)
    if trace.requests is not None:
        print(f"{trace.name}: a request log of {trace.requests} requests over {trace.duration / 60:.1f} min, counted per "
              f"{trace.bin_seconds:g} s: mean {float(trace.rps.mean()):.2f} rps, "
              f"busiest bin {float(trace.rps.max()):.2f} rps")
    print(f"{trace.name}: {trace.duration / 3600:.1f} h, target {cfg.target_rps_per_pod:g} rps/pod, "
          f"pods start in {cfg.pod_startup_seconds}s, poll {cfg.poll_interval_seconds}s")
    print(format_table(results, markdown=args.markdown))
    if args.plot:
        plot(results, cfg, args.plot, title=trace.name)
        print(f"plot: {args.plot}")
    return 0
