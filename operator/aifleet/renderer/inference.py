"""The Triton Inference Server fleet: ServiceAccount, Service, Deployment, PodDisruptionBudget (and, with the
`hpa` engine, its HorizontalPodAutoscaler)."""

from __future__ import annotations

import math
from typing import Any

from ..api import AIService
from ..api.canary import GATEWAY_GROUP, CanaryStatus
from ..api.children import (
    CANARY,
    STABLE,
    TRACK_LABEL,
    TRITON,
    TRITON_ADMIN_HEADER,
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
    canary_selector_labels,
    common_labels,
    names,
    selector_labels,
    service_host,
    stable_track_labels,
)
from ..api.inference import InferenceSpec
from ..autoscaler.canary import Split, revision, split
from .autoscaling import render_hpa
from .common import from_template
from .component import Component, ComponentState, Observed, Rendering, RenderInputs, workload_state
from .network import network_policy
from .pods import pod_problems, stalled
from .secretdata import generated_secret, new_password

GPU_RESOURCE = "nvidia.com/gpu"
MODEL_MOUNT = "/models"
CACHE_MOUNT = "/model-cache"
# Triton copies remote repositories into these directories; pointing them at a node cache keeps the copy.
_CLOUD_MOUNT_ENV = ("TRITON_AWS_MOUNT_DIRECTORY", "TRITON_GCS_MOUNT_DIRECTORY", "TRITON_AZURE_MOUNT_DIRECTORY")
# Triton's APIs that change the server (load or unload a model, which can run code; shared-memory regions; trace
# and log files) answer only requests carrying the key of the generated admin Secret. Inference, health,
# metadata, model configuration and statistics stay open to clients.
ADMIN_APIS = ("model-repository", "shared-memory", "trace", "logging")
ADMIN_KEY = "key"  # in the admin Secret
# The key reaches Triton's flags through this variable (kubelet expands `$(VAR)` in args): no manifest holds it.
ADMIN_KEY_ENV = "AIFLEET_ADMIN_KEY"
TEMPLATES = (
    "triton-serviceaccount.yaml.j2",
    "triton-service.yaml.j2",
    "triton-deployment.yaml.j2",
    "triton-pdb.yaml.j2",
)
DEPLOYMENT_TEMPLATE = "triton-deployment.yaml.j2"
SERVICE_TEMPLATE = "triton-service.yaml.j2"
# Triton's latency summaries (quantiles over a sliding window), on the canary's pods when its analysis has a
# latency or queue-time threshold: those thresholds are read from them.
SUMMARY_LATENCIES = "--metrics-config=summary_latencies=true"


def triton_args(inf: InferenceSpec) -> list[str]:
    repo = inf.model_repository
    args = [
        f"--model-repository={repo.uri or MODEL_MOUNT}",
        f"--http-port={TRITON_HTTP_PORT}",
        f"--grpc-port={TRITON_GRPC_PORT}",
        f"--metrics-port={TRITON_METRICS_PORT}",
        "--allow-metrics=true",
        f"--allow-gpu-metrics={'true' if inf.gpus_per_pod else 'false'}",
        # Ready only when every model is loaded, so the Service never routes to a pod that would 503.
        "--strict-readiness=true",
        "--exit-on-error=true",
    ]
    restriction = f"{','.join(ADMIN_APIS)}:{TRITON_ADMIN_HEADER}=$({ADMIN_KEY_ENV})"
    args += [f"--http-restricted-api={restriction}", f"--grpc-restricted-protocol={restriction}"]
    if inf.models:
        args.append("--model-control-mode=explicit")
        args += [f"--load-model={model}" for model in inf.models]
    return args + list(inf.extra_args)


def triton_image(inf: InferenceSpec) -> str:
    """The image reference: by tag, or pinned by digest with the tag kept for readers."""
    reference = f"{inf.image}:{inf.version}"
    return f"{reference}@{inf.digest}" if inf.digest else reference


def _resources(inf: InferenceSpec) -> dict[str, Any]:
    out = {
        "requests": inf.resources.requests.to_wire(),
        "limits": inf.resources.limits.to_wire(),
    }
    if inf.gpus_per_pod:
        # Extended resources must have requests == limits; setting both keeps that explicit.
        out["requests"][GPU_RESOURCE] = str(inf.gpus_per_pod)
        out["limits"][GPU_RESOURCE] = str(inf.gpus_per_pod)
    return {k: v for k, v in out.items() if v}


def _tolerations(inf: InferenceSpec) -> list[dict[str, Any]]:
    tolerations = [t.to_wire() for t in inf.tolerations]
    if inf.gpus_per_pod and not any(t.get("key") == GPU_RESOURCE for t in tolerations):
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    return tolerations


