"""The `hpa` engine end to end: real prometheus-adapter, real Prometheus, real Triton, the cluster's own HPA controller.

prometheus-adapter is built from its Go module (e2e/tools/build-adapter.sh) and runs as a process on loopback with
the rule the chart ships (charts/aifleet-operator/files/prometheus-adapter-rules.yaml, the one docs/hpa-engine.md
documents). The kube-apiserver reaches it through the APIService `v1beta1.custom.metrics.k8s.io` (e2e/adapter.py says how).

As in test_autoscaling.py, the Triton server runs on loopback and Prometheus labels its metrics with the namespace
and a pod name, as kubernetes_sd would. The name must be one of the fleet's real pods: the HPA asks the adapter for
the pods of the Deployment's selector, and the adapter asks Prometheus for exactly those names.

Only on the local control plane (cluster.env next to the kubeconfig): on kind the API server runs in a container,
where `localhost` is not this machine.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import yaml

from adapter import APISERVICE, RULES, adapter_binary, metrics_adapter
from kube import condition, get_json, kubectl, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent / "services"))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "hpa-engine.md"
MINIMAL = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())

METRIC = "triton_requests_per_second"
TARGET = 20.0  # rps per pod
LOAD_RPS = 90  # -> ceil(90 / 20) = 5 pods
TOLERANCE = 0.1  # the HPA controller's default --horizontal-pod-autoscaler-tolerance
MAX_REPLICAS = 8  # above what the load asks for, so the HPA's own arithmetic shows, not the cap


def local_control_plane() -> bool:
    kubeconfig = os.environ.get("KUBECONFIG", "")
    return bool(kubeconfig) and (Path(kubeconfig).parent / "cluster.env").exists()


pytestmark = pytest.mark.skipif(
    not local_control_plane(),
    reason="needs the local control plane (e2e/cluster/up.sh): the adapter runs on this machine's loopback, "
           "which an API server in a container (kind) cannot reach as `localhost`",
)


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def adapter_bin() -> str:
    """prometheus-adapter built from its Go module."""
    return adapter_binary()


@pytest.fixture(scope="module")
def fleet_ns(cluster):
    name = f"e2e-hpa-adapter-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", name)
    yield name
    # While the operator still runs to release its finalizer (it may be this module's last user).
    kubectl("delete", "aiservice", "--all", "-n", name, "--timeout=60s", check=False, timeout=90)
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def triton(tmp_path_factory, prometheus):
    with harness.TritonServer(tmp_path_factory.mktemp("triton")) as server:
        yield server
    prometheus.set_targets("triton", [])


@pytest.fixture(scope="module")
def adapter(cluster, adapter_bin, prometheus, tmp_path_factory):
    """prometheus-adapter on loopback, registered as the custom.metrics.k8s.io API server of the cluster."""
    existing = get_json("apiservice", APISERVICE)
    if existing is not None:
        pytest.fail(f"the cluster already has an APIService {APISERVICE} (service {existing['spec'].get('service')}); "
                    "this test registers its own adapter and would replace it")
    with metrics_adapter(adapter_bin, prometheus.url, tmp_path_factory.mktemp("prometheus-adapter")) as proc:
        yield proc


# -------------------------------------------------------------------------------------------------- helpers

def fleet(namespace: str, prometheus_url: str) -> dict:
    doc = json.loads(json.dumps(MINIMAL))
    doc["metadata"].update(name="chat", namespace=namespace)
    doc["spec"]["autoscaling"] = {
        "engine": "hpa", "minReplicas": 1, "maxReplicas": MAX_REPLICAS, "targetRPSPerPod": TARGET,
        "metrics": {"address": prometheus_url},
    }
    return doc


def fleet_pods(namespace: str) -> list[str]:
    deployment = get_json("deployment", "chat-triton", "-n", namespace)
    if deployment is None:
        return []
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    pods = get_json("pods", "-n", namespace, "-l", selector)["items"]
    return sorted(p["metadata"]["name"] for p in pods
                  if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"))


def custom_metric(namespace: str) -> dict[str, float]:
    """What the HPA controller reads: the Pods metric of every pod of the namespace, through the aggregator."""
    path = f"/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/*/{METRIC}"
    doc = json.loads(kubectl("get", "--raw", path))
    assert doc["kind"] == "MetricValueList", doc
    return {item["describedObject"]["name"]: quantity(item["value"]) for item in doc["items"]
            if item["metricName"] == METRIC and item["describedObject"]["kind"] == "Pod"}


def quantity(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(m|k|M)?", text)
    assert m, text
    return float(m.group(1)) * {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6}[m.group(2)]


def hpa(namespace: str) -> dict:
    return get_json("hpa", "chat-triton", "-n", namespace)


def replicas(namespace: str) -> int:
    return get_json("deployment", "chat-triton", "-n", namespace)["spec"]["replicas"]


def doc_rules() -> list[dict]:
    """The rule block of docs/hpa-engine.md."""
    for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S):
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and "rules" in doc:
            return doc["rules"]
    raise AssertionError(f"no rules block in {DOC}")


# ---------------------------------------------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def fleet_pod(operator, adapter, fleet_ns, prometheus, triton) -> str:
    """The `hpa` fleet, at its one pod: that pod's name."""
    kubectl("apply", "-f", "-", input=yaml.safe_dump(fleet(fleet_ns, prometheus.url)))
    (pod,) = wait_for("the fleet's one pod", lambda: (p := fleet_pods(fleet_ns)) and len(p) == 1 and p, timeout=90)
    return pod


