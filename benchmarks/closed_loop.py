"""Closed-loop autoscaling benchmark: a trace replayed against real Triton pods, per engine, in one run.

    make cluster-up && export KUBECONFIG=...      # the local cluster with its real node
    .venv/bin/python benchmarks/closed_loop.py [--trace examples/traces/diurnal.csv] [--minutes 6]

Each engine gets its own namespace pinned to the real node, the same model (a fixed service time and a fixed
number of instances per pod, so capacity follows pods as on GPUs) and the same trace, compressed to `--minutes`
and scaled to `--peak-rps`. Engines: aifleet's `operator` engine with its defaults, the `hpa` engine through the
cluster's own HPA controller and a real prometheus-adapter, and a fixed fleet at the minimum and at the peak.
The load generator sends through the AIService's Service (ClusterIP, kube-proxy) and reports per minute the
p50/p95/p99 latency, failed requests and requests over the SLO; the fleet's size is sampled from its Deployment.

Writes benchmarks/results/closed-loop.md (the table) and closed-loop.png (replicas, rps and p95 over time per
engine). Figures, not assertions: the machine is shared, so compare engines within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "e2e", ROOT / "e2e" / "services"):
    sys.path.insert(0, str(path))

from aifleet.autoscaler.traces import Series, parse_trace  # noqa: E402

SERVICE_TIME_MS = 50
INSTANCES = 2  # per pod: one pod serves at most INSTANCES * 1000 / SERVICE_TIME_MS = 40 rps
TARGET_RPS_PER_POD = 20
SLO_MS = 2 * SERVICE_TIME_MS
ENGINES = ("operator", "hpa", "fixed-min", "fixed-peak")


# ------------------------------------------------------------------------------------------- pure parts

def load_profile(series: Series, minutes: float, peak_rps: float, step_s: float = 10.0) -> list[tuple[float, float]]:
    """The trace compressed to `minutes` and scaled so its highest point is `peak_rps`, as (seconds, rps) steps
    of `step_s` (each step the trace's mean over its span)."""
    if not series.times or max(series.rps) <= 0:
        raise ValueError("the trace has no traffic")
    # Each point holds for its interval; the last one for as long as the one before it.
    last = series.times[-1] - series.times[-2] if len(series.times) > 1 else 1.0
    span = series.times[-1] + last
    steps = max(1, round(minutes * 60 / step_s))
    scale = peak_rps / max(series.rps)
    profile = []
    for i in range(steps):
        lo, hi = span * i / steps, span * (i + 1) / steps
        inside = [r for t, r in zip(series.times, series.rps, strict=True) if lo <= t < hi]
        rps = sum(inside) / len(inside) if inside else _at(series, lo)
        profile.append((step_s, round(rps * scale, 2)))
    return profile


def _at(series: Series, t: float) -> float:
    """The trace's value at time t (the last point at or before it)."""
    value = series.rps[0]
    for time_s, rps in zip(series.times, series.rps, strict=True):
        if time_s > t:
            break
        value = rps
    return value


@dataclass
class Sample:
    t: float  # seconds since the load started
    replicas: int  # pods the Deployment asks for (what is paid for)
    ready: int


@dataclass
class EngineResult:
    engine: str
    timeline: list[dict[str, Any]]  # per minute, from the load generator
    samples: list[Sample] = field(default_factory=list)

    @property
    def minutes(self) -> int:
        return len(self.timeline)

    def total(self, key: str) -> int:
        return int(sum(w.get(key) or 0 for w in self.timeline))

    @property
    def minutes_within_slo(self) -> int:
        return sum(1 for w in self.timeline if w["p95_ms"] is not None and w["p95_ms"] <= SLO_MS and not w["errors"])

    @property
    def pod_seconds(self) -> float:
        """Integral of the Deployment's replicas over the samples (each held until the next)."""
        return sum(a.replicas * (b.t - a.t) for a, b in zip(self.samples, self.samples[1:], strict=False))

    @property
    def scale_events(self) -> int:
        return sum(1 for a, b in zip(self.samples, self.samples[1:], strict=False) if a.replicas != b.replicas)

    @property
    def errors_while_scaling(self) -> int:
        """Failed requests in the minutes in which the fleet changed size."""
        changed = {int(b.t // 60) for a, b in zip(self.samples, self.samples[1:], strict=False)
                   if a.replicas != b.replicas or a.ready != b.ready}
        return int(sum(w["errors"] for w in self.timeline if int(w["start_s"] // 60) in changed))

    def percentile_of_minutes(self, key: str) -> float | None:
        values = sorted(w[key] for w in self.timeline if w[key] is not None)
        return values[len(values) // 2] if values else None


def table(results: Sequence[EngineResult]) -> str:
    head = ("| engine | minutes with p95 ≤ SLO | median p50 / p95 / p99 per minute (ms) | worst p95 (ms) | requests "
            "| failed | over SLO | failed while scaling | pod-seconds | scale events |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in results:
        p = [r.percentile_of_minutes(k) for k in ("p50_ms", "p95_ms", "p99_ms")]
        worst = max((w["p95_ms"] for w in r.timeline if w["p95_ms"] is not None), default=None)
        answered = r.total("ok")
        rows.append(
            f"| {r.engine} | {r.minutes_within_slo}/{r.minutes} | {' / '.join(_ms(v) for v in p)} | {_ms(worst)} "
            f"| {answered + r.total('errors'):,} | {r.total('errors'):,} | {r.total('over_slo'):,} "
            f"| {r.errors_while_scaling:,} | {r.pod_seconds:,.0f} | {r.scale_events} |")
    return "\n".join([head, *rows])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


# ------------------------------------------------------------------------------------------ the real run

def aiservice(engine: str, namespace: str, prometheus: str, peak_rps: float, max_replicas: int) -> dict[str, Any]:
    from realnode import real_aiservice

    peak_pods = min(max_replicas, math.ceil(peak_rps / TARGET_RPS_PER_POD))
    bounds = {"operator": (1, max_replicas), "hpa": (1, max_replicas), "fixed-min": (1, 1),
              "fixed-peak": (peak_pods, peak_pods)}[engine]
    doc = real_aiservice("bench", namespace, prometheus=prometheus, min_replicas=bounds[0], max_replicas=bounds[1],
                         target_rps=TARGET_RPS_PER_POD)
    if engine == "hpa":
        doc["spec"]["autoscaling"]["engine"] = "hpa"
        doc["spec"]["autoscaling"]["metrics"].pop("warmupSeconds", None)
    return doc


def deployment_size(namespace: str) -> tuple[int, int]:
    from kube import get_json

    dep = get_json("deployment", "bench-triton", "-n", namespace) or {}
    return int(dep.get("spec", {}).get("replicas") or 0), int(dep.get("status", {}).get("readyReplicas") or 0)


@contextlib.contextmanager
def sampling(namespace: str, started: float, out: list[Sample], every_s: float = 2.0) -> Iterator[None]:
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                replicas, ready = deployment_size(namespace)
                out.append(Sample(time.monotonic() - started, replicas, ready))
            stop.wait(every_s)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def run_engine(engine: str, profile: list[tuple[float, float]], *, node: Any, prometheus_url: str,
               state: Path, max_replicas: int) -> EngineResult:
    import harness
    import yaml
    from kube import kubectl, wait_for
    from realnode import (answers, models_directory, models_volume, pinned_namespace, ready_pods, service_ip,
                          wait_ready)

    namespace = f"bench-{engine}-{uuid.uuid4().hex[:4]}"
    kubectl("apply", "-f", "-", input=json.dumps(pinned_namespace(namespace)))
    try:
        models = models_directory(node.volumes / namespace, service_time_ms=SERVICE_TIME_MS, instances=INSTANCES)
        with models_volume(node, namespace, models):
            peak = max(r for _, r in profile)
            kubectl("apply", "-f", "-", input=yaml.safe_dump(
                aiservice(engine, namespace, prometheus_url, peak, max_replicas)))
            wait_ready("bench", namespace, timeout=300)
            if engine == "fixed-peak":
                wait_for("every pod of the fixed fleet ready", lambda: len(ready_pods("bench", namespace))
                         >= deployment_size(namespace)[0], timeout=300, interval=1)
            url = f"{service_ip('bench-triton', namespace)}:8000"
            wait_for("the Service to answer", lambda: answers(f"http://{url}/v2/health/ready", node), timeout=60,
                     interval=0.5)
            gen = harness.LoadGenerator(state / engine, [url], profile, model="echo", input_name="INPUT0", batch=0,
                                        allow_networks=node.networks, window_s=60, workers=48, timeout=5,
                                        fresh_connections=True, slo_ms=SLO_MS)
            samples: list[Sample] = []
            started = time.monotonic()
            with sampling(namespace, started, samples):
                report = gen.run()
            print(f"[closed-loop] {engine}: {report['total_ok']} answered, {report['total_errors']} failed",
                  flush=True)
            return EngineResult(engine, report["timeline"], samples)
    finally:
        kubectl("delete", "aiservice", "--all", "-n", namespace, "--timeout=120s", check=False, timeout=150)
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def plot(results: Sequence[EngineResult], profile: list[tuple[float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rps, ax_pods, ax_p95) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    t, xs, ys = 0.0, [], []
    for seconds, rps in profile:
        xs += [t / 60, (t + seconds) / 60]
        ys += [rps, rps]
        t += seconds
    ax_rps.plot(xs, ys, color="black")
    ax_rps.set_ylabel("offered rps")
    for r in results:
        ax_pods.step([s.t / 60 for s in r.samples], [s.replicas for s in r.samples], where="post", label=r.engine)
        ax_p95.plot([w["start_s"] / 60 + 0.5 for w in r.timeline], [w["p95_ms"] for w in r.timeline], marker="o",
                    label=r.engine)
    ax_pods.set_ylabel("pods (Deployment replicas)")
    ax_p95.axhline(SLO_MS, color="grey", linestyle="--", label=f"SLO {SLO_MS} ms")
    ax_p95.set_ylabel("p95 per minute (ms)")
    ax_p95.set_yscale("log")
    ax_p95.set_xlabel("minutes")
    ax_pods.legend()
    ax_p95.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trace", type=Path, default=ROOT / "examples" / "traces" / "diurnal.csv")
    p.add_argument("--minutes", type=float, default=6.0, help="the trace compressed to this long")
    p.add_argument("--peak-rps", type=float, default=80.0)
    p.add_argument("--max-replicas", type=int, default=6)
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    if not os.environ.get("KUBECONFIG"):
        p.error("KUBECONFIG must name the local cluster with its real node (make cluster-up)")
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        p.error(f"unknown engines {sorted(unknown)}; choose from {', '.join(ENGINES)}")
    profile = load_profile(parse_trace(args.trace.read_text().splitlines()), args.minutes, args.peak_rps)

    import realnode
    from adapter import adapter_binary, metrics_adapter
    from kube import kubectl, wait_crd_established
    from operator_process import OperatorProcess

    state = Path(os.environ.get("AIFLEET_BENCH_STATE", ROOT / "benchmarks" / ".state" / "closed-loop"))
    state.mkdir(parents=True, exist_ok=True)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / "aifleet.dev_aiservices.yaml"))
    wait_crd_established("aiservices.aifleet.dev")
    node = realnode.find_real_node()
    results = []
    operator = OperatorProcess(state / "operator", extra_args=["--namespace", "bench-*"])
    with contextlib.ExitStack() as stack:
        prom = stack.enter_context(realnode.node_prometheus(node, state / "prometheus"))
        if "hpa" in engines:
            stack.enter_context(metrics_adapter(adapter_binary(), prom.url, state / "adapter"))
        operator.start()
        stack.callback(operator.stop)
        for engine in engines:
            results.append(run_engine(engine, profile, node=node, prometheus_url=prom.url, state=state,
                                      max_replicas=args.max_replicas))
    text = table(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, profile, args.out / "closed-loop.png")
    (args.out / "closed-loop.json").write_text(json.dumps(
        [{"engine": r.engine, "timeline": r.timeline, "samples": [vars(s) for s in r.samples]} for r in results],
        indent=1) + "\n")
    (args.out / "closed-loop.md").write_text(
        f"# Closed loop on real pods\n\n`{' '.join(['benchmarks/closed_loop.py', *(argv or sys.argv[1:])])}`: "
        f"{args.trace.name} compressed to {args.minutes:g} min, peak {max(r for _, r in profile):g} rps in 10 s steps; "
        f"Triton pods of "
        f"{INSTANCES} model instances at {SERVICE_TIME_MS} ms each ({INSTANCES * 1000 // SERVICE_TIME_MS} rps a pod), "
        f"target {TARGET_RPS_PER_POD} rps a pod, 1..{args.max_replicas} pods; SLO: p95 ≤ {SLO_MS} ms "
        f"(2x the service time).\n\n{text}\n\n![replicas, rps and p95 per engine](closed-loop.png)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
