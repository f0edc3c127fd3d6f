"""`spec.inference.canary`'s analysis and `status.canary`: how a second model version is judged, and the state
that judgement needs, kept in status so that an operator restarted mid-analysis resumes it.

The canary's own fields (what differs from the stable version) live in api/inference.py beside the stable ones.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator

from .base import ApiModel, cel

_STEPS_RISE = "spec.inference.canary.analysis.steps must rise strictly"
Share = Annotated[int, Field(ge=1, le=100)]


class CanaryAnalysis(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!has(self.steps) || self.steps.isSorted()", _STEPS_RISE, ".steps"),
            ]
        }
    )

    watch_seconds: int = Field(
        300,
        ge=30,
        le=86400,
        description=(
            "How long the canary is watched (per step) before it is promoted; a threshold crossed at any poll "
            "within it rolls the canary back at once."
        ),
    )
    min_requests: int = Field(
        20,
        ge=1,
        le=1_000_000_000,
        description="Requests the canary must have answered in the watch window before it may be promoted.",
    )
    max_failure_ratio: float = Field(
        0.01,
        ge=0,
        lt=1,
        description=(
            "Most failed requests per request the canary may show, from Triton's nv_inference_request_failure and "
            "nv_inference_request_success (0 rolls back on the first failure). Below 1: at 1 nothing could fail it."
        ),
    )
    max_p95_latency_ms: float | None = Field(
        None,
        gt=0,
        le=3_600_000,
        description=(
            "Highest 95th-percentile request latency (milliseconds) the canary may show, from Triton's latency "
            "summaries (the operator turns them on for both versions while the analysis needs them)."
        ),
    )
    max_p95_queue_ms: float | None = Field(
        None,
        gt=0,
        le=3_600_000,
        description="Highest 95th-percentile time (milliseconds) a request may wait in the canary's queue.",
    )
    promotion: Literal["Auto", "None"] = Field(
        "Auto",
        description=(
            "Auto: a canary that passes is promoted (the stable version takes its spec), after `steps` if any. "
            "None: an A/B test; the split stays until the spec changes, and a failing version is still rolled back."
        ),
    )
    steps: list[Share] = Field(
        default_factory=list,
        max_length=10,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description=(
            "Shares (percent) the canary moves through, one watch window each, before it is promoted; each above "
            "trafficPercent and rising. Empty: promoted at once after one window at trafficPercent."
        ),
    )

    @field_validator("steps")
    @classmethod
    def _rising(cls, steps: list[int]) -> list[int]:
        if any(a >= b for a, b in pairwise(steps)):
            raise ValueError(_STEPS_RISE)
        return steps


GATEWAY_GROUP = "gateway.networking.k8s.io"


class GatewayParentRef(ApiModel):
    name: str = Field(min_length=1, max_length=253, description="Name of the Gateway the route attaches to.")
    namespace: str | None = Field(
        None, min_length=1, max_length=63, description="The Gateway's namespace; unset: the AIService's."
    )
    section_name: str | None = Field(
        None, min_length=1, max_length=253, description="The Gateway listener to attach to; unset: every listener."
    )

    def to_wire(self) -> dict[str, str]:
        ref = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": self.name}
        if self.namespace:
            ref["namespace"] = self.namespace
        if self.section_name:
            ref["sectionName"] = self.section_name
        return ref


class CanaryGateway(ApiModel):
    parent_refs: list[GatewayParentRef] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "Gateways the canary's HTTPRoute attaches to (its parentRefs). Used only where the cluster serves the "
            "Gateway API's HTTPRoute; empty: a route without parents, which no Gateway serves until one is added."
        ),
    )


Verdict = Literal["Continue", "Promote", "RollBack"]
CanaryPhase = Literal["Watching", "Testing", "Promoted", "RolledBack"]


class VersionStatus(ApiModel):
    version: str = Field(description="The version's image tag.")
    replicas: int = Field(0, description="Pods the operator asked for.")
    ready_replicas: int = Field(0, description="Pods ready and serving.")
    observed_share: float | None = Field(
        None, description="Percent of the fleet's requests this version answered over the last window (per-pod counters)."
    )


class CanaryStatus(ApiModel):
    revision: str = Field(description="Fingerprint of the canary spec this state is for; a new spec starts over.")
    phase: CanaryPhase = Field(
        description="Watching (analysis under way), Testing (A/B, no promotion), Promoted, RolledBack."
    )
    share: int = Field(description="Percent of the pods (and so of the traffic) the canary gets now (a step or trafficPercent).")
    step: int = Field(0, description="Index in analysis.steps reached; 0 while at trafficPercent.")
    window_start: str | None = Field(None, description="When the current watch window started (RFC 3339).")
    verdict: str = Field("", description="The analysis verdict so far, with the signal and its value.")
    stable: VersionStatus | None = Field(None, description="The stable version's pods and share.")
    canary: VersionStatus | None = Field(None, description="The canary version's pods and share.")
