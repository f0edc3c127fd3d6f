"""Carry out the topic plan against a cluster, and report in words what happened.

`sync_topics` is level-triggered: it describes the cluster, plans, applies, and describes again to
confirm. It never raises for Kafka's sake: an unreachable cluster is a `Degraded` result with a reason.

Ownership: a topic is aifleet's only if aifleet created it. `sync_topics` reports the topics it created and the
listed ones it found absent; `owned_topics` folds them into the record the reconciler keeps in
`status.createdTopics` (the status survives an operator restart, and only the status subresource, which users
are not normally granted, can change it). A listed topic that already existed is synced but never deleted.

Deletion (the reconciler's delete handler; the only reason an AIService carries a finalizer):
- The handler exists for an AIService only while `spec.kafka.deletionPolicy` is `Delete` (and Kafka is
  enabled). With `Retain` there is nothing outside the cluster to clean up, so nothing blocks the deletion and
  the garbage collector removes the children.
- On deletion it calls `delete_topics` for the listed topics aifleet created; when its state is not `Ready`, it
  retries with backoff.
- It never blocks forever: whatever failed (Kafka unreachable, the credentials Secret gone, a client that could
  not even be built), `give_up_reason` is consulted, and the deletion goes on, with a Warning naming the topics
  left behind, once the annotation `aifleet.dev/skip-topic-cleanup: "true"` is set, the credentials cannot be
  read (in a namespace being deleted they never come back), or `CLEANUP_TIMEOUT_SECONDS` have passed since
  `metadata.deletionTimestamp`. A Kafka cluster that is gone for good then costs ten minutes, not a stuck
  namespace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from ..api.data import KafkaSpec
from ..api.secret_data import decode_key
from ..api.timestamps import parse_timestamp
from ..clients.kafka import ALREADY_EXISTS, KafkaAdminError, TopicState
from .plan import DesiredTopic, TopicPlan, plan_topics

SKIP_CLEANUP_ANNOTATION = "aifleet.dev/skip-topic-cleanup"
CLEANUP_TIMEOUT_SECONDS = 600
CREDENTIALS_FIELD = "spec.kafka.credentialsSecret"

State = Literal["Ready", "Progressing", "Degraded"]


class TopicAdmin(Protocol):
    """What `sync_topics` needs of a client; `aifleet.clients.kafka.KafkaAdmin` is the real one."""

    bootstrap_servers: str

    def describe(self, names: list[str]) -> dict[str, TopicState]: ...
    def create(self, topics: list[tuple[str, int, int, dict[str, str]]]) -> dict[str, KafkaAdminError]: ...
    def add_partitions(self, totals: dict[str, int]) -> dict[str, KafkaAdminError]: ...
    def alter_configs(self, changes: dict[str, dict[str, str]]) -> dict[str, KafkaAdminError]: ...
    def delete(self, names: list[str]) -> dict[str, KafkaAdminError]: ...


@dataclass
class TopicsResult:
    """For the `KafkaReady` condition (`state`, `reason`, `message`) and events (Normal, then Warning)."""

    state: State
    reason: str
    message: str
    events: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)  # managed topics that exist, for status.endpoints.topics
    created: list[str] = field(default_factory=list)  # topics this sync created: aifleet's from now on
    absent: list[str] = field(default_factory=list)  # listed topics the cluster did not have before this sync


def sync_topics(spec: KafkaSpec, admin: TopicAdmin, *, confirm_seconds: float = 2.0) -> TopicsResult:
    """Make the cluster's topics match `spec`: create, grow, reconfigure; refuse what Kafka cannot do."""
    names = spec.all_topic_names()
    try:
        existing = admin.describe(names)
    except KafkaAdminError as exc:
        return _unreachable(exc)
    plan = plan_topics(spec, existing)
    absent = [name for name in names if name not in existing]
    events: list[str] = []
    warnings = list(plan.refusals)
    try:
        failures, created = _apply(plan, admin, events)
    except KafkaAdminError as exc:
        result = _unreachable(exc)
        result.events, result.warnings = events, warnings
        return result
    warnings += [str(error) for error in failures.values()]
    result = _synced(spec, admin, names, existing, plan, failures, events, warnings, confirm_seconds)
    result.created, result.absent = created, absent
    return result


