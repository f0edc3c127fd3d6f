"""Triton pods pass the Pod Security Standard `restricted`, judged by the real API server's admission."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from kube import get_json, is_true, kubectl, wait_for

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())


def test_restricted_namespace_admits_triton_pods(operator, namespace):
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest")
    # The admission controller is live: a privileged pod is refused in this namespace.
    privileged = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
    }
    refused = kubectl("apply", "-f", "-", input=yaml.safe_dump(privileged), check=False)
    assert "violates PodSecurity" in refused, refused

    doc = copy.deepcopy(MINIMAL)
    doc["metadata"]["namespace"] = namespace
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    obj = wait_for("the AIService to be Ready in a restricted namespace",
                   lambda: (o := get_json("aiservice", "sentiment", "-n", namespace)) and is_true(o, "Ready") and o, timeout=120)
    assert obj["status"]["readyReplicas"] == 1
    failures = kubectl("get", "events", "-n", namespace, "--field-selector", "reason=FailedCreate", "-o", "name")
    assert failures.strip() == "", "a pod was refused by PodSecurity admission"
