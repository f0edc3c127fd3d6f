"""What must change on the cluster for its topics to match `spec.kafka`. Pure: no I/O.

Rules, each for a reason:
- Every topic gets a dead-letter topic `name + suffix` (unless disabled) with the same partitions and
  replication, the topic's `configs` except `cleanup.policy` (a compacted DLQ would drop failed events that
  share a key), and its own `retention.ms`.
- Partitions only grow: Kafka cannot remove partitions, and shrinking would re-map every key anyway.
- The replication factor is never changed: that is a partition reassignment, an operation for a person.
- A topic whose partitions or replication disagree in a way we refuse gets no change at all, configs
  included: most often the name collides with a topic someone else owns, and we must not retune theirs.
- Only the config keys we manage are compared (`retention.ms` and the keys in `configs`). A key removed
  from the spec keeps its value on the cluster: we cannot know whether we or someone else set it.
- A dead-letter topic that has more partitions than its topic is left alone: that is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api.data import KafkaSpec, KafkaTopic
from ..clients.kafka import TopicState

UNMANAGED_ON_DLQ = frozenset({"cleanup.policy"})


@dataclass(frozen=True)
class DesiredTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    field: str  # the spec path of its topic, for messages
    dead_letter_of: str | None = None


@dataclass(frozen=True)
class PartitionIncrease:
    topic: str
    current: int
    wanted: int


@dataclass(frozen=True)
class ConfigChange:
    topic: str
    changes: dict[str, str]  # key -> new value
    previous: dict[str, str | None]  # key -> value before (None: unset)


@dataclass
class TopicPlan:
    creations: list[DesiredTopic] = field(default_factory=list)
    partition_increases: list[PartitionIncrease] = field(default_factory=list)
    config_changes: list[ConfigChange] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.creations or self.partition_increases or self.config_changes)


def desired_topics(spec: KafkaSpec) -> list[DesiredTopic]:
    """Every topic the spec asks for, each followed by its dead-letter topic."""
    out: list[DesiredTopic] = []
    for topic in spec.topics:
        path = f"spec.kafka.topics[{topic.name}]"
        out.append(DesiredTopic(topic.name, topic.partitions, topic.replication_factor, topic_configs(topic), path))
        if topic.dead_letter.enabled:
            out.append(
                DesiredTopic(
                    topic.dead_letter_name,
                    topic.partitions,
                    topic.replication_factor,
                    dead_letter_configs(topic),
                    path,
                    dead_letter_of=topic.name,
                )
            )
    return out


def topic_configs(topic: KafkaTopic) -> dict[str, str]:
    return {**dict(sorted(topic.configs.items())), "retention.ms": str(topic.retention_ms)}


def dead_letter_configs(topic: KafkaTopic) -> dict[str, str]:
    inherited = {k: v for k, v in sorted(topic.configs.items()) if k not in UNMANAGED_ON_DLQ}
    return {**inherited, "retention.ms": str(topic.dead_letter.retention_ms)}


def plan_topics(spec: KafkaSpec, existing: dict[str, TopicState]) -> TopicPlan:
    """Creations, partition increases, config changes and refusals that take `existing` to `spec`.

    `existing` maps the names that exist on the cluster to their state; a missing name is created.
    """
    plan = TopicPlan()
    for want in desired_topics(spec):
        have = existing.get(want.name)
        if have is None:
            plan.creations.append(want)
            continue
        refusals = _refusals(want, have)
        if refusals:
            plan.refusals += refusals
            continue
        if want.partitions > have.partitions:
            plan.partition_increases.append(PartitionIncrease(want.name, have.partitions, want.partitions))
        changes = {k: v for k, v in want.configs.items() if have.configs.get(k) != v}
        if changes:
            plan.config_changes.append(ConfigChange(want.name, changes, {k: have.configs.get(k) for k in changes}))
    return plan


def _refusals(want: DesiredTopic, have: TopicState) -> list[str]:
    out = []
    if want.replication_factor != have.replication_factor:
        out.append(
            f"{want.field}.replicationFactor: {want.replication_factor} differs from the {have.replication_factor}"
            f" replicas {_which(want)} has; the operator does not reassign replicas: nothing was changed"
        )
    if want.partitions < have.partitions and want.dead_letter_of is None:
        out.append(
            f"{want.field}.partitions: {want.partitions} is below the {have.partitions} partitions the topic has;"
            " Kafka cannot remove partitions: nothing was changed"
        )
    return out


def _which(want: DesiredTopic) -> str:
    return f"dead-letter topic {want.name}" if want.dead_letter_of else f"topic {want.name}"
