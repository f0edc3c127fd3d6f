"""The `operator` engine at the edge: read the metric, let the pure policy decide, resize, explain.

Also the pure mapping from a decision (or a mirrored HPA) to the AIService's scaling status and its
HPA-style conditions (AbleToScale, ScalingActive, ScalingLimited).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..api import AIService
from ..api.autoscaling import AutoscalingSpec
from ..api.canary import CanaryStatus
from ..api.children import names
from ..api.secret_data import decode_key
from ..api.timestamps import parse_timestamp
from ..autoscaler.batching import BatchingSource, RateBudget
from ..autoscaler.forecast import HistoryView, history_views, refresh_interval
from ..autoscaler.policy import Decision, Observation, decide, is_paused, to_status, tolerances
from ..autoscaler.prometheus import MetricSource, PrometheusSource
from ..autoscaler.sample import Sample
from ..autoscaler.state import AutoscalerState
from ..clients.cache import DEFAULT_MAX_CLIENTS, SharedClients
from ..clients.endpoints import EndpointPolicy, EndpointRefusedError
from ..clients.kube import Kube
from ..observability import metrics
from ..renderer.component import Lookup
from ..renderer.inference import versions
from .conditions import condition
from .observed import AppliedCache

log = logging.getLogger("aifleet.autoscaler")
BATCH_MAX_AGE_SECONDS = 3.0
# Range queries for the forecaster, per operator: 1,000 AIServices read their history (two views each) within
# about two minutes of a restart, and then every `refreshSeconds` spread out as their first reads were.
HISTORY_QUERIES_PER_SECOND = 20.0

Emit = Callable[[str, str, str], None]


@dataclass
class ScalingMemory:
    """Per-AIService autoscaler memory. In memory only: a restarted operator starts cautious
    (a fresh state waits a full scale-down window before shrinking), and quiet polls write nothing."""

    state: AutoscalerState
    decision: Decision | None = None  # the last one made
    shown: Decision | None = None  # the one the status reports: see `shown_decision`


class Autoscalers:
    """Per-AIService memory, and the metric sources: shared by AIServices that read the same Prometheus alike,
    bounded, and dropped with the AIService or when its token changes (`clients.cache`). An address outside the
    operator's allow-list (`clients.endpoints`) gets no source, and so no token: `EndpointRefusedError`."""

    def __init__(
        self, source_factory: Callable[..., MetricSource] = PrometheusSource, policy: EndpointPolicy | None = None,
        max_sources: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, str], ScalingMemory] = {}
        self.sources: SharedClients[tuple[str, int, bool, str], BatchingSource] = SharedClients(max_sources)
        self._source_factory = source_factory
        self.policy = policy if policy is not None else EndpointPolicy.from_env()
        self.history_budget = RateBudget(HISTORY_QUERIES_PER_SECOND, burst=2 * HISTORY_QUERIES_PER_SECOND)

    def memory(self, namespace: str, name: str) -> ScalingMemory:
        with self._lock:
            return self._memory.setdefault((namespace, name), ScalingMemory(AutoscalerState()))

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._memory.pop((namespace, name), None)
        self.sources.release((namespace, name))

    def source(self, ais: AIService, kube: Kube) -> BatchingSource:
        metrics = ais.spec.autoscaling.metrics
        refusal = self.policy.metrics_refusal(metrics.address)
        if refusal:  # before the token's Secret is even read
            raise EndpointRefusedError(refusal)
        token = _bearer_token(ais, kube)
        digest = hashlib.sha256(token.encode()).hexdigest() if token is not None else ""
        key = (metrics.address, metrics.timeout_seconds, metrics.insecure_skip_tls_verify, digest)
        return self.sources.get(
            (ais.metadata.namespace, ais.metadata.name), key,
            lambda: BatchingSource(self._source_factory(
                metrics.address,
                timeout_seconds=metrics.timeout_seconds,
                bearer_token=token,
                insecure_skip_tls_verify=metrics.insecure_skip_tls_verify,
            )),
        )


