"""`spec.inference`: the Triton Inference Server fleet."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict

from .base import DNS_SUBDOMAIN, LABEL_VALUE, MAX_SAFE_INTEGER, QUALIFIED_NAME, ApiModel, LabelValue, cel, pattern
from .canary import CanaryAnalysis, CanaryGateway
from .quantity import parse_quantity

# A Kubernetes quantity (`500m`, `4`, `16Gi`, `1.5`, `1e3`): the suffixes Kubernetes knows, nothing else.
QUANTITY = pattern(
    r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$",
    "a Kubernetes quantity such as 500m, 4, 1.5 or 16Gi (suffixes n u m k M G T P E, Ki Mi Gi Ti Pi Ei)",
)
# An image reference without its tag or digest: the tag is a field of its own. A registry port stays allowed.
IMAGE_WITHOUT_TAG = pattern(
    r"^([^\s/@]+/)*[^\s/:@]+$",
    "an image name without a tag or digest (e.g. nvcr.io/nvidia/tritonserver): the tag goes in `version`, a digest in `digest`",
)
IMAGE_TAG = pattern(
    r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
    "an image tag: at most 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
)
IMAGE_DIGEST = pattern(
    r"^sha256:[a-f0-9]{64}$",
    "an image digest: sha256: followed by 64 lowercase hexadecimal digits",
)
MODEL_REPOSITORY_URI = pattern(r"^(s3|gs|as|https?)://.+", "a URI starting with s3://, gs://, as://, http:// or https://")
# Triton model names are directories of the repository, passed as `--load-model=<name>`.
MODEL_NAME = pattern(
    r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
    "a model name: letters, digits, '_', '.' and '-', not starting with '.' or '-'",
)
MAX_UNAVAILABLE = pattern(
    r"^([0-9]+|([0-9]|[1-9][0-9]|100)%)$",
    "a number of pods (e.g. 1) or a percentage from 0% to 100%",
)
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=MODEL_NAME)]

DEFAULT_IMAGE = "nvcr.io/nvidia/tritonserver"
DEFAULT_VERSION = "24.08-py3"


class ResourceList(ApiModel):
    # maxLength keeps the CEL rules that compare quantities within the API server's cost budget.
    cpu: str | None = Field(
        None, max_length=32, pattern=QUANTITY, description="CPU, as a Kubernetes quantity (e.g. `4`, `500m`)."
    )
    memory: str | None = Field(
        None, max_length=32, pattern=QUANTITY, description="Memory, as a Kubernetes quantity (e.g. `16Gi`)."
    )
    ephemeral_storage: str | None = Field(
        None, max_length=32, pattern=QUANTITY, description="Ephemeral storage, as a Kubernetes quantity."
    )


_RESOURCE_NAMES = {"cpu": "cpu", "memory": "memory", "ephemeral_storage": "ephemeralStorage"}


def _within_limits_rule(wire: str) -> JsonDict:
    both = f"self.requests.{wire}", f"self.limits.{wire}"
    given = " && ".join(
        f"has(self.{part}) && has({value}) && isQuantity({value})" for part, value in zip(("requests", "limits"), both)
    )
    return cel(
        f"!({given}) || quantity({both[0]}).compareTo(quantity({both[1]})) <= 0",
        f"requests.{wire} must not exceed limits.{wire}",
    )


# Pod validation refuses a container whose request is above its limit: refuse it in the spec instead.
WITHIN_LIMITS = ConfigDict(
    json_schema_extra={"x-kubernetes-validations": [_within_limits_rule(wire) for wire in _RESOURCE_NAMES.values()]}
)


def check_within_limits(requests: ResourceList, limits: ResourceList) -> None:
    for field, wire in _RESOURCE_NAMES.items():
        request, limit = getattr(requests, field), getattr(limits, field)
        wanted, allowed = parse_quantity(request or ""), parse_quantity(limit or "")
        if wanted is not None and allowed is not None and wanted > allowed:
            raise ValueError(f"requests.{wire} ({request}) must not exceed limits.{wire} ({limit})")


class Resources(ApiModel):
    model_config = WITHIN_LIMITS

    requests: ResourceList = Field(
        default_factory=lambda: ResourceList(cpu="2", memory="8Gi"),
        description="Resources each Triton pod is guaranteed.",
    )
    limits: ResourceList = Field(
        default_factory=lambda: ResourceList(memory="16Gi"),
        description="Upper bounds for each Triton pod. GPUs come from `gpusPerPod`, not from here.",
    )

    @model_validator(mode="after")
    def _within_limits(self) -> Resources:
        check_within_limits(self.requests, self.limits)
        return self


_EXISTS_HAS_NO_VALUE = "value must be empty when operator is Exists"
_NO_KEY_MEANS_EXISTS = "operator must be Exists when key is empty"
_SECONDS_NEED_NO_EXECUTE = "effect must be NoExecute when tolerationSeconds is set"


class Toleration(ApiModel):
    # The pod's own validation: a Deployment carrying a toleration that breaks these is refused at apply.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.operator != 'Exists' || !has(self.value) || self.value == ''", _EXISTS_HAS_NO_VALUE),
                cel("(has(self.key) && self.key != '') || self.operator == 'Exists'", _NO_KEY_MEANS_EXISTS),
                cel(
                    "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                    _SECONDS_NEED_NO_EXECUTE,
                ),
            ]
        }
    )

    key: str | None = Field(
        None, max_length=317, pattern=QUALIFIED_NAME,
        description="Taint key the toleration applies to; empty matches all keys.",
    )
    operator: Literal["Exists", "Equal"] = Field("Equal", description="How the key relates to the value.")
    value: str | None = Field(
        None, max_length=63, pattern=LABEL_VALUE, description="Taint value matched when operator is Equal."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, le=MAX_SAFE_INTEGER, description="For NoExecute: how long the pod stays bound after the taint appears."
    )

    @model_validator(mode="after")
    def _as_a_pod_allows(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError(_EXISTS_HAS_NO_VALUE)
        if not self.key and self.operator != "Exists":
            raise ValueError(_NO_KEY_MEANS_EXISTS)
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError(_SECONDS_NEED_NO_EXECUTE)
        return self


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
        pattern=MODEL_REPOSITORY_URI,
        description="Remote model repository Triton reads directly (`s3://`, `gs://`, `as://`, `http(s)://`).",
    )
    persistent_volume_claim: str | None = Field(
        None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Name of a PersistentVolumeClaim holding the model repository, mounted read-only at /models.",
    )
    credentials_secret: str | None = Field(
        None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
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
        pattern=MAX_UNAVAILABLE,
        description="Most Triton pods a voluntary disruption (drain, upgrade) may take at once: a count or a percentage.",
    )


def unique_models(models: list[str] | None) -> list[str] | None:
    # The CRD's list type `set` refuses duplicates too.
    seen = {m for m in models or [] if (models or []).count(m) > 1}
    if seen:
        raise ValueError(f"lists {', '.join(sorted(seen))} more than once")
    return models


# The fields a canary may change; every other setting is the stable version's.
CANARY_FIELDS = ("image", "version", "digest", "model_repository", "models", "resources")
_CANARY_SAME = (
    "spec.inference.canary must differ from the stable version in image, version, digest, modelRepository, models "
    "or resources"
)
_STEPS_ABOVE_SHARE = "spec.inference.canary.analysis.steps must each be above trafficPercent"


class CanarySpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.analysis) || !has(self.analysis.steps) || "
                    "self.analysis.steps.all(s, s > self.trafficPercent)",
                    _STEPS_ABOVE_SHARE,
                    ".analysis.steps",
                )
            ]
        }
    )

    image: str | None = Field(
        None, min_length=1, max_length=1024, pattern=IMAGE_WITHOUT_TAG,
        description="Triton image of the canary, without the tag; unset: the stable image.",
    )
    version: str | None = Field(
        None, min_length=1, pattern=IMAGE_TAG, description="Image tag of the canary; unset: the stable version."
    )
    digest: str | None = Field(
        None,
        pattern=IMAGE_DIGEST,
        description=(
            "Pins the canary's image by content (`sha256:...`); unset: the stable digest while the canary keeps the "
            "stable image and version, none once it changes either (a digest belongs to one image)."
        ),
    )
    model_repository: ModelRepository | None = Field(
        None, description="Where the canary loads models from; unset: the stable repository."
    )
    models: list[ModelName] | None = Field(
        None,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Models the canary loads; unset: the stable list.",
    )
    resources: Resources | None = Field(None, description="CPU and memory per canary pod; unset: the stable ones.")
    traffic_percent: int = Field(
        10,
        ge=0,
        le=100,
        description=(
            "Percent of the pods, and so of the requests, that run the canary (0 ends the canary). The fleet size "
            "the autoscaler chose is split; the canary gets at least one pod while this is above 0."
        ),
    )
    analysis: CanaryAnalysis = Field(
        default_factory=CanaryAnalysis, description="How the canary is judged, and what happens when it passes."
    )
    gateway: CanaryGateway = Field(
        default_factory=CanaryGateway,
        description=(
            "Where the cluster serves the Gateway API's HTTPRoute, the operator renders a Service per version and "
            "an HTTPRoute weighting them by the share, so the split of requests through that route is exact "
            "whatever the pod counts; this says which Gateways the route attaches to."
        ),
    )

    _unique_models = field_validator("models")(unique_models)

    @model_validator(mode="after")
    def _steps_above_share(self) -> CanarySpec:
        if any(step <= self.traffic_percent for step in self.analysis.steps):
            raise ValueError(_STEPS_ABOVE_SHARE)
        return self


def _model_of(annotation: Any) -> type[ApiModel] | None:
    """The ApiModel a field holds (directly or as `X | None`), if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, ApiModel):
            return candidate
    return None


