"""On a real Kafka broker: deletionPolicy Delete removes only the topics aifleet created, and a deletion with the
broker stopped reports the topics it leaves behind instead of waiting forever. The operator's own topic code
(`sync_topics`, `owned_topics`, `delete_topics`, `give_up_reason`) over its real admin client; no cluster."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Iterator

import pytest

from aifleet.api.data import KafkaSpec
from aifleet.clients.kafka import ALREADY_EXISTS, KafkaAdmin
from aifleet.topics.apply import delete_topics, give_up_reason, left_behind, owned_topics, sync_topics
from harness import Kafka

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka]:
    with Kafka(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


def _spec(bootstrap: str, *names: str) -> KafkaSpec:
    return KafkaSpec.model_validate({
        "bootstrapServers": bootstrap, "deletionPolicy": "Delete",
        "topics": [{"name": n, "partitions": 2, "replicationFactor": 1} for n in names],
    })


def test_a_topic_that_existed_survives_deletion_and_one_aifleet_created_is_deleted(kafka: Kafka) -> None:
    theirs, ours = f"shared-{uuid.uuid4().hex[:6]}", f"ours-{uuid.uuid4().hex[:6]}"
    kafka.create_topic(theirs, partitions=2)  # someone else's topic, with a name the AIService lists
    spec = _spec(kafka.bootstrap, theirs, ours)
    result = sync_topics(spec, KafkaAdmin(kafka.bootstrap, timeout=10))
    assert result.state == "Ready", result.message
    # What the reconciler writes to status.createdTopics: the DLQ of their topic and both of ours were created.
    record = owned_topics(None, result)
    assert record == sorted([f"{theirs}.dlq", ours, f"{ours}.dlq"])

    # An operator restart: a new client, and nothing but the recorded status to go by.
    restarted = KafkaAdmin(kafka.bootstrap, timeout=10)
    again = sync_topics(spec, restarted)
    assert owned_topics(record, again) == record, "a sync that creates nothing keeps the record"
    deletion = delete_topics(spec, restarted, record)
    assert deletion.state == "Ready", deletion.message
    assert f"kept topics {theirs}: aifleet did not create them" in deletion.events

    left = set(kafka.list_topics())
    assert theirs in left, "a topic aifleet did not create must survive deletionPolicy Delete"
    # Had it appeared between the operator's look and its create, the broker's answer says it is not ours.
    raced = restarted.create([(theirs, 2, 1, {})])
    assert raced[theirs].reason == ALREADY_EXISTS
    assert not {ours, f"{ours}.dlq", f"{theirs}.dlq"} & left


def test_deletion_with_the_broker_stopped_gives_up_naming_the_topics_left_behind(kafka: Kafka) -> None:
    ours = f"orders-{uuid.uuid4().hex[:6]}"
    spec = _spec(kafka.bootstrap, ours)
    admin = KafkaAdmin(kafka.bootstrap, timeout=3)
    record = owned_topics(None, sync_topics(spec, admin))
    assert record == sorted([ours, f"{ours}.dlq"])
    kafka.stop()  # the real broker process ends
    try:
        result = delete_topics(spec, admin, record)
        assert result.state == "Degraded" and result.topics == [ours, f"{ours}.dlq"], result.message
        deleted_at = datetime.now(UTC)
        stamp = deleted_at.isoformat()
        assert give_up_reason({}, stamp, deleted_at + timedelta(seconds=5)) is None, "keeps trying for a while"
        reason = give_up_reason({}, stamp, deleted_at + timedelta(seconds=601))
        assert reason is not None
        message = left_behind(reason, result.topics, spec.bootstrap_servers)
        assert f"topics left behind on {kafka.bootstrap}: {ours}, {ours}.dlq" in message
    finally:
        kafka.start()
    assert {ours, f"{ours}.dlq"} <= set(kafka.list_topics()), "left behind, as reported"
