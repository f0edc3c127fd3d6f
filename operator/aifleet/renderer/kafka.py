"""Kafka topics as a component: no children in the cluster, its state is the last result of the topic sync."""

from __future__ import annotations

from ..api import AIService
from .component import Component, ComponentState, Observed, Rendering


class KafkaTopics(Component):
    name = "kafka"
    status_key = "topics"

    def wanted(self, ais: AIService) -> bool:
        return ais.spec.kafka is not None and ais.spec.kafka.enabled

    def secret_names(self, ais: AIService) -> list[str]:
        kafka = ais.spec.kafka
        return [kafka.credentials_secret] if kafka is not None and kafka.enabled and kafka.credentials_secret else []

    def state(self, ais: AIService, observed: Observed, rendering: Rendering) -> ComponentState:
        topics = observed.topics
        if topics is None:
            return ComponentState("Pending", "not synced with Kafka yet", False)
        return ComponentState(topics.state, f"{topics.reason}: {topics.message}", topics.state == "Ready")

    def endpoints(self, ais: AIService, observed: Observed) -> dict[str, list[str]]:
        topics = observed.topics
        return {"topics": sorted(topics.topics)} if topics is not None and topics.topics else {}
