"""Serving on real pods: what aifleet renders for Triton runs unchanged on the real kubelet node.

Triton is the real tritonserver (the image built in e2e/images), loading a Python-backend model whose fixed service
time and bounded instance count set a pod's capacity, as a GPU does. Traffic goes through the Service's ClusterIP
(kube-proxy) from a load generator on this machine; per-pod counters come from each pod's own metrics endpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import dashboard
import harness
import pytest
import yaml
from kube import get_json, kubectl, wait_for
from realnode import (
    NEXT_TRITON_VERSION,
    ROOT,
    answers,
    conditions,
    events,
    models_directory,
    models_volume,
    pod_ready,
    pod_requests,
    ready_pods,
    real_aiservice,
    service_ip,
    triton_pods,
    wait_ready,
)

SERVICE_TIME_MS = 50


@pytest.fixture
def namespace(real_namespace):
    """Every test here runs in a namespace pinned to the real node."""
    return real_namespace


@pytest.fixture
def models(real_node, namespace):
    """The test models on a PersistentVolume of the real node, claimed as `models` in the test's namespace."""
    directory = models_directory(real_node.volumes / namespace, service_time_ms=SERVICE_TIME_MS, instances=1)
    with models_volume(real_node, namespace, directory):
        yield directory


def apply(manifest: dict) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))


def rendered_container(manifest: dict, tmp_path) -> dict:
    """The Triton container exactly as `aifleet render` prints it for this manifest, with no cluster."""
    path = tmp_path / "aiservice.yaml"
    path.write_text(yaml.safe_dump(manifest))
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "aifleet"), "render", str(path)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    deployment = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"
                      and d["metadata"]["name"].endswith("-triton"))
    return deployment["spec"]["template"]["spec"]["containers"][0]


def load(real_node, tmp_path, url: str, profile, **kwargs) -> harness.LoadGenerator:
    # An AIService is Ready when its pods are; kube-proxy routes its Service a moment later (until then the
    # ClusterIP refuses connections). Load starts once the Service answers.
    wait_for(f"the Service at {url} to answer", lambda: answers(f"http://{url}/v2/health/ready", real_node),
             timeout=60, interval=0.5)
    return harness.LoadGenerator(tmp_path / "loadgen", [url], profile, model="echo", input_name="INPUT0", batch=0,
                                 allow_networks=real_node.networks, window_s=5, **kwargs)


def transition(obj: dict, type_: str) -> str:
    return next(c["lastTransitionTime"] for c in obj["status"]["conditions"] if c["type"] == type_)


