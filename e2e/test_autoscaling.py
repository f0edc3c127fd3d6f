"""Autoscaling on real traffic: real Triton (PyTriton on the CPU), real Prometheus scraping it, a tritonclient
load generator, and the operator on the real control plane.

KWOK pods run no containers, so the Triton server runs on loopback and Prometheus labels its metrics with the
namespace and a pod name of the fleet, as a kubernetes_sd scrape would: the operator's query cannot tell.
"""

from __future__ import annotations

import copy
import math
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from aifleet.api.children import triton_pod_regex
from kube import condition, get_json, is_true, kubectl, scratch_namespace, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent / "services"))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())
TARGET = 20.0  # rps per pod
POLL = 5
SCALE_DOWN_WINDOW = 20
# The default query with a short rate window, so the test does not wait a minute for rate() to settle.
QUERY = (
    'sum(rate(nv_inference_request_success{namespace="{namespace}",pod=~"' + triton_pod_regex("{name}") + '"}[10s]))'
)


@pytest.fixture(scope="module")
def traffic_ns(cluster):
    with scratch_namespace("autoscaling") as name:
        yield name


@pytest.fixture(scope="module")
def triton(tmp_path_factory, prometheus, traffic_ns):
    with harness.TritonServer(tmp_path_factory.mktemp("triton")) as server:
        # As Prometheus' kubernetes_sd would label a pod of the fleet `chat`.
        prometheus.set_targets("triton", [(server.metrics_address, {"namespace": traffic_ns, "pod": "chat-triton-5d8f7-bcdfg"})])
        yield server


def chat(namespace: str, prometheus_url: str, **autoscaling) -> dict:
    doc = copy.deepcopy(MINIMAL)
    doc["metadata"].update(name="chat", namespace=namespace)
    doc["spec"]["autoscaling"] = {
        "minReplicas": 1, "maxReplicas": 6, "targetRPSPerPod": TARGET, "pollIntervalSeconds": POLL,
        "podStartupSeconds": 0,
        "scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW},
        "metrics": {"address": prometheus_url, "query": QUERY, "timeoutSeconds": 2, "staleAfterSeconds": 30},
        **autoscaling,
    }
    return doc


def apply(doc: dict) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))


def ais(namespace: str) -> dict:
    return get_json("aiservice", "chat", "-n", namespace)


