"""Canary and A/B of model versions on real pods: the split of one Service's traffic, a failing canary rolled back,
a healthy one promoted, an operator restarted mid-analysis.

The stable and the canary versions are two Deployments behind the AIService's one Service; kube-proxy spreads
requests over the ready pods of both, so the canary's share of requests is its share of pods. Shares are measured
from each pod's own Triton counters. The failing canary serves the echo model from a second repository where every
fifth request of an instance fails (e2e/images/models.py `--fail-every 5`); no image changes.

Bad canary specs refused by the API server with the field named are cases of the bad-input corpus
(tests/bad_inputs/canary-*.yaml), run by e2e/test_validation.py.
"""

from __future__ import annotations

import json

import harness
import pytest
import yaml
from kube import get_json, kubectl, wait_for
from realnode import (
    NEXT_TRITON_VERSION,
    conditions,
    counter,
    events,
    http_text,
    models_directory,
    models_volume,
    pod_requests,
    ready_pods,
    real_aiservice,
    service_ip,
    triton_pods,
)

from aifleet.api.children import TRACK_LABEL, child_names
from aifleet.api.timestamps import parse_timestamp

SERVICE_TIME_MS = 50  # one instance per pod: a pod serves up to 20 rps
POLL_SECONDS = 5  # the analysis runs each poll
# Tolerance of the observed share, in percentage points. With fresh connections kube-proxy picks a pod at random
# per request: at 25 % over ~900 requests one standard deviation is ~1.5 points; 6 points is 4 of them.
SHARE_TOLERANCE = 6.0


@pytest.fixture
def namespace(real_namespace):
    return real_namespace


@pytest.fixture
def models(real_node, namespace):
    """Two repositories on the real node: `models` serves a healthy echo, `models-failing` an echo whose every
    fifth request (per instance) fails."""
    base = real_node.volumes / namespace
    healthy = models_directory(base / "healthy", service_time_ms=SERVICE_TIME_MS, instances=1)
    failing = models_directory(base / "failing", service_time_ms=SERVICE_TIME_MS, instances=1, fail_every=5)
    with models_volume(real_node, namespace, healthy), models_volume(real_node, namespace, failing, "models-failing"):
        yield


def apply(manifest: dict) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))


def canary_service(name: str, namespace: str, prometheus: str, replicas: int, canary: dict) -> dict:
    manifest = real_aiservice(name, namespace, prometheus=prometheus, min_replicas=replicas, max_replicas=replicas)
    manifest["spec"]["autoscaling"]["pollIntervalSeconds"] = POLL_SECONDS
    manifest["spec"]["inference"]["canary"] = canary
    return manifest


def load(real_node, tmp_path, url: str, profile) -> harness.LoadGenerator:
    return harness.LoadGenerator(tmp_path / "loadgen", [url], profile, model="echo", input_name="INPUT0", batch=0,
                                 allow_networks=real_node.networks, window_s=5, fresh_connections=True)


def is_canary(pod: dict) -> bool:
    return pod["metadata"]["labels"].get(TRACK_LABEL) == "canary"


def split_ready(name: str, namespace: str, stable: int, canary: int) -> list[dict] | None:
    pods = ready_pods(name, namespace)
    counts = (sum(not is_canary(p) for p in pods), sum(is_canary(p) for p in pods))
    return pods if counts == (stable, canary) and len(triton_pods(name, namespace)) == stable + canary else None


def pod_failures(pod: dict, real_node) -> float:
    text = http_text(f"http://{pod['status']['podIP']}:8002/metrics", real_node)
    return counter(text, "nv_inference_request_failure", model="echo")


def canary_status(name: str, namespace: str) -> dict:
    return ((get_json("aiservice", name, "-n", namespace) or {}).get("status") or {}).get("canary") or {}


def printed_columns(name: str, namespace: str) -> dict[str, str]:
    """`kubectl get ais NAME`, as a person reads it: header -> value."""
    header, row = kubectl("get", "aiservice", name, "-n", namespace).strip().splitlines()
    return dict(zip(header.split(), row.split(), strict=True))


