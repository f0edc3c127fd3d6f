"""The e2e suite: runs against whatever cluster KUBECONFIG names (the local control plane here, kind in CI)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "services"))

from harness.net import free_port  # noqa: E402
from kube import kubectl, wait_crd_established, wait_for  # noqa: E402
from operator_process import OperatorProcess  # noqa: E402

CRD = ROOT / "crds" / "aifleet.dev_aiservices.yaml"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "e2e" in str(item.fspath) and "services" not in item.keywords:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster() -> str:
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        pytest.fail("KUBECONFIG is not set: start a cluster (e2e/cluster/up.sh or kind) and export KUBECONFIG")
    kubectl("version", "--request-timeout=10s")
    return kubeconfig


@pytest.fixture(scope="session")
def crd(cluster) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    wait_crd_established("aiservices.aifleet.dev")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    path = Path(os.environ.get("AIFLEET_E2E_ARTIFACTS", tmp_path_factory.mktemp("e2e-artifacts")))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def operator(crd, artifacts):
    # Tests that run an operator of their own (chart, HA, preflight) use namespaces `e2e-own-*`.
    # Its /metrics on a free port, for the tests that read the operator's own series through Prometheus.
    proc = OperatorProcess(artifacts / "operator", extra_args=["--namespace", "!e2e-own-*"], metrics_port=free_port())
    proc.start()
    yield proc
    proc.stop()


def namespace_name(request) -> str:
    """A fresh namespace name that says which test made it."""
    name = f"e2e-{request.node.name[:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    return "".join(c for c in name if c.isalnum() or c == "-")


@pytest.fixture
def namespace(cluster, request):
    name = namespace_name(request)
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus per test module, scraping every second the targets a test sets."""
    import harness

    with harness.Prometheus(tmp_path_factory.mktemp("prometheus"), scrape_interval="1s", sd_refresh="1s") as prom:
        yield prom


@pytest.fixture
def real_namespace(real_node, request):
    """A namespace whose pods all run on the real node (namespace annotations, no change to the AIService)."""
    import json as _json

    from realnode import pinned_namespace

    name = namespace_name(request)
    kubectl("apply", "-f", "-", input=_json.dumps(pinned_namespace(name)))
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def real_node(cluster):
    """The cluster's real kubelet node; tests about serving run their pods there."""
    from realnode import find_real_node

    return find_real_node()


@pytest.fixture(scope="session")
def node_prometheus(real_node, tmp_path_factory):
    """A real Prometheus that discovers the real node's pods through the API server (kubernetes_sd_configs, the
    scrape annotations the renderer sets) and listens on the node's bridge address, so the operator in a pod
    reaches it as `prometheus-operated.monitoring.svc:9090`, its default."""
    import realnode

    with realnode.node_prometheus(real_node, tmp_path_factory.mktemp("node-prometheus")) as prom:
        yield prom


def ensure_running(proc: OperatorProcess) -> None:
    if not proc.running():
        raise AssertionError(f"the operator exited:\n{proc.logs()[-4000:]}")


@pytest.fixture(autouse=True)
def _operator_alive(request):
    yield
    if "operator" in request.fixturenames:
        ensure_running(request.getfixturevalue("operator"))


__all__ = ["wait_for"]
