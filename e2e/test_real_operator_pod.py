"""The operator from its image, installed by the chart, on the real node: admitted by the `restricted` Pod Security
Standard, ready, reconciling an AIService to Ready on real Triton pods (reaching the API server through the
`kubernetes` Service and Prometheus at its default address by cluster DNS); with two replicas, the standby takes
over when the active replica's pod is deleted.
"""

from __future__ import annotations

import json

import yaml
from chart_support import CHART, OWN_PREFIX, helm, helm_bin, unique  # noqa: F401 - helm_bin is a fixture
from kube import get_json, kubectl, wait_for
from realnode import (
    models_directory,
    models_volume,
    pinned_namespace,
    pod_ready,
    ready_aiservice,
    ready_pods,
    real_aiservice,
)

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
LIFETIME = 15


def operator_pods(release: str, namespace: str) -> list[dict]:
    return json.loads(kubectl("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}",
                              "-o", "json"))["items"]


def active_peer(peering: str, namespace: str) -> str | None:
    """The replica that works: kopf's peering object lists every replica by pod name with its priority."""
    status = (get_json("kopfpeering", peering, "-n", namespace) or {}).get("status") or {}
    if len(status) < 2:
        return None
    return max(status.items(), key=lambda kv: kv[1]["priority"])[0]


def test_chart_installs_the_operator_image_which_serves_and_fails_over(helm_bin, crd, node_prometheus, real_node,
                                                                     artifacts):
    release = unique("real")
    namespace = unique(f"{OWN_PREFIX}real")
    kubectl("apply", "-f", "-", input=json.dumps(pinned_namespace(namespace, RESTRICTED)))
    values = ["--set", f"watchNamespaces[0]={namespace}", "--set", "replicaCount=2",
              "--set", f"peering.lifetimeSeconds={LIFETIME}", "--set", "logFormat=text"]
    try:
        helm(helm_bin, "install", release, str(CHART), "-n", namespace, *values, "--wait", "--timeout", "180s",
             timeout=240)
        def two_ready() -> list[dict] | None:
            ready = [p for p in operator_pods(release, namespace) if pod_ready(p)]
            return ready if len(ready) == 2 else None

        pods = wait_for("two ready operator pods", two_ready, timeout=120)
        assert {p["spec"]["nodeName"] for p in pods} == {real_node.name}
        assert all(s["image"].startswith("docker.io/library/aifleet-operator:") or
                   s["image"].startswith("aifleet-operator:") for p in pods for s in p["status"]["containerStatuses"])

        # An AIService on default metrics settings: Prometheus is found at prometheus-operated.monitoring.svc.
        directory = models_directory(real_node.volumes / namespace)
        with models_volume(real_node, namespace, directory):
            manifest = real_aiservice("chat", namespace, prometheus="http://prometheus-operated.monitoring.svc:9090")
            del manifest["spec"]["autoscaling"]["metrics"]["address"]
            kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
            ready = wait_for("the AIService Ready, reconciled by the operator pod",
                             lambda: ready_aiservice("chat", namespace), timeout=240, interval=1)
            assert ready["status"]["replicas"] == 1

            # Fail over: delete the active replica's pod; the standby reconciles the next change.
            peering = f"{release}-aifleet-operator"
            active = wait_for("the replicas to peer", lambda: active_peer(peering, namespace), timeout=90)
            kubectl("delete", "pod", active, "-n", namespace, "--wait=false")
            kubectl("patch", "aiservice", "chat", "-n", namespace, "--type=merge",
                    "-p", '{"spec": {"autoscaling": {"minReplicas": 2, "maxReplicas": 2}}}')
            wait_for("two ready Triton pods after the failover", lambda: len(ready_pods("chat", namespace)) == 2,
                     timeout=LIFETIME * 4 + 120, interval=1)
            new_active = wait_for("a new active replica", lambda: (p := active_peer(peering, namespace)) != active
                                  and p, timeout=120, interval=1)
            assert new_active != active
    finally:
        logs = kubectl("logs", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}", "--tail=400",
                       "--prefix", check=False)
        (artifacts / f"operator-pods-{release}.log").write_text(logs)
        helm(helm_bin, "uninstall", release, "-n", namespace, "--wait", "--timeout", "60s", check=False)
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)

