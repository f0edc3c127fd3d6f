"""`aifleet simulate`: its options, declared without importing the simulator.

The simulator needs numpy and matplotlib, which the operator image leaves out (the `sim` extra). The options
live here so that `aifleet -h`, `aifleet simulate -h` and every other command work without them.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = "Replay a traffic trace through autoscaling policies and compare what they cost and miss."
POLICIES = ("aifleet", "aifleet-lookahead", "hpa", "hpa-no-behavior", "oracle")
# How tables and plots name the two HPA baselines: most HPAs in the field have no `behavior:` block, and the
# controller then runs its legacy path, not the v2 defaults.
POLICY_LABELS = {
    "hpa": "hpa (HPA with default behavior)",
    "hpa-no-behavior": "hpa-no-behavior (HPA without a behavior block)",
}
MISSING_EXTRA = "aifleet simulate needs numpy and matplotlib: pip install 'aifleet[sim]' ({error})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "trace",
        help="CSV: an rps series (header time_seconds,rps or time,rps or timestamp,rps) or a request log (one "
        "timestamp per line, or a CSV with a timestamp column); times in epoch seconds or ISO 8601",
    )
    parser.add_argument(
        "--column",
        help="read TRACE as a request log, its timestamps in this CSV column: a header name or a 0-based position "
        "(default: a column named timestamp, time, ... or the only one)",
    )
    parser.add_argument(
        "--bin-seconds", type=float, default=1.0, help="count a request log's arrivals per bin of this many seconds"
    )
    parser.add_argument("--policy", action="append", choices=POLICIES, help="repeat to pick several (default: all)")
    parser.add_argument(
        "--spec", help="YAML of spec.autoscaling (or a whole AIService) to simulate; sets target/min/max/startup/poll"
    )
    parser.add_argument("--target-rps-per-pod", type=float, default=10.0)
    parser.add_argument("--min-replicas", type=int, default=1)
    parser.add_argument("--max-replicas", type=int, default=1000)
    parser.add_argument("--pod-startup-seconds", type=int, default=60)
    parser.add_argument("--poll-interval-seconds", type=int, default=15)
    parser.add_argument("--metric-window-seconds", type=int, default=60, help="the rate() window of the RPS query")
    parser.add_argument("--plot", help="write a PNG of traffic vs capacity per policy")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")


def run(args: argparse.Namespace) -> int:
    """Run the simulation the parsed options describe; exit code 2 when the simulator cannot be imported."""
    try:
        from .simulate import simulate_command
    except ImportError as exc:
        print(MISSING_EXTRA.format(error=exc), file=sys.stderr)
        return 2
    return simulate_command(args)
