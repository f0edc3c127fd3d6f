"""An AIService with every component, on the real control plane with a real Kafka broker behind it."""

from __future__ import annotations

import base64
import copy
import json
import sys
from pathlib import Path

import pytest
import yaml

from aifleet.clients.kafka import KafkaAdmin
from kube import condition, get_json, is_true, kubectl, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent / "services"))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())
DB_PASSWORD = "s3cr3t-Pa55word"


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    with harness.Kafka(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


def stack(namespace: str, bootstrap: str, policy: str = "Delete") -> dict:
    doc = copy.deepcopy(MINIMAL)
    doc["metadata"].update(name="shop", namespace=namespace)
    doc["spec"]["pgbouncer"] = {
        "databaseHost": "postgres.databases.svc", "databaseName": "shop", "user": "shop",
        "passwordSecretRef": {"name": "shop-db", "key": "password"}, "maxClientConn": 10000,
    }
    doc["spec"]["redis"] = {"maxMemory": "64mb"}
    doc["spec"]["kafka"] = {
        "bootstrapServers": bootstrap,
        "topics": [{"name": f"{namespace}.orders", "partitions": 4, "replicationFactor": 1}],
        "deletionPolicy": policy,
    }
    return doc


def apply(doc: dict) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))


def db_secret(namespace: str) -> None:
    kubectl("create", "secret", "generic", "shop-db", "-n", namespace, f"--from-literal=password={DB_PASSWORD}")


def wait_ready(namespace: str) -> dict:
    return wait_for("the full stack to be Ready",
                    lambda: (o := get_json("aiservice", "shop", "-n", namespace)) and is_true(o, "Ready") and o, timeout=150)


def test_every_component_becomes_ready(operator, namespace, kafka):
    db_secret(namespace)
    apply(stack(namespace, kafka.bootstrap))
    obj = wait_ready(namespace)
    for kind, name in [("deployment", "shop-pgbouncer"), ("service", "shop-pgbouncer"), ("secret", "shop-pgbouncer-config"),
                       ("secret", "shop-pgbouncer-connection"), ("statefulset", "shop-redis"), ("service", "shop-redis"),
                       ("secret", "shop-redis-auth"), ("poddisruptionbudget", "shop-pgbouncer")]:
        child = get_json(kind, name, "-n", namespace)
        assert child is not None, f"{kind}/{name} missing"
        assert child["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"], f"{kind}/{name}"
    for type_ in ("InferenceReady", "PoolerReady", "CacheReady", "TopicsReady"):
        assert is_true(obj, type_), condition(obj, type_)
    endpoints = obj["status"]["endpoints"]
    assert endpoints["pooler"] == f"shop-pgbouncer.{namespace}.svc:5432"
    assert endpoints["topics"] == sorted([f"{namespace}.orders", f"{namespace}.orders.dlq"])
    existing = KafkaAdmin(kafka.bootstrap, timeout=5).describe([f"{namespace}.orders", f"{namespace}.orders.dlq"])
    assert existing[f"{namespace}.orders"].partitions == 4 and existing[f"{namespace}.orders.dlq"].partitions == 4
    described = kubectl("describe", "aiservice", "shop", "-n", namespace)
    for needle in ("PoolerReady", "CacheReady", "TopicsReady", "created topic"):
        assert needle in described, needle

    # The database password and the generated Redis password live in Secrets only: never in a ConfigMap, the
    # status, an event or the operator's log (the Kafka credentials: e2e/test_deletion.py, on a SASL broker).
    generated = get_json("secret", "shop-redis-auth", "-n", namespace)["data"]["password"]
    redis_password = base64.b64decode(generated).decode()
    everywhere = kubectl("get", "configmaps,events", "-n", namespace, "-o", "json") + json.dumps(obj["status"])
    for secret in (DB_PASSWORD, redis_password):
        assert secret not in everywhere
        assert secret not in operator.logs()

    # The generated Redis password is never rotated: a later reconcile keeps it.
    kubectl("annotate", "aiservice", "shop", "-n", namespace, "e2e/poke=2")
    wait_ready(namespace)
    assert get_json("secret", "shop-redis-auth", "-n", namespace)["data"]["password"] == generated
    assert base64.b64decode(generated)

    # deletionPolicy Delete: the topics go with the AIService.
    kubectl("delete", "aiservice", "shop", "-n", namespace, "--timeout=90s")
    wait_for("topics to be deleted", lambda: not ({f"{namespace}.orders", f"{namespace}.orders.dlq"} & set(
        KafkaAdmin(kafka.bootstrap, timeout=5).describe([f"{namespace}.orders", f"{namespace}.orders.dlq"]))) or None)