def differs_rule(model: type[ApiModel], a: str, b: str) -> str:
    """CEL that is true when objects `a` and `b` of `model` differ. CEL cannot compare two objects declared in
    different places of the schema (they are different types), so this compares them field by field."""
    parts = []
    for name, info in model.model_fields.items():
        wire = info.alias or name
        x, y = f"{a}.{wire}", f"{b}.{wire}"
        inner = _model_of(info.annotation)
        same_type = f"({differs_rule(inner, x, y)})" if inner else f"{x} != {y}"
        parts.append(f"has({x}) != has({y}) || (has({x}) && {same_type})")
    return " || ".join(f"({p})" for p in parts)


def _canary_differs_rule() -> str:
    checks = []
    for field in CANARY_FIELDS:
        wire = to_camel(field)
        mine, stable = f"self.canary.{wire}", f"self.{wire}"
        model = _model_of(CanarySpec.model_fields[field].annotation)  # the stable field has the same model
        if model is not None:
            checks.append(f"(has({mine}) && ({differs_rule(model, mine, stable)}))")
        elif field == "models":
            checks.append(f"(has({mine}) && {mine} != (has({stable}) ? {stable} : []))")
        else:  # the stable digest may be unset; image and version have defaults
            checks.append(f"(has({mine}) && (!has({stable}) || {mine} != {stable}))")
    return f"!has(self.canary) || {' || '.join(checks)}"


class InferenceSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(_canary_differs_rule(), _CANARY_SAME, ".canary")
            ]
        }
    )

    image: str = Field(
        DEFAULT_IMAGE,
        min_length=1,
        max_length=1024,
        pattern=IMAGE_WITHOUT_TAG,
        description="Triton Inference Server image, without the tag (the tag is `version`, a digest `digest`).",
    )
    version: str = Field(DEFAULT_VERSION, min_length=1, pattern=IMAGE_TAG, description="Image tag.")
    digest: str | None = Field(
        None,
        pattern=IMAGE_DIGEST,
        description=(
            "Pins the image by content (`sha256:...`): the pods run `image:version@digest`, which the runtime pulls "
            "by digest, so a re-pushed tag changes nothing. `version` stays as the readable tag and the version label."
        ),
    )
    model_repository: ModelRepository = Field(description="Where Triton loads models from.")
    models: list[ModelName] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Models to load explicitly (`--model-control-mode=explicit`); empty loads every model in the repository.",
    )
    gpus_per_pod: int = Field(1, ge=0, le=16, description="`nvidia.com/gpu` each pod requests; 0 runs on CPU.")
    resources: Resources = Field(default_factory=Resources, description="CPU and memory per pod.")
    node_selector: dict[str, LabelValue] = Field(
        default_factory=dict, description="Node labels the pods must run on; values are label values."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Taints the pods tolerate. A toleration for `nvidia.com/gpu` is added when gpusPerPod > 0.",
    )
    shm_size: str = Field("1Gi", pattern=QUANTITY, description="Size of the in-memory /dev/shm volume.")
    probes: Probes = Field(default_factory=Probes, description="Startup, readiness and liveness timing.")
    disruption: Disruption = Field(default_factory=Disruption, description="PodDisruptionBudget for the fleet.")
    extra_args: list[str] = Field(default_factory=list, max_length=32, description="Extra `tritonserver` arguments.")
    priority_class_name: str | None = Field(
        None, max_length=253, pattern=DNS_SUBDOMAIN, description="PriorityClass for the Triton pods."
    )
    drain_seconds: int = Field(
        10,
        ge=0,
        le=45,
        description=(
            "Seconds a terminating Triton pod keeps serving before Triton stops (a preStop sleep), so that Services "
            "stop sending it requests first and a rollout or scale-down drops none. 0 stops at once."
        ),
    )

    canary: CanarySpec | None = Field(
        None,
        description=(
            "A second model version beside this one: a share of the pods runs it, an analysis watches it, and it "
            "is promoted (becomes this version) or rolled back. Removing it, or trafficPercent 0, ends it."
        ),
    )

    def canary_inference(self) -> InferenceSpec | None:
        """The canary as a whole inference spec: the stable one with the canary's fields over it."""
        if self.canary is None:
            return None
        changes = {f: getattr(self.canary, f) for f in CANARY_FIELDS if getattr(self.canary, f) is not None}
        if "digest" not in changes and ("image" in changes or "version" in changes):
            changes["digest"] = None  # the stable digest names the stable image, not the canary's
        return self.model_copy(update={**changes, "canary": None})

    @model_validator(mode="after")
    def _canary_differs(self) -> InferenceSpec:
        canary = self.canary_inference()
        if canary is not None and all(getattr(canary, f) == getattr(self, f) for f in CANARY_FIELDS):
            raise ValueError(_CANARY_SAME)
        return self

    _unique_models = field_validator("models")(unique_models)