def _volumes(inf: InferenceSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": inf.shm_size}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    repo = inf.model_repository
    if repo.persistent_volume_claim:
        volumes.append(
            {"name": "models", "persistentVolumeClaim": {"claimName": repo.persistent_volume_claim, "readOnly": True}}
        )
        mounts.append({"name": "models", "mountPath": MODEL_MOUNT, "readOnly": True})
    if repo.cache.enabled:
        volumes.append({"name": "model-cache", "hostPath": {"path": repo.cache.host_path, "type": "DirectoryOrCreate"}})
        mounts.append({"name": "model-cache", "mountPath": CACHE_MOUNT})
    return volumes, mounts


def _env(ais: AIService, inf: InferenceSpec) -> list[dict[str, Any]]:
    # The root filesystem is read-only: anything Triton or a Python backend caches under $HOME goes to /tmp.
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": "/tmp"},
        {"name": ADMIN_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": names(ais).triton_admin, "key": ADMIN_KEY}}},
    ]
    if inf.model_repository.cache.enabled:
        env += [{"name": name, "value": CACHE_MOUNT} for name in _CLOUD_MOUNT_ENV]
    return env


def startup_failure_threshold(inf: InferenceSpec) -> int:
    return max(1, math.ceil(inf.probes.startup_timeout_seconds / inf.probes.period_seconds))


def _deployment_context(ais: AIService, inf: InferenceSpec, replicas: int) -> dict[str, Any]:
    volumes, mounts = _volumes(inf)
    return {
        "spec": ais.spec.model_copy(update={"inference": inf}),
        "names": names(ais),
        "deployment_name": names(ais).triton,
        "namespace": ais.metadata.namespace,
        "labels": common_labels(ais, TRITON, inf.version),
        "pod_labels": {**common_labels(ais, TRITON, inf.version), TRACK_LABEL: STABLE},
        "selector": selector_labels(ais, TRITON),
        "service_name": names(ais).triton,
        "service_selector": selector_labels(ais, TRITON),
        "http_port": TRITON_HTTP_PORT,
        "grpc_port": TRITON_GRPC_PORT,
        "metrics_port": TRITON_METRICS_PORT,
        "replicas": replicas,
        "image": triton_image(inf),
        "args": triton_args(inf),
        "env": _env(ais, inf),
        "resources": _resources(inf),
        "node_selector": dict(sorted(inf.node_selector.items())),
        "tolerations": _tolerations(inf),
        "volumes": volumes,
        "volume_mounts": mounts,
        "startup_failure_threshold": startup_failure_threshold(inf),
        "max_unavailable": _int_or_percent(inf.disruption.max_unavailable),
    }


def render_inference(ais: AIService, replicas: int, inf: InferenceSpec | None = None) -> list[dict[str, Any]]:
    """The stable version's children; `inf` is what the stable Deployment runs (a promoted canary's spec)."""
    context = _deployment_context(ais, inf or ais.spec.inference, replicas)
    policy = network_policy(
        ais, TRITON, names(ais).triton, (TRITON_HTTP_PORT, TRITON_GRPC_PORT), (TRITON_METRICS_PORT,)
    )
    return [from_template(template, **context) for template in TEMPLATES] + policy


def render_canary(ais: AIService, canary: InferenceSpec, replicas: int) -> dict[str, Any]:
    """The canary's Deployment: the stable one's pod spec with the canary's fields, its own name, and the track
    label on its pods. The Service and the PodDisruptionBudget select both versions' pods."""
    analysis = ais.spec.inference.canary.analysis if ais.spec.inference.canary else None
    if analysis and (analysis.max_p95_latency_ms is not None or analysis.max_p95_queue_ms is not None):
        canary = canary.model_copy(update={"extra_args": [*canary.extra_args, SUMMARY_LATENCIES]})
    context = _deployment_context(ais, canary, replicas)
    context.update(
        deployment_name=names(ais).triton_canary,
        labels={**context["labels"], TRACK_LABEL: CANARY},
        pod_labels={**context["labels"], TRACK_LABEL: CANARY},
        selector=canary_selector_labels(ais),
    )
    return from_template(DEPLOYMENT_TEMPLATE, **context)


def render_route(ais: AIService, stable: InferenceSpec, canary: InferenceSpec, share: int) -> list[dict[str, Any]]:
    """A Service per version and an HTTPRoute that weights them by the canary's share (stable 100 - share, canary
    share): where a Gateway serves the route, its requests split exactly so, whatever the pods per version. The
    shared Service keeps selecting both versions for clients that do not go through a Gateway."""
    children = names(ais)
    services = [
        from_template(
            SERVICE_TEMPLATE,
            **{
                **_deployment_context(ais, inf, 0),
                "labels": {**common_labels(ais, TRITON, inf.version), TRACK_LABEL: track},
                "service_name": name,
                "service_selector": selector,
            },
        )
        for name, inf, track, selector in (
            (children.triton_stable, stable, STABLE, stable_track_labels(ais)),
            (children.triton_canary, canary, CANARY, canary_selector_labels(ais)),
        )
    ]
    backends = [
        {"name": children.triton_stable, "port": TRITON_HTTP_PORT, "weight": 100 - share},
        {"name": children.triton_canary, "port": TRITON_HTTP_PORT, "weight": share},
    ]
    spec: dict[str, Any] = {"rules": [{"backendRefs": backends}]}
    gateway = ais.spec.inference.canary.gateway if ais.spec.inference.canary else None
    if gateway and gateway.parent_refs:  # set only when given: the API server drops an empty list
        spec["parentRefs"] = [ref.to_wire() for ref in gateway.parent_refs]
    route = {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": children.triton, "namespace": ais.metadata.namespace, "labels": common_labels(ais, TRITON)},
        "spec": spec,
    }
    return [*services, route]


def versions(ais: AIService, state: CanaryStatus | None, total: int) -> tuple[InferenceSpec, Split, InferenceSpec | None]:
    """(what the stable Deployment runs, the split of the fleet, what the canary runs or None).

    The state is `status.canary`, valid only for the canary spec it was recorded for: a promoted canary runs on
    the stable Deployment until the spec folds it in; a rolled-back one, or a share of 0, runs nowhere.
    """
    inf = ais.spec.inference
    canary = inf.canary_inference()
    if inf.canary is None or canary is None or state is None or state.revision != revision(inf.canary):
        return inf, Split(total, 0), None
    if state.phase == "Promoted":
        return canary, Split(total, 0), None
    if state.phase not in ("Watching", "Testing") or state.share <= 0:
        return inf, Split(total, 0), None
    sizes = split(total, state.share, ais.spec.autoscaling.max_replicas)
    return inf, sizes, canary if sizes.canary else None


def _int_or_percent(value: str) -> int | str:
    return value if value.endswith("%") else int(value)


def initial_replicas(ais: AIService, current: int | None) -> int:
    """Keep the replicas the autoscaler (or HPA) chose, inside [min, max]; start new fleets at min."""
    scaling = ais.spec.autoscaling
    wanted = scaling.min_replicas if current is None else current
    return max(scaling.min_replicas, min(scaling.max_replicas, wanted))


class Triton(Component):
    name = TRITON
    status_key = "inference"

    def wanted(self, ais: AIService) -> bool:
        return True

    def secret_names(self, ais: AIService) -> list[str]:
        return [names(ais).triton_admin]

    def render(self, ais: AIService, inputs: RenderInputs) -> Rendering:
        stable, sizes, canary = versions(ais, inputs.canary, initial_replicas(ais, inputs.replicas))
        manifests = render_inference(ais, sizes.stable, stable) + render_hpa(ais)
        if canary is not None:
            manifests.append(render_canary(ais, canary, sizes.canary))
            # The pods are still split by the share (so each version's capacity follows its traffic, and each
            # keeps at least one pod); the route makes the split of requests exact rather than per pod.
            if inputs.gateway_api and inputs.canary is not None:
                manifests += render_route(ais, stable, canary, inputs.canary.share)
        admin = names(ais).triton_admin
        if inputs.secrets.get(admin) is not None:
            return Rendering(manifests=manifests)
        # The pods read the key from the Secret, not from the render: they can be applied at once and start
        # when the Secret exists. Created once, never rotated (a changed key would leave running pods behind).
        key = (inputs.new_password or new_password)()
        return Rendering(manifests=manifests, create_once=[generated_secret(ais, admin, TRITON, ADMIN_KEY, key)])

    def state(self, ais: AIService, observed: Observed, rendering: Rendering) -> ComponentState:
        fleet = observed.lookup("Deployment", ais.metadata.namespace, names(ais).triton)
        state = workload_state(fleet, ais.spec.autoscaling.min_replicas)
        if state.state == "Ready" or observed.pods is None or observed.now is None or not stalled(fleet, observed.now):
            return state
        problems = pod_problems(observed.pods(ais.metadata.namespace, selector_labels(ais, TRITON)), TRITON)
        if not problems:
            return state
        return ComponentState("Degraded", f"Triton pods are failing: {'; '.join(problems)}", state.serving)

    def endpoints(self, ais: AIService, observed: Observed) -> dict[str, str]:
        host = service_host(names(ais).triton, ais.metadata.namespace)
        return {
            "http": f"http://{host}:{TRITON_HTTP_PORT}",
            "grpc": f"{host}:{TRITON_GRPC_PORT}",
            "metrics": f"http://{host}:{TRITON_METRICS_PORT}/metrics",
            "adminSecret": names(ais).triton_admin,
        }
