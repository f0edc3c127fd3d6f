"""One reconcile of one AIService: render, compare with what the watches saw, apply the difference,
report status. Everything here is plain functions; kopf only calls `reconcile`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from pydantic import ValidationError

from ..api import AIService
from ..api.errors import describe_validation_error
from ..clients.kube import Kube, KubeError
from ..renderer import CONFIG_HASH, render
from ..renderer.common import Names
from .conditions import (
    DISABLED,
    ComponentState,
    component_condition,
    merge_conditions,
    summary_conditions,
    workload_state,
)
from .diff import drift
from .observed import AppliedCache, Lookup
from .scaling import hpa_status, operator_status
from ..autoscaler.policy import Decision

log = logging.getLogger("aifleet.reconciler")

Emit = Callable[[str, str, str], None]  # (type, reason, message) -> recorded as a Kubernetes Event


@dataclass
class Outcome:
    """What one reconcile did, for logs and tests."""

    applied: list[str] = field(default_factory=list)
    status_written: bool = False
    error: str | None = None


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _change_event(manifest: dict[str, Any], live: dict[str, Any] | None, reason: str) -> tuple[str, str]:
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    if live is None:
        return "Created", f"created {kind} {name}"
    wanted = manifest["metadata"]["annotations"][CONFIG_HASH]
    had = (live.get("metadata", {}).get("annotations") or {}).get(CONFIG_HASH)
    if had != wanted:
        return "Updated", f"updated {kind} {name} to the new spec ({reason} changed)"
    return "DriftReverted", f"reverted {kind} {name}: {reason} was changed outside aifleet"


def apply_children(
    desired: list[dict[str, Any]], lookup: Lookup, kube: Kube, applied: AppliedCache, emit: Emit
) -> list[str]:
    """Apply only what is missing or drifted. A resync where nothing changed sends nothing."""
    done = []
    for manifest in desired:
        kind, meta = manifest["kind"], manifest["metadata"]
        live = applied.newest(kind, meta["namespace"], meta["name"], lookup(kind, meta["namespace"], meta["name"]))
        reason = drift(manifest, live)
        if reason is None:
            continue
        result = kube.apply(manifest)
        applied.remember(result)
        event_reason, message = _change_event(manifest, live, reason)
        emit("Normal", event_reason, message)
        log.info("applied child", extra={"kind": kind, "child": meta["name"], "why": reason})
        done.append(f"{kind}/{meta['name']}")
    return done


def _fleet_replicas(ais: AIService, lookup: Lookup) -> int | None:
    live = lookup("Deployment", ais.metadata.namespace, Names(ais.metadata.name).triton)
    return (live or {}).get("spec", {}).get("replicas")


def endpoints(ais: AIService) -> dict[str, Any]:
    ns, names = ais.metadata.namespace, Names(ais.metadata.name)
    host = f"{names.triton}.{ns}.svc"
    return {"http": f"http://{host}:8000", "grpc": f"{host}:8001", "metrics": f"http://{host}:8002/metrics"}


def _selector(ais: AIService) -> str:
    from ..renderer.common import selector_labels

    return ",".join(f"{k}={v}" for k, v in selector_labels(ais, "triton").items())


def scaling_report(ais: AIService, lookup: Lookup, decision: Decision | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if ais.spec.autoscaling.engine == "hpa":
        return hpa_status(lookup("HorizontalPodAutoscaler", ais.metadata.namespace, Names(ais.metadata.name).triton))
    return operator_status(decision)


def build_status(
    ais: AIService, lookup: Lookup, previous: dict[str, Any], now: str, decision: Decision | None = None
) -> dict[str, Any]:
    """The status block, computed purely from the spec, the observed children and the last scaling decision."""
    names = Names(ais.metadata.name)
    deployment = lookup("Deployment", ais.metadata.namespace, names.triton)
    states: dict[str, ComponentState] = {
        "inference": workload_state(deployment, ais.spec.autoscaling.min_replicas),
    }
    dep_status = (deployment or {}).get("status", {}) or {}
    scaling_fields, scaling_conditions = scaling_report(ais, lookup, decision)
    conditions = (
        summary_conditions(states, None)
        + [component_condition(n, s) for n, s in states.items()]
        + scaling_conditions
    )
    status = {
        "observedGeneration": ais.metadata.generation,
        "conditions": merge_conditions(previous.get("conditions"), conditions, now, ais.metadata.generation),
        "replicas": dep_status.get("replicas", 0),
        "readyReplicas": dep_status.get("readyReplicas", 0),
        "selector": _selector(ais),
        "endpoints": endpoints(ais),
        "components": {n: {"state": s.state, "message": s.message} for n, s in states.items()},
    }
    if deployment is not None:
        status["desiredReplicas"] = deployment.get("spec", {}).get("replicas")
    status.update(scaling_fields)
    return status


def _changed(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The keys of `new` whose value differs from `previous`: the merge patch to send, empty when quiet."""
    return {k: v for k, v in new.items() if previous.get(k) != v}


def invalid_status(body: dict[str, Any], message: str, now: str) -> dict[str, Any]:
    previous = body.get("status") or {}
    generation = body.get("metadata", {}).get("generation")
    conditions = summary_conditions({}, message)
    return {
        "observedGeneration": generation,
        "conditions": merge_conditions(previous.get("conditions"), conditions, now, generation),
    }


def parse(body: dict[str, Any]) -> AIService | None:
    try:
        return AIService.model_validate(body)
    except ValidationError:
        return None


def reconcile(
    body: dict[str, Any],
    lookup: Lookup,
    kube: Kube,
    applied: AppliedCache,
    emit: Emit,
    decision: Decision | None = None,
) -> Outcome:
    outcome = Outcome()
    previous = dict(body.get("status") or {})
    now = now_rfc3339()
    try:
        ais = AIService.model_validate(body)
    except ValidationError as exc:
        # The CRD refuses most bad specs; this catches what only Python can check. Change nothing.
        message = describe_validation_error(exc)
        patch = _changed(previous, invalid_status(body, message, now))
        if patch:
            emit("Warning", "InvalidSpec", message)
            kube.patch_status(body["metadata"]["namespace"], body["metadata"]["name"], patch)
            outcome.status_written = True
        outcome.error = message
        return outcome

    desired = render(ais, replicas=_fleet_replicas(ais, lookup))
    try:
        outcome.applied = apply_children(desired, lookup, kube, applied, emit)
    except KubeError as exc:
        outcome.error = f"apply failed: {exc}"
        emit("Warning", "ApplyFailed", outcome.error)
        raise

    patch = _changed(previous, build_status(ais, lookup, previous, now, decision))
    if patch:
        kube.patch_status(ais.metadata.namespace, ais.metadata.name, patch)
        outcome.status_written = True
    return outcome
