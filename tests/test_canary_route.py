"""A canary where the cluster serves the Gateway API: a Service per version and an HTTPRoute weighting them by the
share, so the split of requests through the route does not depend on how many pods each version has."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from aifleet.api import AIService
from aifleet.api.children import TRACK_LABEL
from aifleet.autoscaler.canary import start
from aifleet.renderer import render
from conftest import EXAMPLES

DOC = yaml.safe_load((EXAMPLES / "canary.yaml").read_text())
AIS = AIService.model_validate(DOC)


def _by_name(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{m['kind']}/{m['metadata']['name']}": m for m in manifests}


def _with_gateway(**gateway: Any) -> AIService:
    doc = copy.deepcopy(DOC)
    doc["spec"]["inference"]["canary"]["gateway"] = gateway
    return AIService.model_validate(doc)


def _state(share: int, phase: str = "Watching"):
    canary = AIS.spec.inference.canary
    assert canary is not None
    return start(canary, 0.0).model_copy(update={"share": share, "phase": phase})


def _pod_labels(out: dict[str, dict[str, Any]], deployment: str) -> dict[str, str]:
    return out[f"Deployment/{deployment}"]["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize("share", [25, 50, 99])
def test_the_route_weights_the_versions_by_the_share(share: int):
    out = _by_name(render(AIS, replicas=4, canary=_state(share), gateway_api=True))
    route = out["HTTPRoute/sentiment-triton"]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    [rule] = route["spec"]["rules"]
    weights = {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}
    assert weights == {"sentiment-triton-stable": 100 - share, "sentiment-triton-canary": share}
    assert {ref["port"] for ref in rule["backendRefs"]} == {8000}
    assert "parentRefs" not in route["spec"]  # none given: the API server would drop an empty list


def test_each_version_service_selects_its_own_pods_only():
    out = _by_name(render(AIS, replicas=4, gateway_api=True))
    stable_pods, canary_pods = _pod_labels(out, "sentiment-triton"), _pod_labels(out, "sentiment-triton-canary")
    stable = out["Service/sentiment-triton-stable"]["spec"]["selector"]
    canary = out["Service/sentiment-triton-canary"]["spec"]["selector"]
    assert stable.items() <= stable_pods.items() and not stable.items() <= canary_pods.items()
    assert canary.items() <= canary_pods.items() and not canary.items() <= stable_pods.items()
    assert (stable[TRACK_LABEL], canary[TRACK_LABEL]) == ("stable", "canary")
    # The shared Service still selects both, for clients that do not go through a Gateway.
    shared = out["Service/sentiment-triton"]["spec"]["selector"]
    assert shared.items() <= stable_pods.items() and shared.items() <= canary_pods.items()


def test_the_pods_are_split_by_the_share_as_without_the_route():
    with_route = _by_name(render(AIS, replicas=4, gateway_api=True))
    without = _by_name(render(AIS, replicas=4))
    for name in ("Deployment/sentiment-triton", "Deployment/sentiment-triton-canary"):
        assert with_route[name]["spec"]["replicas"] == without[name]["spec"]["replicas"]
        assert with_route[name]["spec"]["replicas"] >= 1


def test_parent_refs_come_from_the_spec():
    ais = _with_gateway(parentRefs=[{"name": "public", "namespace": "gateways", "sectionName": "https"}, {"name": "lan"}])
    route = _by_name(render(ais, replicas=4, gateway_api=True))["HTTPRoute/sentiment-triton"]
    group = "gateway.networking.k8s.io"
    assert route["spec"]["parentRefs"] == [
        {"group": group, "kind": "Gateway", "name": "public", "namespace": "gateways", "sectionName": "https"},
        {"group": group, "kind": "Gateway", "name": "lan"},
    ]


def test_without_the_gateway_api_there_is_no_route_and_no_version_services():
    out = render(AIS, replicas=4)
    assert not [m for m in out if m["kind"] == "HTTPRoute"]
    assert [m["metadata"]["name"] for m in out if m["kind"] == "Service"] == ["sentiment-triton"]


@pytest.mark.parametrize("phase", ["Promoted", "RolledBack"])
def test_a_canary_that_ended_has_no_route(phase: str):
    out = render(AIS, replicas=4, canary=_state(0, phase), gateway_api=True)
    assert not [m for m in out if m["kind"] == "HTTPRoute"]
    assert [m["metadata"]["name"] for m in out if m["kind"] == "Service"] == ["sentiment-triton"]


def test_no_canary_no_route():
    doc = copy.deepcopy(DOC)
    del doc["spec"]["inference"]["canary"]
    out = render(AIService.model_validate(doc), replicas=4, gateway_api=True)
    assert not [m for m in out if m["kind"] == "HTTPRoute"]
