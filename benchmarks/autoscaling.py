"""Autoscaling benchmark: every trace in examples/traces/ through every policy.

    .venv/bin/python benchmarks/autoscaling.py [--out benchmarks/results]

Prints the comparison tables and writes them to benchmarks/results/autoscaling.md, with one PNG per
trace (traffic vs ready capacity per policy). Deterministic: same traces, same numbers.

Besides the plain table, it answers the fair question for a policy that buys capacity earlier:
what would HPA have to spend to be as well provisioned? It runs HPA with lower targets (more
headroom) and interpolates the pod-hours at which HPA reaches aifleet's under-provisioned share.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from aifleet.autoscaler.hpa import Tolerances
from aifleet.autoscaler.simulate import (
    AifleetController,
    HPAController,
    SimConfig,
    SimResult,
    format_table,
    load_trace,
    plot,
    run,
    simulate,
)

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "examples" / "traces"

# Per trace: target 10 rps per pod everywhere; bounds wide enough that they rarely bind.
CONFIGS: dict[str, SimConfig] = {
    "diurnal": SimConfig(max_replicas=200),
    "spike": SimConfig(max_replicas=200),
    "ramp": SimConfig(max_replicas=300),
    "noisy_flat": SimConfig(max_replicas=100),
    # the field's large deployment: 20 to 500 pods at 10 rps per pod
    "field_large": SimConfig(min_replicas=20, max_replicas=800),
    "periodic": SimConfig(max_replicas=200),
    "flash_crowd": SimConfig(max_replicas=300),
    "outage": SimConfig(max_replicas=300),
    "weekly": SimConfig(max_replicas=200),
    "azure_code": SimConfig(max_replicas=200),
}
# Traffic is multiplied by this to reach the fleet size stated in DESCRIPTIONS (1 where the file already does).
SCALE = {"azure_code": 40.0}
DESCRIPTIONS = {
    "diurnal": "24 h consumer day, 50..700 rps, 3% noise",
    "spike": "2 h at 100 rps with a sudden 10x spike for 20 min",
    "ramp": "3 h: 100 rps, linear ramp to 1,500 rps over 2 h, flat",
    "noisy_flat": "3 h at 300 rps with 15% noise every 10 s",
    "field_large": "24 h shaped like the field's large deployment: 200..5,000 rps (bursts to ~5,700), 20..570 pods",
    "periodic": "6 h: 100 rps and a batch of +600 rps for 4 min every 15 min",
    "flash_crowd": "24 h diurnal (50..700 rps) and a flash crowd of +1,200 rps within 2 min at 11:00",
    "outage": "6 h growth 200..800 rps, a 10-min upstream outage at 3 h (10% served), then a 3x retry storm",
    "weekly": "7 days: weekdays 50..700 rps, weekends to ~320 rps",
    "azure_code": "1 h of real LLM arrivals (Azure LLM inference 2023, code; CC-BY 4.0), per 10 s, x40: "
    "mean ~100 rps (10 pods), bursts of 10-60 s to ~900 rps",
}
# A measured alternative, NOT the shipped defaults: look-ahead on.
ALTERNATIVE = {"lookahead": {"enabled": True}}
# The field's own settings (react within 30 s, scale down after 5 minutes of calm), still expressible.
SEEDS = {"scaleUp": {"stabilizationWindowSeconds": 30}, "scaleDown": {"stabilizationWindowSeconds": 300}}
PERIODIC = {"periodic", "weekly"}
HEADROOM = (1.0, 0.97, 0.94, 0.91, 0.88, 0.85, 0.8, 0.75, 0.7)


def under_share(r: SimResult, capacity_per_pod: float) -> float:
    short = np.maximum(r.demand - r.ready * capacity_per_pod, 0.0)
    return float(short.sum() / r.demand.sum())


def hpa_frontier(trace, cfg: SimConfig) -> list[tuple[float, float, float]]:
    """(headroom factor, pod-hours, under-provisioned share at the real target) for HPA with lower targets."""
    out = []
    for f in HEADROOM:
        c = replace(cfg, target_rps_per_pod=cfg.target_rps_per_pod * f)
        r = simulate(trace, HPAController(c), c)
        out.append((f, r.pod_hours, under_share(r, cfg.target_rps_per_pod)))
    return out


# HPA's frontier: its tolerance (both directions) and scale-down window, swept.
SWEEP_TOLERANCES = (0.0, 0.05, 0.1, 0.2)
SWEEP_WINDOWS = (60, 120, 300, 600)


def hpa_sweep(trace, cfg: SimConfig) -> list[tuple[float, int, SimResult]]:
    """HPA with default behavior at every (tolerance, scale-down window) of the sweep."""
    out = []
    for tol in SWEEP_TOLERANCES:
        for window in SWEEP_WINDOWS:
            c = HPAController(cfg, tolerances=Tolerances(tol, tol), scale_down_window=window)
            out.append((tol, window, simulate(trace, c, cfg)))
    return out


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The lower-left frontier of (pod-hours, under share) points, sorted by pod-hours."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def plot_frontier(name: str, sweep, ours: dict[str, SimResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = [(r.pod_hours, r.under_share * 100) for _, _, r in sweep]
    ax.scatter(*zip(*pts), s=14, color="0.55", label="HPA (default behavior), tolerance x scale-down window")
    for tol, window, r in sweep:
        ax.annotate(f"{tol:g}/{window}", (r.pod_hours, r.under_share * 100), fontsize=6, color="0.45",
                    xytext=(2, 2), textcoords="offset points")
    front = pareto(pts)
    ax.plot(*zip(*front), color="0.3", lw=1, label="HPA frontier")
    styles = {"aifleet": ("tab:red", "*", "aifleet (shipped defaults)"), "hpa": ("tab:blue", "o", "HPA with default behavior"),
              "hpa-no-behavior": ("tab:green", "s", "HPA without a behavior block"), "alternative": ("tab:orange", "D",
              "aifleet + look-ahead (not default)")}
    for key, (color, marker, label) in styles.items():
        if key in ours:
            r = ours[key]
            ax.scatter([r.pod_hours], [r.under_share * 100], s=70 if marker == "*" else 36, color=color, marker=marker,
                       label=label, zorder=3)
    ax.set_xlabel("pod-hours")
    ax.set_ylabel("under-provisioned requests (%)")
    ax.set_title(f"{name}: HPA's frontier (tolerance/window) and aifleet", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def below_frontier(front: list[tuple[float, float]], hours: float, under: float) -> bool:
    """Whether (hours, under) beats the frontier: fewer under-provisioned requests than any swept HPA spending
    no more pod-hours."""
    cheaper = [u for h, u in front if h <= hours]
    return not cheaper or under < min(cheaper)


def hpa_equivalent(frontier: list[tuple[float, float, float]], share: float) -> float:
    """Pod-hours HPA needs to be as well provisioned as `share` (NaN if even 30% headroom is not enough)."""
    for (_, h1, u1), (_, h2, u2) in zip(frontier, frontier[1:]):
        if u2 <= share <= u1:
            return h1 if u1 == u2 else h1 + (h2 - h1) * (u1 - share) / (u1 - u2)
    return frontier[0][1] if share >= frontier[0][2] else math.nan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--no-frontier", action="store_true", help="skip HPA's tolerance x scale-down window sweep (slow)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    md = [
        "# Autoscaling benchmark",
        "",
        "Generated by `benchmarks/autoscaling.py` from the traces in `examples/traces/` (made by",
        "`benchmarks/make_traces.py`, fixed seed). Simulator: `aifleet.autoscaler.simulate`; the aifleet rows",
        "call the operator's own `policy.decide`.",
        "",
        "Model, the same for every policy: traffic interpolated to 1 s; the policy reads the mean RPS of the",
        "last 60 s (`rate(...[1m])`) every 15 s; a new pod is paid for at once and serves after 60 s; capacity",
        "is ready pods x 10 rps (the target). *Under-provisioned requests* = requests above ready capacity /",
        "all requests. Policies: `aifleet` (look-ahead off), `aifleet-lookahead` (on, default window 300 s),",
        "two HPA baselines (the re-implemented Kubernetes v1.35 controller, External metric AverageValue,",
        "checked against upstream's own test vectors in `tests/test_hpa_upstream.py`): *HPA with default",
        "behavior* (`hpa`: an `autoscaling/v2` HPA with a `behavior:` block left at its defaults, +4 pods or",
        "+100% per 15 s up, a 300 s window down) and *HPA without a behavior block* (`hpa-no-behavior`: what",
        "most HPAs are; the controller's legacy path, at most max(2x, 4) pods per sync up, the highest",
        "recommendation of the last 300 s down), and `oracle` (perfect foresight, pods ready exactly when",
        "needed, sized per 15 s to the coming peak: the pod-hours floor for zero under-provisioning). Every",
        "policy starts warm and, like the controllers, treats the starting size as its first recommendation.",
        "All aifleet defaults otherwise (tolerance 0.01 up / 0.02 down, scale-up +4 pods or +100% per 15 s,",
        "scale-down after a 180 s window, fast path and forecast on); HPA keeps Kubernetes' default tolerance 0.1 both ways. aifleet with",
        "`tolerance: 0.1`, a 300 s scale-down window and the fast path and forecast off reproduces HPA with default",
        "behavior exactly (unit test).",
        "",
    ]
    summary = ["| trace | HPA with default behavior: pod-h / under | HPA without a behavior block: pod-h / under | aifleet pod-h / under "
               "| less under at no more pod-h than both? | HPA (default behavior) pod-h for the same under (headroom) | aifleet vs that |",
               "|---|---:|---:|---:|:---:|---:|---:|"]
    ratios = ["| trace | pod-h vs HPA default behavior | under vs HPA default behavior | pod-h vs HPA without behavior "
              "| under vs HPA without behavior | goal met (<= 1.03x pod-h, <= 0.6x under, 0.25x periodic) "
              "| alternative (look-ahead on): pod-h / under vs HPA default behavior "
              "| the field's settings (up 30 s, down 300 s): pod-h / under vs HPA default behavior |",
              "|---|---:|---:|---:|---:|:---:|---:|---:|"]
    frontier_rows = ["| trace | HPA settings swept | aifleet (defaults) below HPA's frontier? | alternative below it? |",
                     "|---|---:|:---:|:---:|"]
    started = time.monotonic()
    for name, cfg in CONFIGS.items():
        trace = load_trace(TRACES / f"{name}.csv")
        trace = replace(trace, rps=trace.rps * SCALE.get(name, 1.0))
        results = run(trace, cfg)
        table = format_table(results)
        print(f"\n## {name}: {DESCRIPTIONS[name]}\n{format_table(results, markdown=False)}")
        png = out / f"autoscaling-{name}.png"
        plot(results, cfg, png, title=f"{name}: {DESCRIPTIONS[name]}")
        md += [f"## {name}", "", DESCRIPTIONS[name] + f"; min {cfg.min_replicas}, max {cfg.max_replicas} pods.", "", table, "",
               f"![{name}]({png.name})", ""]

        by = {r.policy: r for r in results}
        la, hpa, legacy = by["aifleet"], by["hpa"], by["hpa-no-behavior"]  # the default policy against both HPAs
        frontier = hpa_frontier(trace, cfg)
        eq = hpa_equivalent(frontier, la.under_share)
        if math.isnan(eq):
            eq_txt, vs_txt = "not reached at 30% headroom", "-"
        else:
            f_needed = next(f for f, h, _ in frontier if h >= eq - 1e-9)
            eq_txt = f"{eq:.1f} (~{(1 - f_needed) * 100:.0f}% headroom)"
            vs_txt = f"{(la.pod_hours / eq - 1) * 100:+.1f}%"
        base = cfg.spec(lookahead=False)
        alt = simulate(trace, AifleetController(type(base).model_validate({**base.model_dump(by_alias=True), **ALTERNATIVE})), cfg)
        seeds = simulate(trace, AifleetController(type(base).model_validate({**base.model_dump(by_alias=True), **SEEDS})), cfg)
        if not args.no_frontier:
            sweep = hpa_sweep(trace, cfg)
            front = pareto([(r.pod_hours, r.under_share * 100) for _, _, r in sweep])
            plot_frontier(name, sweep, {"aifleet": la, "hpa": hpa, "hpa-no-behavior": legacy, "alternative": alt},
                          out / f"frontier-{name}.png")
            frontier_rows.append(
                f"| {name} | {len(sweep)} | {'yes' if below_frontier(front, la.pod_hours, la.under_share * 100) else 'no'} "
                f"| {'yes' if below_frontier(front, alt.pod_hours, alt.under_share * 100) else 'no'} |"
            )
            md += [f"![HPA frontier, {name}](frontier-{name}.png)", ""]
        goal = 0.25 if name in PERIODIC else 0.6
        met = all(la.pod_hours <= 1.03 * h.pod_hours and la.under_share <= goal * h.under_share for h in (hpa, legacy))
        ratios.append(
            f"| {name} | {la.pod_hours / hpa.pod_hours:.3f} | {la.under_share / hpa.under_share:.2f} "
            f"| {la.pod_hours / legacy.pod_hours:.3f} | {la.under_share / legacy.under_share:.2f} | {'yes' if met else 'no'} "
            f"| {alt.pod_hours / hpa.pod_hours:.3f} / {alt.under_share / hpa.under_share:.2f} "
            f"| {seeds.pod_hours / hpa.pod_hours:.3f} / {seeds.under_share / hpa.under_share:.2f} |"
        )
        better = all(la.under_share < h.under_share and la.pod_hours <= h.pod_hours for h in (hpa, legacy))
        summary.append(
            f"| {name} | {hpa.pod_hours:.1f} / {hpa.under_share * 100:.2f}% | {legacy.pod_hours:.1f} / {legacy.under_share * 100:.2f}% "
            f"| {la.pod_hours:.1f} / {la.under_share * 100:.2f}% | {'yes' if better else 'no'} | {eq_txt} | {vs_txt} |"
        )

    md += [
        "## Summary: aifleet (defaults) against both HPAs",
        "",
        "HPA can also be made better provisioned, by lowering its target (headroom). The last columns run",
        f"HPA with default behavior at targets x{', x'.join(f'{f:g}' for f in HEADROOM[1:])} and interpolate the pod-hours at",
        "which it reaches aifleet's under-provisioned share: below 0% means aifleet buys the same",
        "protection for fewer pod-hours.",
        "",
        *summary,
        "",
        "Reading it: pod-hours = demand/target + idle ready capacity + starting pods - under-provisioned",
        "requests (all in pod-hours), so fewer under-provisioned requests at no more pod-hours needs less",
        "waste (idle + starting) than HPA. The waste aifleet removes is HPA's 10% band on the way down (the",
        "5-minute window already filters noise there); part of it buys a tighter band on the way up, where",
        "HPA runs up to 10% hot. On a steady ramp HPA's waste is almost all pod start-up (unavoidable), on a",
        "step the 1-minute rate and the 60 s start-up set the shortfall, on pure noise there is nothing to",
        "follow: there the aim is parity. The look-ahead buys more protection but costs more pod-hours.",
        "",
        "The two HPAs nearly coincide here. With a sync every 15 s, the legacy cap of max(2x, 4) pods per sync",
        "and the default behavior's +100% or +4 pods per 15 s allow almost the same climb (1, 4, 8, 16 against",
        "1, 5, 10, 20); on the way down the legacy window also counts a recommendation exactly 300 s old, so a",
        "fall waits one more poll, which is where its few extra pod-hours come from.",
        "",
    ]
    md += [
        "## Ratio table: aifleet with the shipped defaults (one parameter set for every trace)",
        "",
        "aifleet's pod-hours and under-provisioned requests divided by each HPA baseline's. The last two columns are",
        "measured alternatives, not the defaults: look-ahead on, and the field's own",
        "settings (scale-up window 30 s, scale-down window 300 s).",
        "",
        *ratios,
        "",
        "## HPA's frontier",
        "",
        f"HPA with default behavior swept over tolerance {', '.join(f'{t:g}' for t in SWEEP_TOLERANCES)} (both directions) x",
        f"scale-down window {', '.join(f'{w}' for w in SWEEP_WINDOWS)} s; *below the frontier* means fewer under-provisioned",
        "requests than every swept HPA that spends no more pod-hours. Plots: `frontier-<trace>.png`.",
        "",
        *frontier_rows,
        "",
    ]
    (out / "autoscaling.md").write_text("\n".join(md))
    print("\n" + "\n".join(summary))
    print("\n" + "\n".join(ratios))
    if not args.no_frontier:
        print("\n" + "\n".join(frontier_rows))
    print(f"\nwrote {out / 'autoscaling.md'} and PNGs in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
