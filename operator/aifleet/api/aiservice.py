"""The AIService resource: one object that composes the whole inference stack."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import ConfigDict, Field, model_validator

from .autoscaling import AutoscalingSpec
from .base import DNS_1035_LABEL, DNS_LABEL, ApiModel, LabelKey, LabelValue, plain_dict
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


class AIServiceSpec(ApiModel):
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
