"""The topic plan: pure decisions about creations, growth, configs and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from aifleet.api import AIService
from aifleet.api.data import KafkaSpec
from aifleet.api.errors import describe_validation_error
from aifleet.clients.kafka import TopicState
from aifleet.topics.apply import (
    SKIP_CLEANUP_ANNOTATION,
    delete_topics,
    give_up_reason,
    kafka_credentials,
    kafka_credentials_problem,
)
from aifleet.topics.plan import plan_topics

ORDERS_CONFIGS = {"retention.ms": "604800000"}
DLQ_CONFIGS = {"retention.ms": "1209600000"}


def _spec(*topics: dict, **extra) -> KafkaSpec:
    return KafkaSpec.model_validate({"bootstrapServers": "kafka:9092", "topics": list(topics), **extra})


ORDERS = {"name": "orders", "partitions": 12, "replicationFactor": 3}


def test_empty_cluster_creates_topic_and_dead_letter_topic():
    plan = plan_topics(_spec(ORDERS), {})
    assert [(t.name, t.partitions, t.replication_factor, t.configs) for t in plan.creations] == [
        ("orders", 12, 3, ORDERS_CONFIGS),
        ("orders.dlq", 12, 3, DLQ_CONFIGS),
    ]
    assert not plan.partition_increases and not plan.config_changes and not plan.refusals


def test_dead_letter_can_be_turned_off_and_renamed():
    assert [t.name for t in plan_topics(_spec({**ORDERS, "deadLetter": {"enabled": False}}), {}).creations] == ["orders"]
    named = plan_topics(_spec({**ORDERS, "deadLetter": {"suffix": "-failed", "retentionMs": 5}}), {}).creations
    assert [(t.name, t.configs["retention.ms"]) for t in named] == [("orders", "604800000"), ("orders-failed", "5")]


def test_dead_letter_inherits_configs_but_never_compaction():
    spec = _spec({**ORDERS, "configs": {"cleanup.policy": "compact", "max.message.bytes": "2097152"}})
    topic, dlq = plan_topics(spec, {}).creations
    assert topic.configs == {"cleanup.policy": "compact", "max.message.bytes": "2097152", **ORDERS_CONFIGS}
    assert dlq.configs == {"max.message.bytes": "2097152", **DLQ_CONFIGS}


def test_matching_cluster_needs_nothing():
    existing = {
        "orders": TopicState(12, 3, {**ORDERS_CONFIGS, "segment.ms": "1"}),
        "orders.dlq": TopicState(12, 3, DLQ_CONFIGS),
    }
    plan = plan_topics(_spec(ORDERS), existing)
    assert plan.empty and not plan.refusals


def test_partitions_grow_for_topic_and_dead_letter_topic():
    existing = {"orders": TopicState(6, 3, ORDERS_CONFIGS), "orders.dlq": TopicState(6, 3, DLQ_CONFIGS)}
    plan = plan_topics(_spec(ORDERS), existing)
    assert [(p.topic, p.current, p.wanted) for p in plan.partition_increases] == [("orders", 6, 12), ("orders.dlq", 6, 12)]


def test_partition_decrease_is_refused_and_nothing_changes_on_that_topic():
    existing = {"orders": TopicState(24, 3, {"retention.ms": "1"}), "orders.dlq": TopicState(24, 3, DLQ_CONFIGS)}
    plan = plan_topics(_spec(ORDERS), existing)
    assert plan.refusals == [
        "spec.kafka.topics[orders].partitions: 12 is below the 24 partitions the topic has;"
        " Kafka cannot remove partitions: nothing was changed"
    ]
    assert plan.empty  # not even the retention that differs
    # A dead-letter topic with more partitions than its topic is harmless and left alone.
    assert not any(p.topic == "orders.dlq" for p in plan.partition_increases)


def test_replication_factor_change_is_refused_naming_the_field():
    existing = {"orders": TopicState(12, 1, ORDERS_CONFIGS), "orders.dlq": TopicState(12, 2, DLQ_CONFIGS)}
    plan = plan_topics(_spec(ORDERS), existing)
    assert plan.refusals == [
        "spec.kafka.topics[orders].replicationFactor: 3 differs from the 1 replicas topic orders has;"
        " the operator does not reassign replicas: nothing was changed",
        "spec.kafka.topics[orders].replicationFactor: 3 differs from the 2 replicas dead-letter topic orders.dlq has;"
        " the operator does not reassign replicas: nothing was changed",
    ]
    assert plan.empty


def test_only_managed_config_keys_change():
    existing = {
        "orders": TopicState(12, 3, {"retention.ms": "1000", "cleanup.policy": "delete", "segment.bytes": "1"}),
        "orders.dlq": TopicState(12, 3, DLQ_CONFIGS),
    }
    plan = plan_topics(_spec({**ORDERS, "configs": {"cleanup.policy": "compact"}}), existing)
    (change,) = plan.config_changes
    assert change.topic == "orders"
    assert change.changes == {"cleanup.policy": "compact", "retention.ms": "604800000"}
    assert change.previous == {"cleanup.policy": "delete", "retention.ms": "1000"}


def test_missing_dead_letter_topic_alone_is_created():
    plan = plan_topics(_spec(ORDERS), {"orders": TopicState(12, 3, ORDERS_CONFIGS)})
    assert [t.name for t in plan.creations] == ["orders.dlq"]


def test_all_topic_names_in_spec_order():
    spec = _spec(ORDERS, {"name": "clicks", "deadLetter": {"enabled": False}})
    assert spec.all_topic_names() == ["orders", "orders.dlq", "clicks"]


def test_retain_deletes_nothing_and_needs_no_client():
    result = delete_topics(_spec(ORDERS), None)
    assert (result.state, result.reason) == ("Ready", "Retained")
    assert result.topics == ["orders", "orders.dlq"]


def test_give_up_on_annotation_or_after_the_timeout():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    started = (now - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    assert give_up_reason({}, started, now) is None
    assert "annotation" in give_up_reason({SKIP_CLEANUP_ANNOTATION: "true"}, started, now)
    long_ago = (now - timedelta(minutes=11)).isoformat().replace("+00:00", "Z")
    assert "gave up deleting topics after 600s" in give_up_reason({}, long_ago, now)


def test_kafka_credentials():
    import base64

    def secret(**kv):
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in kv.items()}}

    sasl = _spec(ORDERS, securityProtocol="SASL_SSL", saslMechanism="SCRAM-SHA-512", credentialsSecret="kafka-creds")
    assert kafka_credentials_problem(sasl, None) == 'spec.kafka.credentialsSecret: Secret "kafka-creds" not found'
    assert kafka_credentials_problem(sasl, secret(username="u")) == (
        'spec.kafka.credentialsSecret: Secret "kafka-creds" has no key "password"'
    )
    assert kafka_credentials_problem(sasl, secret(username="u", password="p")) is None
    assert kafka_credentials(secret(username="u", password="p")) == {"username": "u", "password": "p"}
    no_secret = _spec(ORDERS, saslMechanism="PLAIN")
    assert kafka_credentials_problem(no_secret, None) == "spec.kafka.credentialsSecret: required when saslMechanism is set"
    assert kafka_credentials_problem(_spec(ORDERS), None) is None


def _validate(kafka: dict) -> str:
    with pytest.raises(ValidationError) as info:
        AIService.model_validate(
            {"metadata": {"name": "shop"}, "spec": {"inference": {"modelRepository": {"uri": "s3://m"}}, "kafka": kafka}}
        )
    return describe_validation_error(info.value)


@pytest.mark.parametrize(
    "kafka,field",
    [
        ({"bootstrapServers": "k:9092", "topics": [{"name": "t", "partitions": 0}]}, "spec.kafka.topics[0].partitions"),
        ({"bootstrapServers": "k:9092", "topics": [{"name": "t", "replicationFactor": 0}]},
         "spec.kafka.topics[0].replicationFactor"),
        ({"bootstrapServers": "k:9092", "topics": [{"name": "bad name"}]}, "spec.kafka.topics[0].name"),
        ({"topics": []}, "spec.kafka.bootstrapServers: Field required"),
        ({"bootstrapServers": "k:9092", "topics": [{"name": "t"}, {"name": "t"}]}, "spec.kafka.topics[].name must be unique"),
        ({"bootstrapServers": "k:9092", "topics": [{"name": "t"}, {"name": "t.dlq"}]},
         "spec.kafka.topics[t].deadLetter: t.dlq is already a topic of its own"),
        ({"bootstrapServers": "k:9092", "topics": [{"name": "t", "configs": {"retention.ms": "1"}}]},
         "spec.kafka.topics[t].configs: set retention.ms with retentionMs, not in configs"),
        ({"bootstrapServers": "k:9092", "deletionPolicy": "Purge"}, "spec.kafka.deletionPolicy"),
    ],
)
def test_bad_input_names_the_field(kafka, field):
    assert field in _validate(kafka)
