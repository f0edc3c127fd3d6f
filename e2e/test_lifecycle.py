"""Apply, observe, drift, update, restart, delete: an AIService's life on a real API server."""

from __future__ import annotations

import base64
import copy
import json
import time
from pathlib import Path

import yaml

from kube import condition, get_json, is_true, kubectl, wait_for

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())
CHILD_KINDS = ["networkpolicy", "serviceaccount", "service", "deployment", "poddisruptionbudget"]


def apply(doc: dict, namespace: str) -> None:
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = namespace
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))


def ais(namespace: str, name: str) -> dict | None:
    return get_json("aiservice", name, "-n", namespace)


def wait_ready(namespace: str, name: str, timeout: float = 120) -> dict:
    return wait_for(f"AIService {namespace}/{name} Ready", lambda: (o := ais(namespace, name)) and is_true(o, "Ready") and o, timeout)


def columns(header: str, row: str) -> dict[str, str]:
    """Cut a `kubectl get` row by the header's column starts: empty cells stay empty."""
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, starts[1:] + [len(row) + 1]))
    return {header[a:b].strip(): row[a:b].strip() for a, b in bounds}


def pods(namespace: str, name: str) -> list[dict]:
    out = get_json("pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}")
    return out["items"] if out else []


def test_minimal_example_becomes_ready(operator, namespace):
    apply(MINIMAL, namespace)
    obj = wait_ready(namespace, "sentiment")
    uid = obj["metadata"]["uid"]
    for kind in CHILD_KINDS:
        child = get_json(kind, "sentiment-triton", "-n", namespace)
        assert child, f"{kind} missing"
        owners = child["metadata"]["ownerReferences"]
        assert owners[0]["uid"] == uid and owners[0]["controller"] is True, kind
    running = [p for p in pods(namespace, "sentiment") if p["status"].get("phase") == "Running"]
    assert len(running) == 1
    assert obj["status"]["readyReplicas"] == 1
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["endpoints"]["http"] == f"http://sentiment-triton.{namespace}.svc:8000"


def test_get_and_describe_speak_to_people(operator, namespace):
    apply(MINIMAL, namespace)
    wait_ready(namespace, "sentiment")
    table = kubectl("get", "aiservices", "-n", namespace)
    header, row = table.splitlines()[:2]
    for column in ("NAME", "READY", "REPLICAS", "DESIRED", "RPS", "MIN", "MAX", "AGE"):
        assert column in header.split(), header
    cells = columns(header, row)
    assert cells["READY"] == "True" and cells["REPLICAS"] == "1" and cells["MIN"] == "1" and cells["MAX"] == "4"
    short = kubectl("get", "ais", "-n", namespace)
    assert "sentiment" in short
    assert "aiservice.aifleet.dev/sentiment" in kubectl("get", "all", "-n", namespace)
    described = kubectl("describe", "aiservice", "sentiment", "-n", namespace)
    assert "Conditions:" in described and "Ready" in described
    created = "created NetworkPolicy sentiment-triton, ServiceAccount sentiment-triton, Service sentiment-triton, Deployment"
    assert created in " ".join(described.split()), described


def test_drift_is_put_back(operator, namespace):
    apply(MINIMAL, namespace)
    wait_ready(namespace, "sentiment")
    service_uid = get_json("service", "sentiment-triton", "-n", namespace)["metadata"]["uid"]
    kubectl("delete", "service", "sentiment-triton", "-n", namespace)
    wait_for(
        "the deleted Service to come back",
        lambda: (s := get_json("service", "sentiment-triton", "-n", namespace)) and s["metadata"]["uid"] != service_uid,
    )
    patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil/image:latest"}]
    kubectl("patch", "deployment", "sentiment-triton", "-n", namespace, "--type=json", "-p", json.dumps(patch))
    wait_for(
        "the hand-edited image to be reverted",
        lambda: get_json("deployment", "sentiment-triton", "-n", namespace)["spec"]["template"]["spec"]["containers"][0]["image"]
        == "nvcr.io/nvidia/tritonserver:24.08-py3",
    )
    events = kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=AIService")
    assert "DriftReverted" in events and "was changed outside aifleet" in events


