"""What every part of the fleet benchmark shares: constants, logging, percentiles, subprocesses, bounded waits."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import urllib3

# The repository root: the cluster scripts, the CRD and the results live below it.
ROOT = Path(__file__).resolve().parents[2]

try:  # the engine's own batch expression, so "visible in Prometheus" means what the operator would see
    from aifleet.autoscaler.prometheus import BATCH_RPS_QUERY
except Exception:  # noqa: BLE001 - the benchmark must not depend on the operator's internals
    BATCH_RPS_QUERY = (
        "sum by (namespace, aiservice) (label_replace("
        'rate(nv_inference_request_success{pod=~".+-triton-[a-z0-9]+-[a-z0-9]+"}[1m]), '

    )

urllib3.disable_warnings()

GROUP, VERSION, PLURAL = "aifleet.dev", "v1alpha1", "aiservices"
OP_NS, OP_SA = "aifleet-bench", "operator"
OP_USER = f"system:serviceaccount:{OP_NS}:{OP_SA}"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
BENCH_LABEL = "aifleet-bench/phase"
MANAGED = "app.kubernetes.io/managed-by=aifleet"
CHILDREN = {  # the rendered children of a minimal AIService: kind -> (namespaced collection path, audit resource)
    "Deployment": ("/apis/apps/v1/namespaces/{ns}/deployments", "deployments"),
    "Service": ("/api/v1/namespaces/{ns}/services", "services"),
    "PodDisruptionBudget": ("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", "poddisruptionbudgets"),
    "ServiceAccount": ("/api/v1/namespaces/{ns}/serviceaccounts", "serviceaccounts"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", "networkpolicies"),
}
CHILD_RESOURCES = {r for _, r in CHILDREN.values()}
DEFAULTS = {  # the benchmark's own cluster; env vars of e2e/cluster win when set
    "AIFLEET_CLUSTER_DIR": "/tmp/aifleet-fleet-bench",
    "AIFLEET_APISERVER_PORT": "46443",
    "AIFLEET_ETCD_PORT": "42379",
    "AIFLEET_KCM_PORT": "40357",
    "AIFLEET_SCHEDULER_PORT": "40359",
    # KWOK pods only: no real kubelet node (one per machine: its port and bridge belong to the e2e cluster).
    "AIFLEET_REAL_NODE": "0",
}
T_START = time.monotonic()


def say(msg: str) -> None:
    print(f"[fleet {time.monotonic() - T_START:7.1f}s] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (p99 of 20 runs is the slowest run)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def rfc3339(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def run(cmd: list[str], env: dict | None = None, timeout: float = 120, check: bool = True,
        input: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, input=input, cwd=cwd)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


def wait(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.02,
         progress: Callable[[], str] | None = None, every: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + every
    while time.monotonic() < deadline:
        if check():
            return True
        if progress and time.monotonic() >= next_report:
            say(f"  {what}: {progress()}")
            next_report += every
        time.sleep(interval)
    say(f"  TIMEOUT after {timeout:.0f}s waiting for {what}" + (f" ({progress()})" if progress else ""))
    return False