def _synced(
    spec: KafkaSpec, admin: TopicAdmin, names: list[str], existing: dict[str, TopicState], plan: TopicPlan,
    failures: dict[str, KafkaAdminError], events: list[str], warnings: list[str], confirm_seconds: float,
) -> TopicsResult:
    if not plan.empty and not failures:
        # Confirm: the controller has acknowledged, but say Ready only once the brokers show it (configs
        # take ~0.1 s to propagate). Bounded: past `confirm_seconds` the result is Progressing, and the
        # next reconcile looks again.
        deadline = time.monotonic() + confirm_seconds
        while True:
            try:
                existing = admin.describe(names)
            except KafkaAdminError as exc:
                result = _unreachable(exc)
                result.events, result.warnings = events, warnings
                return result
            pending = plan_topics(spec, existing)
            if pending.empty or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    else:
        existing = {**existing, **{t.name: _state(t) for t in plan.creations if t.name not in failures}}
        pending = TopicPlan()

    present = [name for name in names if name in existing]
    if failures:
        first = next(iter(failures.values()))
        return TopicsResult("Degraded", first.reason, "; ".join(str(e) for e in failures.values()), events, warnings, present)
    if plan.refusals:
        return TopicsResult("Degraded", "ChangeRefused", "; ".join(plan.refusals), events, warnings, present)
    if not pending.empty:
        waiting = [t.name for t in pending.creations] + [p.topic for p in pending.partition_increases]
        waiting += [c.topic for c in pending.config_changes]
        return TopicsResult(
            "Progressing", "Applying", f"waiting for the cluster to show {', '.join(dict.fromkeys(waiting))}",
            events, warnings, present,
        )
    return TopicsResult("Ready", "TopicsReady", f"{len(present)} topics in place on {admin.bootstrap_servers}",
                        events, warnings, present)


def _apply(plan: TopicPlan, admin: TopicAdmin, events: list[str]) -> tuple[dict[str, KafkaAdminError], list[str]]:
    """(failures per topic, the topics this call created)."""
    failures: dict[str, KafkaAdminError] = {}
    made: list[str] = []
    if plan.creations:
        created = admin.create([(t.name, t.partitions, t.replication_factor, t.configs) for t in plan.creations])
        # Made by someone else since we looked: not an error, but not ours either (see `owned_topics`).
        raced = {name for name, error in created.items() if error.reason == ALREADY_EXISTS}
        failures.update({name: error for name, error in created.items() if name not in raced})
        made = [t.name for t in plan.creations if t.name not in created]
        events += _creation_events([t for t in plan.creations if t.name not in created])
    if plan.partition_increases:
        grown = admin.add_partitions({p.topic: p.wanted for p in plan.partition_increases})
        failures.update(grown)
        events += [
            f"topic {p.topic}: {p.current} -> {p.wanted} partitions" for p in plan.partition_increases if p.topic not in grown
        ]
    if plan.config_changes:
        altered = admin.alter_configs({c.topic: c.changes for c in plan.config_changes})
        failures.update(altered)
        for change in plan.config_changes:
            if change.topic in altered:
                continue
            what = ", ".join(f"{k} {change.previous[k] or '(default)'} -> {v}" for k, v in change.changes.items())
            events.append(f"topic {change.topic}: {what}")
    return failures, made


def _creation_events(created: list[DesiredTopic]) -> list[str]:
    """`created topic orders (24 partitions) and orders.dlq`: a topic and its DLQ in one line."""
    names = {t.name for t in created}
    out = []
    for topic in created:
        if topic.dead_letter_of in names:
            continue  # told with its topic
        dlq = next((t.name for t in created if t.dead_letter_of == topic.name), None)
        line = f"created topic {topic.name} ({topic.partitions} partitions, replication {topic.replication_factor})"
        out.append(f"{line} and {dlq}" if dlq else line)
    return out


def _state(topic: DesiredTopic) -> TopicState:
    return TopicState(topic.partitions, topic.replication_factor, dict(topic.configs))


def _unreachable(exc: KafkaAdminError) -> TopicsResult:
    return TopicsResult("Degraded", exc.reason, str(exc))


def owned_topics(recorded: list[str] | None, result: TopicsResult | None) -> list[str]:
    """The record of the topics aifleet created, after a sync: a listed topic found absent is no longer ours
    (someone deleted it; whoever makes it next owns it), one the sync created is."""
    owned = set(recorded or [])
    if result is not None:
        owned = (owned - set(result.absent)) | set(result.created)
    return sorted(owned)


