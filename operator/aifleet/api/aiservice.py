"""The AIService resource: one object that composes the whole inference stack."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import ConfigDict, Field, model_validator

from .autoscaling import AutoscalingSpec
from .base import DNS_1035_LABEL, DNS_LABEL, ApiModel, LabelKey, LabelValue, cel, plain_dict
from .children import MAX_NAME_LENGTH
from .data import KafkaSpec, PgBouncerSpec, RedisSpec
from .inference import InferenceSpec
from .network import NetworkPolicySpec

GROUP = "aifleet.dev"
VERSION = "v1alpha1"
# Spelled out rather than joined, so that the models' Literal fields can take them as defaults.
API_VERSION: Final = "aifleet.dev/v1alpha1"
KIND: Final = "AIService"
PLURAL = "aiservices"
SINGULAR = "aiservice"
SHORT_NAMES = ["ais"]
CATEGORIES = ["all", "aifleet"]


_CANARY_NEEDS_OPERATOR = "spec.inference.canary needs spec.autoscaling.engine operator: it splits the fleet the operator sizes"
_WATCH_TOO_SHORT = (
    "spec.inference.canary.analysis.watchSeconds must be >= 2 * spec.autoscaling.pollIntervalSeconds: the analysis "
    "runs each poll, and a verdict needs two"
)


class AIServiceSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!has(self.inference.canary) || self.autoscaling.engine != 'hpa'", _CANARY_NEEDS_OPERATOR,
                    ".inference.canary"),
                cel(
                    "!has(self.inference.canary) || !has(self.inference.canary.analysis) || "
                    "self.inference.canary.analysis.watchSeconds >= 2 * self.autoscaling.pollIntervalSeconds",
                    _WATCH_TOO_SHORT,
                    ".inference.canary.analysis.watchSeconds",
                ),
            ]
        }
    )

    inference: InferenceSpec = Field(description="The Triton Inference Server fleet.")
    autoscaling: AutoscalingSpec = Field(
        default_factory=AutoscalingSpec, description="How the fleet follows its traffic."
    )
    pgbouncer: PgBouncerSpec | None = Field(None, description="Connection pooling in front of an existing PostgreSQL.")
    redis: RedisSpec | None = Field(None, description="A Redis cache for the service.")
    kafka: KafkaSpec | None = Field(None, description="Kafka topics and dead-letter topics on an existing cluster.")
    network_policy: NetworkPolicySpec = Field(
        default_factory=NetworkPolicySpec, description="Which pods may reach the stack's ports."
    )

    @model_validator(mode="after")
    def _canary_fits_the_autoscaler(self) -> AIServiceSpec:
        canary = self.inference.canary
        if canary is None:
            return self
        if self.autoscaling.engine == "hpa":
            raise ValueError(_CANARY_NEEDS_OPERATOR)
        if canary.analysis.watch_seconds < 2 * self.autoscaling.poll_interval_seconds:
            raise ValueError(_WATCH_TOO_SHORT)
        return self


class ObjectMeta(ApiModel):
    """The part of metadata the renderer needs; the API server owns the rest."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(
        max_length=MAX_NAME_LENGTH,
        pattern=DNS_1035_LABEL,
        description="AIService name; children derive their names from it, and Services need DNS-1035 labels.",
    )
    namespace: str = Field("default", max_length=63, pattern=DNS_LABEL, description="Namespace.")
    uid: str | None = Field(None, description="Set by the API server; used for owner references.")
    generation: int | None = Field(None, description="Set by the API server.")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, description="Labels.")
    annotations: dict[LabelKey, str] = Field(default_factory=dict, description="Annotations.")


class AIService(ApiModel):
    model_config = ConfigDict(extra="ignore")

    api_version: Literal["aifleet.dev/v1alpha1"] = Field(API_VERSION, description="API version.")
    kind: Literal["AIService"] = Field(KIND, description="Kind.")
    metadata: ObjectMeta = Field(description="Object metadata.")
    spec: AIServiceSpec = Field(description="Desired state.")

    @model_validator(mode="before")
    @classmethod
    def _from_mapping(cls, data: Any) -> Any:
        return plain_dict(data)
