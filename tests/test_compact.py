"""What the watches and the renderer keep is compacted: the same values, less memory."""

from __future__ import annotations

import copy
import json

from aifleet.api import AIService
from aifleet.compact import Compactor
from aifleet.reconciler.observed import trim
from aifleet.renderer import render_all


def _deployment(name: str, uid: str) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": name, "namespace": "ns", "uid": uid, "resourceVersion": "7",
            "labels": {"app.kubernetes.io/instance": name, "app.kubernetes.io/managed-by": "aifleet"},
            "annotations": {"aifleet.dev/config-hash": uid[:4],
                            "kubectl.kubernetes.io/last-applied-configuration": "{\"a\": 1}"},
            "managedFields": [{"manager": "aifleet", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "replicas": 1, "paused": False, "minReadySeconds": 0,
            "template": {"spec": {"containers": [{
                "name": "triton", "ports": [{"containerPort": 8000, "protocol": "TCP"}],
                "readinessProbe": {"periodSeconds": 10, "successThreshold": 1, "initialDelaySeconds": 1.0},
                "securityContext": {"readOnlyRootFilesystem": True, "privileged": 1},
            }]}},
        },
        "status": {"availableReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]},
    }


def test_a_compacted_child_reads_as_the_trimmed_one():
    body = _deployment("a", "uid-a")
    expected = trim(copy.deepcopy(body))
    compacted = Compactor().share(trim(body))
    assert compacted == expected
    # The same JSON values: True is not 1, 1.0 stays a float, False is not 0.
    assert json.dumps(compacted) == json.dumps(expected)
    assert "managedFields" not in compacted["metadata"]


def test_children_share_what_they_have_in_common_and_keep_what_differs():
    compact = Compactor()
    a, b = (compact.share(trim(_deployment(name, f"uid-{name}"))) for name in "ab")
    assert a["spec"]["template"] is b["spec"]["template"]
    assert a["status"] is b["status"]
    assert a["metadata"] is not b["metadata"]
    assert (a["metadata"]["name"], b["metadata"]["name"]) == ("a", "b")


def test_a_full_table_is_forgotten_and_what_comes_after_is_still_right():
    compact = Compactor(limit=3)
    bodies = [_deployment(f"d{i}", f"uid-{i}") for i in range(5)]
    out = [compact.share(trim(copy.deepcopy(body))) for body in bodies]
    for body, compacted in zip(bodies, out):
        assert compacted == trim(body)


def test_trimming_drops_what_no_comparison_reads():
    trimmed = trim(_deployment("a", "uid-a"))
    assert "managedFields" not in trimmed["metadata"]
    assert trimmed["metadata"]["annotations"] == {"aifleet.dev/config-hash": "uid-"}


def test_json_values_that_are_equal_in_python_stay_apart():
    value = {"a": [-0.0, 0.0, 1, True, 1.0, None, "1", {}, [], {"b": 1}, {"b": True}, {"b": 1.0}]}
    assert json.dumps(Compactor().share(value)) == json.dumps(value)


def test_renderings_of_alike_aiservices_share_what_they_have_in_common(minimal):
    def rendered(name: str) -> dict:
        doc = copy.deepcopy(minimal)
        doc["metadata"].update(name=name, namespace="ns", uid=f"uid-{name}")
        deployments = [m for m in render_all(AIService.model_validate(doc)).manifests if m["kind"] == "Deployment"]
        return deployments[0]

    a, b = rendered("compact-a"), rendered("compact-b")
    probes = [a["spec"]["template"]["spec"]["containers"][0]["readinessProbe"],
              b["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]]
    assert probes[0] is probes[1]
    assert a["metadata"]["name"] != b["metadata"]["name"]
