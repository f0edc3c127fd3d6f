"""The canary at the edge: read its counters through the metric source, let the pure policy judge
(autoscaler/canary.py), and say what happened in events, a condition and `status.canary`.

The rollout's state is `status.canary`, read back from the AIService on every pass: nothing about an analysis is
kept in memory, so a restarted operator resumes a window where it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from ..api import AIService
from ..api.canary import CanaryStatus, VersionStatus
from ..api.children import names
from ..autoscaler.canary import (
    Counters,
    Progress,
    advance,
    canary_queries,
    current,
    judge,
    serving,
    watched_seconds,
)
from ..autoscaler.prometheus import MetricSource
from ..autoscaler.sample import Sample
from ..renderer.component import Lookup
from ..renderer.inference import versions
from .conditions import condition

Emit = Callable[[str, str, str], None]
Analyse = Callable[[AIService, CanaryStatus], Progress]

# The events that tell a rollout's story in `kubectl describe`.
_EVENTS = {
    "start": ("Normal", "CanaryStarted"),
    "step": ("Normal", "CanaryStepped"),
    "promote": ("Normal", "CanaryPromoted"),
    "rollback": ("Warning", "CanaryRolledBack"),
}


def recorded(previous: Mapping[str, Any]) -> CanaryStatus | None:
    """`status.canary` as last written; an unreadable one starts the analysis over rather than failing the pass."""
    raw = previous.get("canary")
    if not raw:
        return None
    try:
        return CanaryStatus.model_validate(raw)
    except ValidationError:
        return None


def _value(sample: Sample) -> float | None:
    return sample.value if sample.ok else None


def read_counters(ais: AIService, state: CanaryStatus, source: MetricSource, now: float) -> Counters:
    analysis = ais.spec.inference.canary.analysis if ais.spec.inference.canary else None
    queries = canary_queries(ais.metadata.namespace, ais.metadata.name, watched_seconds(state, now),
                             ais.spec.autoscaling.poll_interval_seconds)
    success = _value(source.query(queries.success))
    failure = source.query(queries.failure)
    # A version that never failed may have no failure series yet: with requests counted, that is zero failures.
    failed = _value(failure) if failure.ok or success is None else 0.0
    latency = source.query(queries.p95_latency_ms) if analysis and analysis.max_p95_latency_ms is not None else None
    queue = source.query(queries.p95_queue_ms) if analysis and analysis.max_p95_queue_ms is not None else None
    return Counters(
        success=success,
        failure=failed,
        p95_latency_ms=_value(latency) if latency else None,
        p95_queue_ms=_value(queue) if queue else None,
    )


def analyser(source: Callable[[AIService], MetricSource], now: float) -> Analyse:
    """One poll of the analysis, reading through the AIService's metric source."""

    def analyse(ais: AIService, state: CanaryStatus) -> Progress:
        canary = ais.spec.inference.canary
        assert canary is not None  # only called for a canary's state
        try:
            metrics = source(ais)
        except LookupError as exc:  # the bearer token's Secret: no reading, so no verdict either way
            return Progress(state.model_copy(update={"verdict": f"no reading: {exc}"}), "none")
        judgement = judge(canary.analysis, read_counters(ais, state, metrics, now), watched_seconds(state, now))
        progress = advance(canary, state, judgement, now)
        share = _value(metrics.query(
            canary_queries(ais.metadata.namespace, ais.metadata.name, 0, ais.spec.autoscaling.poll_interval_seconds)
            .canary_share
        ))
        observed = VersionStatus(version="", observed_share=None if share is None else round(share, 1))
        return Progress(progress.status.model_copy(update={"canary": observed}), progress.action)

    return analyse


def canary_ready(ais: AIService, lookup: Lookup) -> bool:
    """Every pod the canary's Deployment wants is ready, for its current spec."""
    deployment = lookup("Deployment", ais.metadata.namespace, names(ais).triton_canary)
    if deployment is None:
        return False
    wanted = (deployment.get("spec") or {}).get("replicas", 0)
    status = deployment.get("status") or {}
    current = status.get("observedGeneration", 0) >= (deployment.get("metadata") or {}).get("generation", 0)
    return current and wanted > 0 and (status.get("readyReplicas") or 0) >= wanted \
        and (status.get("updatedReplicas") or 0) >= wanted


def rollout(
    ais: AIService, previous: Mapping[str, Any], now: float, analyse: Analyse | None, emit: Emit, ready: bool
) -> CanaryStatus | None:
    """This pass's canary state: the recorded one (or a fresh start), its window opened or closed by whether
    the canary's pods are `ready`, and moved on by an analysis poll when one is due and the window is open;
    each move is an event."""
    progress = current(ais.spec.inference.canary, recorded(previous), now)
    if progress is None:
        return None
    progress = Progress(serving(progress.status, ready, now), progress.action)
    moves = [progress]
    if analyse is not None and progress.status.window_start is not None:
        moves.append(analyse(ais, progress.status))
    for move in moves:
        if move.action in _EVENTS:
            kind, reason = _EVENTS[move.action]
            emit(kind, reason, _story(ais, move))
    return moves[-1].status


def _story(ais: AIService, move: Progress) -> str:
    state = move.status
    version = (ais.spec.inference.canary_inference() or ais.spec.inference).version
    if move.action == "start":
        return f"canary {version} started at {state.share} % of the pods ({state.phase})"
    if move.action == "step":
        return f"canary {version}: {state.verdict}"
    if move.action == "promote":
        return f"canary {version} promoted: {state.verdict}; the stable Deployment now runs it"
    return f"canary {version} rolled back: {state.verdict}"


def fleet_total(ais: AIService, state: CanaryStatus | None, live: Callable[[str], dict[str, Any] | None]) -> int | None:
    """The whole Triton fleet's size as last set: both Deployments while a canary runs. A canary on its way out
    (rolled back, promoted, ended) no longer counts: its Deployment lingers in the watch cache after deletion,
    and counting it would grow the stable one by its size."""
    parts = [names(ais).triton] + ([names(ais).triton_canary] if versions(ais, state, 0)[2] is not None else [])
    sizes = [((live(name) or {}).get("spec") or {}).get("replicas") for name in parts]
    known = [s for s in sizes if isinstance(s, int)]
    return sum(known) if known else None


def _version(deployment: dict[str, Any] | None, version: str, share: float | None) -> VersionStatus:
    status = (deployment or {}).get("status") or {}
    return VersionStatus(
        version=version,
        replicas=((deployment or {}).get("spec") or {}).get("replicas", 0),
        ready_replicas=status.get("readyReplicas", 0) or 0,
        observed_share=None if share is None else round(share, 1),
    )


def report(ais: AIService, state: CanaryStatus | None, lookup: Lookup) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(`status.canary`, the CanaryHealthy condition) for this pass: the state with each version's pods, and
    the share of requests last observed (read at the analysis polls, kept in between)."""
    if state is None:
        return None, []
    ns, children = ais.metadata.namespace, names(ais)
    stable_spec, _, canary_spec = versions(ais, state, 0)
    share = state.canary.observed_share if state.canary else None
    with_versions = state.model_copy(update={
        "stable": _version(lookup("Deployment", ns, children.triton), stable_spec.version,
                           None if share is None else 100 - share),
        "canary": None if canary_spec is None else _version(
            lookup("Deployment", ns, children.triton_canary), canary_spec.version, share),
    })
    healthy = condition("CanaryHealthy", state.phase != "RolledBack", state.phase, state.verdict)
    return with_versions.to_wire(), [healthy]
