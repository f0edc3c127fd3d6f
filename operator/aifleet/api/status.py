"""`status`: what the operator observed, in words a person on call can act on."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .autoscaling import AutoscalingStatus
from .base import ApiModel
from .canary import CanaryStatus

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    type: str = Field(description="Condition type, e.g. Ready, Progressing, Degraded, InferenceReady.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word a machine can match on.")
    message: str = Field("", description="What happened, in words.")
    last_transition_time: str | None = Field(None, description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(None, description="The spec generation this condition was computed for.")


class ComponentStatus(ApiModel):
    state: Literal["Pending", "Progressing", "Ready", "Degraded", "Disabled"] = Field(description="Summary state.")
    message: str = Field("", description="Why, in words.")


class Endpoints(ApiModel):
    http: str | None = Field(None, description="Triton HTTP/REST URL inside the cluster.")
    grpc: str | None = Field(None, description="Triton gRPC address inside the cluster.")
    metrics: str | None = Field(None, description="Triton Prometheus metrics URL inside the cluster.")
    admin_secret: str | None = Field(
        None,
        description=(
            "Secret whose `key` Triton's model-repository, shared-memory, trace and logging APIs require in the "
            "`triton-access-token` header (gRPC: `triton-grpc-protocol-triton-access-token`)."
        ),
    )
    pooler: str | None = Field(None, description="PgBouncer address (host:port) clients connect to.")
    pooler_secret: str | None = Field(None, description="Secret with the pooled connection settings.")
    cache: str | None = Field(None, description="Redis address (host:port).")
    cache_secret: str | None = Field(None, description="Secret holding the Redis password.")
    topics: list[str] = Field(default_factory=list, description="Kafka topics, dead-letter topics included.")


class AIServiceStatus(ApiModel):
    observed_generation: int | None = Field(None, description="The spec generation the operator last acted on.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Progressing, Degraded and per-component conditions.")
    replicas: int | None = Field(None, description="Triton pods that exist.")
    ready_replicas: int | None = Field(None, description="Triton pods that are ready and serving.")
    desired_replicas: int | None = Field(None, description="Triton pods the autoscaler wants.")
    current_rps: float | None = Field(
        None, alias="currentRPS", description="Requests per second the fleet serves, as last read from Prometheus."
    )
    last_scale_time: str | None = Field(None, description="When the fleet was last resized (RFC 3339).")
    last_scale_reason: str | None = Field(None, description="Why the fleet was last resized.")
    selector: str | None = Field(None, description="Label selector of the Triton pods (for the scale subresource).")
    endpoints: Endpoints = Field(default_factory=Endpoints, description="Addresses clients use.")
    components: dict[str, ComponentStatus] = Field(default_factory=dict, description="State per component.")
    autoscaling: AutoscalingStatus | None = Field(None, description="The autoscaler's last decision.")
    created_topics: list[str] = Field(
        default_factory=list,
        description=(
            "Kafka topics aifleet created. deletionPolicy Delete deletes only these: a listed topic that existed "
            "before is never deleted."
        ),
    )
    canary: CanaryStatus | None = Field(
        None, description="The canary's rollout: its share, the analysis window and verdict, each version's pods."
    )
