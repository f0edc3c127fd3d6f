"""The Helm chart: lint, schema, valid manifests, and least privilege proven on the real API server.

Least privilege is shown three ways: the chart's RBAC is exactly the operator's own permission list
(operator/aifleet/observability/permissions.py, which its preflight checks); the operator, run as a process with
a token minted for the chart's ServiceAccount, reconciles examples/minimal.yaml to Ready with nothing else (and,
on the local control plane, the audit log shows it was never denied); and `kubectl auth can-i` shows what the
account cannot do. PodSecurity `restricted` admission judges the operator pod.
"""

from __future__ import annotations

import contextlib
import json
import time

import kubernetes_validate
import pytest
import yaml

from aifleet.observability import permissions
from chart_support import (
    CHART,
    ROOT,
    aifleet,
    applied_children,
    audit_log,
    audit_requests,
    can_i,
    helm,
    helm_bin,  # noqa: F401 - session fixture
    log_lines,
    namespaces,
    render,
    service_account_kubeconfig,
    set_args,
    unique,
    wait_until,
)
from harness.net import free_port, http_get_text
from kube import get_json, is_true, kubectl
from operator_process import OperatorProcess

K8S_VERSION = "1.35.0"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "KopfPeering", "ClusterKopfPeering"}

SCOPES = {
    "all-namespaces": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "all-namespaces-ha": {"replicaCount": 3},
    "namespaced-ha": {"replicaCount": 2, "watchNamespaces": ["team-a"]},
    "everything-on": {
        "replicaCount": 2,
        "metrics": {"port": 9191, "service": {"type": "ClusterIP", "annotations": {"a": "b"}},
                    "serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s",
                                       "labels": {"release": "prom"}},
                    "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
                    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "aifleet"}}},
        "prometheusAdapterRules": {"enabled": True},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {
                "matchLabels": {"app.kubernetes.io/name": "aifleet-operator"}}}}]}},
        "priorityClassName": "system-cluster-critical",
        "extraEnv": [{"name": "FOO", "value": "bar"}],
        "imagePullSecrets": [{"name": "regcred"}],
        "podAnnotations": {"x": "y"},
        "podLabels": {"team": "ops"},
    },
}


@contextlib.contextmanager
def installed(helm_bin: str, release: str, namespace: str, values: dict):
    helm(helm_bin, "install", release, str(CHART), "-n", namespace, *set_args(values), timeout=180)
    try:
        yield
    finally:
        helm(helm_bin, "uninstall", release, "-n", namespace, "--wait", "--timeout", "60s", check=False)


def operator_pods_up(release: str, namespace: str, replicas: int) -> list[dict]:
    """The chart's operator pods are admitted and scheduled; on KWOK nodes (no containers run) also Running and
    Ready, and the Deployment available. On a cluster with real kubelets (kind) the image may not be loaded, so
    only admission and scheduling are asserted there."""

    def pods() -> list[dict] | None:
        items = json.loads(kubectl("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}",
                                   "-o", "json"))["items"]
        return items if len(items) == replicas and all(p["spec"].get("nodeName") for p in items) else None

    found = wait_until(f"{replicas} scheduled operator pod(s)", pods, timeout=60)
    node = get_json("node", found[0]["spec"]["nodeName"])
    if ((node or {}).get("metadata", {}).get("annotations") or {}).get("kwok.x-k8s.io/node") == "fake":
        name = f"{release}-aifleet-operator"
        wait_until("the Deployment available", lambda: (get_json("deployment", name, "-n", namespace)["status"]
                                                         .get("availableReplicas") == replicas), timeout=60)
        found = pods()
        assert all(p["status"]["phase"] == "Running" for p in found), found
    return found


def stop_operator_pods(release: str, namespace: str) -> None:
    """One operator at a time: the chart's pod (a real one on kind when the image is loaded) makes way for the
    operator process the test watches."""
    kubectl("scale", "deployment", f"{release}-aifleet-operator", "-n", namespace, "--replicas=0")


