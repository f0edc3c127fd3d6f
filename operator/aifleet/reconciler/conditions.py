"""Conditions: computed purely from what was observed, with transition times that only move on change."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..renderer.component import ComponentState


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
