"""Deletion never hangs, deletes only the topics aifleet created, and only objects that need one carry a finalizer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

import aifleet.reconciler.handlers  # noqa: F401 - registers the handlers whose finalizer needs are tested
from aifleet.api.data import KafkaSpec
from aifleet.clients.endpoints import EndpointPolicy
from aifleet.clients.kafka import BROKER_UNAVAILABLE, KafkaAdminError, TopicState
from aifleet.reconciler.passes import Engines, clean_up_topics
from aifleet.reconciler.topic_schedule import TopicsEngine
from aifleet.topics.apply import (
    SKIP_CLEANUP_ANNOTATION,
    TopicsResult,
    delete_topics,
    give_up_reason,
    left_behind,
    owned_topics,
    sync_topics,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


def _spec(**extra: Any) -> KafkaSpec:
    return KafkaSpec.model_validate({"bootstrapServers": "kafka:9092", "deletionPolicy": "Delete",
                                     "topics": [{"name": "orders"}], **extra})


class Admin:
    """A Kafka stand-in for the pure logic: topics in a dict; `down` makes every call fail as librdkafka does."""

    bootstrap_servers = "kafka:9092"

    def __init__(self, topics: dict[str, TopicState] | None = None, down: bool = False) -> None:
        self.topics = dict(topics or {})
        self.down = down
        self.deleted: list[str] = []

    def _check(self) -> None:
        if self.down:
            raise KafkaAdminError(BROKER_UNAVAILABLE, "listing topics on kafka:9092: all brokers are down")

    def describe(self, names):
        self._check()
        return {n: self.topics[n] for n in names if n in self.topics}

    def create(self, topics):
        self._check()
        for name, partitions, rf, configs in topics:
            self.topics[name] = TopicState(partitions, rf, dict(configs))
        return {}

    def add_partitions(self, totals):
        return {}

    def alter_configs(self, changes):
        for name, kv in changes.items():
            self.topics[name] = TopicState(self.topics[name].partitions, self.topics[name].replication_factor,
                                           {**self.topics[name].configs, **kv})
        return {}

    def delete(self, names):
        self._check()
        for name in names:
            self.topics.pop(name, None)
            self.deleted.append(name)
        return {}


# --- which objects carry a finalizer -----------------------------------------------------------------------


def _cause(spec: dict) -> Any:
    from kopf._core.intents import causes

    body = kopf.Body({"apiVersion": "aifleet.dev/v1alpha1", "kind": "AIService",
                      "metadata": {"name": "a", "namespace": "n"}, "spec": spec})
    return causes.ChangingCause(
        logger=None, indices={}, patch=None,
        resource=kopf.Resource("aifleet.dev", "v1alpha1", "aiservices", kind="AIService", namespaced=True,
                               preferred=True, verbs=["list", "watch", "patch"]), memo=None, body=body,  # type: ignore[arg-type]
        initial=False, reason=causes.Reason.UPDATE,
    )


@pytest.mark.parametrize(("spec", "needs"), [
    ({}, False),
    ({"kafka": {"bootstrapServers": "k:9092", "topics": [{"name": "t"}]}}, False),  # Retain by default
    ({"kafka": {"bootstrapServers": "k:9092", "deletionPolicy": "Retain"}}, False),
    ({"kafka": {"bootstrapServers": "k:9092", "deletionPolicy": "Delete", "enabled": False}}, False),
    ({"kafka": {"bootstrapServers": "k:9092", "deletionPolicy": "Delete"}}, True),
])
def test_only_kafka_delete_needs_a_finalizer(spec, needs):
    registry = kopf.get_default_registry()
    cause = _cause(spec)
    daemon_needs = registry._spawning.requires_finalizer(cause=cause)  # type: ignore[arg-type]
    assert daemon_needs is False, "the worker daemon must not put a finalizer on every AIService"
    assert registry._changing.requires_finalizer(cause=cause) is needs


# --- give up: pure ----------------------------------------------------------------------------------------


def test_give_up_rules():
    assert give_up_reason({}, _stamp(30), NOW) is None
    assert "annotation" in (give_up_reason({SKIP_CLEANUP_ANNOTATION: "true"}, _stamp(0), NOW) or "")
    assert "after 600s" in (give_up_reason({}, _stamp(601), NOW) or "")
    assert give_up_reason({}, _stamp(20), NOW, timeout_seconds=30) is None
    assert "after 30s" in (give_up_reason({}, _stamp(31), NOW, timeout_seconds=30) or "")
    # Credentials that cannot be read: give up at once, saying why.
    assert "Secret \"creds\" not found" in (give_up_reason({}, _stamp(0), NOW, credentials_problem='Secret "creds" not found') or "")
    # An unreadable timestamp must not keep the object forever.
    assert give_up_reason({}, "not a time", NOW) is not None


def test_left_behind_names_the_topics_and_where():
    assert left_behind("gave up", ["a", "a.dlq"], "kafka:9092") == "gave up; topics left behind on kafka:9092: a, a.dlq"
    assert left_behind("gave up", [], "kafka:9092") == "gave up"


# --- ownership: only topics aifleet created are deleted ------------------------------------------------------


def test_sync_records_what_it_created_and_not_what_existed():
    admin = Admin({"orders": TopicState(1, 1, {"retention.ms": "604800000"})})
    result = sync_topics(_spec(), admin, confirm_seconds=0)
    assert result.created == ["orders.dlq"]
    assert result.absent == ["orders.dlq"]
    assert owned_topics(None, result) == ["orders.dlq"]


def test_the_record_survives_a_sync_that_creates_nothing_and_forgets_a_topic_someone_deleted():
    assert owned_topics(["orders", "orders.dlq"], TopicsResult("Ready", "TopicsReady", "")) == ["orders", "orders.dlq"]
    assert owned_topics(["orders"], None) == ["orders"]
    gone = TopicsResult("Ready", "TopicsReady", "", absent=["orders"], created=[])
    assert owned_topics(["orders", "orders.dlq"], gone) == ["orders.dlq"]


def test_delete_removes_only_owned_topics():
    admin = Admin({"orders": TopicState(1, 1), "orders.dlq": TopicState(1, 1)})
    result = delete_topics(_spec(), admin, owned=["orders.dlq"])
    assert result.state == "Ready"
    assert admin.deleted == ["orders.dlq"] and "orders" in admin.topics
    assert any("kept topics orders: aifleet did not create them" in e for e in result.events)


def test_delete_with_nothing_owned_makes_no_call():
    result = delete_topics(_spec(), None, owned=[])
    assert (result.state, result.reason, result.topics) == ("Ready", "NotOwned", ["orders", "orders.dlq"])


# --- clean_up_topics: whatever fails, the give-up rules apply ---------------------------------------------------


class Kube:
    def __init__(self, secrets: dict[str, dict] | None = None, error: Exception | None = None) -> None:
        self.secrets = secrets or {}
        self.error = error

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        if self.error:
            raise self.error
        return self.secrets.get(name)


def _engines(kube: Kube, admin: Admin | None = None, policy: EndpointPolicy | None = None) -> Engines:
    engines = Engines(kube=kube, topics=TopicsEngine(policy=policy or EndpointPolicy()))  # type: ignore[arg-type]
    if admin is not None:
        engines.topics.admin = lambda ais, spec, creds: admin  # type: ignore[method-assign]
    return engines


def _body(kafka: dict, created: list[str] | None = None) -> dict:
    return {"apiVersion": "aifleet.dev/v1alpha1", "kind": "AIService",
            "metadata": {"name": "shop", "namespace": "n", "deletionTimestamp": _stamp(0)},
            "spec": {"inference": {"modelRepository": {"uri": "s3://m"}}, "kafka": kafka},
            "status": {"createdTopics": created if created is not None else ["orders", "orders.dlq"]}}


SASL = {"bootstrapServers": "kafka:9092", "deletionPolicy": "Delete", "topics": [{"name": "orders"}],
        "securityProtocol": "SASL_PLAINTEXT", "saslMechanism": "PLAIN", "credentialsSecret": "creds"}
PLAIN = {k: v for k, v in SASL.items() if k not in ("securityProtocol", "saslMechanism", "credentialsSecret")}


def _run(body: dict, engines: Engines, annotations: dict | None = None, seconds_ago: float = 0, timeout: float = 600):
    body["metadata"]["deletionTimestamp"] = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()
    events: list[tuple[str, str, str]] = []
    retry = clean_up_topics(body, annotations or {}, body["metadata"]["deletionTimestamp"], engines,
                            lambda *e: events.append(e), timeout)
    return retry, events


def test_credentials_secret_gone_gives_up_at_once_naming_the_topics():
    """The defect: building the client threw before the give-up rules were consulted, so kopf retried forever."""
    retry, events = _run(_body(SASL), _engines(Kube()))
    assert retry is None
    (warning,) = [e for e in events if e[0] == "Warning"]
    assert warning[1] == "TopicCleanupAbandoned"
    assert 'Secret "creds" not found' in warning[2] and "left behind on kafka:9092: orders, orders.dlq" in warning[2]


def test_credentials_secret_gone_but_the_last_client_still_deletes():
    admin = Admin({"orders": TopicState(1, 1), "orders.dlq": TopicState(1, 1)})
    engines = _engines(Kube())
    spec = KafkaSpec.model_validate(SASL)
    from aifleet.api import AIService

    ais = AIService.model_validate(_body(SASL))
    engines.topics.admins.get(("n", "shop"), "key", lambda: admin)  # the client the last sync used
    assert engines.topics.last_admin(ais) is admin
    retry, events = _run(_body(SASL), engines)
    assert retry is None and sorted(admin.deleted) == ["orders", "orders.dlq"]
    assert spec.credentials_secret == "creds" and not [e for e in events if e[0] == "Warning"]


def test_kafka_unreachable_retries_then_gives_up_after_the_timeout():
    admin = Admin(down=True)
    retry, events = _run(_body(PLAIN), _engines(Kube(), admin), seconds_ago=5, timeout=30)
    assert retry and "cannot delete topics yet" in retry and not events
    retry, events = _run(_body(PLAIN), _engines(Kube(), admin), seconds_ago=31, timeout=30)
    assert retry is None
    assert events[-1][:2] == ("Warning", "TopicCleanupAbandoned")
    assert "after 30s" in events[-1][2] and "orders, orders.dlq" in events[-1][2]


def test_any_exception_is_a_failed_attempt_not_a_stuck_object():
    broken = _engines(Kube(error=RuntimeError("API server unreachable")))
    retry, _ = _run(_body(SASL), broken, seconds_ago=5, timeout=30)
    assert retry and "API server unreachable" in retry
    retry, events = _run(_body(SASL), broken, seconds_ago=40, timeout=30)
    assert retry is None and events[-1][1] == "TopicCleanupAbandoned"


def test_skip_annotation_applies_even_when_the_client_cannot_be_built():
    broken = _engines(Kube(error=RuntimeError("boom")))
    retry, events = _run(_body(SASL), broken, annotations={SKIP_CLEANUP_ANNOTATION: "true"})
    assert retry is None and "annotation" in events[-1][2]


def test_only_created_topics_are_deleted_at_deletion():
    admin = Admin({"orders": TopicState(1, 1), "orders.dlq": TopicState(1, 1)})
    retry, events = _run(_body(PLAIN, created=["orders.dlq"]), _engines(Kube(), admin))
    assert retry is None and admin.deleted == ["orders.dlq"] and "orders" in admin.topics
    assert ("Normal", "TopicsDeleted", "kept topics orders: aifleet did not create them") in events


def test_refused_endpoint_gives_up_without_connecting():
    admin = Admin({"orders": TopicState(1, 1)})
    engines = _engines(Kube(), admin, EndpointPolicy.parse("*.kafka.svc"))
    retry, events = _run(_body(PLAIN), engines)
    assert retry is None and admin.deleted == []
    assert "spec.kafka.bootstrapServers" in events[-1][2] and "kafka:9092" in events[-1][2]


def test_a_topic_someone_else_creates_between_look_and_create_is_not_recorded_as_ours():
    from aifleet.clients.kafka import ALREADY_EXISTS

    class Raced(Admin):
        def create(self, topics):
            out = super().create([t for t in topics if t[0] != "orders"])
            self.topics["orders"] = TopicState(1, 1, {"retention.ms": "604800000"})  # theirs, made meanwhile
            return {**out, "orders": KafkaAdminError(ALREADY_EXISTS, "creating topic orders: already exists")}

    result = sync_topics(_spec(), Raced(), confirm_seconds=0)
    assert result.state == "Ready", result.message
    assert result.created == ["orders.dlq"] and owned_topics(None, result) == ["orders.dlq"]


def test_a_sync_in_flight_is_waited_for_and_no_later_sync_recreates_deleted_topics():
    """The race: a pass that began before the deletion synced the topics after the delete handler removed them, and
    created them again. The deletion now waits for the sync in flight, and syncs after it leave the topics alone."""
    import threading

    from aifleet.api import AIService

    class SlowAdmin(Admin):
        def __init__(self) -> None:
            super().__init__()
            self.describing, self.go_on = threading.Event(), threading.Event()

        def describe(self, names):
            self.describing.set()
            assert self.go_on.wait(10)
            return super().describe(names)

    admin = SlowAdmin()
    engines = _engines(Kube(), admin)
    body = _body(PLAIN, created=[])
    ais = AIService.model_validate({**body, "metadata": {"name": "shop", "namespace": "n"}})
    sync = threading.Thread(target=engines.topics.sync, args=(ais, None, lambda *e: None))
    sync.start()
    assert admin.describing.wait(10)  # the pass is talking to Kafka
    cleanup = threading.Thread(target=_run, args=(_body(PLAIN), engines))
    cleanup.start()
    cleanup.join(0.3)
    assert cleanup.is_alive(), "the deletion waits for the sync in flight"
    admin.go_on.set()
    sync.join(10)
    cleanup.join(10)
    assert admin.topics == {} and sorted(admin.deleted) == ["orders", "orders.dlq"]
    # A pass with a snapshot from before the deletion creates nothing any more.
    engines.topics.sync(ais, None, lambda *e: None, now=10**9)
    assert admin.topics == {}


def test_a_pass_that_reaches_its_sync_after_the_aiservice_is_gone_creates_nothing():
    """A pass begun before the deletion may reach its topic sync only after the AIService, and the operator's memory
    of it, are gone (its child applies were slow, refused in the terminating namespace): still no topic is made
    again. A new AIService of the same name (another uid) syncs as usual."""
    from aifleet.api import AIService

    admin = Admin()
    engines = _engines(Kube(), admin)
    old = AIService.model_validate({**_body(PLAIN, created=[]), "metadata": {"name": "shop", "namespace": "n",
                                                                              "uid": "uid-1"}})
    engines.topics.sync(old, None, lambda *e: None)
    assert sorted(admin.topics) == ["orders", "orders.dlq"]
    body = _body(PLAIN)
    body["metadata"]["uid"] = "uid-1"
    _run(body, engines)
    engines.topics.forget("n", "shop")  # the DELETED event
    assert admin.topics == {}
    engines.topics.sync(old, None, lambda *e: None, now=10**9)
    assert admin.topics == {}, "the stale pass made the topics again"
    new = AIService.model_validate({**_body(PLAIN, created=[]), "metadata": {"name": "shop", "namespace": "n",
                                                                              "uid": "uid-2"}})
    engines.topics.sync(new, None, lambda *e: None, now=10**9)
    assert sorted(admin.topics) == ["orders", "orders.dlq"]