def kinds(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


# --- static: lint, schema, rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize("scope", sorted(SCOPES))
def test_lint(helm_bin, scope):
    proc = helm(helm_bin, "lint", "--strict", str(CHART), *set_args(SCOPES[scope]))
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("scope", sorted(SCOPES))
def test_rendered_manifests_are_valid_kubernetes(helm_bin, scope):
    docs = render(helm_bin, SCOPES[scope])
    skipped = set()
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            skipped.add(doc["kind"])
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    by_kind = kinds(docs)
    assert {"ServiceAccount", "Deployment", "Service"} <= set(by_kind)
    (deployment,) = by_kind["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["aifleet", "run"]
    assert container["image"] == "aifleet-operator:0.1.0"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    values = SCOPES[scope]
    watched = values.get("watchNamespaces", [])
    assert [a for a in container["args"] if a.startswith("--namespace=")] == [f"--namespace={n}" for n in watched]
    ha = values.get("replicaCount", 1) > 1
    assert any(a.startswith("--peering=") for a in container["args"]) == ha
    assert ("PodDisruptionBudget" in by_kind) == ha
    peering_kind = "KopfPeering" if watched else "ClusterKopfPeering"
    assert len(by_kind.get(peering_kind, [])) == ((len(watched) or 1) if ha else 0)
    expected_skips = {peering_kind} if ha else set()
    if values.get("metrics", {}).get("serviceMonitor", {}).get("enabled"):
        expected_skips.add("ServiceMonitor")
        (monitor,) = by_kind["ServiceMonitor"]
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
        assert monitor["metadata"]["labels"]["release"] == "prom"
        assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    if values.get("metrics", {}).get("prometheusRule", {}).get("enabled"):
        expected_skips.add("PrometheusRule")
    assert skipped == expected_skips


def test_adapter_rules_configmap(helm_bin):
    docs = render(helm_bin, {"prometheusAdapterRules": {"enabled": True}})
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    rules = yaml.safe_load(cm["data"]["config.yaml"])["rules"]
    (rule,) = rules
    assert rule["name"]["as"] == "triton_requests_per_second"
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    assert "[1m]" in rule["metricsQuery"] and "nv_inference_request_success" in rule["seriesQuery"]
    assert not [d for d in render(helm_bin, {}) if d["kind"] == "ConfigMap"]


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_alerts_and_dashboard_render_from_their_files_only_when_enabled(helm_bin, on):
    docs = render(helm_bin, {"metrics": {"prometheusRule": {"enabled": on, "labels": {"release": "prom"}},
                                         "grafanaDashboard": {"enabled": on}}})
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    dashboards = [d for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]]
    if not on:
        assert not rules and not dashboards
        return
    files = CHART / "files"
    (rule,) = rules
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["metadata"]["labels"]["release"] == "prom"
    # The chart ships the rules file unchanged: Helm left the alerts' own {{ $labels }} templates alone.
    assert rule["spec"] == yaml.safe_load((files / "aifleet-rules.yaml").read_text())
    (dashboard,) = dashboards
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["aifleet.json"]) == json.loads((files / "aifleet-dashboard.json").read_text())


@pytest.mark.parametrize("watched", [[], ["team-a"]], ids=["all-namespaces", "namespaced"])
@pytest.mark.parametrize("access", ["byName", "watch"])
def test_secret_access_sets_the_secret_rule_and_the_operators_flag(helm_bin, watched, access):
    values = {"watchNamespaces": watched, **({"rbac": {"secretAccess": access}} if access != "byName" else {})}
    by_kind = kinds(render(helm_bin, values))
    roles = by_kind.get("ClusterRole", []) + by_kind.get("Role", [])
    assert roles
    for role in roles:
        secrets = [r for r in role["rules"] if "secrets" in r["resources"]]
        assert secrets == permissions.as_rbac_rules([permissions.SECRET_RULES[access]]), secrets
        assert ({"list", "watch"} <= set(secrets[0]["verbs"])) == (access == "watch")
        assert role["rules"] == permissions.as_rbac_rules(
            [r for r in permissions.required_rules(clusterwide=not watched, peering=False, secret_access=access)
             if not (watched and r.cluster_scoped)])
    (deployment,) = by_kind["Deployment"]
    assert f"--secret-access={access}" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.mark.parametrize("ha", [False, True], ids=["single", "ha"])
