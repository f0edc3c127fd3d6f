"""Stepped request-rate load generator for Triton HTTP endpoints (tritonclient[http]).

    python loadgen.py --url 127.0.0.1:8000 [--url 127.0.0.1:8100 ...] \
        --step 10:50 --step 10:200 [--model echo] [--report out.json]

Each ``--step SECONDS:RPS`` holds a target rate for that long; requests are paced on a
fixed schedule (request i of a step is due at step_start + i/rps) and spread round-robin
over the URLs. A bounded pool of worker threads sends them, so a slow server lowers the
achieved rate instead of piling up unbounded work. The run is bounded three ways: the
profile's total duration, ``--max-seconds`` and ``--max-requests``; it always stops by
itself. Prints one JSON report (per step: target and achieved RPS, ok/error counts,
latency percentiles) on stdout and optionally writes it to ``--report``.

With ``--window SECONDS`` the report also has a timeline: per window of the run, requests
answered and failed and their latency percentiles, so a scale-up or a rollout can be read
minute by minute.

Only loopback targets are accepted, and addresses inside the networks named by
``--allow-network`` (the local cluster's own pod and Service ranges on this machine's bridge):
this drives test servers on this machine.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import tritonclient.http as httpclient


@dataclass
class Step:
    seconds: float
    rps: float


@dataclass
class StepResult:
    seconds: float
    target_rps: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    achieved_rps: float = 0.0
    p50_ms: Optional[float] = None
    p95_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    first_error: Optional[str] = None
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def finish(self, elapsed_s: float) -> None:
        self.elapsed_s = round(elapsed_s, 3)
        self.achieved_rps = round(self.ok / elapsed_s, 2) if elapsed_s > 0 else 0.0
        if self.latencies_ms:
            lat = sorted(self.latencies_ms)
            self.p50_ms = percentile(lat, 0.50)
            self.p95_ms = percentile(lat, 0.95)
            self.p99_ms = percentile(lat, 0.99)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("latencies_ms")
        return d


def parse_step(text: str) -> Step:
    seconds, rps = text.split(":", 1)
    step = Step(float(seconds), float(rps))
    if step.seconds <= 0 or step.rps < 0:
        raise argparse.ArgumentTypeError(f"bad step {text!r}: need SECONDS>0 and RPS>=0")
    return step


def require_local(url: str, allowed: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
    """Refuse targets off this machine: loopback, or inside a network the caller named."""
    host = url.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    for info in socket.getaddrinfo(host, None):
        address = ipaddress.ip_address(info[4][0])
        if not address.is_loopback and not any(address in net for net in allowed):
            raise SystemExit(f"refusing target {url!r}: not loopback and not in {[str(n) for n in allowed]}")


def percentile(sorted_values: list[float], q: float) -> Optional[float]:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))], 2)


def timeline(events: list[tuple[float, bool, float]], window_s: float, slo_ms: float = 0.0) -> list[dict]:
    """Per window of the run: answered and failed requests and latency percentiles of the answered; with `slo_ms`,
    also the answered requests slower than it."""
    buckets: dict[int, list[tuple[bool, float]]] = {}
    for t, ok, ms in events:
        buckets.setdefault(int(t // window_s), []).append((ok, ms))
    rows = []
    for index in sorted(buckets):
        lat = sorted(ms for ok, ms in buckets[index] if ok)
        rows.append({"start_s": round(index * window_s, 3), "ok": len(lat),
                     "errors": sum(1 for ok, _ in buckets[index] if not ok),
                     "p50_ms": percentile(lat, 0.50), "p95_ms": percentile(lat, 0.95),
                     "p99_ms": percentile(lat, 0.99)})
        if slo_ms > 0:
            rows[-1]["over_slo"] = sum(1 for ms in lat if ms > slo_ms)
    return rows


class Runner:
    """Sends the paced requests of one step from a pool of threads."""

    def __init__(self, urls: list[str], model: str, workers: int, timeout_s: float,
                 batch: int, deadline: float, request_budget: int, input_name: str = "data",
                 fresh_connections: bool = False) -> None:
        self.urls = [u.split("://", 1)[-1] for u in urls]  # tritonclient wants host:port
        self.model = model
        self.input_name = input_name
        self.fresh_connections = fresh_connections
        self.t0 = time.monotonic()
        self.events: list[tuple[float, bool, float]] = []
        self.workers = workers
        self.timeout_s = timeout_s
        # (batch, 4) for a batching model; a 1-D tensor of 4 for a model without batching.
        shape = (batch, 4) if batch else (4,)
        self.data = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
        self.deadline = deadline
        self.budget = request_budget
        self.lock = threading.Lock()

    def _client(self, url: str) -> httpclient.InferenceServerClient:
        # One client per thread and URL: tritonclient's HTTP client is not thread-safe.
        return httpclient.InferenceServerClient(
            url=url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s)

    def run_step(self, step: Step) -> StepResult:
        result = StepResult(seconds=step.seconds, target_rps=step.rps)
        start = time.monotonic()
        end = min(start + step.seconds, self.deadline)
        if step.rps == 0:
            time.sleep(max(0.0, end - start))
            result.finish(time.monotonic() - start)
            return result
        counter = iter(range(10**12))

        def worker() -> None:
            clients: dict[str, httpclient.InferenceServerClient] = {}
            inp = httpclient.InferInput(self.input_name, list(self.data.shape), "FP32")
            inp.set_data_from_numpy(self.data)
            try:
                while True:
                    with self.lock:
                        i = next(counter)
                        due = start + i / step.rps
                        if due >= end or self.budget <= 0:
                            return
                        self.budget -= 1
                        result.sent += 1
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    url = self.urls[i % len(self.urls)]
                    t0 = time.monotonic()
                    try:
                        if self.fresh_connections:
                            # A connection per request: each is balanced anew (kube-proxy balances connections),
                            # so no request rides a kept-alive connection to a pod that is going away.
                            client = self._client(url)
                            try:
                                client.infer(self.model, [inp])
                            finally:
                                client.close()
                        else:
                            client = clients.get(url) or clients.setdefault(url, self._client(url))
                            client.infer(self.model, [inp])
                        ok, err = True, None
                    except Exception as exc:  # noqa: BLE001 - any failure counts as an error
                        ok, err = False, f"{type(exc).__name__}: {exc}"
                    ms = (time.monotonic() - t0) * 1000
                    with self.lock:
                        self.events.append((t0 - self.t0, ok, ms))
                        if ok:
                            result.ok += 1
                            result.latencies_ms.append(ms)
                        else:
                            result.errors += 1
                            result.first_error = result.first_error or err
            finally:
                for c in clients.values():
                    c.close()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            # Bounded join: a hung request cannot outlive the step by more than its timeout.
            t.join(timeout=max(0.0, end - time.monotonic()) + self.timeout_s + 1)
        # Achieved rate over the step's wall time (at least its nominal length).
        result.finish(max(time.monotonic() - start, min(step.seconds, end - start)))
        return result


def report_live(runner: "Runner", window_s: float, path: Path, stop: threading.Event) -> None:
    """Every window, append the window just ended (answered, failed, latency percentiles) as one JSON line."""
    with path.open("a") as out:
        while not stop.wait(window_s):
            end = time.monotonic() - runner.t0
            with runner.lock:
                recent = [e for e in runner.events if end - window_s <= e[0] < end]
            row = timeline([(0.0, ok, ms) for _, ok, ms in recent], window_s) or [
                {"ok": 0, "errors": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}]
            out.write(json.dumps({**row[0], "start_s": round(end - window_s, 1)}) + "\n")
            out.flush()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description="stepped-RPS load generator for Triton HTTP")
    p.add_argument("--url", action="append", required=True, help="host:port of a Triton HTTP endpoint")
    p.add_argument("--step", action="append", type=parse_step, required=True, help="SECONDS:RPS")
    p.add_argument("--model", default="echo")
    p.add_argument("--workers", type=int, default=16, help="max concurrent requests")
    p.add_argument("--batch", type=int, default=1, help="rows per request; 0 for a model without batching")
    p.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, seconds")
    p.add_argument("--max-seconds", type=float, default=600.0, help="hard cap on total run time")
    p.add_argument("--max-requests", type=int, default=200_000, help="hard cap on requests sent")
    p.add_argument("--report", type=Path, help="also write the JSON report here")
    p.add_argument("--input", default="data", help="the model's FP32 input tensor")
    p.add_argument("--fresh-connections", action="store_true", help="open a new connection for every request")
    p.add_argument("--window", type=float, default=0.0, help="add a timeline with windows of this many seconds")
    p.add_argument("--slo-ms", type=float, default=0.0,
                   help="with --window: also count per window the answered requests slower than this")
    p.add_argument("--live", type=Path, help="with --window: append each window's figures to this file as it ends")
    p.add_argument("--allow-network", action="append", default=[], type=ipaddress.ip_network,
                   help="a CIDR of this machine's own (cluster) addresses that may be targeted besides loopback")
    args = p.parse_args(argv)

    for url in args.url:
        require_local(url, args.allow_network)
    t0 = time.monotonic()
    runner = Runner(args.url, args.model, args.workers, args.timeout, args.batch,
                    deadline=t0 + args.max_seconds, request_budget=args.max_requests, input_name=args.input,
                    fresh_connections=args.fresh_connections)
    steps: list[StepResult] = []
    stop_live = threading.Event()
    if args.live and args.window > 0:
        threading.Thread(target=report_live, args=(runner, args.window, args.live, stop_live), daemon=True).start()
    for step in args.step:
        if time.monotonic() >= runner.deadline or runner.budget <= 0:
            break
        res = runner.run_step(step)
        steps.append(res)
        print(f"step {len(steps)}: target {res.target_rps:g} rps for {res.seconds:g}s -> "
              f"{res.achieved_rps:g} rps ({res.ok} ok, {res.errors} err)", file=sys.stderr, flush=True)
    stop_live.set()
    report = {
        "urls": args.url,
        "model": args.model,
        "total_seconds": round(time.monotonic() - t0, 3),
        "total_ok": sum(s.ok for s in steps),
        "total_errors": sum(s.errors for s in steps),
        "steps": [s.to_json() for s in steps],
    }
    if args.window > 0:
        report["timeline"] = timeline(runner.events, args.window, args.slo_ms)
    text = json.dumps(report, indent=2)
    if args.report:
        args.report.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
