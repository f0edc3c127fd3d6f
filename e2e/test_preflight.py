"""Startup preflight against the real API server: a missing CRD, permission or peering object, or an unreachable
API, is one clear log line and a not-ready /readyz -- never a crash loop of tracebacks -- and the operator starts
by itself once an admin fixes it."""

from __future__ import annotations

import time

import kubernetes
import pytest

from aifleet.observability import preflight
from chart_support import (
    CHART,
    aifleet,
    helm,
    helm_bin,  # noqa: F401 - session fixture
    log_lines,
    service_account_kubeconfig,
    unique,
    wait_until,
)
from harness.net import free_port, http_get_text
from kube import kubectl, wait_crd_established
from operator_process import OperatorProcess

PEERING_CRDS = CHART / "crds" / "kopf.dev_peerings.yaml"


@pytest.fixture
def bare_identity(namespace, tmp_path):
    """A ServiceAccount with no permissions at all, and a kubeconfig that logs in as it."""
    sa = unique("nobody")
    kubectl("create", "serviceaccount", sa, "-n", namespace)
    return sa, service_account_kubeconfig(sa, namespace, tmp_path / "nobody.kubeconfig")


def one_line(stderr: str) -> dict:
    lines = log_lines(stderr)
    assert len(lines) == 1, f"expected one log line, got {len(lines)}:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def test_missing_crd_is_named(cluster, crd):
    """The CRD check is API discovery; asked about a group that is not installed, it says so (real API server)."""
    kubernetes.config.load_kube_config()
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration.get_default_copy())
    missing = preflight.run(api=api, crd=("absent.aifleet.dev", "v1alpha1", "aiservices"))
    assert not missing.ok and missing.check == "crd"
    assert "the AIService CRD is not installed" in missing.message
    assert "aiservices.absent.aifleet.dev/v1alpha1" in missing.message and "kubectl apply" in missing.message
    present = preflight.run(api=api)
    assert present.ok, present.message


def test_no_permissions_check_exits_1_naming_them(crd, namespace, bare_identity):
    sa, kubeconfig = bare_identity
    proc = aifleet("run", "--check", "-n", namespace, env={"KUBECONFIG": str(kubeconfig)})
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert line["level"] == "error" and line["check"] == "permissions"
    message = line["message"]
    assert f"system:serviceaccount:{namespace}:{sa} lacks" in message
    assert f"list,watch,patch aiservices.aifleet.dev in namespace {namespace}" in message
    assert f"patch deployments/scale.apps in namespace {namespace}" in message
    assert "cluster-wide" not in message  # namespaced mode asks for nothing cluster-wide


def test_not_ready_until_permissions_are_granted_then_starts_without_restart(
    crd, namespace, bare_identity, helm_bin, artifacts
):
    sa, kubeconfig = bare_identity
    health = free_port()
    proc = OperatorProcess(artifacts / f"preflight-{namespace}", env={"KUBECONFIG": str(kubeconfig)},
                           extra_args=["-n", namespace, "--health-port", str(health), "--metrics-port", "0",
                                       "--preflight-retry-seconds", "1"])
    proc.start()
    try:
        code, body = wait_until("/readyz to report the preflight",
                                lambda: (r := http_get_text(f"http://127.0.0.1:{health}/readyz"))[0] and "lacks" in r[1]
                                and r, timeout=30)
        assert code == 503
        assert f"list,watch,patch aiservices.aifleet.dev in namespace {namespace}" in body
        assert http_get_text(f"http://127.0.0.1:{health}/healthz")[0] == 200, "a missing permission must not fail liveness"
        time.sleep(4)  # several retries
        assert proc.running(), proc.logs()
        errors = [e for e in log_lines(proc.logs()) if e.get("level") == "error" or "raw" in e]
        assert len(errors) == 1, f"one line per problem, not one per retry: {errors}"
        assert errors[0]["message"].startswith("not starting: system:serviceaccount:")

        # An admin grants exactly the chart's rules for this namespace: the operator starts by itself.
        rbac = helm(helm_bin, "template", "x", str(CHART), "-n", namespace, "-s", "templates/rbac.yaml",
                    "--set-json", f'watchNamespaces=["{namespace}"]', "--set", "serviceAccount.create=false",
                    "--set", f"serviceAccount.name={sa}").stdout
        kubectl("apply", "-f", "-", input=rbac)
        wait_until("/readyz 200", lambda: http_get_text(f"http://127.0.0.1:{health}/readyz")[0] == 200, timeout=30)
        assert proc.running() and proc.starts == 1
        assert any(str(e.get("message", "")).startswith("preflight passed") for e in log_lines(proc.logs()))
    finally:
        proc.stop()


def test_missing_peering_object_is_named(crd, namespace):
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRDS))
    wait_crd_established("kopfpeerings.kopf.dev")
    proc = aifleet("run", "--check", "-n", namespace, "--peering", "absent")
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert line["check"] == "peering"
    assert f"KopfPeering 'absent' does not exist in namespace(s) {namespace}" in line["message"]
    assert "paused" in line["message"]


def test_unreachable_api_is_one_line(tmp_path):
    kubeconfig = tmp_path / "nowhere.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "current-context: c\n"
    )
    proc = aifleet("run", "--check", env={"KUBECONFIG": str(kubeconfig)})
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert line["check"] == "api" and "cannot reach the Kubernetes API at https://127.0.0.1:1" in line["message"]
