"""Cached Kafka admin clients and Prometheus sources: bounded, and dropped with their AIService or its credentials."""

from __future__ import annotations

import base64

import pytest

from aifleet.api import AIService
from aifleet.clients.cache import SharedClients
from aifleet.clients.endpoints import EndpointPolicy
from aifleet.reconciler.scaling import Autoscalers
from aifleet.reconciler.topic_schedule import TopicsEngine


def test_shared_by_users_of_the_same_key_and_dropped_with_the_last():
    cache: SharedClients[str, object] = SharedClients(max_size=10)
    first = cache.get(("n", "a"), "k", object)
    assert cache.get(("n", "b"), "k", object) is first
    cache.release(("n", "a"))
    assert "k" in cache, "b still uses it"
    cache.release(("n", "b"))
    assert "k" not in cache and len(cache) == 0


def test_a_changed_key_drops_the_old_client():
    cache: SharedClients[str, object] = SharedClients(max_size=10)
    cache.get(("n", "a"), "old-credentials", object)
    cache.get(("n", "a"), "new-credentials", object)
    assert "old-credentials" not in cache and len(cache) == 1


def test_bounded_least_recently_used_first():
    cache: SharedClients[int, object] = SharedClients(max_size=3)
    for i in range(5):
        cache.get(("n", f"s{i}"), i, object)
    assert len(cache) == 3 and 0 not in cache and 1 not in cache
    cache.get(("n", "s2"), 2, object)  # used: now the most recent
    cache.get(("n", "s5"), 5, object)
    assert 2 in cache and 3 not in cache
    with pytest.raises(ValueError):
        SharedClients(max_size=0)


def test_held_is_the_last_client_of_a_user():
    cache: SharedClients[str, object] = SharedClients(max_size=10)
    client = cache.get(("n", "a"), "k", object)
    assert cache.held(("n", "a")) is client and cache.held(("n", "other")) is None


def _ais(name: str = "a", token_secret: str | None = None, address: str = "http://prometheus.monitoring.svc:9090") -> AIService:
    metrics: dict = {"address": address}
    if token_secret:
        metrics["authSecretRef"] = {"name": token_secret, "key": "token"}
    return AIService.model_validate({
        "apiVersion": "aifleet.dev/v1alpha1", "kind": "AIService", "metadata": {"name": name, "namespace": "n"},
        "spec": {"inference": {"modelRepository": {"uri": "s3://m"}}, "autoscaling": {"metrics": metrics}},
    })


class Kube:
    def __init__(self) -> None:
        self.token = "t1"

    def get(self, kind: str, namespace: str, name: str) -> dict:
        return {"data": {"token": base64.b64encode(self.token.encode()).decode()}}


def _factory(address: str, **kwargs):
    return {"address": address, **kwargs}


def test_metric_sources_follow_the_token_and_the_aiservice():
    autoscalers = Autoscalers(source_factory=_factory, policy=EndpointPolicy())  # type: ignore[arg-type]
    kube = Kube()
    first = autoscalers.source(_ais(token_secret="tok"), kube)  # type: ignore[arg-type]
    assert autoscalers.source(_ais(token_secret="tok"), kube) is first  # type: ignore[arg-type]
    kube.token = "t2"  # the Secret was rotated
    second = autoscalers.source(_ais(token_secret="tok"), kube)  # type: ignore[arg-type]
    assert second is not first and len(autoscalers.sources) == 1, "the source with the old token is gone"
    autoscalers.forget("n", "a")
    assert len(autoscalers.sources) == 0


def test_metric_sources_are_bounded():
    autoscalers = Autoscalers(source_factory=_factory, policy=EndpointPolicy(), max_sources=2)  # type: ignore[arg-type]
    for i in range(4):
        autoscalers.source(_ais(f"s{i}", address=f"http://prom{i}.monitoring.svc:9090"), Kube())  # type: ignore[arg-type]
    assert len(autoscalers.sources) == 2


def test_kafka_admins_follow_the_credentials_and_the_aiservice():
    engine = TopicsEngine(policy=EndpointPolicy(), max_clients=4)
    ais = AIService.model_validate({
        "apiVersion": "aifleet.dev/v1alpha1", "kind": "AIService", "metadata": {"name": "a", "namespace": "n"},
        "spec": {"inference": {"modelRepository": {"uri": "s3://m"}},
                 "kafka": {"bootstrapServers": "127.0.0.1:1", "topics": [{"name": "t"}]}},
    })
    assert ais.spec.kafka is not None
    old = engine.admin(ais, ais.spec.kafka, {"username": "u", "password": "p1"})
    new = engine.admin(ais, ais.spec.kafka, {"username": "u", "password": "p2"})
    assert new is not old and len(engine.admins) == 1
    assert engine.last_admin(ais) is new
    engine.forget("n", "a")
    assert len(engine.admins) == 0 and engine.last_admin(ais) is None


def test_a_deletion_in_progress_keeps_the_kafka_client_until_the_object_is_gone():
    engine = TopicsEngine(policy=EndpointPolicy())
    ais = AIService.model_validate({
        "apiVersion": "aifleet.dev/v1alpha1", "kind": "AIService", "metadata": {"name": "a", "namespace": "n"},
        "spec": {"inference": {"modelRepository": {"uri": "s3://m"}},
                 "kafka": {"bootstrapServers": "127.0.0.1:1", "topics": [{"name": "t"}]}},
    })
    assert ais.spec.kafka is not None
    client = engine.admin(ais, ais.spec.kafka, {})
    engine.forget("n", "a", keep_client=True)  # the worker stops as the deletion begins
    assert engine.last_admin(ais) is client
    engine.forget("n", "a")  # the object is gone
    assert engine.last_admin(ais) is None
