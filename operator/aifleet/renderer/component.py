"""The one interface every part of the stack implements: Triton, PgBouncer, Redis, Kafka topics.

A component says whether the spec wants it, which Secrets it needs read, what children it renders from the
spec and those Secrets, how ready it is judged from the children the watches observed, and which addresses it
adds to `status.endpoints`. The renderer and the reconciler iterate `COMPONENTS` (renderer/components.py) and
never ask which component they hold: adding one is one module and one line there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from ..api import AIService
from ..api.canary import CanaryStatus
from ..api.dbcheck import DatabaseCheck
from ..topics.apply import TopicsResult

Lookup = Callable[[str, str, str], "dict[str, Any] | None"]  # (kind, namespace, name) -> live object
Secrets = Mapping[str, "dict[str, Any] | None"]  # Secret name -> the Secret as the API returns it, None: missing


class ComponentState(NamedTuple):
    state: str  # Pending | Progressing | Ready | Degraded | Disabled
    message: str
    serving: bool  # enough pods answer requests, even if a rollout or scale-up is still under way


DISABLED = ComponentState("Disabled", "not requested in the spec", True)


@dataclass(frozen=True)
class RenderInputs:
    """What rendering needs beyond the spec: the fleet size observed in the cluster, and the Secrets read."""

    secrets: Secrets
    replicas: int | None = None  # the whole Triton fleet, both versions while a canary runs
    canary: CanaryStatus | None = None  # status.canary: the rollout's state, which decides the split
    new_password: Callable[[], str] | None = None  # for a password the operator generates; None: a fresh random one
    gateway_api: bool = False  # the cluster serves gateway.networking.k8s.io/v1 HTTPRoutes


@dataclass
class Rendering:
    """One component's part of the render. With a `problem` or while `pending`, it renders no children."""

    manifests: list[dict[str, Any]] = field(default_factory=list)
    create_once: list[dict[str, Any]] = field(default_factory=list)  # generated Secrets: created, never updated
    problem: str | None = None  # why it could not be rendered (names the field and the Secret, never a value)
    pending: str | None = None  # what it waits for (not an error)


PodLister = Callable[[str, "dict[str, str]"], "list[dict[str, Any]]"]  # (namespace, label selector) -> pods


@dataclass(frozen=True)
class Observed:
    """What the reconciler saw: the live children, the last result of the topic sync, the last database check
    through the pooler, and, asked only for a workload that stopped making progress, its pods."""

    lookup: Lookup
    topics: TopicsResult | None = None
    pods: PodLister | None = None
    now: float | None = None  # unix seconds of the pass
    database: DatabaseCheck | None = None  # the last `SELECT 1` through the pooler (None: none yet, or no pooler)


class Component(ABC):
    name: ClassVar[str]  # in child names, labels and `Rendered.problems`: triton, pgbouncer, redis, kafka
    status_key: ClassVar[str]  # in `status.components` and the `<Key>Ready` condition: inference, pooler, ...

    @abstractmethod
    def wanted(self, ais: AIService) -> bool: ...

    def secret_names(self, ais: AIService) -> list[str]:
        """The Secrets in the AIService's namespace that rendering this component reads."""
        return []

    def render(self, ais: AIService, inputs: RenderInputs) -> Rendering:
        return Rendering()

    @abstractmethod
    def state(self, ais: AIService, observed: Observed, rendering: Rendering) -> ComponentState: ...

    def endpoints(self, ais: AIService, observed: Observed) -> dict[str, Any]:
        """`status.endpoints` entries (camelCase keys, as on the wire)."""
        return {}

    def recovered(self, ais: AIService, before: ComponentState, now: ComponentState) -> str | None:
        """The words of a Normal event when the component came back from a Degraded state `before`; None: no event."""
        return None


class WorkloadComponent(Component):
    """A component with a workload of its own, rendered from Secrets: its state is its render problem or wait
    first, else what the workload's pods show."""

    workload_kind: ClassVar[str]  # Deployment or StatefulSet

    @abstractmethod
    def workload_name(self, ais: AIService) -> str: ...

    def state(self, ais: AIService, observed: Observed, rendering: Rendering) -> ComponentState:
        if rendering.problem is not None:
            return ComponentState("Degraded", rendering.problem, False)
        if rendering.pending is not None:
            return ComponentState("Pending", rendering.pending, False)
        workload = observed.lookup(self.workload_kind, ais.metadata.namespace, self.workload_name(ais))
        return workload_state(workload, 1)


def workload_state(workload: dict[str, Any] | None, floor: int) -> ComponentState:
    """State of a Deployment or StatefulSet, judged by pods that are available, never by objects created.

    `floor` is how many available pods count as serving (the autoscaler's minimum for Triton).
    """
    if workload is None:
        return ComponentState("Pending", "not created yet", False)
    spec, status = workload.get("spec", {}), workload.get("status", {}) or {}
    wanted = spec.get("replicas", 1)
    ready = status.get("readyReplicas", 0) or 0
    available = status.get("availableReplicas", 0) or 0
    updated = status.get("updatedReplicas", 0) or 0
    observed = status.get("observedGeneration", 0) >= workload.get("metadata", {}).get("generation", 0)
    serving = available >= max(1, min(floor, wanted))
    summary = f"{available}/{wanted} pods available, {ready} ready, {updated} updated"
    for cond in status.get("conditions", []) or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return ComponentState("Degraded", f"{cond.get('reason')}: {cond.get('message')}", serving)
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return ComponentState("Degraded", f"rollout stalled ({summary})", serving)
    if serving and observed and updated >= wanted and available >= wanted:
        return ComponentState("Ready", summary, True)
    return ComponentState("Progressing", summary, serving)
