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
    assert canary_pods[TRACK_LABEL] == "canary" and TRACK_LABEL not in stable_pods
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