def test_retain_keeps_topics_and_decrease_is_refused(operator, namespace, kafka):
    db_secret(namespace)
    doc = stack(namespace, kafka.bootstrap, policy="Retain")
    apply(doc)
    wait_ready(namespace)
    name = f"{namespace}.orders"
    # The CRD refuses a partition decrease before it reaches the operator.
    smaller = copy.deepcopy(doc)
    smaller["spec"]["kafka"]["topics"][0]["partitions"] = 2
    refused = kubectl("apply", "-f", "-", input=yaml.safe_dump(smaller), check=False)
    assert "partitions cannot decrease" in refused, refused
    # A partition increase applies, to the topic and its dead-letter topic.
    bigger = copy.deepcopy(doc)
    bigger["spec"]["kafka"]["topics"][0]["partitions"] = 8
    apply(bigger)
    wait_for("partitions to grow to 8", lambda: KafkaAdmin(kafka.bootstrap, timeout=5).describe([name, name + ".dlq"])
             .get(name + ".dlq") and KafkaAdmin(kafka.bootstrap, timeout=5).describe([name])[name].partitions == 8)
    kubectl("delete", "aiservice", "shop", "-n", namespace, "--timeout=60s")
    assert name in KafkaAdmin(kafka.bootstrap, timeout=5).describe([name]), "Retain must keep the topic"


def test_missing_secret_is_reported_naming_the_field(operator, namespace, kafka):
    apply(stack(namespace, kafka.bootstrap, policy="Retain"))
    obj = wait_for("PoolerReady to say what is missing",
                   lambda: (o := get_json("aiservice", "shop", "-n", namespace)) and condition(o, "PoolerReady")
                   and condition(o, "PoolerReady")["status"] == "False" and "passwordSecretRef" in condition(o, "PoolerReady")["message"] and o)
    assert not is_true(obj, "Ready")
    assert get_json("deployment", "shop-pgbouncer", "-n", namespace) is None, "nothing half-applied"
    events = kubectl("get", "events", "-n", namespace, "--field-selector", "type=Warning")
    assert "PoolerDegraded" in events
    db_secret(namespace)  # the user fixes it: the pooler comes up without touching the AIService
    wait_ready(namespace)


def test_large_example_becomes_ready(operator, namespace, kafka):
    """examples/large.yaml as shipped, but for what this machine's one-broker Kafka needs: its address and a
    replication factor of 1."""
    docs = list(yaml.safe_load_all((ROOT / "examples" / "large.yaml").read_text()))
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "AIService":
            doc["spec"]["kafka"]["bootstrapServers"] = kafka.bootstrap
            for topic in doc["spec"]["kafka"]["topics"]:
                topic["replicationFactor"] = 1
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    obj = wait_for("the large example to be Ready",
                   lambda: (o := get_json("aiservice", "chat", "-n", namespace)) and is_true(o, "Ready") and o, timeout=240)
    assert obj["status"]["readyReplicas"] >= 20, "minReplicas 20"
    gpu_pods = [p for p in get_json("pods", "-n", namespace, "-l", "app.kubernetes.io/name=triton")["items"]
                if p["status"].get("phase") == "Running"]
    assert len(gpu_pods) >= 20 and all(p["spec"]["nodeName"].startswith("kwok-gpu-") for p in gpu_pods)
    topic = KafkaAdmin(kafka.bootstrap, timeout=5).describe(["chat.requests", "chat.requests.dlq"])
    assert topic["chat.requests"].partitions == 50 and topic["chat.requests.dlq"].partitions == 50
