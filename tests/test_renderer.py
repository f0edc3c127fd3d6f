"""The renderer: deterministic, valid against the Kubernetes schemas, and what a production fleet needs."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml

from aifleet.api import AIService
from aifleet.api.children import TRITON_GRPC_PORT, TRITON_HTTP_PORT, TRITON_METRICS_PORT
from aifleet.renderer import CONFIG_HASH, render
from conftest import example_documents

K8S_SCHEMA_VERSION = "1.35.0"


def _ais(doc: dict, uid: str | None = "0b7c4c4e-1111-2222-3333-444455556666") -> AIService:
    doc = copy.deepcopy(doc)
    if uid:
        doc["metadata"]["uid"] = uid
    return AIService.model_validate(doc)


def _by_kind(manifests):
    return {m["kind"]: m for m in manifests}


@pytest.mark.parametrize("name,doc", example_documents(), ids=[n for n, _ in example_documents()])
def test_examples_render_valid_manifests(name, doc):
    for manifest in render(_ais(doc)):
        # Strict: unknown fields are errors, as the API server's field validation would make them.
        kubernetes_validate.validate(manifest, K8S_SCHEMA_VERSION, strict=True)


def test_render_is_deterministic(minimal):
    first = yaml.safe_dump_all(render(_ais(minimal)))
    assert first == yaml.safe_dump_all(render(_ais(minimal)))


def test_children_are_owned_and_labelled(minimal):
    for manifest in render(_ais(minimal)):
        meta = manifest["metadata"]
        assert meta["ownerReferences"][0]["kind"] == "AIService"
        assert meta["ownerReferences"][0]["controller"] is True
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "aifleet"
        assert meta["labels"]["app.kubernetes.io/instance"] == "sentiment"
        assert CONFIG_HASH in meta["annotations"]


def test_offline_render_has_no_owner(minimal):
    assert all("ownerReferences" not in m["metadata"] for m in render(_ais(minimal, uid=None)))


def test_triton_deployment(minimal):
    minimal["spec"]["inference"].update(
        gpusPerPod=2,
        nodeSelector={"nvidia.com/gpu.product": "A100"},
        resources={"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"memory": "32Gi"}},
    )
    deployment = _by_kind(render(_ais(minimal)))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "nvcr.io/nvidia/tritonserver:24.08-py3"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["requests"]["cpu"] == "4"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "A100"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert "--model-repository=s3://models/sentiment" in container["args"]
    assert "--load-model=sentiment" in container["args"]
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert [p["containerPort"] for p in container["ports"]] == [TRITON_HTTP_PORT, TRITON_GRPC_PORT, TRITON_METRICS_PORT]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "8002"


def test_triton_pod_is_restricted(minimal):
    pod = _by_kind(render(_ais(minimal)))["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    security = pod["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert all("hostPath" not in v for v in pod["volumes"])


def test_cpu_fleet_has_no_gpu(minimal):
    minimal["spec"]["inference"]["gpusPerPod"] = 0
    pod = _by_kind(render(_ais(minimal)))["Deployment"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"].get("limits", {})
    assert "tolerations" not in pod


def test_model_repository_from_volume_with_cache(minimal):
    minimal["spec"]["inference"]["modelRepository"] = {"persistentVolumeClaim": "models", "cache": {"enabled": True}}
    pod = _by_kind(render(_ais(minimal)))["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    assert "hostPath" in volumes["model-cache"]
    assert "--model-repository=/models" in pod["containers"][0]["args"]


def test_replicas_follow_the_cluster_within_bounds(minimal):
    ais = _ais(minimal)  # min 1, max 4

    def replicas(current):
        return _by_kind(render(ais, replicas=current))["Deployment"]["spec"]["replicas"]

    assert replicas(None) == 1
    assert replicas(3) == 3
    assert replicas(40) == 4
    assert replicas(0) == 1


def test_resize_is_not_a_new_configuration(minimal):
    ais = _ais(minimal)
    a = _by_kind(render(ais, replicas=1))["Deployment"]["metadata"]["annotations"][CONFIG_HASH]
    b = _by_kind(render(ais, replicas=3))["Deployment"]["metadata"]["annotations"][CONFIG_HASH]
    assert a == b


def test_hpa_engine_renders_hpa(minimal):
    minimal["spec"]["autoscaling"].update(engine="hpa", targetRPSPerPod=12.5)
    hpa = _by_kind(render(_ais(minimal)))["HorizontalPodAutoscaler"]
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == 4
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "12500m"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 180  # the spec's default, passed on
    assert hpa["spec"]["scaleTargetRef"]["name"] == "sentiment-triton"


def test_hpa_engine_passes_on_only_the_tolerances_the_user_set(minimal):
    minimal["spec"]["autoscaling"].update(engine="hpa")
    behavior = _by_kind(render(_ais(minimal)))["HorizontalPodAutoscaler"]["spec"]["behavior"]
    assert "tolerance" not in behavior["scaleUp"] and "tolerance" not in behavior["scaleDown"]  # the cluster's own
    minimal["spec"]["autoscaling"].update(tolerance=0.1, scaleUp={"tolerance": 0.05})
    behavior = _by_kind(render(_ais(minimal)))["HorizontalPodAutoscaler"]["spec"]["behavior"]
    assert (behavior["scaleUp"]["tolerance"], behavior["scaleDown"]["tolerance"]) == ("50m", "100m")


def test_operator_engine_renders_no_hpa(minimal):
    assert "HorizontalPodAutoscaler" not in _by_kind(render(_ais(minimal)))


def test_triton_image_pinned_by_digest(minimal):
    digest = "sha256:" + "0123456789abcdef" * 4
    minimal["spec"]["inference"].update(version="24.08-py3", digest=digest)
    manifests = render(_ais(minimal))
    deployment = _by_kind(manifests)["Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"nvcr.io/nvidia/tritonserver:24.08-py3@{digest}"
    )
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "24.08-py3"
    kubernetes_validate.validate(deployment, K8S_SCHEMA_VERSION, strict=True)
