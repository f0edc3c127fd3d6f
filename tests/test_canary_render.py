"""Rendering a canary: a second Triton Deployment sized by the split, behind the one Service."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from aifleet.api import AIService
from aifleet.api.canary import CanaryStatus
from aifleet.api.children import TRACK_LABEL, VERSION_LABEL
from aifleet.api.inference import CanarySpec
from aifleet.autoscaler.canary import revision, start
from aifleet.renderer import render
from conftest import EXAMPLES

DOC = yaml.safe_load((EXAMPLES / "canary.yaml").read_text())
AIS = AIService.model_validate(DOC)
CANARY = AIS.spec.inference.canary or CanarySpec(version="unused")  # the example has one
IMAGE = "nvcr.io/nvidia/tritonserver"


def _by_name(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{m['kind']}/{m['metadata']['name']}": m for m in manifests}


def _state(**update: Any) -> CanaryStatus:
    return start(CANARY, 0.0).model_copy(update=update)


def _image(deployment: dict[str, Any]) -> str:
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def test_the_split_sizes_both_deployments_and_the_service_selects_both():
    out = _by_name(render(AIS, replicas=4))
    stable, canary = out["Deployment/sentiment-triton"], out["Deployment/sentiment-triton-canary"]
    assert (stable["spec"]["replicas"], canary["spec"]["replicas"]) == (3, 1)
    assert _image(stable).endswith(":24.08-py3") and _image(canary).endswith(":24.09-py3")
    stable_pods = stable["spec"]["template"]["metadata"]["labels"]
    canary_pods = canary["spec"]["template"]["metadata"]["labels"]
    assert (stable_pods[VERSION_LABEL], canary_pods[VERSION_LABEL]) == ("24.08-py3", "24.09-py3")
    assert (canary_pods[TRACK_LABEL], stable_pods[TRACK_LABEL]) == ("canary", "stable")
    assert TRACK_LABEL not in stable["spec"]["selector"]["matchLabels"]  # immutable, older than any canary
    # The canary selects only its own pods; the Service and the PodDisruptionBudget select both versions.
    assert canary["spec"]["selector"]["matchLabels"].items() <= canary_pods.items()
    assert not canary["spec"]["selector"]["matchLabels"].items() <= stable_pods.items()
    for selector in (out["Service/sentiment-triton"]["spec"]["selector"],
                     out["PodDisruptionBudget/sentiment-triton"]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= stable_pods.items() and selector.items() <= canary_pods.items()
    # The canary's analysis has a latency threshold: its pods export latency summaries.
    assert "--metrics-config=summary_latencies=true" in canary["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_stable_deployment_is_the_one_without_a_canary():
    without = copy.deepcopy(DOC)
    del without["spec"]["inference"]["canary"]
    plain = _by_name(render(AIService.model_validate(without), replicas=4))
    split = _by_name(render(AIS, replicas=4))
    stable, before = split["Deployment/sentiment-triton"], plain["Deployment/sentiment-triton"]
    # Only the size differs: starting a canary does not roll the stable pods.
    assert stable["spec"]["template"] == before["spec"]["template"]
    assert stable["spec"]["selector"] == before["spec"]["selector"]


def test_a_step_moves_the_split():
    out = _by_name(render(AIS, replicas=4, canary=_state(share=50, step=1)))
    assert out["Deployment/sentiment-triton"]["spec"]["replicas"] == 2
    assert out["Deployment/sentiment-triton-canary"]["spec"]["replicas"] == 2


def test_promoted_the_stable_deployment_runs_the_canary_and_the_canary_goes():
    out = _by_name(render(AIS, replicas=4, canary=_state(phase="Promoted", share=0)))
    assert "Deployment/sentiment-triton-canary" not in out
    stable = out["Deployment/sentiment-triton"]
    assert stable["spec"]["replicas"] == 4
    assert _image(stable).endswith(":24.09-py3")
    assert "--model-repository=s3://models/sentiment-v2" in stable["spec"]["template"]["spec"]["containers"][0]["args"]


def test_rolled_back_or_ended_there_is_only_the_stable_version():
    rolled_back = _by_name(render(AIS, replicas=4, canary=_state(phase="RolledBack", share=0)))
    assert "Deployment/sentiment-triton-canary" not in rolled_back
    assert _image(rolled_back["Deployment/sentiment-triton"]).endswith(":24.08-py3")
    ended = copy.deepcopy(DOC)
    ended["spec"]["inference"]["canary"]["trafficPercent"] = 0
    ended["spec"]["inference"]["canary"]["analysis"]["steps"] = []
    names = _by_name(render(AIService.model_validate(ended), replicas=4))
    assert "Deployment/sentiment-triton-canary" not in names


def test_a_state_recorded_for_another_canary_is_not_applied():
    other = _state(phase="Promoted", share=0, revision="0" * 12)
    assert other.revision != revision(CANARY)
    out = _by_name(render(AIS, replicas=4, canary=other))
    assert _image(out["Deployment/sentiment-triton"]).endswith(":24.08-py3")
    assert "Deployment/sentiment-triton-canary" not in out


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_the_canary_gets_the_stable_pods_admin_key_and_restricted_apis():
    out = _by_name(render(AIS, replicas=4))
    stable, canary = (_container(out[f"Deployment/{name}"]) for name in ("sentiment-triton", "sentiment-triton-canary"))
    assert canary["env"] == stable["env"]
    assert any(e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "sentiment-triton-admin" for e in canary["env"])
    restricted = [a for a in stable["args"] if a.startswith(("--http-restricted-api=", "--grpc-restricted-protocol="))]
    assert len(restricted) == 2 and all(a in canary["args"] for a in restricted)


def _pinned(stable_digest: str | None, canary: dict[str, Any]) -> tuple[str, str]:
    doc = copy.deepcopy(DOC)
    doc["spec"]["inference"]["digest"] = stable_digest
    doc["spec"]["inference"]["canary"] = {**{k: v for k, v in doc["spec"]["inference"]["canary"].items()
                                              if k not in ("version", "image")}, **canary}
    out = _by_name(render(AIService.model_validate(doc), replicas=4))
    return _image(out["Deployment/sentiment-triton"]), _image(out["Deployment/sentiment-triton-canary"])


def test_a_stable_digest_names_the_stable_image_only():
    digest, other = "sha256:" + "ab" * 32, "sha256:" + "cd" * 32
    # A canary of a new tag does not inherit the stable digest: pulled by it, the canary would run the stable image.
    assert _pinned(digest, {"version": "24.09-py3"}) == (f"{IMAGE}:24.08-py3@{digest}", f"{IMAGE}:24.09-py3")
    assert _pinned(digest, {"version": "24.09-py3", "digest": other}) == (
        f"{IMAGE}:24.08-py3@{digest}", f"{IMAGE}:24.09-py3@{other}")
    # A canary of the same image (here: other models) keeps the pin; one of another digest of the tag pins that.
    assert _pinned(digest, {"models": ["other"]})[1] == f"{IMAGE}:24.08-py3@{digest}"
    assert _pinned(None, {"digest": other}) == (f"{IMAGE}:24.08-py3", f"{IMAGE}:24.08-py3@{other}")
