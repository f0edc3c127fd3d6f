"""Deletion never hangs: AIServices and their namespaces go away with Kafka stopped, with the credentials Secret
deleted first, and with the operator not running; the topics that could not be deleted are named.

Faults are real: the Kafka broker process is stopped (e2e/services/harness), the operator process is stopped. These
tests run an operator of their own (namespaces `e2e-own-del-*`, which the suite's operator leaves alone) with a
20 s topic-cleanup timeout, so giving up takes seconds, not the default ten minutes.

In a namespace being deleted the API server refuses new events, so there the operator's log line "topics left
behind" is what names them; an AIService deleted on its own gets the Warning event `TopicCleanupAbandoned`.
"""

from __future__ import annotations

import copy
import json
import time

import pytest
import yaml

from aifleet.clients.kafka import KafkaAdmin
from chart_support import OWN_PREFIX
from kube import condition, get_json, is_true, kubectl, scratch_namespace, wait_for
from operator_process import OperatorProcess

import harness
from harness.net import HOST, free_port

CLEANUP_SECONDS = 20
KAFKA_USER, KAFKA_PASSWORD = "aifleet", "k4fka-Pa55-not-for-logs"


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    """A SASL/PLAIN KRaft broker: the operator needs the credentials Secret to reach it."""
    port, controller = free_port(), free_port()
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-pw" '
            f'user_admin="admin-pw" user_{KAFKA_USER}="{KAFKA_PASSWORD}";')
    props = {
        "listeners": f"SASL_PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller}",
        "advertised.listeners": f"SASL_PLAINTEXT://{HOST}:{port}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
    }
    with harness.Kafka(tmp_path_factory.mktemp("kafka-sasl"), port=port, controller_port=controller,
                       properties=props) as broker:
        yield broker


@pytest.fixture(scope="module")
def own_operator(crd, artifacts):
    proc = OperatorProcess(artifacts / "operator-deletion", extra_args=["--namespace", f"{OWN_PREFIX}del-*"],
                           env={"AIFLEET_TOPIC_CLEANUP_SECONDS": str(CLEANUP_SECONDS)})
    proc.start()
    yield proc
    proc.stop()


def own_namespace():
    """A namespace only this module's operator watches."""
    return scratch_namespace("del", prefix=OWN_PREFIX)


def admin(kafka) -> KafkaAdmin:
    return KafkaAdmin(kafka.bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                      username=KAFKA_USER, password=KAFKA_PASSWORD, timeout=5)


def service(namespace: str, kafka, policy: str = "Delete") -> dict:
    return {
        "apiVersion": "aifleet.dev/v1alpha1", "kind": "AIService", "metadata": {"name": "shop", "namespace": namespace},
        "spec": {
            "inference": {"modelRepository": {"uri": "s3://models/sentiment"}, "models": ["sentiment"]},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 2, "targetRPSPerPod": 50},
            "kafka": {"bootstrapServers": kafka.bootstrap, "securityProtocol": "SASL_PLAINTEXT", "saslMechanism": "PLAIN",
                      "credentialsSecret": "kafka-creds", "deletionPolicy": policy,
                      "topics": [{"name": f"{namespace}.orders", "partitions": 2, "replicationFactor": 1}]},
        },
    }


def topics_of(namespace: str) -> list[str]:
    return [f"{namespace}.orders", f"{namespace}.orders.dlq"]


def create(namespace: str, kafka, policy: str = "Delete") -> dict:
    kubectl("create", "secret", "generic", "kafka-creds", "-n", namespace, f"--from-literal=username={KAFKA_USER}",
            f"--from-literal=password={KAFKA_PASSWORD}")
    kubectl("apply", "-f", "-", input=yaml.safe_dump(service(namespace, kafka, policy)))
    obj = wait_for("topics in place", lambda: (o := get_json("aiservice", "shop", "-n", namespace))
                   and is_true(o, "TopicsReady") and o.get("status", {}).get("createdTopics") and o, timeout=120)
    assert obj["status"]["createdTopics"] == sorted(topics_of(namespace))
    return obj


