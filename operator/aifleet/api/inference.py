"""`spec.inference`: the Triton Inference Server fleet."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from .base import ApiModel, cel

# A Kubernetes quantity (`500m`, `4`, `16Gi`, `1.5`); the API server checks the rest.
QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]i?|Ki)?$"

DEFAULT_IMAGE = "nvcr.io/nvidia/tritonserver"
DEFAULT_VERSION = "24.08-py3"


class ResourceList(ApiModel):
    cpu: str | None = Field(None, pattern=QUANTITY, description="CPU, as a Kubernetes quantity (e.g. `4`, `500m`).")
    memory: str | None = Field(None, pattern=QUANTITY, description="Memory, as a Kubernetes quantity (e.g. `16Gi`).")
    ephemeral_storage: str | None = Field(
        None, pattern=QUANTITY, description="Ephemeral storage, as a Kubernetes quantity."
    )


class Resources(ApiModel):
    requests: ResourceList = Field(
        default_factory=lambda: ResourceList(cpu="2", memory="8Gi"),
        description="Resources each Triton pod is guaranteed.",
    )
    limits: ResourceList = Field(
        default_factory=lambda: ResourceList(memory="16Gi"),
        description="Upper bounds for each Triton pod. GPUs come from `gpusPerPod`, not from here.",
    )


class Toleration(ApiModel):
    key: str | None = Field(None, description="Taint key the toleration applies to; empty matches all keys.")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="How the key relates to the value.")
    value: str | None = Field(None, description="Taint value matched when operator is Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        None, description="For NoExecute: how long the pod stays bound after the taint appears."
    )


class ModelCache(ApiModel):
    enabled: bool = Field(
        False,
        description="Keep downloaded models on a per-node cache volume so a new pod does not fetch them again.",
    )
    host_path: str = Field(
        "/var/cache/aifleet/models",
        description="Node directory that holds the cache (a hostPath volume; not allowed under the restricted Pod Security Standard).",
    )


class ModelRepository(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.uri) != has(self.persistentVolumeClaim)",
                    "spec.inference.modelRepository: set exactly one of uri or persistentVolumeClaim",
                )
            ]
        }
    )

    uri: str | None = Field(
        None,
        pattern=r"^(s3|gs|as|https?)://.+",
        description="Remote model repository Triton reads directly (`s3://`, `gs://`, `as://`, `http(s)://`).",
    )
    persistent_volume_claim: str | None = Field(
        None,
        max_length=253,
        description="Name of a PersistentVolumeClaim holding the model repository, mounted read-only at /models.",
    )
    credentials_secret: str | None = Field(
        None,
        max_length=253,
        description="Secret whose keys are exposed to Triton as environment variables (cloud storage credentials).",
    )
    cache: ModelCache = Field(default_factory=ModelCache, description="Node-local cache of fetched models.")

    @model_validator(mode="after")
    def _one_source(self) -> ModelRepository:
        if (self.uri is None) == (self.persistent_volume_claim is None):
            raise ValueError("spec.inference.modelRepository: set exactly one of uri or persistentVolumeClaim")
        return self


class Probes(ApiModel):
    startup_timeout_seconds: int = Field(
        600,
        ge=10,
        le=7200,
        description="How long a pod may take to load its models before it is restarted (model loads are slow).",
    )
    period_seconds: int = Field(10, ge=1, le=300, description="How often readiness and liveness are checked.")
    failure_threshold: int = Field(3, ge=1, le=30, description="Failed checks before a pod is marked unready or restarted.")


class Disruption(ApiModel):
    max_unavailable: str = Field(
        "10%",
        pattern=r"^([0-9]+|[0-9]{1,3}%)$",
        description="Most Triton pods a voluntary disruption (drain, upgrade) may take at once: a count or a percentage.",
    )


class InferenceSpec(ApiModel):
    image: str = Field(DEFAULT_IMAGE, min_length=1, description="Triton Inference Server image, without the tag.")
    version: str = Field(
        DEFAULT_VERSION, min_length=1, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", description="Image tag."
    )
    model_repository: ModelRepository = Field(description="Where Triton loads models from.")
    models: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Models to load explicitly (`--model-control-mode=explicit`); empty loads every model in the repository.",
    )
    gpus_per_pod: int = Field(1, ge=0, le=16, description="`nvidia.com/gpu` each pod requests; 0 runs on CPU.")
    resources: Resources = Field(default_factory=Resources, description="CPU and memory per pod.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels the pods must run on.")
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Taints the pods tolerate. A toleration for `nvidia.com/gpu` is added when gpusPerPod > 0.",
    )
    shm_size: str = Field("1Gi", pattern=QUANTITY, description="Size of the in-memory /dev/shm volume.")
    probes: Probes = Field(default_factory=Probes, description="Startup, readiness and liveness timing.")
    disruption: Disruption = Field(default_factory=Disruption, description="PodDisruptionBudget for the fleet.")
    extra_args: list[str] = Field(default_factory=list, max_length=32, description="Extra `tritonserver` arguments.")
    priority_class_name: str | None = Field(None, description="PriorityClass for the Triton pods.")
    drain_seconds: int = Field(
        10,
        ge=0,
        le=45,
        description=(
            "Seconds a terminating Triton pod keeps serving before Triton stops (a preStop sleep), so that Services "
            "stop sending it requests first and a rollout or scale-down drops none. 0 stops at once."
        ),
    )
