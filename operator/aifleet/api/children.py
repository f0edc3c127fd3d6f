"""What an AIService's children are called and how they are found: names, labels, selectors, ports, and the
pod-name pattern Prometheus queries match. The renderer, the reconciler, the metric source, the tests and the
benchmarks all read these facts here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # aiservice imports autoscaling, which needs the pod pattern from here
    from .aiservice import AIService

# Components, as they appear in child names and in the `app.kubernetes.io/component` label.
TRITON = "triton"
PGBOUNCER = "pgbouncer"
REDIS = "redis"

MANAGED_BY = "aifleet"
PART_OF = "aifleet"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
VERSION_LABEL = "app.kubernetes.io/version"
MANAGED_SELECTOR = {MANAGED_BY_LABEL: MANAGED_BY}  # every child the operator owns carries it

# Triton's ports, the same in the container and on the Service.
TRITON_HTTP_PORT = 8000
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002
PGBOUNCER_LISTEN_PORT = 6432  # in the pod
PGBOUNCER_SERVICE_PORT = 5432  # on the Service: PostgreSQL's usual port
REDIS_PORT = 6379
# The HTTP header (gRPC: `triton-grpc-protocol-<header>`) that must carry the key of the Triton admin Secret for
# Triton's model-repository, shared-memory, trace and logging APIs; inference, health and metadata stay open.
# PyTriton's clients send their access token in the same header, so they work as admin clients unchanged.
TRITON_ADMIN_HEADER = "triton-access-token"
TRITON_GRPC_ADMIN_HEADER = f"triton-grpc-protocol-{TRITON_ADMIN_HEADER}"

# Children in the order they are applied: identities and config before the workloads that use them.
APPLY_ORDER = (
    "NetworkPolicy", "ServiceAccount", "Secret", "Service", "Deployment", "StatefulSet", "PodDisruptionBudget",
    "HorizontalPodAutoscaler", "HTTPRoute",
)

# The longest AIService name. A StatefulSet labels its pods `controller-revision-hash: <sts>-<hash>`, the hash up
# to 10 characters, and a label value holds 63: `<name>-redis-<hash>` fits up to 46 and no further. Every other
# child name is shorter than that label (Services, the longest DNS-1035 labels, are `<name>-pgbouncer`).
MAX_NAME_LENGTH = 46
# Kubernetes's own limits on what it generates: pod-template hashes are at most 10 characters, and a generated
# name (pods of a ReplicaSet) keeps 58 characters of its base before 5 random ones.
MAX_HASH_LENGTH = 10
GENERATED_NAME_BASE = 58

# Triton pods are `<name>-triton-<rs-hash>-<pod-hash>`, except that Kubernetes cuts `<name>-triton-<rs-hash>-` to
# 58 characters: from a name of 40 characters on, the dash, and then the end of the hash, can be cut. `<name>-triton-`
# itself always survives (46 + 8 < 58), so the pattern asks for it whole and then one or two hash segments.
# Kubernetes writes both hashes in its own alphabet, which has no vowels: that keeps service `foo` from counting
# the pods of a service `foo-triton-x` (or `foo-triton`), whose names go on with `triton`.
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_HASH = f"[{HASH_ALPHABET}]+"
_POD_HASHES = f"-{_HASH}-?{_HASH}"


# A canary's pods are `<name>-triton-canary-<rs-hash>-<pod-hash>`, cut the same way: `<name>-triton-` keeps at most
# 54 of the 58 characters, so at least `cana` of the suffix survives, and its vowels keep the stable pattern from
# matching canary pods (and the canary pattern from matching stable ones).
CANARY = "canary"
STABLE = "stable"
_CANARY_CUT = "cana(?:ry?)?"
_CANARY_HASHES = f"-?{_HASH}-?{_HASH}"


def stable_pod_regex(name: str) -> str:
    """A regular expression for the stable version's Triton pods of the service(s) whose name matches `name`."""
    return f"{name}-{TRITON}{_POD_HASHES}"