@pytest.mark.parametrize("watched", [[], ["team-a", "team-b"]], ids=["all-namespaces", "namespaced"])
def test_rbac_is_exactly_the_operators_permission_list(helm_bin, ha, watched):
    docs = render(helm_bin, {"watchNamespaces": watched, "replicaCount": 2 if ha else 1})
    by_kind = kinds(docs)
    for doc in by_kind.get("ClusterRole", []) + by_kind.get("Role", []):
        for rule in doc["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
    expected_namespaced = permissions.as_rbac_rules(
        [r for r in permissions.required_rules(clusterwide=not watched, peering=ha) if not r.cluster_scoped]
    )
    if not watched:
        (role,) = by_kind["ClusterRole"]
        assert role["rules"] == permissions.as_rbac_rules(permissions.required_rules(clusterwide=True, peering=ha))
        assert "Role" not in by_kind
        (binding,) = by_kind["ClusterRoleBinding"]
        assert binding["subjects"][0]["namespace"] == "aifleet-system"
    else:
        assert "ClusterRole" not in by_kind and "ClusterRoleBinding" not in by_kind, "namespaced mode: nothing cluster-wide"
        assert sorted(r["metadata"]["namespace"] for r in by_kind["Role"]) == sorted(watched)
        for role in by_kind["Role"]:
            assert role["rules"] == expected_namespaced
        for binding in by_kind["RoleBinding"]:
            assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                          "name": "aifleet-operator"}
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "aifleet-operator",
                                            "namespace": "aifleet-system"}]


