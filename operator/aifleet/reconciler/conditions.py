"""Conditions: computed purely from what was observed, with transition times that only move on change."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple


class ComponentState(NamedTuple):
    state: str  # Pending | Progressing | Ready | Degraded | Disabled
    message: str
    serving: bool  # enough pods answer requests, even if a rollout or scale-up is still under way


DISABLED = ComponentState("Disabled", "not requested in the spec", True)


def condition(type_: str, ok: bool | None, reason: str, message: str = "") -> dict[str, Any]:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": type_, "status": status, "reason": reason, "message": message}


def merge_conditions(
    previous: Iterable[dict[str, Any]] | None, current: Iterable[dict[str, Any]], now: str, generation: int | None
) -> list[dict[str, Any]]:
    """Keep lastTransitionTime when a condition's status did not change, like every core controller."""
    before = {c.get("type"): c for c in previous or []}
    merged = []
    for cond in current:
        old = before.get(cond["type"])
        moved = old is None or old.get("status") != cond["status"]
        merged.append(
            {
                **cond,
                "lastTransitionTime": now if old is None or moved else old.get("lastTransitionTime", now),
                "observedGeneration": generation,
            }
        )
    return merged


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


def summary_conditions(states: dict[str, ComponentState], spec_error: str | None) -> list[dict[str, Any]]:
    """Ready, Progressing and Degraded from the per-component states."""
    if spec_error:
        return [
            condition("Ready", False, "InvalidSpec", spec_error),
            condition("Progressing", False, "InvalidSpec", "nothing was changed: fix the spec"),
            condition("Degraded", True, "InvalidSpec", spec_error),
        ]
    active = {name: s for name, s in states.items() if s.state != "Disabled"}
    degraded = {name: s for name, s in active.items() if s.state == "Degraded"}
    moving = {name: s for name, s in active.items() if s.state in ("Pending", "Progressing")}
    not_serving = [name for name, s in active.items() if not s.serving or s.state == "Degraded"]
    if not not_serving:
        ready = condition("Ready", True, "Serving", _describe(active))
    else:
        ready = condition("Ready", False, f"{not_serving[0].capitalize()}NotReady", _describe(active))
    progressing = condition(
        "Progressing", bool(moving), "Reconciling" if moving else "Stable",
        _describe(moving) if moving else "every component is at its desired state",
    )
    degraded_cond = condition(
        "Degraded", bool(degraded), "ComponentDegraded" if degraded else "AsExpected", _describe(degraded)
    )
    return [ready, progressing, degraded_cond]


def component_condition(name: str, state: ComponentState) -> dict[str, Any]:
    """Per-component condition, e.g. InferenceReady, PoolerReady."""
    return condition(f"{name.capitalize()}Ready", state.state in ("Ready", "Disabled"), state.state, state.message)


def _describe(states: dict[str, ComponentState]) -> str:
    return "; ".join(f"{name}: {s.message}" for name, s in states.items())
