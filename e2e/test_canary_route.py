"""A canary where the cluster serves the Gateway API: the HTTPRoute CRD is installed (no Gateway controller runs,
so this is about the objects, not traffic), and the operator, finding HTTPRoute in API discovery, renders a
Service per version and an HTTPRoute weighting them by the canary's share; when the canary ends, both go.

The CRD comes from the sigs.k8s.io/gateway-api Go module (e2e/tools/gateway-api-crd.sh) and stays installed after
the test: removing it under a running operator is not what this test is about.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from kube import get_json, kubectl, wait_crd_established, wait_for

from aifleet.api.children import TRACK_LABEL, child_names

ROOT = Path(__file__).resolve().parents[1]
CANARY = yaml.safe_load((ROOT / "examples" / "canary.yaml").read_text())
CRD_SCRIPT = ROOT / "e2e" / "tools" / "gateway-api-crd.sh"
NAME = "sentiment"
CHILDREN = child_names(NAME)
# The operator asks API discovery every 20 s and reconciles every AIService when the answer changes; kopf starts
# watching a CRD once it appears.
ROUTE_TIMEOUT = 120


@pytest.fixture(scope="module")
def httproute_crd(cluster) -> None:
    proc = subprocess.run(["bash", str(CRD_SCRIPT)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"{CRD_SCRIPT.name} failed:\n{proc.stderr[-3000:]}")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", proc.stdout.strip().splitlines()[-1])
    wait_crd_established("httproutes.gateway.networking.k8s.io")


def _route(namespace: str) -> dict | None:
    return get_json("httproutes.gateway.networking.k8s.io", CHILDREN.triton, "-n", namespace)


def _pod_names(namespace: str, selector: dict[str, str]) -> set[str]:
    found = get_json("pods", "-n", namespace, "-l", ",".join(f"{k}={v}" for k, v in selector.items()))
    return {p["metadata"]["name"] for p in (found or {}).get("items", [])}


def _deployment_pods(namespace: str, deployment: str) -> set[str]:
    """The pods a Deployment's own selector picks (the canary's includes the track label; the stable one's does
    not, so its pods are those without the canary's track)."""
    obj = get_json("deployment", deployment, "-n", namespace)
    assert obj, f"Deployment {deployment} missing"
    pods = _pod_names(namespace, obj["spec"]["selector"]["matchLabels"])
    if deployment == CHILDREN.triton:
        pods -= _pod_names(namespace, {TRACK_LABEL: "canary"})
    return pods


def test_a_canary_gets_a_weighted_route_and_a_service_per_version(operator, httproute_crd, namespace):
    doc = copy.deepcopy(CANARY)
    doc["metadata"]["namespace"] = namespace
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))

    try:
        route = wait_for(f"HTTPRoute {namespace}/{CHILDREN.triton}", lambda: _route(namespace), timeout=ROUTE_TIMEOUT)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_state(operator, namespace)}") from None
    weights = {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]}
    assert weights == {CHILDREN.triton_stable: 75, CHILDREN.triton_canary: 25}
    owner = route["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("AIService", NAME, True)

    # Both versions' pods exist (4 in all, 1 of them the canary's) and each Service selects its own version's.
    def pods_up() -> tuple[set[str], set[str]] | None:
        stable, canary = _deployment_pods(namespace, CHILDREN.triton), _deployment_pods(namespace, CHILDREN.triton_canary)
        return (stable, canary) if (len(stable), len(canary)) == (3, 1) else None

    stable_pods, canary_pods = wait_for("3 stable and 1 canary pods", pods_up, timeout=120)
    for service, pods in ((CHILDREN.triton_stable, stable_pods), (CHILDREN.triton_canary, canary_pods)):
        obj = get_json("service", service, "-n", namespace)
        assert obj, f"Service {service} missing"
        assert _pod_names(namespace, obj["spec"]["selector"]) == pods, service
    shared = get_json("service", CHILDREN.triton, "-n", namespace)
    assert shared and _pod_names(namespace, shared["spec"]["selector"]) == stable_pods | canary_pods

    # A share of 0 ends the canary: its Deployment, the per-version Services and the route go.
    patch = {"spec": {"inference": {"canary": {"trafficPercent": 0}}}}
    kubectl("patch", "aiservice", NAME, "-n", namespace, "--type=merge", "-p", json.dumps(patch))

    left: list[str] = []

    def ended() -> bool:
        left[:] = [
            f"{kind} {name}" for kind, name in (
                ("httproutes.gateway.networking.k8s.io", CHILDREN.triton),
                ("service", CHILDREN.triton_stable),
                ("service", CHILDREN.triton_canary),
                ("deployment", CHILDREN.triton_canary),
            )
            if get_json(kind, name, "-n", namespace) is not None
        ]
        return not left

    try:
        wait_for("the canary's route, Services and Deployment deleted", ended, timeout=120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still there: {', '.join(left)}\n{_state(operator, namespace)}") from None
    assert get_json("service", CHILDREN.triton, "-n", namespace) is not None  # the shared Service stays


def _state(operator, namespace: str) -> str:
    """What a failure report needs: whether the operator saw the edit, what it says of the canary, its log."""
    ais = get_json("aiservice", NAME, "-n", namespace) or {}
    status = ais.get("status") or {}
    lines = [line for line in operator.logs().splitlines() if namespace in line]
    return (f"generation {ais.get('metadata', {}).get('generation')}, observed {status.get('observedGeneration')}, "
            f"canary {json.dumps(status.get('canary'))}\noperator log for the namespace (last 40 lines):\n"
            + "\n".join(lines[-40:]))