def adapter_lists_the_metric() -> bool:
    discovery = json.loads(kubectl("get", "--raw", "/apis/custom.metrics.k8s.io/v1beta1"))
    return f"pods/{METRIC}" in {r["name"] for r in discovery["resources"]}


def label_triton_as(prometheus, triton, namespace: str, pod: str) -> None:
    prometheus.set_targets("triton", [(triton.metrics_address, {"namespace": namespace, "pod": pod})])
    wait_for(f"Prometheus to have Triton's series as pod {pod}", lambda: prometheus.query(
        f'nv_inference_request_success{{namespace="{namespace}",pod="{pod}"}}'), timeout=30)
    # The adapter's relist (every 5 s here) finds the series' metric; until then it answers NotFound.
    wait_for("the adapter to list the metric", adapter_lists_the_metric, timeout=30)


@pytest.fixture
def serving_pod(fleet_pod, fleet_ns, prometheus, triton) -> str:
    """The Triton server's metrics labelled as the fleet's pod, as kubernetes_sd would label them."""
    label_triton_as(prometheus, triton, fleet_ns, fleet_pod)
    return fleet_pod


def test_a_series_of_a_pod_that_does_not_exist_is_not_the_fleets(fleet_ns, prometheus, triton, fleet_pod):
    """The HPA averages over the Deployment's actual pods: a series labelled with another pod name (what a
    made-up name in a test would be) is never the fleet's metric, and the HPA says it found none."""
    label_triton_as(prometheus, triton, fleet_ns, "chat-triton-5d8f7-bcdfg")
    # The adapter knows the metric (its relist found the series) but has no value for any pod of the namespace,
    # so the HPA has nothing to scale on.
    assert custom_metric(fleet_ns) == {}

    def no_metric(obj: dict | None) -> bool:
        c = condition(obj, "ScalingActive")
        return bool(c and c["status"] == "False" and c["reason"] == "FailedGetPodsMetric")

    wait_for("the HPA to report that it got no metric for the fleet's pods",
             lambda: no_metric(h := hpa(fleet_ns)) and "no metrics returned" in condition(h, "ScalingActive")["message"],
             timeout=45)
    wait_for("the AIService to mirror it", lambda: no_metric(get_json("aiservice", "chat", "-n", fleet_ns)), timeout=30)
    assert replicas(fleet_ns) == 1


def test_the_adapter_serves_the_documented_rule_for_the_fleets_pods(fleet_ns, prometheus, triton, serving_pod, tmp_path):
    assert yaml.safe_load(RULES.read_text())["rules"] == doc_rules(), "the chart's rule and docs/hpa-engine.md differ"
    with harness.LoadGenerator(tmp_path / "load", [triton.http_url], [(40, 10)], workers=4):
        values = wait_for("the adapter to serve a rate for the serving pod",
                          lambda: (v := custom_metric(fleet_ns)) and v.get(serving_pod, 0) > 1 and v, timeout=40)
    # Only pods that exist and have series: the adapter asks Prometheus for the namespace's real pod names.
    assert set(values) == {serving_pod}, values
    # The value is the rule's query, as Prometheus itself answers it.
    direct = prometheus.query_value(
        f'sum(rate(nv_inference_request_success{{namespace="{fleet_ns}",pod="{serving_pod}"}}[1m]))')
    assert direct is not None and abs(values[serving_pod] - direct) <= max(1.0, 0.2 * direct), (values, direct)
    # The API answers for one named pod too (what `kubectl get --raw .../pods/<name>/...` shows).
    one = json.loads(kubectl("get", "--raw", f"/apis/custom.metrics.k8s.io/v1beta1/namespaces/{fleet_ns}/pods/"
                                            f"{urllib.parse.quote(serving_pod)}/{METRIC}"))
    assert [i["describedObject"]["name"] for i in one["items"]] == [serving_pod]


