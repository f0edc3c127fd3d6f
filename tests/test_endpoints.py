"""The endpoint allow-list: the operator sends a namespace's credentials only where the chart allows."""

from __future__ import annotations

import base64

import pytest

from aifleet.api import AIService
from aifleet.clients.endpoints import ENV, EndpointPolicy, EndpointRefusedError
from aifleet.reconciler.scaling import Autoscalers
from aifleet.reconciler.topic_schedule import ENDPOINT_NOT_ALLOWED, TopicsEngine

POLICY = EndpointPolicy.parse("*.monitoring.svc, prometheus.example.com:443, kafka-*.kafka.svc:9092, 10.0.3.*")


@pytest.mark.parametrize("address", [
    "http://prometheus-operated.monitoring.svc:9090",
    "https://user:pw@Prometheus.Example.COM/api",  # default https port, any case
    "http://10.0.3.7:9090",
])
def test_allowed_metrics_addresses(address):
    assert POLICY.metrics_refusal(address) is None


@pytest.mark.parametrize("address", [
    "http://attacker.example.net:9090",
    "http://prometheus.example.com:80",  # pattern has a port: only 443
    "http://monitoring.svc.attacker.net",
    "http://10.0.4.1:9090",
])
def test_refused_metrics_addresses_name_field_and_endpoint(address):
    message = POLICY.metrics_refusal(address)
    assert message is not None
    assert message.startswith("spec.autoscaling.metrics.address: the operator is not allowed to connect to")
    assert "pw" not in message


def test_kafka_every_bootstrap_server_must_be_allowed():
    assert POLICY.kafka_refusal("kafka-0.kafka.svc:9092,kafka-1.kafka.svc:9092") is None
    message = POLICY.kafka_refusal("kafka-0.kafka.svc:9092,evil.example.net:9092")
    assert message is not None and "spec.kafka.bootstrapServers" in message and "evil.example.net:9092" in message
    assert "kafka-0" not in message.split("(in")[0]
    assert POLICY.kafka_refusal("kafka-0.kafka.svc:9093") is not None


def test_empty_list_allows_everything_and_env_is_read(monkeypatch):
    assert EndpointPolicy().kafka_refusal("anything:1") is None
    monkeypatch.setenv(ENV, "a.svc,b.svc:1")
    assert EndpointPolicy.from_env().patterns == ("a.svc", "b.svc:1")


class Kube:
    def __init__(self) -> None:
        self.reads: list[str] = []

    def get(self, kind: str, namespace: str, name: str) -> dict:
        self.reads.append(name)
        return {"data": {"token": base64.b64encode(b"secret-token").decode(),
                         "username": base64.b64encode(b"u").decode(), "password": base64.b64encode(b"p").decode()}}


def _ais(spec: dict) -> AIService:
    return AIService.model_validate({
        "apiVersion": "aifleet.dev/v1alpha1", "kind": "AIService", "metadata": {"name": "a", "namespace": "n"},
        "spec": {"inference": {"modelRepository": {"uri": "s3://m"}}, **spec},
    })


def test_a_refused_prometheus_gets_no_source_and_the_token_is_not_even_read():
    built: list[dict] = []
    autoscalers = Autoscalers(source_factory=lambda address, **kw: built.append({"address": address, **kw}),  # type: ignore[arg-type,func-returns-value]
                              policy=POLICY)
    kube = Kube()
    ais = _ais({"autoscaling": {"metrics": {"address": "http://attacker.example.net:9090",
                                            "authSecretRef": {"name": "tok", "key": "token"}}}})
    with pytest.raises(EndpointRefusedError, match=r"attacker\.example\.net:9090"):
        autoscalers.source(ais, kube)  # type: ignore[arg-type]
    assert built == [] and kube.reads == []
    allowed = _ais({"autoscaling": {"metrics": {"address": "http://prom.monitoring.svc:9090",
                                                "authSecretRef": {"name": "tok", "key": "token"}}}})
    autoscalers.source(allowed, kube)  # type: ignore[arg-type]
    assert built[0]["bearer_token"] == "secret-token"


def test_a_refused_kafka_is_degraded_with_an_event_and_no_client():
    engine = TopicsEngine(policy=POLICY)
    events: list[tuple[str, str, str]] = []
    ais = _ais({"kafka": {"bootstrapServers": "evil.example.net:9092", "topics": [{"name": "t"}],
                          "securityProtocol": "SASL_PLAINTEXT", "saslMechanism": "PLAIN", "credentialsSecret": "c"}})
    secret = Kube().get("Secret", "n", "c")
    result = engine.sync(ais, secret, lambda *e: events.append(e), now=0.0)
    assert result is not None and (result.state, result.reason) == ("Degraded", ENDPOINT_NOT_ALLOWED)
    assert "spec.kafka.bootstrapServers" in result.message and "evil.example.net:9092" in result.message
    assert events == [("Warning", ENDPOINT_NOT_ALLOWED, result.message)]
    assert len(engine.admins) == 0, "no client, so no credentials sent"
    engine.sync(ais, secret, lambda *e: events.append(e), now=1.0)
    assert len(events) == 1, "said once, not on every pass"


def test_a_refused_prometheus_turns_scaling_inactive_with_a_warning_naming_field_and_endpoint(minimal):
    from aifleet.reconciler.observed import AppliedCache
    from aifleet.reconciler.scaling import autoscale, operator_status

    minimal["metadata"].update(name="chat", namespace="shop")
    minimal["spec"]["autoscaling"].update(metrics={"address": "http://collector.attacker.example:8080",
                                                   "authSecretRef": {"name": "tok", "key": "token"}})
    ais = AIService.model_validate(minimal)
    deployment = {"kind": "Deployment", "metadata": {"name": "chat-triton", "namespace": "shop", "resourceVersion": "1"},
                  "spec": {"replicas": 2}, "status": {"readyReplicas": 2, "conditions": [
                      {"type": "Available", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}}
    events: list[tuple[str, str, str]] = []
    kube = Kube()
    autoscalers = Autoscalers(policy=POLICY)
    decision = autoscale(ais, lambda *_: deployment, kube, autoscalers, AppliedCache(),  # type: ignore[arg-type]
                         lambda *e: events.append(e))
    assert decision is not None and decision.desired_replicas == 2, "holds the fleet"
    assert kube.reads == [], "the token's Secret is not even read"
    (warning,) = events
    assert warning[:2] == ("Warning", "MetricsUnavailable")
    assert "spec.autoscaling.metrics.address" in warning[2] and "collector.attacker.example:8080" in warning[2]
    _, conditions = operator_status(decision)
    active = next(c for c in conditions if c["type"] == "ScalingActive")
    assert active["status"] == "False" and "collector.attacker.example:8080" in active["message"]