def _bearer_token(ais: AIService, kube: Kube) -> str | None:
    ref = ais.spec.autoscaling.metrics.auth_secret_ref
    if ref is None:
        return None
    token = decode_key(kube.get("Secret", ais.metadata.namespace, ref.name), ref.key)
    if token is None:
        # Reported as a metric failure by the caller; the token itself is never in a message.
        raise LookupError(f"spec.autoscaling.metrics.authSecretRef: Secret {ref.name!r} has no key {ref.key!r}")
    return token.strip()


def read_metrics(ais: AIService, source: BatchingSource) -> tuple[Sample, Sample | None]:
    """This service's RPS and, if configured, its queue signal."""
    scaling = ais.spec.autoscaling
    metrics = scaling.metrics
    ns, name = ais.metadata.namespace, ais.metadata.name
    if metrics.query is None:
        # Services poll at the same aligned moments (see passes.aligned_delay): the first one fetches the batch,
        # the others of that moment reuse it.
        rps = source.service_rps(ns, name, max_age=min(BATCH_MAX_AGE_SECONDS, scaling.poll_interval_seconds / 2))
    else:
        rps = source.query(metrics.rendered_query(ns, name))
    queue = source.query(metrics.queue.rendered_query(ns, name)) if metrics.queue else None
    return rps, queue


def read_fast_rps(ais: AIService, source: BatchingSource) -> Sample | None:
    """The fast path's short-window RPS (engine operator, fastPath.enabled)."""
    scaling = ais.spec.autoscaling
    fast = scaling.fast_path
    if not fast.enabled:
        return None
    ns, name = ais.metadata.namespace, ais.metadata.name
    if fast.query is None and scaling.metrics.query is None:
        # the default query on the default metric: one batched query per poll for every such service
        return source.service_fast_rps(ns, name, max_age=min(BATCH_MAX_AGE_SECONDS, scaling.poll_interval_seconds / 2))
    return source.query(fast.rendered_query(ns, name))


def read_history(
    ais: AIService, source: BatchingSource, state: AutoscalerState, now: float, budget: RateBudget | None = None,
) -> tuple[HistoryView, ...] | None:
    """The RPS history for the forecaster, from Prometheus range queries of the RPS query, when a re-fit is due and
    the operator's `budget` of range queries allows (otherwise at a later poll). From Prometheus rather than memory:
    a restarted operator forecasts again within its first polls."""
    scaling = ais.spec.autoscaling
    fc = scaling.forecast
    if not fc.enabled or (state.forecast_checked_at is not None and now - state.forecast_checked_at < refresh_interval(state, fc)):
        return None
    wanted = history_views(fc, scaling.poll_interval_seconds)
    if budget is not None and not budget.take(len(wanted)):
        return None
    promql = scaling.metrics.rendered_query(ais.metadata.namespace, ais.metadata.name)
    views = [source.query_range(promql, span, step) for span, step in wanted]
    return tuple(v for v in views if v is not None)


def warming_up(deployment: dict[str, Any], warmup_seconds: float, now: float) -> bool:
    """Whether the fleet has not yet been available for `warmup_seconds` (its Available condition)."""
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Available":
            if cond.get("status") != "True":
                return True
            try:
                since = parse_timestamp(cond["lastTransitionTime"])
            except (KeyError, TypeError, ValueError):
                return False
            return now - since < warmup_seconds
    return True


def _remember_resize(applied: AppliedCache, deployment: dict[str, Any], replicas: int, scale: dict[str, Any]) -> None:
    """The watch will bring the resized Deployment soon; until then, a reconcile must not mistake the old
    replica count for the truth and put it back."""
    resized = copy.deepcopy(deployment)
    resized["spec"]["replicas"] = replicas
    resized["metadata"]["resourceVersion"] = scale["metadata"]["resourceVersion"]
    resized.setdefault("kind", "Deployment")
    applied.remember(resized)


