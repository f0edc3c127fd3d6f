"""`spec.networkPolicy`: which pods may reach the stack's ports."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from .base import DNS_LABEL, ApiModel

NamespaceName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL)]


def _namespaces(description: str) -> Any:
    return Field(
        default_factory=list, max_length=64, json_schema_extra={"x-kubernetes-list-type": "set"}, description=description
    )


class NetworkPolicySpec(ApiModel):
    enabled: bool = Field(
        True,
        description=(
            "Render one NetworkPolicy per component (Triton, PgBouncer, Redis) that admits only the traffic below; "
            "false renders none, for clusters whose policies are managed elsewhere. Egress is never restricted."
        ),
    )
    client_namespaces: list[NamespaceName] = _namespaces(
        "Namespaces besides the AIService's own whose pods may use the stack: Triton's HTTP and gRPC ports, "
        "PgBouncer and Redis. Pods of the AIService's namespace always may."
    )
    metrics_namespaces: list[NamespaceName] = _namespaces(
        "Namespaces whose pods may scrape Triton's metrics port (where Prometheus runs); empty: every namespace."
    )