def test_rendered_triton_runs_unchanged_and_the_service_spreads_requests(
        operator, node_prometheus, real_node, namespace, models, tmp_path):
    manifest = real_aiservice("chat", namespace, prometheus=node_prometheus.url, min_replicas=2, max_replicas=2)
    apply(manifest)
    ais = wait_ready("chat", namespace)

    pods = ready_pods("chat", namespace)
    assert len(pods) == 2, [p["metadata"]["name"] for p in pods]
    assert {p["spec"]["nodeName"] for p in pods} == {real_node.name}
    # Ready only once Triton answers ready: the AIService turned Ready after the last pod did.
    last_pod_ready = max(next(c["lastTransitionTime"] for c in p["status"]["conditions"] if c["type"] == "Ready")
                         for p in pods)
    assert transition(ais, "Ready") >= last_pod_ready, (transition(ais, "Ready"), last_pod_ready)

    # The running container is the rendered one, field for field, and its probes passed on Triton's endpoints.
    want = rendered_container(manifest, tmp_path)
    live = pods[0]["spec"]["containers"][0]
    for field in ("image", "command", "args", "ports", "startupProbe", "readinessProbe", "livenessProbe",
                  "securityContext", "volumeMounts"):
        assert _subset(want[field], live[field]), (field, want[field], live[field])
    assert want["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert want["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    statuses = [s for p in pods for s in p["status"]["containerStatuses"]]
    assert all(s["ready"] and s["started"] and s["restartCount"] == 0 for s in statuses), statuses
    assert pods[0]["spec"]["securityContext"]["runAsUser"] == 1000

    # Requests through the ClusterIP are spread across both pods.
    before = {p["metadata"]["name"]: pod_requests(p, real_node) for p in pods}
    report = load(real_node, tmp_path, f"{service_ip('chat-triton', namespace)}:8000", [(10, 12)],
                  fresh_connections=True).run()
    assert report["total_errors"] == 0, report
    served = {p["metadata"]["name"]: pod_requests(p, real_node) - before[p["metadata"]["name"]] for p in pods}
    total = sum(served.values())
    print(f"\nrequests per pod through the ClusterIP: {served} of {report['total_ok']} answered")
    assert total == report["total_ok"], (served, report["total_ok"])
    assert all(n >= 0.2 * total for n in served.values()), served


def _subset(want, live) -> bool:
    """Every field the renderer set is in the live object with the same value (the API server adds defaults)."""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(k in live and _subset(v, live[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(want) == len(live) and all(map(_subset, want, live))
    return want == live


def test_operator_engine_scales_real_pods_under_load(operator, node_prometheus, real_node, namespace, models,
                                                    tmp_path):
    # One pod serves at most 1000/SERVICE_TIME_MS = 20 rps (one model instance); 24 rps overloads it.
    target = 8
    apply(real_aiservice("scale", namespace, prometheus=node_prometheus.url, min_replicas=1, max_replicas=4,
                         target_rps=target))
    wait_ready("scale", namespace)
    url = f"{service_ip('scale-triton', namespace)}:8000"
    gen = load(real_node, tmp_path, url, [(150, 24)], workers=16, fresh_connections=True).start()
    started = time.monotonic()
    try:
        scaled = wait_for("the fleet to scale up to 3 ready pods", lambda: len(ready_pods("scale", namespace)) >= 3
                          and time.monotonic() - started, timeout=140, interval=1)
        report = gen.wait()
    finally:
        gen.stop()
    assert report["total_errors"] == 0, report["steps"]
    ais = get_json("aiservice", "scale", "-n", namespace)
    assert 3 <= ais["status"]["replicas"] <= 4, ais["status"]
    # The new pods took traffic.
    pods = ready_pods("scale", namespace)
    served = {p["metadata"]["name"]: pod_requests(p, real_node) for p in pods}
    assert all(n > 0 for n in served.values()), served
    # Latency the load generator saw: the windows before the scale-up against the last ones.
    timeline = report["timeline"]
    before = [w["p95_ms"] for w in timeline if w["start_s"] + 5 <= scaled and w["p95_ms"] is not None]
    after = [w["p95_ms"] for w in timeline[-4:] if w["p95_ms"] is not None]
    print(f"\nscaled to {len(pods)} pods {scaled:.0f}s into the load; p95 per 5 s window: {timeline}")
    print(f"p95 before scale-up (worst window) {max(before):.0f} ms, after (last 20 s) {max(after):.0f} ms")
    assert max(after) < max(before), (before, after)
    scaled_up = [e for e in events(namespace, "scale") if e["reason"] == "ScaledUp"]
    assert scaled_up and "rps" in scaled_up[0]["message"], scaled_up


def test_rollout_and_a_deleted_pod_lose_no_request(operator, node_prometheus, real_node, namespace, models,
                                                   tmp_path):
    manifest = real_aiservice("roll", namespace, prometheus=node_prometheus.url, min_replicas=2, max_replicas=2)
    apply(manifest)
    wait_ready("roll", namespace)
    old = {p["metadata"]["name"] for p in ready_pods("roll", namespace)}
    url = f"{service_ip('roll-triton', namespace)}:8000"
    gen = load(real_node, tmp_path, url, [(120, 10)], fresh_connections=True).start()
    started = time.monotonic()
    try:
        time.sleep(10)
        manifest["spec"]["inference"]["version"] = NEXT_TRITON_VERSION
        apply(manifest)

        def rolled() -> bool:
            pods = triton_pods("roll", namespace)
            fresh = [p for p in pods if p["metadata"]["name"] not in old and pod_ready(p)]
            return len(fresh) == 2 and len(pods) == 2 and all(
                p["spec"]["containers"][0]["image"].endswith(NEXT_TRITON_VERSION) for p in fresh)

        wait_for("the rollout to the next Triton version", rolled, timeout=150, interval=1)
        rolled_at = time.monotonic()
        # A pod deleted under load is replaced, and traffic goes on.
        victim = ready_pods("roll", namespace)[0]["metadata"]["name"]
        kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
        wait_for("a replacement pod", lambda: len([p for p in ready_pods("roll", namespace)
                                                   if p["metadata"]["name"] != victim]) == 2, timeout=120, interval=1)
        replaced_at = time.monotonic()
        report = gen.wait()
    finally:
        gen.stop()
    print(f"\nrollout and replacement under 10 rps: {report['total_ok']} answered, {report['total_errors']} failed; "
          f"rolled after {rolled_at - started:.0f}s, the deleted pod replaced {replaced_at - rolled_at:.0f}s later")
    assert report["total_errors"] == 0, [w for w in report["timeline"] if w["errors"]]
    assert report["total_ok"] >= 0.95 * 10 * 120, report["steps"]


def test_deleted_triton_deployment_comes_back_and_serves(operator, node_prometheus, real_node, namespace, models,
                                                         tmp_path):
    apply(real_aiservice("heal", namespace, prometheus=node_prometheus.url))
    wait_ready("heal", namespace)
    kubectl("delete", "deployment", "heal-triton", "-n", namespace, "--wait=true")
    wait_ready("heal", namespace)
    wait_for("a ready pod of the recreated Deployment", lambda: ready_pods("heal", namespace), timeout=120)
    report = load(real_node, tmp_path, f"{service_ip('heal-triton', namespace)}:8000", [(5, 5)]).run()
    assert report["total_errors"] == 0 and report["total_ok"] > 0, report


def test_model_that_fails_to_load_is_degraded_with_the_reason(operator, node_prometheus, real_node, namespace,
                                                              models):
    apply(real_aiservice("broken", namespace, prometheus=node_prometheus.url, models=["broken"]))

    def degraded() -> dict | None:
        conds = conditions(get_json("aiservice", "broken", "-n", namespace))
        return conds if conds.get("Degraded", {}).get("status") == "True" else None

    conds = wait_for("the AIService Degraded", degraded, timeout=180, interval=1)
    print("\n" + json.dumps(conds, indent=1))
    assert conds["Ready"]["status"] == "False", conds["Ready"]
    assert "broken" in conds["Degraded"]["message"], conds["Degraded"]
    assert not ready_pods("broken", namespace)
    warnings = [e for e in events(namespace, "broken") if e["type"] == "Warning"]
    assert any("broken" in e["message"] for e in warnings), warnings


def test_every_dashboard_panel_shows_data_while_a_fleet_serves(operator, node_prometheus, real_node, namespace, models,
                                                               tmp_path):
    """The Grafana dashboard's queries, with its variables set to this AIService, against the real Prometheus that
    discovers the real Triton pods and scrapes the operator: each parses, and each panel has data.

    With AIFLEET_DASHBOARD_PICTURE=docs/dashboard.png it also draws the panels (scripts/dashboard_picture.py)."""
    node_prometheus.set_targets("aifleet-operator", [f"127.0.0.1:{operator.metrics_port}"])
    node_prometheus.wait_for_targets("aifleet-operator")
    started = time.time()
    # One pod serves at most 20 rps (see SERVICE_TIME_MS); 24 rps against a target of 8 scales the fleet up.
    apply(real_aiservice("dash", namespace, prometheus=node_prometheus.url, min_replicas=1, max_replicas=4,
                         target_rps=8))
    wait_ready("dash", namespace)
    url = f"{service_ip('dash-triton', namespace)}:8000"
    gen = load(real_node, tmp_path, url, [(90, 6), (120, 24)], workers=16, fresh_connections=True).start()
    try:
        wait_for("a scale-up under the load", lambda: len(ready_pods("dash", namespace)) >= 2, timeout=240,
                 interval=2)
        time.sleep(30)  # a few decisions after it, and the 5-minute rates have more than a minute of data
        # A query Prometheus cannot parse is refused: the check below can fail.
        with pytest.raises(dashboard.QueryError, match="bad_data"):
            dashboard.instant(node_prometheus.url, "sum(rate(nv_inference_request_success[1m])")
        shown = {}
        for panel, queries in dashboard.panels(namespace, "dash"):
            series = {q.ref: dashboard.instant(node_prometheus.url, q.expr) for q in queries}  # raises on bad_data
            shown[panel["title"]] = {ref: len(a) for ref, a in series.items()}
        print("\nseries per panel query: " + json.dumps(shown, indent=1))
        assert all(any(counts.values()) for counts in shown.values()), shown
        triton_rps = next(q for _, queries in dashboard.panels(namespace, "dash") for q in queries
                          if q.legend == "rps (Triton)")
        rps = dashboard.instant(node_prometheus.url, triton_rps.expr)
        assert float(rps[0]["value"][1]) > 5, rps  # Triton's own count of the load, through the dashboard's query
    finally:
        gen.stop()
    picture = os.environ.get("AIFLEET_DASHBOARD_PICTURE")
    if picture:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "dashboard_picture.py"), "--prometheus",
                        node_prometheus.url, "--namespace", namespace, "--aiservice", "dash",
                        "--minutes", f"{(time.time() - started) / 60:.1f}", "--out", picture], check=True, timeout=300)