def instant_queries(prometheus) -> float:
    """How many instant queries Prometheus has answered, from its own /metrics (it does not scrape itself here)."""
    text = urllib.request.urlopen(f"{prometheus.url}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line)


def replicas(namespace: str) -> int:
    return get_json("deployment", "chat-triton", "-n", namespace)["spec"]["replicas"]


def test_fleet_follows_real_traffic(operator, traffic_ns, prometheus, triton, tmp_path):
    apply(chat(traffic_ns, prometheus.url))
    wait_for("the fleet to be Ready at min", lambda: is_true(ais(traffic_ns), "Ready"), timeout=120)
    assert replicas(traffic_ns) == 1

    load = harness.LoadGenerator(tmp_path / "load", [triton.http_url], [(75, 90)], workers=8)
    load.start()
    try:
        # Up: within one poll of Prometheus showing the traffic, replicas = ceil(rps / target).
        seen = wait_for("the operator to see the traffic",
                        lambda: (o := ais(traffic_ns)) and (o["status"].get("currentRPS") or 0) > 60 and o, timeout=60)
        wait_for("replicas to rise to ceil(rps / target)",
                 lambda: replicas(traffic_ns) >= 4 or None, timeout=3 * POLL + 5)
        obj = ais(traffic_ns)
        rps, desired = obj["status"]["currentRPS"], obj["status"]["desiredReplicas"]
        decided = obj["status"].get("autoscaling", {})
        if decided.get("decidedBy") == "FastPath":
            # the fast path sized the fleet to the short-window rate while the 1-minute rate was still rising
            fast = decided["fastPathReplicas"]
            assert desired == min(6, fast), (decided, desired)
        else:
            assert desired == min(6, math.ceil(rps / TARGET * 0.999)) or abs(desired - rps / TARGET) < 1.2, (rps, desired)
        assert "ScaledUp" in kubectl("get", "events", "-n", traffic_ns, "--field-selector", "reason=ScaledUp")
        assert seen
    finally:
        report = load.wait()
    load_end = time.monotonic()
    assert report["steps"][0]["achieved_rps"] > 60, report

    # Down: the peak recommendation stays in the scale-down window for its full length after the traffic
    # stopped, so nothing is given back before that; then the fleet returns to min.
    peak = replicas(traffic_ns)
    while time.monotonic() - load_end < SCALE_DOWN_WINDOW - POLL - 1:
        assert replicas(traffic_ns) == peak, "gave capacity back inside the scale-down window"
        time.sleep(0.5)
    wait_for("replicas to fall back to min after the window", lambda: replicas(traffic_ns) == 1 or None,
             timeout=SCALE_DOWN_WINDOW + 4 * POLL, interval=0.5)
    assert time.monotonic() - load_end >= SCALE_DOWN_WINDOW - 1, "reached min before a full window of calm"
    events = kubectl("get", "events", "-n", traffic_ns, "--field-selector", "reason=ScaledDown", "-o", "jsonpath={.items[*].message}")
    assert "-> 1 replica" in events, events


def test_prometheus_outage_holds_and_recovers(operator, traffic_ns, prometheus, triton, tmp_path):
    apply(chat(traffic_ns, prometheus.url, minReplicas=2))
    wait_for("min 2", lambda: replicas(traffic_ns) == 2 or None, timeout=60)
    prometheus.stop()
    try:
        obj = wait_for("ScalingActive to turn False with the reason",
                       lambda: (o := ais(traffic_ns)) and (c := condition(o, "ScalingActive")) and c["status"] == "False"
                       and c["reason"] == "FailedGetMetrics" and o, timeout=4 * POLL)
        time.sleep(3 * POLL)
        assert replicas(traffic_ns) == 2, "replicas changed while metrics were missing"
        assert is_true(ais(traffic_ns), "Ready"), "a metrics outage is not an outage of the fleet"
        warnings = kubectl("get", "events", "-n", traffic_ns, "--field-selector", "reason=MetricsUnavailable")
        assert "MetricsUnavailable" in warnings
        assert obj["status"]["autoscaling"]["lastMetricError"] == "failed"
    finally:
        prometheus.start()
    wait_for("scaling to resume", lambda: is_true(ais(traffic_ns), "ScalingActive") or None, timeout=6 * POLL)
    assert "MetricsRecovered" in kubectl("get", "events", "-n", traffic_ns, "--field-selector", "reason=MetricsRecovered")


@pytest.mark.parametrize(
    "query,expected,limited",
    [
        ("vector(1e12)", 6, "TooManyReplicas"),  # absurdly large: clamped to max
        ("vector(-5)", 3, None),  # negative: invalid, held
        ("vector(NaN)", 3, None),  # NaN: held
        ("vector(0)", 2, "TooFewReplicas"),  # true zero: down to min, never below
    ],
)
def test_bounds_hold_whatever_the_metric_says(operator, traffic_ns, prometheus, query, expected, limited):
    spec = chat(traffic_ns, prometheus.url, minReplicas=2, scaleDown={"stabilizationWindowSeconds": 0})
    apply(spec)
    wait_for("a settled fleet", lambda: replicas(traffic_ns) == 2 or None, timeout=60)
    kubectl("scale", "deployment", "chat-triton", "-n", traffic_ns, "--replicas=3")  # start from the middle
    spec["spec"]["autoscaling"]["metrics"]["query"] = query
    apply(spec)
    wait_for(f"replicas {expected} for {query}", lambda: replicas(traffic_ns) == expected or None, timeout=6 * POLL)
    time.sleep(2 * POLL)
    assert replicas(traffic_ns) == expected
    obj = ais(traffic_ns)
    if limited:
        assert condition(obj, "ScalingLimited")["reason"] == limited
    else:
        assert condition(obj, "ScalingActive")["reason"] == "FailedGetMetrics"


def test_hpa_engine_hands_over_to_the_real_hpa_controller(operator, traffic_ns, prometheus):
    apply(chat(traffic_ns, prometheus.url, engine="hpa", metrics={"address": prometheus.url}))
    hpa = wait_for("the HPA controller to report on the HPA",
                   lambda: (h := get_json("hpa", "chat-triton", "-n", traffic_ns)) and (h.get("status") or {}).get("conditions") and h,
                   timeout=60)
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "triton_requests_per_second"
    # The operator mirrors the HPA controller's own conditions into the AIService.
    wait_for("ScalingActive mirrored from the HPA",
             lambda: (c := condition(ais(traffic_ns), "ScalingActive")) and c["reason"] in
             {x["reason"] for x in get_json("hpa", "chat-triton", "-n", traffic_ns)["status"]["conditions"]}, timeout=60)


def test_default_query_is_answered_by_one_batched_query(operator, traffic_ns, prometheus, triton, tmp_path):
    """No query in the spec: every service's RPS comes from one query per poll, not one query per service."""
    services = ["chat"] + [f"quiet{i}" for i in range(5)]
    for name in services + ["new"]:
        doc = chat(traffic_ns, prometheus.url)
        doc["metadata"]["name"] = name
        del doc["spec"]["autoscaling"]["metrics"]["query"]
        if name != "new":  # "new" keeps the default warm-up: its empty answers are not failures yet
            doc["spec"]["autoscaling"]["metrics"]["warmupSeconds"] = 0
        apply(doc)
    wait_for("a settled fleet", lambda: replicas(traffic_ns) == 1 or None, timeout=90)
    with harness.LoadGenerator(tmp_path / "load", [triton.http_url], [(50, 90)], workers=8):
        wait_for("the batched query to report the traffic",
                 lambda: (ais(traffic_ns)["status"].get("currentRPS") or 0) > 20 or None, timeout=60)
        wait_for("a scale-up on it", lambda: replicas(traffic_ns) > 1 or None, timeout=4 * POLL)
        before, started = instant_queries(prometheus), time.monotonic()
        time.sleep(4 * POLL)
        queries = instant_queries(prometheus) - before
        polls = (time.monotonic() - started) / POLL
    per_service = queries / polls / len(services)
    assert per_service < 0.5, f"{queries} queries in {polls:.1f} polls for {len(services)} services"
    for name in services[1:]:
        status = get_json("aiservice", name, "-n", traffic_ns)["status"]["autoscaling"]
        assert status["lastMetricError"] == "empty", "a service without traffic series must read as empty, not zero"
    fresh = get_json("aiservice", "new", "-n", traffic_ns)
    assert condition(fresh, "ScalingActive")["reason"] == "WaitingForMetrics", fresh["status"]
    warned = kubectl("get", "events", "-n", traffic_ns, "--field-selector",
                     "reason=MetricsUnavailable,involvedObject.name=new", "-o", "name")
    assert not warned.strip(), "a fleet that was never scraped yet is no metrics outage"
