"""One NetworkPolicy per component: client ports from the AIService's namespace and `clientNamespaces`, Triton's
metrics port from `metricsNamespaces` (every namespace when empty), nothing else; none when turned off."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from aifleet.api import AIService
from aifleet.api.children import (
    PGBOUNCER_LISTEN_PORT,
    REDIS_PORT,
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
)
from aifleet.renderer import render
from conftest import example_documents

K8S_SCHEMA_VERSION = "1.35.0"


@pytest.fixture
def full_stack() -> dict:
    """The large example: Triton, PgBouncer, Redis and Kafka."""
    return next(doc for name, doc in example_documents() if doc["metadata"]["name"] == "chat")


def _full(full_stack: dict, **policy) -> AIService:
    doc = copy.deepcopy(full_stack)
    doc["metadata"]["uid"] = "0b7c4c4e-1111-2222-3333-444455556666"
    if policy:
        doc["spec"]["networkPolicy"] = policy
    return AIService.model_validate(doc)


def _policies(ais: AIService) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in render(ais) if m["kind"] == "NetworkPolicy"}


def _ports(rule: dict) -> list[int]:
    return [p["port"] for p in rule["ports"]]


def test_each_component_admits_only_its_clients_by_default(full_stack):
    ais = _full(full_stack)
    name = ais.metadata.name
    policies = _policies(ais)
    assert sorted(policies) == sorted(f"{name}-{c}" for c in ("triton", "pgbouncer", "redis"))
    for component, policy in ((c, policies[f"{name}-{c}"]) for c in ("triton", "pgbouncer", "redis")):
        kubernetes_validate.validate(policy, K8S_SCHEMA_VERSION, strict=True)
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress"]  # egress (S3, the database) stays open
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
        assert spec["ingress"][0]["from"] == [{"podSelector": {}}]  # the AIService's own namespace only
    triton = policies[f"{name}-triton"]["spec"]["ingress"]
    assert _ports(triton[0]) == [TRITON_HTTP_PORT, TRITON_GRPC_PORT]
    assert _ports(triton[1]) == [TRITON_METRICS_PORT] and triton[1]["from"] == [{"namespaceSelector": {}}]
    assert [_ports(r) for r in policies[f"{name}-pgbouncer"]["spec"]["ingress"]] == [[PGBOUNCER_LISTEN_PORT]]
    assert [_ports(r) for r in policies[f"{name}-redis"]["spec"]["ingress"]] == [[REDIS_PORT]]


def test_client_and_prometheus_namespaces_are_named(full_stack):
    ais = _full(full_stack, clientNamespaces=["web", "batch"], metricsNamespaces=["monitoring"])
    triton = _policies(ais)[f"{ais.metadata.name}-triton"]["spec"]["ingress"]
    by_name = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n}}} for n in ("batch", "web")]
    assert triton[0]["from"] == [{"podSelector": {}}, *by_name]
    assert triton[1]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    redis = _policies(ais)[f"{ais.metadata.name}-redis"]["spec"]["ingress"]
    assert redis[0]["from"] == [{"podSelector": {}}, *by_name]


def test_opt_out_renders_none(full_stack):
    assert _policies(_full(full_stack, enabled=False)) == {}