def test_the_real_hpa_controller_scales_the_fleet_on_real_load(fleet_ns, prometheus, triton, serving_pod, tmp_path):
    """~90 rps on the fleet's one pod against 20 rps per pod: the HPA controller scales the Deployment to
    ceil(90 / 20) = 5, and the AIService mirrors the HPA's conditions.

    One Triton process stands for the one pod that existed when the load came in. The pods the HPA adds have
    no series (no Triton behind them), and for a scale-up the HPA counts a pod without a metric as 0: so the
    average it computes over the Deployment's pods is (rate of the serving pod) / replicas, and it settles at
    the smallest count whose average is within its 10% tolerance of the target, never above ceil(rate / target).
    The rule's rate is over 1 minute, so the HPA climbs with it as the window fills.
    """
    rates: list[float] = []

    def serving_rate() -> float:
        rate = custom_metric(fleet_ns).get(serving_pod, 0.0)
        rates.append(rate)
        return rate

    def caught_up():
        h, rate = hpa(fleet_ns), serving_rate()
        desired = (h.get("status") or {}).get("desiredReplicas") or 0
        # The HPA holds once rate / (desired * target) is within its tolerance of 1.
        return desired >= math.ceil(rate / (TARGET * (1 + TOLERANCE))) and (h, rate)

    load = harness.LoadGenerator(tmp_path / "load", [triton.http_url], [(150, LOAD_RPS)], workers=8)
    load.start()
    started = time.monotonic()
    try:
        # The rule's rate is over 1 minute: let the window fill with the load (the HPA climbs meanwhile).
        while time.monotonic() - started < 62:
            serving_rate()
            time.sleep(2)
        assert rates[-1] > 0.8 * LOAD_RPS, f"the load did not reach {LOAD_RPS} rps: {rates}\n{load.process.log_tail()}"
        settled, rate = wait_for("the HPA controller to catch up with the traffic", caught_up, timeout=60, interval=2)
        desired = settled["status"]["desiredReplicas"]
        wait_for(f"the Deployment to follow the HPA to {desired}",
                 lambda: replicas(fleet_ns) == desired and len(fleet_pods(fleet_ns)) == desired, timeout=30)
    finally:
        load.stop()

    # ceil(rate / (1.1 * target)) <= desired <= ceil(rate / target): for 90 rps, exactly 5.
    assert desired > 1
    assert math.ceil(rate / (TARGET * (1 + TOLERANCE))) <= desired <= math.ceil(max(rates) / TARGET), (desired, rates)
    # The HPA controller itself says it read the adapter's metric, and why it scaled.
    active = condition(settled, "ScalingActive")
    assert active["status"] == "True" and active["reason"] == "ValidMetricFound", active
    (current,) = settled["status"]["currentMetrics"]
    assert current["type"] == "Pods" and current["pods"]["metric"]["name"] == METRIC
    rescales = kubectl("get", "events", "-n", fleet_ns, "--field-selector",
                       "reason=SuccessfulRescale,involvedObject.kind=HorizontalPodAutoscaler",
                       "-o", "jsonpath={.items[*].message}")
    assert f"{METRIC} above target" in rescales, rescales

    # The AIService mirrors the HPA's own conditions and desired count.
    def mirrored():
        obj, h = get_json("aiservice", "chat", "-n", fleet_ns), hpa(fleet_ns)
        active = condition(obj, "ScalingActive")
        return (active and active["status"] == "True" and active["reason"] == "ValidMetricFound"
                and obj["status"].get("desiredReplicas") == h["status"]["desiredReplicas"] and obj)

    obj = wait_for("the AIService to mirror the HPA", mirrored, timeout=30)
    assert condition(obj, "AbleToScale")["status"] == "True"