def finalizers(namespace: str) -> list[str]:
    return (get_json("aiservice", "shop", "-n", namespace) or {}).get("metadata", {}).get("finalizers") or []


def namespace_gone(namespace: str, timeout: float) -> None:
    wait_for(f"namespace {namespace} to be gone", lambda: get_json("namespace", namespace) is None, timeout=timeout)


def test_only_deletion_policy_delete_carries_a_finalizer(own_operator, kafka):
    with own_namespace() as retain_ns, own_namespace() as delete_ns:
        create(retain_ns, kafka, "Retain")
        create(delete_ns, kafka, "Delete")
        assert finalizers(retain_ns) == []
        assert finalizers(delete_ns) == ["aifleet.dev/finalizer"]
        # Turning Delete into Retain takes the finalizer away.
        doc = copy.deepcopy(service(delete_ns, kafka, "Retain"))
        kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
        wait_for("the finalizer to go", lambda: finalizers(delete_ns) == [], timeout=30)


def test_kafka_stopped_while_the_operator_syncs_topics_is_reported_and_recovers(own_operator, kafka):
    """The broker process stopped under a running operator: a spec change that needs Kafka turns TopicsReady False
    with the reason, nothing else of the AIService breaks, and with the broker back the change is made."""
    with own_namespace() as ns:
        create(ns, kafka, "Retain")
        kafka.stop()
        try:
            doc = service(ns, kafka, "Retain")
            doc["spec"]["kafka"]["topics"].append({"name": f"{ns}.refunds", "partitions": 1, "replicationFactor": 1})
            kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
            down = wait_for("TopicsReady False while Kafka is away", lambda: (c := condition(
                get_json("aiservice", "shop", "-n", ns), "TopicsReady")) and c["status"] == "False" and c, timeout=90)
            assert down["reason"] and down["message"], down
            assert get_json("deployment", "shop-triton", "-n", ns), "the rest of the AIService stays in place"
        finally:
            kafka.start()
        # The next retry after the broker returns: backoff is at most 300 s, the first ones 30 s and 60 s.
        wait_for("TopicsReady True again", lambda: is_true(get_json("aiservice", "shop", "-n", ns), "TopicsReady"),
                 timeout=200)
        assert f"{ns}.refunds" in admin(kafka).describe([f"{ns}.refunds"])
        assert set(admin(kafka).describe(topics_of(ns))) == set(topics_of(ns)), "the topics survived the outage"


def test_kafka_stopped_the_aiservice_and_its_namespace_still_go(own_operator, kafka):
    with own_namespace() as alone, own_namespace() as whole:
        create(alone, kafka)
        create(whole, kafka)
        kafka.stop()  # the broker process ends
        try:
            started = time.monotonic()
            kubectl("delete", "aiservice", "shop", "-n", alone, "--wait=false")
            kubectl("delete", "namespace", whole, "--wait=false")
            wait_for("the AIService to be gone", lambda: get_json("aiservice", "shop", "-n", alone) is None,
                     timeout=CLEANUP_SECONDS + 90)
            namespace_gone(whole, CLEANUP_SECONDS + 120)
            assert time.monotonic() - started >= CLEANUP_SECONDS - 2, "it tried for the cleanup timeout first"
            events = json.loads(kubectl("get", "events", "-n", alone, "--field-selector",
                                        "reason=TopicCleanupAbandoned", "-o", "json"))["items"]
            assert events and events[0]["type"] == "Warning", "a Warning event when topics are left behind"
            message = events[0]["message"]
            assert f"topics left behind on {kafka.bootstrap}: {', '.join(topics_of(alone))}" in message, message
            logs = own_operator.logs()
            assert "topics left behind" in logs and f"{whole}.orders" in logs
        finally:
            kafka.start()
        left = set(admin(kafka).describe(topics_of(alone) + topics_of(whole)))
        assert left == set(topics_of(alone) + topics_of(whole)), "left behind, as reported"