BAD_VALUES = [
    ({"replicaCount": 0}, "/replicaCount", "minimum"),
    ({"replicaCount": "two"}, "/replicaCount", "want integer"),
    ({"watchNamespaces": "team-a"}, "/watchNamespaces", "want array"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0", "does not match pattern"),
    ({"bogus": 1}, "additional properties 'bogus' not allowed", ""),
    ({"image": {"repository": "x", "pulPolicy": "Always"}}, "additional properties 'pulPolicy' not allowed", ""),
    ({"logFormat": "xml"}, "/logFormat", "value must be one of"),
    ({"metrics": {"serviceMonitor": {"enabled": "yes"}}}, "/metrics/serviceMonitor/enabled", "want boolean"),
]


@pytest.mark.parametrize("values,where,what", BAD_VALUES, ids=[json.dumps(v[0]) for v in BAD_VALUES])
def test_bad_values_fail_with_the_schema_message(helm_bin, values, where, what):
    for command in (["lint", str(CHART)], ["template", "x", str(CHART)]):
        proc = helm(helm_bin, *command, *set_args(values), check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, f"helm {command[0]} accepted {values}"
        assert where in output and what in output, output


def test_bad_values_fail_helm_install_before_anything_is_created(helm_bin, cluster):
    release = unique("bad")
    proc = helm(helm_bin, "install", release, str(CHART), "-n", "default", "--set-json", "replicaCount=0",
                check=False)
    assert proc.returncode != 0
    assert "/replicaCount" in proc.stderr and "minimum" in proc.stderr, proc.stderr
    assert helm(helm_bin, "status", release, "-n", "default", check=False).returncode != 0
    assert not kubectl("get", "clusterrole", "-l", f"app.kubernetes.io/instance={release}", "-o", "name").strip()


# --- on the real API server ------------------------------------------------------------------------------------


def test_namespaced_install_least_privilege_reconciles_minimal_to_ready(helm_bin, cluster, tmp_path, artifacts):
    release = unique("lp")
    with namespaces("ops", "watched", "other") as (ops, watched, other), \
            installed(helm_bin, release, ops, {"watchNamespaces": [watched]}):
        sa = f"{release}-aifleet-operator"
        operator_pods_up(release, ops, 1)
        stop_operator_pods(release, ops)
        assert not kubectl("get", "clusterrole,clusterrolebinding", "-l", f"app.kubernetes.io/instance={release}",
                           "-o", "name").strip(), "namespaced mode must create nothing cluster-wide"

        # What it needs, it has; what it does not need, it does not have.
        for needed in (["list", "aiservices.aifleet.dev"], ["patch", "aiservices.aifleet.dev", "--subresource=status"],
                       ["get", "secrets"], ["patch", "deployments.apps", "--subresource=scale"],
                       ["create", "events"], ["watch", "horizontalpodautoscalers.autoscaling"],
                       ["delete", "deployments.apps"]):  # an ended canary's Deployment goes
            assert can_i(needed, sa, ops, "-n", watched), f"cannot {needed} in {watched}"
        denied = [
            (["get", "secrets"], ["-n", other]),
            (["list", "secrets"], ["--all-namespaces"]),
            (["get", "secrets"], ["-n", ops]),
            (["list", "aiservices.aifleet.dev"], ["-n", other]),
            (["delete", "namespaces"], []),
            (["list", "namespaces"], []),
            (["create", "pods"], ["-n", watched]),
            (["delete", "deployments.apps"], ["-n", other]),
            (["delete", "pods"], ["-n", watched]),
            (["delete", "secrets"], ["-n", watched]),
            (["update", "secrets"], ["-n", watched]),
            (["list", "secrets"], ["-n", watched]),  # rbac.secretAccess byName (the default): by name only
            (["watch", "secrets"], ["-n", watched]),
            (["escalate", "roles.rbac.authorization.k8s.io"], ["-n", watched]),
            (["bind", "clusterroles.rbac.authorization.k8s.io"], []),
            (["create", "rolebindings.rbac.authorization.k8s.io"], ["-n", watched]),
            (["impersonate", "users"], []),
            (["list", "customresourcedefinitions.apiextensions.k8s.io"], []),
            (["get", "nodes"], []),
            (["*", "*"], ["-n", watched]),
        ]
        allowed = [(v, s) for v, s in denied if can_i(v, sa, ops, *s)]
        assert not allowed, f"the operator's account may do more than it needs: {allowed}"

        # Run the operator with exactly that identity: a token from the TokenRequest API.
        kubeconfig = service_account_kubeconfig(sa, ops, tmp_path / "sa.kubeconfig")
        health, metrics_port = free_port(), free_port()
        proc = OperatorProcess(artifacts / f"least-privilege-{release}", env={"KUBECONFIG": str(kubeconfig)},
                               extra_args=["-n", watched, "--health-port", str(health),
                                           "--metrics-port", str(metrics_port)])
        # A new CRD's storage answers 429 "(re)initializing" for a moment after it is Established.
        wait_until("the AIService API to list", lambda: "Error from server" not in kubectl(
            "get", "aiservices.aifleet.dev", "-n", watched, "-o", "name", check=False), timeout=60)
        started = time.time()
        proc.start()
        try:
            wait_until("/readyz 200", lambda: http_get_text(f"http://127.0.0.1:{health}/readyz")[0] == 200
                       or not proc.running(), timeout=60)
            assert proc.running(), proc.logs()[-3000:]
            passed = [e for e in log_lines(proc.logs()) if str(e.get("message", "")).startswith("preflight passed")]
            assert passed and f"system:serviceaccount:{ops}:{sa}" in passed[0]["message"]

            name = unique("lp")
            manifest = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())
            manifest["metadata"].update(name=name, namespace=watched)
            kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
            wait_until(f"AIService {watched}/{name} Ready",
                       lambda: is_true(get_json("aiservice", name, "-n", watched), "Ready"), timeout=90)
            mine = applied_children(proc.logs())
            events = json.loads(kubectl("get", "events", "-n", watched, "--field-selector",
                                        f"involvedObject.kind=AIService,involvedObject.name={name}", "-o", "json"))
            assert events["items"], "no events were posted for the AIService"
            # Never below min: raising minReplicas resizes the fleet, metrics or not.
            kubectl("patch", "aiservice", name, "-n", watched, "--type=merge",
                    "-p", '{"spec": {"autoscaling": {"minReplicas": 2}}}')
            wait_until("Triton scaled to the new minimum", lambda: (get_json("deployment", f"{name}-triton", "-n",
                       watched)["spec"]["replicas"] == 2), timeout=60)
            assert f"Deployment/{name}-triton" in mine, (
                f"this operator applied only {mine}: another operator did the work (a suite-wide operator must "
                f"skip the tests' own namespaces: --namespace '!e2e-own-*')")

            # The data plane and the hpa engine too: a user Secret read (get), a generated Secret (create), config
            # Secrets, a StatefulSet and a HorizontalPodAutoscaler applied. Kafka topics go to the Kafka admin API, not Kubernetes, so they are left out.
            data = unique("lp-data")
            kubectl("create", "secret", "generic", f"{data}-db", "-n", watched, "--from-literal=password=s3cret")
            manifest["metadata"]["name"] = data
            manifest["spec"]["pgbouncer"] = {"databaseHost": "postgres.databases.svc", "databaseName": "chat",
                                             "user": "chat", "passwordSecretRef": {"name": f"{data}-db",
                                                                                   "key": "password"}}
            manifest["spec"]["redis"] = {"maxMemory": "256mb"}
            manifest["spec"]["autoscaling"]["engine"] = "hpa"
            kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
            wait_until(f"AIService {watched}/{data} Ready",
                       lambda: is_true(get_json("aiservice", data, "-n", watched), "Ready"), timeout=90)
            mine = applied_children(proc.logs())
            assert {f"Deployment/{data}-pgbouncer", f"StatefulSet/{data}-redis",
                    f"HorizontalPodAutoscaler/{data}-triton"} <= mine, mine
            assert any(c.startswith("Secret/") for c in mine), mine

            code, text = http_get_text(f"http://127.0.0.1:{metrics_port}/metrics")
            assert code == 200 and "aifleet_ready 1.0" in text

            # Deletion goes through: the operator removes its finalizer with its own identity.
            kubectl("delete", "aiservice", name, data, "-n", watched, "--timeout=60s")

            log = audit_log()
            if log is not None:
                user = f"system:serviceaccount:{ops}:{sa}"
                events = audit_requests(user, started - 1)
                assert events, f"no audit events of {user} in {log}"
                denials = [(e["verb"], e.get("objectRef"), e["responseStatus"]["code"]) for e in events
                           if e["responseStatus"]["code"] in (401, 403)]
                assert not denials, f"the operator was denied: {denials}"
                used = {(e["verb"], (e.get("objectRef") or {}).get("resource") or e.get("requestURI", ""),
                         (e.get("objectRef") or {}).get("subresource") or "") for e in events}
                (artifacts / f"least-privilege-{release}" / "used-permissions.json").write_text(
                    json.dumps(sorted(used), indent=1))
        finally:
            proc.stop()
        errors = [e for e in log_lines(proc.logs()) if ("raw" in e or e.get("level") in ("error", "critical"))
                  and not transient_retry(e)]
        assert not errors, errors[:5]


def transient_retry(entry: dict) -> bool:
    """kopf's own line for a request it retries after a 429 with Retry-After: the API server asked to wait."""
    message = str(entry.get("message", ""))
    return message.startswith("Request attempt #") and "will retry" in message and "TooManyRequests" in message


def test_all_namespaces_install_rbac(helm_bin, cluster, tmp_path):
    release = unique("cw")
    with namespaces("ops") as (ops,), installed(helm_bin, release, ops, {}):
        sa = f"{release}-aifleet-operator"
        operator_pods_up(release, ops, 1)
        stop_operator_pods(release, ops)  # an all-namespaces operator must not act on other tests' objects
        (role,) = [json.loads(kubectl("get", "clusterrole", sa, "-o", "json"))]
        assert role["rules"] == permissions.as_rbac_rules(permissions.required_rules(clusterwide=True, peering=False))
        # rbac.secretAccess byName (the default): Secrets are read by name; none can be listed or watched.
        assert can_i(["get", "secrets"], sa, ops, "-n", "default")
        assert not can_i(["list", "secrets"], sa, ops, "--all-namespaces")
        assert not can_i(["watch", "secrets"], sa, ops, "--all-namespaces")
        assert can_i(["watch", "customresourcedefinitions.apiextensions.k8s.io"], sa, ops)
        for verb_resource in (["delete", "namespaces"], ["create", "pods", "-n", "default"], ["get", "nodes"],
                              ["delete", "secrets", "-n", "default"], ["escalate", "clusterroles.rbac.authorization.k8s.io"],
                              ["create", "clusterrolebindings.rbac.authorization.k8s.io"], ["impersonate", "serviceaccounts"],
                              ["patch", "customresourcedefinitions.apiextensions.k8s.io"],
                              ["patch", "clusterkopfpeerings.kopf.dev"]):
            assert not can_i(verb_resource, sa, ops), f"may {verb_resource}"
        kubeconfig = service_account_kubeconfig(sa, ops, tmp_path / "sa.kubeconfig")
        check = aifleet("run", "--check", env={"KUBECONFIG": str(kubeconfig)})
        assert check.returncode == 0, check.stderr
        assert "preflight passed" in check.stderr and "all namespaces" in check.stderr


def test_ha_install_has_peering_and_its_rbac(helm_bin, cluster, tmp_path):
    release = unique("ha")
    with namespaces("ops", "watched") as (ops, watched), \
            installed(helm_bin, release, ops, {"replicaCount": 2, "watchNamespaces": [watched]}):
        sa = f"{release}-aifleet-operator"
        operator_pods_up(release, ops, 2)
        deployment = get_json("deployment", sa, "-n", ops)
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert f"--peering={sa}" in args and "--priority=random" in args
        assert get_json("kopfpeering", sa, "-n", watched) is not None, "the peering object is missing"
        assert get_json("poddisruptionbudget", sa, "-n", ops)["spec"]["minAvailable"] == 1
        assert can_i(["patch", "kopfpeerings.kopf.dev"], sa, ops, "-n", watched)
        assert not can_i(["patch", "kopfpeerings.kopf.dev"], sa, ops, "-n", ops)
        assert not can_i(["delete", "kopfpeerings.kopf.dev"], sa, ops, "-n", watched)
        kubeconfig = service_account_kubeconfig(sa, ops, tmp_path / "sa.kubeconfig")
        check = aifleet("run", "--check", "-n", watched, "--peering", sa, env={"KUBECONFIG": str(kubeconfig)})
        assert check.returncode == 0, check.stderr


def test_restricted_pod_security_admits_the_operator_pod(helm_bin, cluster):
    release = unique("psa")
    restricted = {"pod-security.kubernetes.io/enforce": "restricted",
                  "pod-security.kubernetes.io/enforce-version": "latest"}
    with namespaces("restricted", labels=restricted) as (ns,):
        # The namespace really enforces: a pod without the restricted settings is refused.
        refused = kubectl("run", "plain", "-n", ns, "--image=busybox", "--restart=Never", "--dry-run=server",
                          check=False)
        assert "violates PodSecurity" in refused and '"restricted:latest"' in refused, refused
        with installed(helm_bin, release, ns, {"watchNamespaces": [ns]}):
            operator_pods_up(release, ns, 1)  # admitted by PodSecurity `restricted`, then scheduled
            warnings = kubectl("get", "events", "-n", ns, "--field-selector", "reason=FailedCreate", "-o", "name")
            assert not warnings.strip(), warnings


def _secret_verbs(can_i_list: str) -> set[str]:
    """The verbs on core Secrets in `kubectl auth can-i --list` output (its Resources / Non-Resource URLs /
    Resource Names / Verbs table)."""
    verbs: set[str] = set()
    for line in can_i_list.splitlines():
        columns = line.split()
        if columns and columns[0] == "secrets":
            verbs |= set(line[line.rindex("[") + 1:line.rindex("]")].split())
    return verbs


def test_what_a_stolen_operator_token_can_do_with_secrets(helm_bin, cluster, tmp_path, artifacts):
    """Measured with the chart's own ServiceAccount and a real token: `kubectl auth can-i --list`, then real
    requests. byName (the default) cannot list or watch any Secret, and reads one only by its namespace and name;
    watch (opt-in) lists every Secret of the cluster."""
    release = unique("sec")
    with namespaces("ops", "victim") as (ops, victim), installed(helm_bin, release, ops, {}):
        sa = f"{release}-aifleet-operator"
        operator_pods_up(release, ops, 1)
        stop_operator_pods(release, ops)
        kubectl("create", "secret", "generic", "crown-jewels", "-n", victim, "--from-literal=key=value")
        kubeconfig = service_account_kubeconfig(sa, ops, tmp_path / "sa.kubeconfig")

        def as_token(*args: str) -> str:
            return kubectl("--kubeconfig", str(kubeconfig), *args, check=False)

        measured = {}
        for access in ("byName", "watch"):
            if access == "watch":
                helm(helm_bin, "upgrade", release, str(CHART), "-n", ops, "--reuse-values",
                     *set_args({"rbac": {"secretAccess": "watch"}}), timeout=180)
                stop_operator_pods(release, ops)
            def rules_in_force(access: str = access) -> str | None:
                out = kubectl("auth", "can-i", "--list", f"--as=system:serviceaccount:{ops}:{sa}", "-n", victim)
                return out if ("list" in _secret_verbs(out)) == (access == "watch") else None

            listing = wait_until(f"can-i --list with secretAccess {access}", rules_in_force, timeout=30)
            listed = as_token("get", "secrets", "--all-namespaces", "-o", "name")
            by_name = as_token("get", "secret", "crown-jewels", "-n", victim, "-o", "name")
            measured[access] = {"secret verbs": sorted(_secret_verbs(listing)), "list all": listed.strip()[:300],
                                "get by name": by_name.strip()}
            if access == "byName":
                assert _secret_verbs(listing) == {"get", "create", "patch"}, listing
                assert "Forbidden" in listed and "crown-jewels" not in listed
            else:
                assert {"list", "watch"} <= _secret_verbs(listing)
                assert "secret/crown-jewels" in listed
            # Both modes: a Secret whose namespace and name are known can be read (docs/install.md says so).
            assert by_name.strip() == "secret/crown-jewels", by_name
        (artifacts / "secret-access.json").write_text(json.dumps(measured, indent=1))
