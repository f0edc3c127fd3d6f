"""A table of invalid AIService edits, shared by the offline tests and the e2e suite."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]


@dataclass(frozen=True)
class BadInput:
    id: str
    apply: Callable[[Doc], Doc]
    offline_field: str  # what pydantic's message names
    server_field: str  # what the API server's message names
    transition_only: bool = False  # needs an existing object (immutability, no decrease)


def _set(path: str, value: Any) -> Callable[[Doc], Doc]:
    def edit(doc: Doc) -> Doc:
        node = doc
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        return doc

    return edit


def _delete(path: str) -> Callable[[Doc], Doc]:
    def edit(doc: Doc) -> Doc:
        node = doc
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
        return doc

    return edit


def _both(*edits: Callable[[Doc], Doc]) -> Callable[[Doc], Doc]:
    def edit(doc: Doc) -> Doc:
        for one in edits:
            doc = one(doc)
        return doc

    return edit


KAFKA = {"bootstrapServers": "kafka:9092", "topics": [{"name": "events", "partitions": 6, "replicationFactor": 1}]}

BAD_INPUTS = [
    BadInput("wrong-type-max", _set("spec.autoscaling.maxReplicas", "ten"), "spec.autoscaling.maxReplicas", "spec.autoscaling.maxReplicas"),
    BadInput(
        "min-over-max",
        _both(_set("spec.autoscaling.minReplicas", 5), _set("spec.autoscaling.maxReplicas", 2)),
        "minReplicas must be <= maxReplicas",
        "minReplicas must be <= maxReplicas",
    ),
    BadInput("zero-target", _set("spec.autoscaling.targetRPSPerPod", 0), "spec.autoscaling.targetRPSPerPod", "spec.autoscaling.targetRPSPerPod"),
    BadInput("negative-target", _set("spec.autoscaling.targetRPSPerPod", -5), "spec.autoscaling.targetRPSPerPod", "spec.autoscaling.targetRPSPerPod"),
    BadInput("zero-min", _set("spec.autoscaling.minReplicas", 0), "spec.autoscaling.minReplicas", "spec.autoscaling.minReplicas"),
    BadInput("tolerance-over-limit", _set("spec.autoscaling.scaleUp.tolerance", 1.5),
             "spec.autoscaling.scaleUp.tolerance", "spec.autoscaling.scaleUp.tolerance"),
    BadInput("negative-warmup", _set("spec.autoscaling.metrics.warmupSeconds", -1),
             "spec.autoscaling.metrics.warmupSeconds", "spec.autoscaling.metrics.warmupSeconds"),
    BadInput("unknown-engine", _set("spec.autoscaling.engine", "keda"), "spec.autoscaling.engine", "spec.autoscaling.engine"),
    BadInput("unknown-field", _set("spec.inference.gpuCount", 2), "spec.inference.gpuCount", "gpuCount"),
    BadInput("missing-required", _delete("spec.inference.modelRepository"), "spec.inference.modelRepository", "spec.inference.modelRepository"),
    BadInput(
        "two-model-sources",
        _set("spec.inference.modelRepository.persistentVolumeClaim", "models"),
        "set exactly one of uri or persistentVolumeClaim",
        "set exactly one of uri or persistentVolumeClaim",
    ),
    BadInput("bad-quantity", _set("spec.inference.shmSize", "lots"), "spec.inference.shmSize", "spec.inference.shmSize"),
    BadInput("negative-gpus", _set("spec.inference.gpusPerPod", -1), "spec.inference.gpusPerPod", "spec.inference.gpusPerPod"),
    BadInput(
        "partitions-below-one",
        _set("spec.kafka", {**KAFKA, "topics": [{"name": "events", "partitions": 0}]}),
        "spec.kafka.topics[0].partitions",
        "spec.kafka.topics[0].partitions",
    ),
    BadInput(
        "unknown-pool-mode",
        _set("spec.pgbouncer", {"databaseHost": "db", "databaseName": "app", "user": "app",
                                "passwordSecretRef": {"name": "db", "key": "password"}, "poolMode": "batch"}),
        "spec.pgbouncer.poolMode",
        "spec.pgbouncer.poolMode",
    ),
    BadInput(
        "unparsable-maxmemory",
        _set("spec.redis", {"maxMemory": "a lot"}),
        "spec.redis.maxMemory",
        "spec.redis.maxMemory",
    ),
    BadInput("name-too-long", _set("metadata.name", "x" * 60), "metadata.name", "metadata.name"),
]

# Transition rules: valid on create, refused as an update of an existing object.
BAD_UPDATES = [
    (
        "partition-decrease",
        _set("spec.kafka", KAFKA),
        _set("spec.kafka", {**KAFKA, "topics": [{"name": "events", "partitions": 3, "replicationFactor": 1}]}),
        "partitions cannot decrease",
    ),
    (
        "replication-factor-change",
        _set("spec.kafka", KAFKA),
        _set("spec.kafka", {**KAFKA, "topics": [{"name": "events", "partitions": 6, "replicationFactor": 3}]}),
        "replicationFactor is immutable",
    ),
    (
        "redis-persistence-off",
        _set("spec.redis", {"persistence": {"enabled": True}}),
        _set("spec.redis", {"persistence": {"enabled": False}}),
        "cannot be turned off once on",
    ),
]
