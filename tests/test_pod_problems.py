"""Why Triton pods fail, read from pods as the API returns them; and the drain a terminating pod gets."""

from __future__ import annotations

from typing import Any

from aifleet.api import AIService
from aifleet.api.children import TRITON, selector_labels
from aifleet.api.timestamps import parse_timestamp
from aifleet.renderer import render_all
from aifleet.renderer.component import Observed, Rendering
from aifleet.renderer.inference import Triton
from aifleet.renderer.pods import STALL_SECONDS, pod_problems, stalled

NOW = "2026-12-01T12:00:00Z"
TRITON_LOG = (
    "I1201 11:59:58.1 1 server.cc:674] ...\n"
    "E1201 11:59:59.2 1 model_lifecycle.cc:654] \"failed to load 'broken' version 1: Internal: ValueError: no\"\n"
    "I1201 11:59:59.3 1 server.cc:305] Waiting for in-flight requests to complete.\n"
)


def ais(**inference: Any) -> AIService:
    return AIService.model_validate({
        "metadata": {"name": "chat", "namespace": "prod", "generation": 1},
        "spec": {"inference": {"modelRepository": {"uri": "s3://m/chat"}, **inference}},
    })


def deployment(available: int, wanted: int = 2, progressed: str = "2026-12-01T11:59:00Z") -> dict[str, Any]:
    return {
        "metadata": {"name": "chat-triton", "generation": 1},
        "spec": {"replicas": wanted},
        "status": {"observedGeneration": 1, "replicas": wanted, "availableReplicas": available,
                   "readyReplicas": available, "updatedReplicas": wanted,
                   "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                                   "lastUpdateTime": progressed, "lastTransitionTime": progressed}]},
    }


def pod(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def crashing(name: str) -> dict[str, Any]:
    return pod(name, containerStatuses=[{
        "name": "triton", "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": TRITON_LOG}},
    }])


def test_a_stalled_deployment_is_one_without_progress_for_a_while():
    now = parse_timestamp(NOW)
    assert stalled(deployment(0), now)
    assert not stalled(deployment(2), now), "all pods available"
    recent = f"2026-12-01T11:59:{60 - int(STALL_SECONDS) + 5:02d}Z"
    assert not stalled(deployment(0, progressed=recent), now), "progress just now"
    assert not stalled(None, now)


def test_each_failing_pod_says_why_in_a_sentence():
    pods = [
        crashing("chat-triton-a"),
        pod("chat-triton-b", conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                          "message": "0/7 nodes are available: 7 Insufficient nvidia.com/gpu."}]),
        pod("chat-triton-c", containerStatuses=[{"name": "triton", "restartCount": 0, "state": {"waiting": {
            "reason": "ErrImageNeverPull", "message": 'image "nvcr.io/x:1" is not present'}}}]),
        pod("chat-triton-d", containerStatuses=[{"name": "triton", "restartCount": 0,
                                                 "state": {"running": {}}}]),  # loading its models: not failing
    ]
    assert pod_problems(pods, "triton") == [
        "pod chat-triton-a keeps exiting (code 1): E1201 11:59:59.2 1 model_lifecycle.cc:654] "
        "\"failed to load 'broken' version 1: Internal: ValueError: no\"",
        "pod chat-triton-b cannot be scheduled: 0/7 nodes are available: 7 Insufficient nvidia.com/gpu.",
        'pod chat-triton-c cannot start: ErrImageNeverPull: image "nvcr.io/x:1" is not present',
    ]


def test_triton_is_degraded_with_the_pods_reason_only_when_stalled():
    service = ais()
    asked: list[tuple[str, dict[str, str]]] = []

    def state(fleet: dict[str, Any], pods: list[dict[str, Any]]):
        def lister(namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
            asked.append((namespace, selector))
            return pods

        observed = Observed(lambda kind, ns, name: fleet if kind == "Deployment" else None, None, lister,
                            parse_timestamp(NOW))
        return Triton().state(service, observed, Rendering())

    degraded = state(deployment(0), [crashing("chat-triton-a")])
    assert degraded.state == "Degraded" and not degraded.serving
    assert degraded.message.startswith("Triton pods are failing: pod chat-triton-a keeps exiting (code 1)")
    assert "failed to load 'broken'" in degraded.message
    assert asked[-1] == ("prod", selector_labels(service, TRITON))

    asked.clear()
    assert state(deployment(2), [crashing("chat-triton-a")]).state == "Ready"
    assert state(deployment(0, progressed=NOW), [crashing("chat-triton-a")]).state == "Progressing"
    assert not asked, "a healthy or progressing fleet costs no pod list"
    assert state(deployment(0), []).state == "Progressing", "no pod says why: still only counted"


def _triton_container(service: AIService) -> dict[str, Any]:
    deployment = next(m for m in render_all(service, replicas=1, secrets={}).manifests if m["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_terminating_pods_drain_before_triton_stops_and_leave_their_last_words():
    container = _triton_container(ais())
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert "lifecycle" not in _triton_container(ais(drainSeconds=0))