@dataclass
class _Poll:
    """A poll's reading and decision, before anything is kept or done."""

    deployment: dict[str, Any]
    second: dict[str, Any] | None
    memory: ScalingMemory
    observation: Observation
    decision: Decision


def _poll(
    ais: AIService, lookup: Lookup, kube: Kube, autoscalers: Autoscalers, canary: CanaryStatus | None
) -> _Poll | None:
    fleet = names(ais).triton
    deployment = lookup("Deployment", ais.metadata.namespace, fleet)
    if deployment is None:
        return None
    second = lookup("Deployment", ais.metadata.namespace, names(ais).triton_canary)
    if versions(ais, canary, 0)[2] is None:
        second = None  # a canary on its way out (rolled back, promoted, ended) is no longer part of the fleet
    fleet_parts = [d for d in (deployment, second) if d]
    memory = autoscalers.memory(ais.metadata.namespace, ais.metadata.name)
    # One source per poll: building it reads the bearer token's Secret.
    source: BatchingSource | None = None
    try:
        source = autoscalers.source(ais, kube)
        rps, queue = read_metrics(ais, source)
    except LookupError as exc:  # the bearer token's Secret is missing: a metric failure, said in words
        rps, queue = Sample.failure("failed", str(exc)), None
    now = time.time()
    fast_rps: Sample | None = None
    history: tuple[HistoryView, ...] | None = None
    if source is not None:
        try:
            fast_rps = read_fast_rps(ais, source)
            # No series now: the fleet serves nothing yet (or is not scraped), so its history holds nothing to fit.
            has_series = rps.error != "empty"
            history = read_history(ais, source, memory.state, now, autoscalers.history_budget) if has_series else None
        except LookupError:
            fast_rps, history = None, None
    observation = Observation(
        fast_rps=fast_rps,
        history=history,
        rps=rps,
        current_replicas=sum(d.get("spec", {}).get("replicas", 0) for d in fleet_parts),
        ready_replicas=sum((d.get("status") or {}).get("readyReplicas", 0) or 0 for d in fleet_parts),
        queue=queue,
        paused=is_paused(ais.metadata.annotations),
        warming_up=warming_up(deployment, ais.spec.autoscaling.metrics.warmup_seconds, now),
    )
    decision = decide(observation, memory.state, ais.spec.autoscaling, now)
    return _Poll(deployment, second, memory, observation, decision)


def autoscale(
    ais: AIService,
    lookup: Lookup,
    kube: Kube,
    autoscalers: Autoscalers,
    applied: AppliedCache,
    emit: Emit,
    canary: CanaryStatus | None = None,
) -> Decision | None:
    """One poll of the operator engine. Returns the decision, which the status reports.

    While a canary runs, the fleet is both Deployments: the decision sizes the whole, and the split of
    `canary` (the rollout's state) divides it."""
    poll = _poll(ais, lookup, kube, autoscalers, canary)
    if poll is None:
        return None
    return _keep(poll, ais, kube, applied, emit, canary)


def autoscale_if_quiet(
    ais: AIService, lookup: Lookup, kube: Kube, autoscalers: Autoscalers, applied: AppliedCache, emit: Emit,
) -> bool:
    """The poll of the fleet's sweep: kept (True) only if it resizes nothing and the status already shows what it
    decided. Otherwise nothing of it is kept (False): the AIService's worker polls again and acts, on the worker
    threads, where a thousand changes at once do not wait behind each other."""
    poll = _poll(ais, lookup, kube, autoscalers, None)
    if poll is None or poll.decision.act:
        return False
    shown = shown_decision(poll.decision, poll.memory.shown, status_tolerance(ais.spec.autoscaling))
    if shown is not poll.memory.shown:
        return False
    _keep(poll, ais, kube, applied, emit, None, shown)
    return True