def test_credentials_secret_deleted_first(own_operator, kafka):
    """The defect: with the Secret gone, building the client threw before the give-up rules were consulted, and the
    deletion was retried forever. Now: the client the operator last used still deletes the topics; an operator that
    never held one (restarted) gives up at once, naming the topics."""
    with own_namespace() as kept_client, own_namespace() as restarted:
        create(kept_client, kafka)
        create(restarted, kafka)
        kubectl("delete", "secret", "kafka-creds", "-n", kept_client)
        kubectl("delete", "secret", "kafka-creds", "-n", restarted)
        kubectl("delete", "namespace", kept_client, "--wait=false")
        namespace_gone(kept_client, 90)
        assert not set(admin(kafka).describe(topics_of(kept_client))), "deleted with the credentials it had"

        own_operator.stop()
        own_operator.start()  # no client cached: the Secret is the only way to the credentials, and it is gone
        kubectl("delete", "aiservice", "shop", "-n", restarted, "--wait=false")
        wait_for("the AIService to be gone", lambda: get_json("aiservice", "shop", "-n", restarted) is None, timeout=60)
        events = json.loads(kubectl("get", "events", "-n", restarted, "--field-selector",
                                    "reason=TopicCleanupAbandoned", "-o", "json"))["items"]
        assert events and 'Secret "kafka-creds" not found' in events[0]["message"]
        assert ", ".join(topics_of(restarted)) in events[0]["message"]
        assert set(admin(kafka).describe(topics_of(restarted))) == set(topics_of(restarted))


def test_operator_not_running(own_operator, kafka):
    """Retain (the default) needs no finalizer: its namespace goes while the operator is down. Delete waits for the
    operator (only it can reach Kafka). The namespace controller deletes the credentials Secret meanwhile, so the
    operator, back, cannot authenticate: it gives up at once, says which topics it left behind, and lets the
    namespace go."""
    with own_namespace() as retain_ns, own_namespace() as delete_ns:
        create(retain_ns, kafka, "Retain")
        create(delete_ns, kafka, "Delete")
        own_operator.stop()
        try:
            kubectl("delete", "namespace", retain_ns, "--wait=false")
            kubectl("delete", "namespace", delete_ns, "--wait=false")
            namespace_gone(retain_ns, 90)
            time.sleep(5)
            phase = (get_json("namespace", delete_ns) or {}).get("status", {}).get("phase")
            assert phase == "Terminating", "Delete waits for the operator to delete its topics"
        finally:
            own_operator.start()
        namespace_gone(delete_ns, 90)
        left = [line for line in own_operator.log_path.read_text().splitlines() if "topics left behind" in line]
        assert left and f"{delete_ns}/shop" in left[0] and f"{delete_ns}.orders" in left[0], left
        assert "kafka-creds" in left[0] and "not found" in left[0], left
        assert set(admin(kafka).describe(topics_of(delete_ns))) == set(topics_of(delete_ns)), "left, as reported"
        assert set(admin(kafka).describe(topics_of(retain_ns))) == set(topics_of(retain_ns)), "Retain keeps them"


def test_kafka_credentials_never_leak(own_operator, kafka):
    """The Kafka password lives in its Secret only: never in a ConfigMap, an event, the status or the operator's log."""
    with own_namespace() as ns:
        obj = create(ns, kafka, "Retain")
        everywhere = kubectl("get", "configmaps,events", "-n", ns, "-o", "json") + json.dumps(obj["status"])
        assert KAFKA_PASSWORD not in everywhere
        assert KAFKA_PASSWORD not in own_operator.logs()
        assert condition(obj, "TopicsReady")["status"] == "True"
