"""The chart's `allowedEndpoints` reaches the operator: `helm template` renders it into the operator's arguments, and
those very arguments, parsed by the operator's own command line, give the policy that refuses and allows. No
cluster is needed."""

from __future__ import annotations

import pytest
from chart_support import CHART, helm, helm_bin, render, set_args  # noqa: F401 - helm_bin is a fixture

from aifleet.cli import build_parser
from aifleet.clients.endpoints import ENV, EndpointPolicy
from aifleet.manager import RunOptions, publish_allowed_endpoints

ALLOWED = ["*.monitoring.svc", "kafka-*.kafka.svc:9093"]


def _operator_args(docs: list[dict]) -> list[str]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["aifleet", "run"]
    return container["args"]


def test_allowed_endpoints_reach_the_operator(helm_bin, monkeypatch):  # noqa: F811
    args = _operator_args(render(helm_bin, {"allowedEndpoints": ALLOWED}))
    assert [a for a in args if a.startswith("--allow-endpoint")] == [f"--allow-endpoint={p}" for p in ALLOWED]
    parsed = build_parser().parse_args(["run", *args])
    assert parsed.allow_endpoint == ALLOWED
    # What the operator does with them before kopf starts: the policy its engines read. It sets the variable in
    # this process: setenv first, so that teardown takes it away again (operators started later inherit it).
    monkeypatch.setenv(ENV, "")
    policy = publish_allowed_endpoints(RunOptions(allowed_endpoints=parsed.allow_endpoint))
    assert EndpointPolicy.from_env() == policy
    assert policy.metrics_refusal("http://prometheus-operated.monitoring.svc:9090") is None
    assert policy.kafka_refusal("kafka-0.kafka.svc:9093") is None
    refused = policy.metrics_refusal("http://collector.attacker.example:80")
    assert refused is not None and "spec.autoscaling.metrics.address" in refused
    assert policy.kafka_refusal("kafka-0.kafka.svc:9092") is not None, "the port is part of the pattern"


def test_default_allows_any_endpoint(helm_bin):  # noqa: F811
    args = _operator_args(render(helm_bin))
    assert not [a for a in args if a.startswith("--allow-endpoint")]


@pytest.mark.parametrize("value", [["with space.svc"], "*.svc"])
def test_bad_allowed_endpoints_fail_the_schema(helm_bin, value):  # noqa: F811
    proc = helm(helm_bin, "template", "x", str(CHART), *set_args({"allowedEndpoints": value}), check=False)
    assert proc.returncode != 0 and "allowedEndpoints" in proc.stderr, proc.stderr