def _keep(
    poll: _Poll, ais: AIService, kube: Kube, applied: AppliedCache, emit: Emit, canary: CanaryStatus | None,
    shown: Decision | None = None,
) -> Decision:
    """Remember the decision, resize, and say so. `shown`: what the status reports from now on, when the caller
    has worked it out already (see `shown_decision`)."""
    deployment, second, memory, observation, decision = (
        poll.deployment, poll.second, poll.memory, poll.observation, poll.decision)
    previous = memory.decision
    memory.state, memory.decision = decision.state, decision
    ref = f"{ais.metadata.namespace}/{ais.metadata.name}"
    memory.shown = shown if shown is not None else shown_decision(decision, memory.shown, status_tolerance(ais.spec.autoscaling))
    metrics.record_desired(ais.metadata.namespace, ais.metadata.name, decision.desired_replicas, decision.rps)
    if decision.metric_error:
        metrics.record_metric_failure(decision.metric_error)
    metrics.record_decision(ais.metadata.namespace, ais.metadata.name, decision.reason, decision.metric_error is not None)
    if decision.act and decision.desired_replicas != decision.current_replicas:
        # With no canary Deployment yet, the stable one holds the whole fleet until the reconcile splits it.
        _, sizes, _ = versions(ais, canary, decision.desired_replicas)
        resizes = [(deployment, sizes.stable), (second, sizes.canary)] if second else [(deployment, decision.desired_replicas)]
        for workload, replicas in resizes:
            try:
                scale = kube.scale("Deployment", ais.metadata.namespace, workload["metadata"]["name"], replicas)
            except Exception:
                metrics.record_scale_failure(ais.metadata.namespace, ais.metadata.name)
                raise
            _remember_resize(applied, workload, replicas, scale)
        up = decision.desired_replicas > decision.current_replicas
        metrics.record_scale("up" if up else "down", ais.metadata.namespace, ais.metadata.name, decision.desired_replicas)
        emit("Normal", "ScaledUp" if up else "ScaledDown", decision.message)
        log.info(
            "scaled",
            extra={"aiservice": ref, "from": decision.current_replicas, "to": decision.desired_replicas,
                   "rps": decision.rps, "why": decision.message},
        )
    was_failing = previous is not None and previous.metric_error is not None
    if decision.metric_error and not was_failing:
        emit("Warning", "MetricsUnavailable", decision.message)
        log.warning("metrics unavailable", extra={"aiservice": ref, "kind": decision.metric_error, "detail": observation.rps.detail})
    elif was_failing and not decision.metric_error:
        what = "Prometheus answers again" if decision.reason == "WaitingForMetrics" else "rps readable again"
        emit("Normal", "MetricsRecovered", f"{what}: {decision.message}")
    return decision


# --- status: pure ------------------------------------------------------------------------------------

# What a decision decided, as opposed to the readings it was made on.
_DECIDED = ("desired_replicas", "current_replicas", "act", "reason", "limited", "reactive_replicas",
            "lookahead_replicas", "queue_replicas", "metric_error", "paused", "fast_path_replicas", "forecast_replicas",
            "decided_by")
_READINGS = ("rps", "projected_rps", "queue", "fast_rps", "forecast_rps")


# Readings that moved less than this fraction are not rewritten into the status, even when the scaling band is
# tighter (1% up by default): the status is for people, the exact value is the operator's metric.
STATUS_READING_TOLERANCE = 0.07


def status_tolerance(spec: AutoscalingSpec) -> float:
    return max(*tolerances(spec), STATUS_READING_TOLERANCE)


def _close(new: float | None, shown: float | None, tolerance: float) -> bool:
    if new is None or shown is None:
        return new is shown
    return abs(new - shown) <= tolerance * max(abs(shown), 1.0)


