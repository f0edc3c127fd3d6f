"""The operator's own metrics and health endpoints, and the permission list the preflight and the chart share."""

from __future__ import annotations

import json
import re
import socket

import pytest
import yaml
from harness.net import free_port, http_get_text

from aifleet import observability
from aifleet.observability import metrics, permissions
from aifleet.observability.health import Health, Servers
from conftest import ROOT


def sample(metric: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(metric, labels)


def test_reconcile_counter_and_histogram_by_result():
    before = sample("aifleet_reconciles_total", result="changed") or 0
    observability.record_reconcile("changed", 0.2)
    observability.record_reconcile("changed", 0.02)
    assert sample("aifleet_reconciles_total", result="changed") == before + 2
    assert sample("aifleet_reconcile_duration_seconds_bucket", result="changed", le="0.025") >= 1
    # Unknown results are folded into one label value: label sets stay bounded.
    observability.record_reconcile("made-up", 1)
    assert sample("aifleet_reconciles_total", result="other") >= 1


def test_errors_are_labelled_by_reason():
    class ConflictError(Exception):
        status = 409

    before = sample("aifleet_reconcile_errors_total", reason="conflict") or 0
    observability.record_error(ConflictError("409"))
    observability.record_error(ValueError("x"))
    assert sample("aifleet_reconcile_errors_total", reason="conflict") == before + 1
    assert sample("aifleet_reconcile_errors_total", reason="ValueError") >= 1


def test_scale_decisions_and_desired_replicas_gauge_removed_when_the_aiservice_goes():
    up = sample("aifleet_scaling_decisions_total", direction="up")
    observability.record_scale("up", "ns1", "svc", 43)
    assert sample("aifleet_scaling_decisions_total", direction="up") == up + 1
    assert sample("aifleet_desired_replicas", namespace="ns1", name="svc") == 43
    observability.record_desired("ns1", "svc", 40, 398.7)
    assert sample("aifleet_desired_replicas", namespace="ns1", name="svc") == 40
    assert sample("aifleet_observed_rps", namespace="ns1", name="svc") == 398.7
    observability.forget("ns1", "svc")
    assert sample("aifleet_desired_replicas", namespace="ns1", name="svc") is None
    assert sample("aifleet_observed_rps", namespace="ns1", name="svc") is None
    observability.forget("ns1", "svc")  # twice is fine


def test_metric_failures_by_kind():
    observability.record_metric_failure("unreachable")
    assert sample("aifleet_metric_query_failures_total", kind="unreachable") >= 1


def test_recorders_never_raise():
    observability.record_reconcile("changed", "not a number")  # type: ignore[arg-type]
    observability.record_desired("ns", "n", "many")  # type: ignore[arg-type]


@pytest.fixture
def served():
    health = Health(stale_after=60)
    hp, mp = free_port(), free_port()
    servers = Servers(health, health_port=hp, metrics_port=mp, host="127.0.0.1")
    servers.start()
    yield health, f"http://127.0.0.1:{hp}", f"http://127.0.0.1:{mp}"
    servers.stop()


def test_readiness_names_what_is_wrong_until_every_check_passes(served):
    health, base, _ = served
    code, body = http_get_text(base + "/readyz")
    assert code == 503 and json.loads(body)["ready"] is False
    health.set("preflight", False, "the AIService CRD is not installed")
    code, body = http_get_text(base + "/readyz")
    assert code == 503
    assert json.loads(body)["checks"]["preflight"]["message"] == "the AIService CRD is not installed"
    for check in ("preflight", "kopf", "watching", "apiserver"):
        health.set(check, True)
    code, body = http_get_text(base + "/readyz")
    assert code == 200 and json.loads(body)["ready"] is True
    assert sample("aifleet_ready") == 1
    # The API server going away (or its etcd) turns readiness off until it answers again.
    health.set("apiserver", False, "the API server does not answer: [Errno 111] Connection refused")
    code, body = http_get_text(base + "/readyz")
    assert code == 503 and "Connection refused" in json.loads(body)["checks"]["apiserver"]["message"]
    assert sample("aifleet_ready") == 0
    health.set("apiserver", True)
    assert http_get_text(base + "/readyz")[0] == 200


def test_liveness_follows_the_heartbeat_not_the_preflight(served):
    health, base, _ = served
    health.set("preflight", False, "missing permission")
    assert http_get_text(base + "/healthz")[0] == 200  # a restart would not fix a missing CRD or permission
    health.stale_after = 0
    assert http_get_text(base + "/healthz")[0] == 503
    health.stale_after = 60
    health.beat()
    assert http_get_text(base + "/healthz")[0] == 200


def test_metrics_endpoint_is_prometheus_text_on_its_own_port(served):
    _, base, metrics_base = served
    code, body = http_get_text(metrics_base + "/metrics")
    assert code == 200
    assert 'aifleet_build_info{version="' in body
    assert "# TYPE aifleet_reconcile_duration_seconds histogram" in body
    assert "_created" not in body
    assert http_get_text(base + "/metrics")[0] == 404  # health port serves no metrics, and the reverse:
    assert http_get_text(metrics_base + "/readyz")[0] == 404


def test_port_in_use_is_a_warning_not_a_crash(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        servers = Servers(Health(), health_port=port, metrics_port=0, host="127.0.0.1")
        servers.start()
        assert servers.ports == []
        assert f"port {port}" in caplog.text


# --- permissions: one list for the preflight and the chart ---------------------------------------------------


def _chart_namespaced_rules() -> list[dict]:
    """The rules block of the chart's _helpers.tpl (plain YAML between define and end)."""
    text = (ROOT / "charts" / "aifleet-operator" / "templates" / "_helpers.tpl").read_text()
    block = re.search(r'{{- define "aifleet-operator.namespacedRules" -}}\n(.*?){{- end }}', text, re.S).group(1)
    return yaml.safe_load(block)


def test_chart_rules_are_the_operators_permission_list():
    assert _chart_namespaced_rules() == permissions.as_rbac_rules(permissions.NAMESPACED_RULES)


def _chart_secret_rules() -> dict[str, list[dict]]:
    """The two branches of the chart's secretRules (rbac.secretAccess), as YAML."""
    text = (ROOT / "charts" / "aifleet-operator" / "templates" / "_helpers.tpl").read_text()
    block = re.search(r'{{- define "aifleet-operator.secretRules" -}}\n(.*?){{- end }}\n{{- end }}', text, re.S).group(1)
    watch, by_name = re.split(r"{{- else -}}\n", re.sub(r"{{- if [^}]*}}\n", "", block))
    return {"watch": yaml.safe_load(watch), "byName": yaml.safe_load(by_name)}


def test_secret_rules_per_access_mode_and_no_list_or_watch_by_default():
    assert _chart_secret_rules() == {mode: permissions.as_rbac_rules([permissions.SECRET_RULES[mode]])
                                     for mode in permissions.SECRET_ACCESS}
    values = yaml.safe_load((ROOT / "charts" / "aifleet-operator" / "values.yaml").read_text())
    assert values["rbac"]["secretAccess"] == "byName"
    from aifleet.cli import build_parser

    assert build_parser().parse_args(["run"]).secret_access == "byName"  # the operator's default is the chart's
    for clusterwide in (True, False):
        rules = permissions.required_rules(clusterwide=clusterwide, peering=False)
        secrets = [r for r in rules if r.plural == "secrets"]
        assert len(secrets) == 1 and not {"list", "watch"} & set(secrets[0].verbs), secrets
    watched = [r for r in permissions.required_rules(clusterwide=True, peering=False, secret_access="watch")
               if r.plural == "secrets"]
    assert {"list", "watch"} <= set(watched[0].verbs)


def test_no_wildcards_pods_only_listed_and_delete_only_where_children_go_away():
    for rule in [*permissions.NAMESPACED_RULES, permissions.CRD_RULE, permissions.peering_rule(True),
                 permissions.peering_rule(False)]:
        assert "*" not in rule.verbs and "*" not in rule.resource and rule.group != "*"
        assert "deletecollection" not in rule.verbs
        # StatefulSets are replaced when an immutable field changes; a canary's Deployment, per-version Services
        # and HTTPRoute are removed when it ends.
        deletes = ("statefulsets", "deployments", "services", "httproutes")
        assert ("delete" in rule.verbs) == (rule.resource in deletes), rule
        assert rule.plural not in ("namespaces", "nodes", "roles", "clusterroles")
        # Pods are only listed (to say why they fail): never read one by one, watched, changed, exec'd into.
        assert rule.plural != "pods" or (rule.verbs == ("list",) and rule.resource == "pods"), rule


def _rendered_kinds() -> set[str]:
    """Every kind the renderer can produce: its templates, and manifests built in Python (generated Secrets)."""
    renderer = ROOT / "operator" / "aifleet" / "renderer"
    kinds = set()
    for template in renderer.glob("templates/*.j2"):
        kinds |= set(re.findall(r"^kind: (\w+)", template.read_text(), re.M))
    for module in renderer.glob("*.py"):
        kinds |= set(re.findall(r'"kind": "(\w+)"', module.read_text()))
    return kinds


def test_child_verbs_follow_what_the_operator_watches_and_renders():
    """list+watch for every child kind (kopf indexes them), create+patch exactly for the kinds the renderer
    produces (server-side apply), and the two documented extras. A new template of a new kind fails here until
    permissions.py (and so the chart) grants it."""
    from aifleet.clients.kinds import CHILD_KINDS

    rendered = _rendered_kinds()
    assert {"Deployment", "Service", "Secret", "StatefulSet", "HorizontalPodAutoscaler"} <= rendered
    extras = {
        "secrets": {"get"},
        **{plural: {"delete"} for plural in ("statefulsets", "deployments", "services", "httproutes")},
    }
    # With `--secret-access watch`, Secrets are a watched child like the others; byName drops their list and watch.
    by_resource = {(r.group, r.resource): set(r.verbs)
                   for r in (*permissions.NAMESPACED_RULES, permissions.SECRET_RULES["watch"])}
    for kind in CHILD_KINDS:
        verbs = {"list", "watch"} | ({"create", "patch"} if kind.kind in rendered else set())
        assert by_resource[(kind.group, kind.plural)] == verbs | extras.get(kind.plural, set()), kind
    reconciler = "".join(p.read_text() for p in (ROOT / "operator" / "aifleet" / "reconciler").glob("*.py"))
    assert 'kube.get("Secret"' in reconciler, "secrets get is granted for reading referenced Secrets"
    assert "kube.delete(kind" in reconciler, "statefulsets delete is granted for the StatefulSet replacement"
    assert "def canary_children" in reconciler, "deployments, services, httproutes delete remove a canary's children"


def test_checks_per_scope():
    namespaced = permissions.checks(["a", "b"], peering=True)
    assert {c.namespace for c in namespaced} == {"a", "b"}, "namespaced mode needs nothing cluster-wide"
    assert any(c.resource == "kopfpeerings" for c in namespaced)
    assert not any(c.resource in ("customresourcedefinitions", "clusterkopfpeerings") for c in namespaced)

    clusterwide = permissions.checks([], peering=True)
    assert {c.namespace for c in clusterwide} == {""}
    assert any(c.resource == "customresourcedefinitions" and c.verb == "watch" for c in clusterwide)
    assert any(c.resource == "clusterkopfpeerings" and c.verb == "patch" for c in clusterwide)
    assert not any(c.resource == "kopfpeerings" for c in clusterwide)
    assert not any("peering" in c.resource for c in permissions.checks([], peering=False))


def test_missing_permissions_are_summarized_in_one_line():
    missing = [c for c in permissions.checks(["a"], peering=False, secret_access="watch") if c.resource == "secrets"]
    line = permissions.summarize(missing)
    assert line == "get,list,watch,create,patch secrets in namespace a"
    scale = [c for c in permissions.checks([], peering=False) if c.subresource == "scale"]
    assert permissions.summarize(scale) == "patch deployments/scale.apps cluster-wide"


def test_namespace_patterns_need_namespace_listing_and_cluster_wide_checks():
    checks = permissions.checks(["!e2e-own-*"], peering=False)
    assert {c.namespace for c in checks} == {""}
    assert any(c.resource == "namespaces" and c.verb == "list" for c in checks)
    assert not any(c.resource == "namespaces" for c in permissions.checks(["team-a"], peering=False))
    assert not any(c.resource == "namespaces" for c in permissions.checks([], peering=False))


def test_fleet_gauges_follow_the_aiservice_and_go_with_it():
    observability.record_fleet("ns2", "svc", ready=True, replicas=3, ready_replicas=2, min_replicas=1, max_replicas=8,
                               target_rps_per_pod=12.5)
    assert sample("aifleet_aiservice_ready", namespace="ns2", name="svc") == 1
    assert sample("aifleet_replicas", namespace="ns2", name="svc") == 3
    assert sample("aifleet_ready_replicas", namespace="ns2", name="svc") == 2
    assert sample("aifleet_min_replicas", namespace="ns2", name="svc") == 1
    assert sample("aifleet_max_replicas", namespace="ns2", name="svc") == 8
    assert sample("aifleet_target_rps_per_pod", namespace="ns2", name="svc") == 12.5
    observability.record_fleet("ns2", "svc", ready=False, replicas=3, ready_replicas=0, min_replicas=1,
                               max_replicas=8, target_rps_per_pod=12.5)
    assert sample("aifleet_aiservice_ready", namespace="ns2", name="svc") == 0
    observability.record_decision("ns2", "svc", "ScaleUp", False)
    observability.record_scale_failure("ns2", "svc")
    observability.forget("ns2", "svc")
    for metric in ("aifleet_aiservice_ready", "aifleet_replicas", "aifleet_max_replicas", "aifleet_metrics_unavailable",
                   "aifleet_scale_failures_total"):
        assert sample(metric, namespace="ns2", name="svc") is None, metric
    assert sample("aifleet_scaling_reason", namespace="ns2", name="svc", reason="ScaleUp") is None


def test_one_decision_reason_at_a_time_and_unknown_reasons_are_bounded():
    observability.record_decision("ns3", "svc", "WaitingForMetrics", False)
    observability.record_decision("ns3", "svc", "MetricsUnavailable", True)
    reasons = {r: sample("aifleet_scaling_reason", namespace="ns3", name="svc", reason=r) for r in metrics.REASONS}
    assert reasons.pop("MetricsUnavailable") == 1
    assert set(reasons.values()) == {0}
    assert sample("aifleet_metrics_unavailable", namespace="ns3", name="svc") == 1
    observability.record_decision("ns3", "svc", "NoSuchReason", False)
    assert sample("aifleet_scaling_reason", namespace="ns3", name="svc", reason="other") == 1
    assert sample("aifleet_scaling_reason", namespace="ns3", name="svc", reason="MetricsUnavailable") == 0
    assert sample("aifleet_metrics_unavailable", namespace="ns3", name="svc") == 0
    observability.forget("ns3", "svc")


def test_scale_failures_count_per_aiservice():
    observability.record_scale_failure("ns4", "svc")
    observability.record_scale_failure("ns4", "svc")
    assert sample("aifleet_scale_failures_total", namespace="ns4", name="svc") == 2
    observability.forget("ns4", "svc")


def test_the_reconciler_reports_readiness_fleet_size_and_bounds(minimal):
    from aifleet.api import AIService
    from aifleet.reconciler.sync import record_fleet

    minimal["metadata"].update(namespace="ns5", name="svc")
    minimal["spec"].setdefault("autoscaling", {}).update(minReplicas=2, maxReplicas=6, targetRPSPerPod=40)
    ais = AIService.model_validate(minimal)
    deployment = {"spec": {"replicas": 4}, "status": {"readyReplicas": 3}}

    def lookup(kind, namespace, name):
        return deployment if (kind, namespace, name) == ("Deployment", "ns5", "svc-triton") else None

    status = {"readyReplicas": 3, "desiredReplicas": 5, "conditions": [{"type": "Ready", "status": "True"}]}
    record_fleet(ais, status, lookup)
    got = {m: sample(m, namespace="ns5", name="svc") for m in (
        "aifleet_aiservice_ready", "aifleet_replicas", "aifleet_ready_replicas", "aifleet_min_replicas",
        "aifleet_max_replicas", "aifleet_target_rps_per_pod")}
    assert got == {"aifleet_aiservice_ready": 1, "aifleet_replicas": 4, "aifleet_ready_replicas": 3,
                   "aifleet_min_replicas": 2, "aifleet_max_replicas": 6, "aifleet_target_rps_per_pod": 40}
    record_fleet(ais, {**status, "conditions": [{"type": "Ready", "status": "False"}]}, lookup)
    assert sample("aifleet_aiservice_ready", namespace="ns5", name="svc") == 0
    observability.forget("ns5", "svc")
