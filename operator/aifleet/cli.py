"""The `aifleet` command: run the operator, render manifests offline, print the CRD, simulate scaling."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from . import __version__
from .autoscaler import simulate_cli

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _cmd_crd(_: argparse.Namespace) -> int:
    from .api.crd import crd

    sys.stdout.write(yaml.safe_dump(crd(), sort_keys=False))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from .offline import RenderError, render_files

    try:
        sys.stdout.write(render_files([Path(p) for p in args.files]))
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _priority(value: str) -> int:
    if value == "random":
        import random

        return random.SystemRandom().randint(1, 2**31 - 1)
    return int(value)


def _cmd_run(args: argparse.Namespace) -> int:
    from .logs import configure_logging
    from .manager import RunOptions, run

    configure_logging(args.log_level, args.log_format)
    return run(
        RunOptions(
            namespaces=args.namespace or [],
            allowed_endpoints=args.allow_endpoint,
            peering=args.peering,
            priority=args.priority,
            peering_lifetime=args.peering_lifetime,
            health_port=args.health_port,
            metrics_port=args.metrics_port,
            retry_seconds=args.preflight_retry_seconds,
            check_only=args.check,
            secret_access=args.secret_access,
        )
    )


def _cmd_docs(_: argparse.Namespace) -> int:
    from .api.reference import reference

    sys.stdout.write(reference())
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    return simulate_cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aifleet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"aifleet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the cluster in KUBECONFIG or in-cluster")
    run.add_argument("-n", "--namespace", action="append", help="watch only this namespace (repeatable); default all")
    run.add_argument("--peering", default="", help="kopf peering name for high availability; default standalone")
    run.add_argument(
        "--priority", type=_priority, default=0,
        help="peering priority of this replica: an integer, or `random` (replicas of equal priority all pause)",
    )
    run.add_argument(
        "--peering-lifetime", type=int, default=60,
        help="seconds without a keep-alive after which a peer counts as gone and a standby takes over",
    )
    run.add_argument(
        "--secret-access", choices=["byName", "watch"], default="byName",
        help="byName: read each Secret it needs by name (RBAC: secrets get, create, patch); watch: also list and "
             "watch the Secrets it labelled (RBAC adds list, watch: the token can list every Secret)",
    )
    run.add_argument("--health-port", type=int, default=8080, help="port of /healthz and /readyz (0 disables)")
    run.add_argument("--metrics-port", type=int, default=9090, help="port of the Prometheus /metrics (0 disables)")
    run.add_argument(
        "--check", action="store_true",
        help="only run the preflight (API, CRD, permissions, peering) and exit: 0 passed, 1 failed",
    )
    run.add_argument(
        "--preflight-retry-seconds", type=float, default=15.0,
        help="while the preflight fails, re-check this often (and report it on /readyz)",
    )
    run.add_argument(
        "--allow-endpoint", action="append", default=[], metavar="HOST[:PORT]",
        help="connect (and send credentials) only to metrics addresses and Kafka bootstrap servers matching one of"
        " these host patterns (repeatable, fnmatch-style, e.g. '*.monitoring.svc'); default: any",
    )
    run.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS, help="default INFO")
    run.add_argument("--log-format", choices=["json", "text"], default="json")
    run.set_defaults(func=_cmd_run)

    render = sub.add_parser("render", help="print the manifests the operator would apply, with no cluster")
    render.add_argument("files", nargs="+", help="AIService YAML files")
    render.set_defaults(func=_cmd_render)

    crd = sub.add_parser("crd", help="print the AIService CustomResourceDefinition")
    crd.set_defaults(func=_cmd_crd)

    docs = sub.add_parser("docs", help="print the AIService API reference (Markdown, as in docs/api.md)")
    docs.set_defaults(func=_cmd_docs)

    simulate = sub.add_parser(
        "simulate", help="replay a traffic trace through the scaling policies", description=simulate_cli.DESCRIPTION
    )
    simulate_cli.add_arguments(simulate)
    simulate.set_defaults(func=_cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
