"""Fleet benchmark: the operator at fleet scale on a REAL API server, measured from the outside.

    .venv/bin/python benchmarks/fleet.py [--services 100,1000] [--label after] [--profile] [--baseline]
                                         [--out benchmarks/results/fleet.md] [--operator-src DIR]
    .venv/bin/python benchmarks/fleet.py --render-only      # rebuild the table from the saved runs

~10 minutes with the defaults (+~5 with --baseline) on the 2-core dev machine.

Starts what it needs (its own local control plane from e2e/cluster, unless --kubeconfig names a running one;
a real Prometheus from the e2e harness; a fake Triton /metrics endpoint that Prometheus scrapes) and runs the
operator as a separate process, as in production (`python -m aifleet.cli run --health-port 0 ...`), under its
OWN identity: ServiceAccount aifleet-bench/operator bound to cluster-admin (the benchmark measures efficiency,
not RBAC), a token from the TokenRequest API (`kubectl create token --duration=2h`) and a kubeconfig for it.
Every request count comes from the API server's audit log, filtered by that user; nothing is taken from the
operator's own bookkeeping.

Phases:
  1. latency     one AIService, ~20 times: create -> Deployment, Service, PDB and ServiceAccount exist, and
                 -> Ready=True (p50, p99), each run deleted before the next (one warm-up run is discarded).
  2. converge    N AIServices (each N of --services) across 10 namespaces, created in bulk by a client with no
                 rate limit (16 threads); time until all are Ready; the operator's CPU seconds and peak RSS
                 (/proc); audit counts by verb for the operator and for all users. Phases are torn down
                 before the next N.
  3. quiet       the largest N converged (including each AIService's metrics warm-up: with nothing scraping
                 these fleets, ScalingActive turns False once, warmupSeconds after the fleet turned available),
                 then nothing changes for >= 3 resync periods (AIFLEET_RESYNC_SECONDS, 30 s):
                 the operator's writes (create/update/patch/delete) from the audit log, and Events it created
                 (the audit policy drops Events, so those are counted from the Events API).
  4. autoscale   the same N on the operator engine pointed at the real Prometheus. Until now Prometheus had no
                 series (every poll: "empty"); then a fake Triton endpoint appears with a steady RPS for every
                 AIService. "Every AIService got a decision this poll", whatever the engine's design: the
                 first ScalingActive flip to True (seen on a watch) comes within one poll of the series
                 becoming visible (our own query of the same expression), and every other flip within one
                 poll of that first one. Then, once every rate() covers a full 1-minute window, a steady
                 window: Prometheus queries per minute
                 (Prometheus' own prometheus_http_requests_total{handler="/api/v1/query"}, minus ours) and
                 the operator's writes per minute under steady traffic.

Output: one markdown table (a column per --label; earlier runs' JSON in the results dir are included, so a
"before" and an "after" run end up side by side), with the targets, written to --out and printed; the raw
figures go to benchmarks/results/fleet-<label>.json. --profile adds py-spy profiles of the operator
(convergence and quiet phase) and their top functions.

The machine is shared and noisy: figures are reported, never asserted. Bounded waits only; loopback only;
everything it starts is stopped at the end (the cluster it started is purged unless --keep-cluster).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .bench import Bench
from .common import DEFAULTS, ROOT
from .report import load_runs, render_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", default="100,1000", help="fleet sizes, comma-separated (default 100,1000)")
    parser.add_argument("--label", default="before", help="column name in the table (e.g. before, after)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fleet.md"))
    parser.add_argument("--kubeconfig", help="reuse a running cluster (admin kubeconfig) instead of starting one")
    parser.add_argument("--audit-log", help="its API server's audit log (default: audit.log next to --kubeconfig)")
    parser.add_argument("--cluster-dir", help=f"state dir of the cluster to start (default $AIFLEET_CLUSTER_DIR or "
                                              f"{DEFAULTS['AIFLEET_CLUSTER_DIR']})")
    parser.add_argument("--log-dir", help="operator log and raw py-spy profiles (default /tmp/aifleet-fleet-logs/LABEL)")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the cluster it started running")
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--resync", type=float, default=30.0, help="AIFLEET_RESYNC_SECONDS for the operator")
    parser.add_argument("--poll", type=int, default=15, help="spec.autoscaling.pollIntervalSeconds of the fleet")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after convergence before the quiet window")
    parser.add_argument("--quiet", type=float, default=None, help="quiet window seconds (default 3 resyncs + 5 s)")
    parser.add_argument("--steady", type=float, default=60.0, help="steady-traffic window seconds (0 skips the phase)")
    parser.add_argument("--decision-slack", type=float, default=3.0,
                        help="seconds added to the poll for 'decided within one poll' (our 1 s visibility probe, "
                             "the status write, the watch)")
    parser.add_argument("--converge-timeout", type=float, default=None, help="seconds (default max(180, 0.6 s x N))")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the cluster's floor: the same children for the largest N applied directly, "
                             "no operator, until all Deployments are available (~3 more minutes; --no-baseline skips)")
    parser.add_argument("--operator-src", help="run the operator from this checkout (e.g. a git worktree of another "
                                               "commit) instead of this one")
    parser.add_argument("--profile", action="store_true", help="py-spy the operator during the largest convergence "
                                                               "and the quiet phase (perturbs the figures a little; "
                                                               "needs the `bench` extra)")
    parser.add_argument("--render-only", action="store_true",
                        help="only rebuild --out from the fleet-*.json results next to it (no cluster, no run)")
    args = parser.parse_args(argv)
    if args.render_only:
        out = Path(args.out)
        runs = load_runs(out.parent, None)
        out.write_text(render_markdown(runs))
        print(out.read_text())
        return 0
    if args.profile and not Path(sys.executable).with_name("py-spy").exists():
        parser.error("--profile needs py-spy next to this Python: pip install 'aifleet[bench]'")
    if args.quiet is None:
        args.quiet = 3 * args.resync + 5
    bench = Bench(args)

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    bench.execute()
    return 0