def canary_pod_regex(name: str) -> str:
    """The same for the canary version's pods."""
    return f"{name}-{TRITON}-{_CANARY_CUT}{_CANARY_HASHES}"


def triton_pod_regex(name: str) -> str:
    """A regular expression for all the Triton pods, both versions, of the service(s) whose name matches `name`:
    the fleet the autoscaler sizes and the dashboard and alerts watch."""
    return f"{name}-{TRITON}(?:-{_CANARY_CUT})?{_CANARY_HASHES}"


@dataclass(frozen=True)
class ChildNames:
    """Child names derive from the AIService name; the CRD caps it at MAX_NAME_LENGTH so that everything fits."""

    triton: str
    triton_canary: str
    triton_stable: str  # the stable version's own Service, beside the canary's, while an HTTPRoute splits them
    triton_admin: str
    pgbouncer: str
    pgbouncer_config: str
    pgbouncer_connection: str
    redis: str
    redis_config: str
    redis_auth: str


# A pass asks for them about ten times; a few hundred bytes each, for as many AIServices as a large fleet has.
@functools.lru_cache(maxsize=16384)
def child_names(base: str) -> ChildNames:
    pgbouncer, redis = f"{base}-{PGBOUNCER}", f"{base}-{REDIS}"
    return ChildNames(
        triton=f"{base}-{TRITON}",
        triton_canary=f"{base}-{TRITON}-{CANARY}",
        triton_stable=f"{base}-{TRITON}-{STABLE}",
        triton_admin=f"{base}-{TRITON}-admin",
        pgbouncer=pgbouncer,
        pgbouncer_config=f"{pgbouncer}-config",
        pgbouncer_connection=f"{pgbouncer}-connection",
        redis=redis,
        redis_config=f"{redis}-config",
        redis_auth=f"{redis}-auth",
    )


def names(ais: AIService) -> ChildNames:
    return child_names(ais.metadata.name)


def service_host(service: str, namespace: str) -> str:
    """The in-cluster DNS name clients use for one of our Services."""
    return f"{service}.{namespace}.svc"


def selector_labels(ais: AIService, component: str) -> dict[str, str]:
    """The immutable subset used in workload selectors: never add to it."""
    return {NAME_LABEL: component, INSTANCE_LABEL: ais.metadata.name, COMPONENT_LABEL: component}


# The version a Triton pod runs. The stable Deployment's selector is immutable and predates any canary, so it
# never includes this label: the canary Deployment selects its own pods by it, and the stable pods carry it (as
# `stable`, outside the selector) so that a Service per version can select them for an HTTPRoute.
TRACK_LABEL = "aifleet.dev/track"


def canary_selector_labels(ais: AIService) -> dict[str, str]:
    return {**selector_labels(ais, TRITON), TRACK_LABEL: CANARY}


def stable_track_labels(ais: AIService) -> dict[str, str]:
    """What the stable version's Service selects: the stable pods' track label, not part of their Deployment's
    selector."""
    return {**selector_labels(ais, TRITON), TRACK_LABEL: STABLE}


def label_selector(ais: AIService, component: str) -> str:
    """`selector_labels` as a label-selector string (`status.selector`, kubectl -l)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(ais, component).items())


_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def label_value(text: str) -> str | None:
    """`text` as a label value (at most 63 characters, alphanumeric at both ends), or None if it cannot be one."""
    value = text[:63].strip("-_.")
    return value if value and _LABEL_VALUE.fullmatch(value) else None


def common_labels(ais: AIService, component: str, version: str | None = None) -> dict[str, str]:
    labels = {**selector_labels(ais, component), PART_OF_LABEL: PART_OF, MANAGED_BY_LABEL: MANAGED_BY}
    value = label_value(version) if version else None
    if value:
        labels[VERSION_LABEL] = value
    return labels