def test_canary_at_25_percent_of_4_pods_gets_its_share_of_requests(operator, node_prometheus, real_node, namespace,
                                                                  models, tmp_path):
    # An A/B test (no promotion), so the split holds for as long as the test measures it.
    apply(canary_service("share", namespace, node_prometheus.url, 4, {
        "version": NEXT_TRITON_VERSION, "trafficPercent": 25, "analysis": {"promotion": "None", "watchSeconds": 30},
    }))
    pods = wait_for("3 stable and 1 canary pods ready", lambda: split_ready("share", namespace, 3, 1), timeout=150,
                    interval=1)
    canary_image = next(p for p in pods if is_canary(p))["spec"]["containers"][0]["image"]
    assert canary_image.endswith(f":{NEXT_TRITON_VERSION}"), canary_image
    assert {p["metadata"]["labels"]["app.kubernetes.io/version"] for p in pods if not is_canary(p)} == {"24.08-py3"}

    before = {p["metadata"]["name"]: pod_requests(p, real_node) for p in pods}
    report = load(real_node, tmp_path, f"{service_ip(child_names('share').triton, namespace)}:8000", [(60, 16)]).run()
    assert report["total_errors"] == 0, report["steps"]
    served = {p["metadata"]["name"]: pod_requests(p, real_node) - before[p["metadata"]["name"]] for p in pods}
    total = sum(served.values())
    observed = 100 * sum(served[p["metadata"]["name"]] for p in pods if is_canary(p)) / total
    print(f"\nrequests per pod: {served}; the canary answered {observed:.1f} % of {total:.0f} (target 25 %, "
          f"tolerance {SHARE_TOLERANCE:g} points)")
    assert total == report["total_ok"], (served, report["total_ok"])
    assert abs(observed - 25) <= SHARE_TOLERANCE, served

    # The operator reports the share it observed (from Prometheus, per version), and kubectl shows the target.
    status = wait_for("the observed share in status", lambda: (canary_status("share", namespace).get("canary") or {})
                      .get("observedShare") is not None and canary_status("share", namespace), timeout=30)
    print("status.canary: " + json.dumps(status, indent=1))
    assert status["phase"] == "Testing" and status["share"] == 25, status
    assert (status["stable"]["replicas"], status["canary"]["replicas"]) == (3, 1), status
    assert printed_columns("share", namespace)["CANARY"] == "25"


def test_failing_canary_is_rolled_back_while_stable_serves_without_failure(operator, node_prometheus, real_node,
                                                                          namespace, models, tmp_path):
    watch = 60
    apply(canary_service("bad", namespace, node_prometheus.url, 4, {
        "modelRepository": {"persistentVolumeClaim": "models-failing"},
        "trafficPercent": 25,
        "analysis": {"watchSeconds": watch, "minRequests": 20, "maxFailureRatio": 0.05},
    }))
    pods = wait_for("3 stable and 1 canary pods ready", lambda: split_ready("bad", namespace, 3, 1), timeout=150,
                    interval=1)
    stable = [p for p in pods if not is_canary(p)]
    # Longer than the watch window: a canary still there when it ends would have been promoted, not rolled back.
    gen = load(real_node, tmp_path, f"{service_ip(child_names('bad').triton, namespace)}:8000", [(watch + 30, 10)]).start()
    try:
        rolled_back = wait_for("the canary rolled back", lambda: canary_status("bad", namespace).get("phase")
                               in ("RolledBack", "Promoted") and canary_status("bad", namespace), timeout=watch + 30,
                               interval=1)
        stable_failures = {p["metadata"]["name"]: pod_failures(p, real_node) for p in stable}
        report = gen.wait()
    finally:
        gen.stop()
    print("\nstatus.canary: " + json.dumps(rolled_back, indent=1))
    assert rolled_back["phase"] == "RolledBack", rolled_back
    assert "failure ratio" in rolled_back["verdict"], rolled_back
    # The stable pods failed nothing; the only failures the clients saw are the canary's.
    assert set(stable_failures.values()) == {0.0}, stable_failures
    assert 0 < report["total_errors"] < report["total_ok"] / 10, report["steps"]
    wait_for("the canary Deployment gone", lambda: get_json("deployment", child_names("bad").triton_canary, "-n", namespace) is None,
             timeout=60)
    wait_for("4 stable pods", lambda: split_ready("bad", namespace, 4, 0), timeout=120, interval=1)
    # The condition and the event name the signal and its value.
    cond = conditions(get_json("aiservice", "bad", "-n", namespace))["CanaryHealthy"]
    assert (cond["status"], cond["reason"]) == ("False", "RolledBack") and "failure ratio 0." in cond["message"], cond
    # Within the watch window, by the operator's own record: the window's start and the condition's transition.
    judged_after = parse_timestamp(cond["lastTransitionTime"]) - parse_timestamp(rolled_back["windowStart"])
    print(f"rolled back {judged_after:.0f}s into a {watch}s window")
    assert judged_after < watch, (rolled_back, cond)
    story = [(e["reason"], e["message"]) for e in events(namespace, "bad") if e["reason"].startswith("Canary")]
    print("events: " + json.dumps(story, indent=1))
    assert [r for r, _ in story] == ["CanaryStarted", "CanaryRolledBack"], story
    assert "failure ratio 0." in story[-1][1], story