def test_spec_update_rolls_out(operator, namespace):
    apply(MINIMAL, namespace)
    wait_ready(namespace, "sentiment")
    updated = copy.deepcopy(MINIMAL)
    updated["spec"]["inference"]["version"] = "24.09-py3"
    updated["spec"]["inference"]["resources"] = {"requests": {"cpu": "3", "memory": "12Gi"}, "limits": {"memory": "24Gi"}}
    apply(updated, namespace)

    def rolled_out():
        dep = get_json("deployment", "sentiment-triton", "-n", namespace)
        container = dep["spec"]["template"]["spec"]["containers"][0]
        status = dep.get("status", {})
        return (
            container["image"].endswith(":24.09-py3")
            and container["resources"]["requests"]["cpu"] == "3"
            and status.get("updatedReplicas") == 1
            and status.get("availableReplicas") == 1
            and status.get("observedGeneration") == dep["metadata"]["generation"]
        )

    wait_for("the new image and resources to roll out", rolled_out)
    new_pods = wait_for(
        "pods on the new image",
        lambda: [p for p in pods(namespace, "sentiment") if p["spec"]["containers"][0]["image"].endswith(":24.09-py3")
                 and p["status"].get("phase") == "Running"],
    )
    assert new_pods
    obj = wait_ready(namespace, "sentiment")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]


def test_delete_collects_every_child(operator, namespace):
    apply(MINIMAL, namespace)
    wait_ready(namespace, "sentiment")
    kubectl("delete", "aiservice", "sentiment", "-n", namespace, "--timeout=60s")
    for kind in CHILD_KINDS:
        wait_for(f"{kind} to be garbage-collected", lambda k=kind: get_json(k, "sentiment-triton", "-n", namespace) is None)
    wait_for("pods to be gone", lambda: not pods(namespace, "sentiment") or None)


