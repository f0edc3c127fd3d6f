"""Helpers for the chart, least-privilege, HA and preflight e2e tests: Helm, ServiceAccount identities, probes."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube import build_tool, kubectl

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "aifleet-operator"
BUILD_HELM = ROOT / "e2e" / "tools" / "build-helm.sh"


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """Helm built from its Go module."""
    return build_tool(BUILD_HELM)


def helm(helm_bin: str, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run([helm_bin, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout[-2000:]}")
    return proc


def set_args(values: dict[str, Any]) -> list[str]:
    """--set-json for each top-level value: exact types, lists included."""
    out: list[str] = []
    for key, value in values.items():
        out += ["--set-json", f"{key}={json.dumps(value)}"]
    return out


def render(helm_bin: str, values: dict[str, Any] | None = None, *, release: str = "aifleet",
           namespace: str = "aifleet-system") -> list[dict]:
    proc = helm(helm_bin, "template", release, str(CHART), "-n", namespace, *set_args(values or {}))
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# Tests that run their own operator process create their namespaces with this prefix. A suite-wide operator
# (the `operator` fixture) must not act there, or it races the operator under test: run it with
# `--namespace '!e2e-own-*'` (kopf's namespace patterns).
OWN_PREFIX = "e2e-own-"


@contextlib.contextmanager
def namespaces(*prefixes: str, labels: dict[str, str] | None = None):
    """Fresh namespaces for a test that runs its own operator; deleted afterwards (without waiting)."""
    names = [unique(f"{OWN_PREFIX}{p}") for p in prefixes]
    try:
        for name in names:
            kubectl("create", "namespace", name)
            if labels:
                kubectl("label", "namespace", name, *[f"{k}={v}" for k, v in labels.items()])
        yield names
    finally:
        for name in names:
            kubectl("delete", "namespace", name, "--wait=false", check=False)


def service_account_kubeconfig(sa: str, namespace: str, path: Path, duration: str = "1h") -> Path:
    """A kubeconfig that authenticates as the ServiceAccount with a token from the real TokenRequest API,
    against the same server and CA as the admin kubeconfig."""
    token = kubectl("create", "token", sa, "-n", namespace, f"--duration={duration}").strip()
    admin = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json"))
    cluster = admin["clusters"][0]["cluster"]
    ca = cluster.get("certificate-authority-data")
    if ca is None and cluster.get("certificate-authority"):
        ca = base64.b64encode(Path(cluster["certificate-authority"]).read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": cluster["server"],
                                                  **({"certificate-authority-data": ca} if ca else {})}}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": "e2e", "user": sa}}],
        "current-context": sa,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def aifleet(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aifleet.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def log_lines(text: str) -> list[dict]:
    """The operator's JSON log lines (non-JSON lines, e.g. from a crash, come back as {"raw": line})."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"raw": line})
    return out


def applied_children(log_text: str) -> set[str]:
    """Children this operator process itself applied, from its "applied child" log lines."""
    return {f"{e.get('kind')}/{e.get('child')}" for e in log_lines(log_text) if e.get("message") == "applied child"}


def can_i(verb_resource: list[str], sa: str, sa_namespace: str, *scope: str) -> bool:
    out = kubectl("auth", "can-i", *verb_resource, f"--as=system:serviceaccount:{sa_namespace}:{sa}", *scope,
                  check=False).strip()
    return out.splitlines()[0] == "yes" if out else False


def audit_log() -> Path | None:
    """The API server's audit log when the cluster is the local control plane (cluster.env next to the
    kubeconfig names it); None on other clusters (kind in CI)."""
    path = os.environ.get("AIFLEET_AUDIT_LOG")
    if path:
        return Path(path) if Path(path).exists() else None
    kubeconfig = os.environ.get("KUBECONFIG", "")
    env_file = Path(kubeconfig).parent / "cluster.env" if kubeconfig else None
    if env_file and env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("AIFLEET_AUDIT_LOG="):
                candidate = Path(line.split("=", 1)[1])
                return candidate if candidate.exists() else None
    return None


def audit_requests(user: str, since: float) -> list[dict]:
    """Audit events of one user since a time.time() mark (stageTimestamp), at Metadata level."""
    path = audit_log()
    if path is None:
        return []
    out = []
    with path.open() as f:
        for line in f:
            if f'"{user}"' not in line:
                continue
            event = json.loads(line)
            if event.get("user", {}).get("username") != user:
                continue
            stamp = event.get("stageTimestamp", "")
            if _epoch(stamp) >= since:
                out.append(event)
    return out


def _epoch(stamp: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def wait_until(what: str, probe, timeout: float = 60, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