def test_healthy_canary_is_promoted_without_a_failed_request_across_an_operator_restart(
        operator, node_prometheus, real_node, namespace, models, tmp_path):
    watch = 40
    apply(canary_service("good", namespace, node_prometheus.url, 2, {
        "version": NEXT_TRITON_VERSION,
        "trafficPercent": 50,
        "analysis": {"watchSeconds": watch, "minRequests": 20, "maxFailureRatio": 0.0},
    }))
    wait_for("1 stable and 1 canary pod ready", lambda: split_ready("good", namespace, 1, 1), timeout=150, interval=1)
    gen = load(real_node, tmp_path, f"{service_ip(child_names('good').triton, namespace)}:8000", [(130, 8)]).start()
    try:
        # Mid-window, the operator dies and a new one starts: the window it resumes is the one in status.
        first = wait_for("requests counted in the analysis", lambda: "requests" in canary_status("good", namespace)
                         .get("verdict", "") and canary_status("good", namespace), timeout=60, interval=1)
        operator.kill()
        operator.start()
        promoted = wait_for("the canary promoted", lambda: canary_status("good", namespace).get("phase")
                            in ("Promoted", "RolledBack") and canary_status("good", namespace), timeout=watch + 60,
                            interval=1)
        assert promoted["phase"] == "Promoted", promoted
        assert promoted["windowStart"] == first["windowStart"], (first, promoted)

        def rolled() -> bool:
            pods = triton_pods("good", namespace)
            return len(pods) == 2 and len(ready_pods("good", namespace)) == 2 and all(
                not is_canary(p) and p["spec"]["containers"][0]["image"].endswith(f":{NEXT_TRITON_VERSION}")
                for p in pods)

        wait_for("the stable Deployment on the canary's version", rolled, timeout=120, interval=1)
        report = gen.wait()
    finally:
        gen.stop()
    print(f"\npromotion under 8 rps: {report['total_ok']} answered, {report['total_errors']} failed")
    assert report["total_errors"] == 0, [w for w in report["timeline"] if w["errors"]]
    assert get_json("deployment", child_names("good").triton_canary, "-n", namespace) is None
    stable = get_json("deployment", child_names("good").triton, "-n", namespace)
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{NEXT_TRITON_VERSION}")
    story = [e["reason"] for e in events(namespace, "good") if e["reason"].startswith("Canary")]
    assert story == ["CanaryStarted", "CanaryPromoted"], story
    cond = conditions(get_json("aiservice", "good", "-n", namespace))["CanaryHealthy"]
    assert (cond["status"], cond["reason"]) == ("True", "Promoted"), cond