def test_restart_mid_reconcile_converges_without_duplicates(operator, namespace):
    docs = []
    for index in range(8):
        doc = copy.deepcopy(MINIMAL)
        doc["metadata"]["name"] = f"svc{index}"
        doc["metadata"]["namespace"] = namespace
        docs.append(yaml.safe_dump(doc))
    kubectl("apply", "-f", "-", input="---\n".join(docs))
    # Kill it while it is creating children, then start it again.
    wait_for("the operator to start creating children", lambda: get_json("deployments", "-n", namespace)["items"], interval=0.05)
    operator.kill()
    operator.start()
    for index in range(8):
        wait_ready(namespace, f"svc{index}")
    deployments = get_json("deployments", "-n", namespace)["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == [f"svc{i}-triton" for i in range(8)]
    for dep in deployments:
        replicasets = [
            rs for rs in get_json("replicasets", "-n", namespace)["items"]
            if rs["metadata"]["ownerReferences"][0]["uid"] == dep["metadata"]["uid"]
        ]
        assert len(replicasets) == 1, f"{dep['metadata']['name']} rolled more than once"


def test_quiet_resync_writes_nothing(operator, namespace):
    apply(MINIMAL, namespace)
    obj = wait_ready(namespace, "sentiment")
    time.sleep(3)  # let status settle after the last pod event
    before = {k: get_json(k, "sentiment-triton", "-n", namespace)["metadata"]["resourceVersion"] for k in CHILD_KINDS}
    # An event with no spec change: the operator wakes up, finds nothing to do, and writes nothing.
    poked = json.loads(kubectl("annotate", "aiservice", "sentiment", "-n", namespace, "e2e/poke=1", "-o", "json"))
    time.sleep(17)  # longer than one metrics poll (15 s): a poll that decides "hold" writes nothing either
    after = {k: get_json(k, "sentiment-triton", "-n", namespace)["metadata"]["resourceVersion"] for k in CHILD_KINDS}
    assert before == after, "a child was written although nothing changed"
    final = ais(namespace, "sentiment")
    assert final["metadata"]["resourceVersion"] == poked["metadata"]["resourceVersion"], "status was rewritten with no change"
    assert condition(final, "Ready")["lastTransitionTime"] == condition(obj, "Ready")["lastTransitionTime"]


def test_kubectl_scale_sets_the_floor(operator, namespace):
    """The scale subresource maps to minReplicas: `kubectl scale` raises the fleet's floor, within maxReplicas."""
    apply(MINIMAL, namespace)
    wait_ready(namespace, "sentiment")
    kubectl("scale", "aiservice", "sentiment", "-n", namespace, "--replicas=3")
    assert ais(namespace, "sentiment")["spec"]["autoscaling"]["minReplicas"] == 3
    wait_for("the fleet to grow to the new floor",
             lambda: get_json("deployment", "sentiment-triton", "-n", namespace)["spec"]["replicas"] == 3 or None)
    refused = kubectl("scale", "aiservice", "sentiment", "-n", namespace, "--replicas=9", check=False)
    assert "minReplicas must be <= maxReplicas" in refused, refused


def test_an_object_in_a_childs_way_is_left_alone_and_named(operator, namespace):
    """A Service and a ConfigMap someone else made hold the names aifleet would use: the Service (a child's name)
    is neither changed nor adopted, the AIService says why, and once it is gone aifleet creates its own."""
    foreign = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "sentiment-triton", "namespace": namespace, "labels": {"app": "legacy"}},
        "spec": {"selector": {"app": "legacy"}, "ports": [{"name": "web", "port": 80, "targetPort": 8080}]},
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(foreign))
    kubectl("create", "configmap", "sentiment-triton", "-n", namespace, "--from-literal=owner=legacy")
    before = {kind: get_json(kind, "sentiment-triton", "-n", namespace) for kind in ("service", "configmap")}
    apply(MINIMAL, namespace)
    message = "Service sentiment-triton already exists and aifleet did not create it: not adopted"

    def refused():
        obj = ais(namespace, "sentiment")
        cond = condition(obj, "InferenceReady")
        return cond if cond and cond["status"] == "False" and message in cond.get("message", "") else None

    cond = wait_for("the AIService to say which object is in the way", refused)
    assert cond["reason"] == "Degraded"
    assert is_true(ais(namespace, "sentiment"), "Degraded")
    events = kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=AIService")
    assert "InferenceDegraded" in events and "Service sentiment-triton already exists" in events
    # The rest of the fleet is created; the objects in the way are untouched, not even labelled or owned.
    assert get_json("deployment", "sentiment-triton", "-n", namespace)
    for kind, old in before.items():
        now = get_json(kind, "sentiment-triton", "-n", namespace)
        assert now["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"], kind
        assert "ownerReferences" not in now["metadata"] and now["metadata"].get("labels") == old["metadata"].get("labels")

    # Once the object is gone (its owner removed it), aifleet creates its own Service and the fleet comes up.
    kubectl("delete", "service", "sentiment-triton", "-n", namespace)
    obj = wait_ready(namespace, "sentiment")
    service = get_json("service", "sentiment-triton", "-n", namespace)
    assert service["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert get_json("configmap", "sentiment-triton", "-n", namespace)["data"] == {"owner": "legacy"}


def test_the_triton_admin_key_lives_only_in_its_secret(operator, namespace):
    apply(MINIMAL, namespace)
    obj = wait_ready(namespace, "sentiment")
    assert obj["status"]["endpoints"]["adminSecret"] == "sentiment-triton-admin"
    secret = get_json("secret", "sentiment-triton-admin", "-n", namespace)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    key = base64.b64decode(secret["data"]["key"]).decode()
    assert len(key) >= 40
    container = get_json("deployment", "sentiment-triton", "-n", namespace)["spec"]["template"]["spec"]["containers"][0]
    restricted = [a for a in container["args"] if a.startswith("--http-restricted-api=")]
    assert restricted == ["--http-restricted-api=model-repository,shared-memory,trace,logging:triton-access-token=$(AIFLEET_ADMIN_KEY)"]
    everywhere = kubectl("get", "deployments,replicasets,pods,configmaps,events", "-n", namespace, "-o", "json") + json.dumps(obj)
    assert key not in everywhere