def deletable_topics(spec: KafkaSpec, owned: list[str]) -> tuple[list[str], list[str]]:
    """(listed topics aifleet created, listed topics it did not create): only the first may be deleted."""
    names = spec.all_topic_names()
    return [n for n in names if n in owned], [n for n in names if n not in owned]


def delete_topics(spec: KafkaSpec, admin: TopicAdmin | None, owned: list[str] | None = None) -> TopicsResult:
    """Honour `deletionPolicy`: Retain keeps every topic (no call is made; `admin` may be None); Delete removes
    the listed topics and dead-letter topics that aifleet created (`owned`), and keeps the others. `Ready` means
    done; anything else means retry (see module doc). `topics` of a failed result are the ones left behind."""
    names = spec.all_topic_names()
    if spec.deletion_policy == "Retain" or not names:
        message = f"deletionPolicy Retain: kept topics {', '.join(names)}" if names else "no topics to delete"
        return TopicsResult("Ready", "Retained", message, [message] if names else [], [], names)
    names, foreign = deletable_topics(spec, owned or [])
    kept = [f"kept topics {', '.join(foreign)}: aifleet did not create them"] if foreign else []
    if not names:
        return TopicsResult("Ready", "NotOwned", kept[0], kept, [], foreign)
    if admin is None:
        raise ValueError("deletionPolicy Delete needs an admin client")
    try:
        failures = admin.delete(names)
    except KafkaAdminError as exc:
        result = _unreachable(exc)
        result.topics = names
        return result
    deleted = [name for name in names if name not in failures]
    events = ([f"deleted topics {', '.join(deleted)}"] if deleted else []) + kept
    if failures:
        first = next(iter(failures.values()))
        return TopicsResult("Degraded", first.reason, "; ".join(str(e) for e in failures.values()),
                            events, [str(e) for e in failures.values()], list(failures))
    return TopicsResult("Ready", "Deleted", f"deleted topics {', '.join(names)}", events, [], [])


def give_up_reason(
    annotations: dict[str, str], deletion_timestamp: str | None, now: datetime,
    timeout_seconds: float = CLEANUP_TIMEOUT_SECONDS, credentials_problem: str | None = None,
) -> str | None:
    """Why the deletion should stop waiting for Kafka (message for a Warning event), or None to keep trying."""
    if annotations.get(SKIP_CLEANUP_ANNOTATION, "").lower() == "true":
        return f"topic cleanup skipped: annotation {SKIP_CLEANUP_ANNOTATION} is true"
    if credentials_problem:
        return f"gave up deleting topics: {credentials_problem}"
    if not deletion_timestamp:
        return None
    try:
        waited = now.timestamp() - parse_timestamp(deletion_timestamp)
    except ValueError:
        waited = timeout_seconds  # an unreadable timestamp must not keep the object forever
    if waited >= timeout_seconds:
        return f"gave up deleting topics after {timeout_seconds:g}s without reaching Kafka"
    return None


def left_behind(reason: str, topics: list[str], bootstrap_servers: str) -> str:
    """The Warning when a deletion goes on without its topics: why, and which topics remain where."""
    if not topics:
        return reason
    return f"{reason}; topics left behind on {bootstrap_servers}: {', '.join(topics)}"


def kafka_credentials_problem(spec: KafkaSpec, secret: dict[str, Any] | None) -> str | None:
    """Why `spec.kafka.credentialsSecret` cannot be used; None when it is not needed or is fine."""
    if spec.credentials_secret is None:
        if spec.sasl_mechanism:
            return f"{CREDENTIALS_FIELD}: required when saslMechanism is set"
        return None
    if secret is None:
        return f'{CREDENTIALS_FIELD}: Secret "{spec.credentials_secret}" not found'
    if spec.sasl_mechanism:
        for key in ("username", "password"):
            if not decode_key(secret, key):
                return f'{CREDENTIALS_FIELD}: Secret "{spec.credentials_secret}" has no key "{key}"'
    return None


def kafka_credentials(secret: dict[str, Any] | None) -> dict[str, str]:
    """The decoded `username`, `password` and `ca.crt` of the credentials Secret, for `KafkaAdmin.from_spec`."""
    out = {}
    for key in ("username", "password", "ca.crt"):
        value = decode_key(secret, key)
        if value:
            out[key] = value
    return out