def shown_decision(new: Decision, shown: Decision | None, tolerance: float) -> Decision:
    """The decision the status reports: the new one, unless it decided exactly what the shown one did and its
    readings (RPS, forecast, queue) moved by no more than the scaling tolerance.

    Under steady traffic the RPS differs in the last digits on every poll; writing it each time would be one
    status patch per AIService per poll for nothing anyone acts on. The exact value is in the operator's
    `aifleet_observed_rps` metric.
    """
    if shown is None or new.act:
        return new
    if any(getattr(new, f) != getattr(shown, f) for f in _DECIDED):
        return new
    if (new.state.last_scale_time, new.state.last_scale_reason) != (shown.state.last_scale_time, shown.state.last_scale_reason):
        return new
    if not all(_close(getattr(new, f), getattr(shown, f), tolerance) for f in _READINGS):
        return new
    return shown


def operator_status(decision: Decision | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(status fields, scaling conditions) from the last decision of the operator engine."""
    if decision is None:
        waiting = "waiting for the first poll of the metrics"
        return {}, [
            condition("AbleToScale", None, "Initializing", waiting),
            condition("ScalingActive", None, "Initializing", waiting),
            condition("ScalingLimited", False, "DesiredWithinRange", ""),
        ]
    # No field here may carry a CRD default the report leaves out: the API server would fill it in on every
    # write, the next comparison would differ, and every poll would turn into a status patch.
    report = to_status(decision).to_wire()
    fields = {
        "desiredReplicas": decision.desired_replicas,
        "currentRPS": None if decision.rps is None else round(decision.rps, 2),
        "lastScaleTime": report.get("lastScaleTime"),
        "lastScaleReason": report.get("lastScaleReason"),
        "autoscaling": report,
    }
    if decision.paused:
        active = condition("ScalingActive", False, "ScalingPaused", decision.message)
    elif decision.reason == "WaitingForMetrics":
        active = condition("ScalingActive", None, "WaitingForMetrics", decision.message)
    elif decision.metric_error:
        active = condition("ScalingActive", False, "FailedGetMetrics", decision.message)
    else:
        active = condition("ScalingActive", True, "ValidMetricFound", decision.message)
    limited = (
        condition("ScalingLimited", True, decision.limited, decision.message)
        if decision.limited
        else condition("ScalingLimited", False, "DesiredWithinRange", "the desired count is within the acceptable range")
    )
    able = condition("AbleToScale", not decision.paused, "ScalingPaused" if decision.paused else "ReadyForNewScale", "")
    return fields, [able, active, limited]


def hpa_status(hpa: dict[str, Any] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Mirror the HorizontalPodAutoscaler's own view (the `hpa` engine).

    The HPA knows only the per-pod average over the pods that report the metric, so the fleet's total RPS
    is not reported (average x replicas overstates it right after a scale-up); the average is, in the message.
    """
    if hpa is None:
        return {}, [condition("ScalingActive", None, "HPANotCreated", "the HorizontalPodAutoscaler does not exist yet")]
    status = hpa.get("status") or {}
    average = None
    for metric in status.get("currentMetrics") or []:
        average = ((metric.get("pods") or {}).get("current") or {}).get("averageValue") or average
    fields = {
        "desiredReplicas": status.get("desiredReplicas"),
        "lastScaleTime": status.get("lastScaleTime"),
        "autoscaling": {
            "desiredReplicas": status.get("desiredReplicas"),
            "message": f"HorizontalPodAutoscaler: {average} rps per pod on average over the pods that report it"
            if average is not None else "HorizontalPodAutoscaler: no metric value yet",
        },
    }
    conditions = [
        condition(c["type"], c.get("status") == "True" if c.get("status") in ("True", "False") else None,
                  c.get("reason", ""), c.get("message", ""))
        for c in status.get("conditions") or []
        if c.get("type") in ("AbleToScale", "ScalingActive", "ScalingLimited")
    ]
    return {k: v for k, v in fields.items() if v is not None}, conditions
