"""The operator's own Prometheus metrics, and the small functions the reconciler calls to record them.

Every function here is cheap, thread-safe (prometheus_client's locks) and never raises: observability must not
break a reconcile. Label values are bounded: results, directions and failure kinds are normalised to a fixed
set, and the per-AIService gauge is removed when its AIService goes (``forget``).
"""

from __future__ import annotations

import logging
from typing import Any, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .. import __version__
from ..api.autoscaling import ReasonCode

log = logging.getLogger("aifleet.observability")

disable_created_metrics()  # no `_created` series: twice the series for nothing a dashboard uses
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

RESULTS = ("changed", "unchanged", "polled", "error")
DIRECTIONS = ("up", "down")
API_VERBS = ("get", "post", "patch", "put", "delete")
OTHER = "other"

BUILD_INFO = Gauge("aifleet_build_info", "aifleet version; always 1", ["version"], registry=REGISTRY)
BUILD_INFO.labels(version=__version__).set(1)

READY = Gauge("aifleet_ready", "1 when the operator passed its preflight and watches AIServices", registry=REGISTRY)

RECONCILES = Counter(
    "aifleet_reconciles_total",
    "Reconcile passes of one AIService, by result: changed (something was applied or written), "
    "unchanged (nothing to do), error",
    ["result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "aifleet_reconcile_duration_seconds",
    "Wall time of one reconcile pass of one AIService, by result",
    ["result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "aifleet_api_requests_total",
    "Requests the reconciler sent to the API server (kopf's own watches, finalizers and events not included), by "
    "verb (get, post, patch, delete) and HTTP status (0: no answer)",
    ["verb", "code"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "aifleet_reconcile_errors_total",
    "Failed reconcile passes, by reason (the HTTP status class of the API error, or the error type)",
    ["reason"],
    registry=REGISTRY,
)
SCALING_DECISIONS = Counter(
    "aifleet_scaling_decisions_total",
    "Replica changes the operator autoscaling engine made, by direction",
    ["direction"],
    registry=REGISTRY,
)
DESIRED_REPLICAS = Gauge(
    "aifleet_desired_replicas",
    "The replica count the autoscaler wants for an AIService's inference fleet",
    ["namespace", "name"],
    registry=REGISTRY,
)
OBSERVED_RPS = Gauge(
    "aifleet_observed_rps",
    "The requests per second the autoscaler read for an AIService at its last poll (exact; the status rounds to the tolerance)",
    ["namespace", "name"],
    registry=REGISTRY,
)
METRIC_FAILURES = Counter(
    "aifleet_metric_query_failures_total",
    "Failed reads of the traffic metric (Prometheus), by kind",
    ["kind"],
    registry=REGISTRY,
)
# Per-AIService gauges for alerts and the dashboard. They all carry (namespace, name) of the AIService: scrape the
# operator with honor_labels (the chart's ServiceMonitor does), or Prometheus renames `namespace` to
# `exported_namespace` and the series no longer join with Triton's.
FLEET_LABELS = ["namespace", "name"]
AISERVICE_READY = Gauge(
    "aifleet_aiservice_ready", "1 while the AIService's Ready condition is True, else 0", FLEET_LABELS, registry=REGISTRY
)
REPLICAS = Gauge(
    "aifleet_replicas", "The inference fleet's replicas (its Deployment's spec.replicas)", FLEET_LABELS, registry=REGISTRY
)
READY_REPLICAS = Gauge(
    "aifleet_ready_replicas", "The inference fleet's ready pods (its Deployment's status.readyReplicas)",
    FLEET_LABELS, registry=REGISTRY,
)
MIN_REPLICAS = Gauge("aifleet_min_replicas", "spec.autoscaling.minReplicas", FLEET_LABELS, registry=REGISTRY)
MAX_REPLICAS = Gauge("aifleet_max_replicas", "spec.autoscaling.maxReplicas", FLEET_LABELS, registry=REGISTRY)
TARGET_RPS = Gauge(
    "aifleet_target_rps_per_pod", "spec.autoscaling.targetRPSPerPod: the requests per second one pod is sized for",
    FLEET_LABELS, registry=REGISTRY,
)
REASONS: tuple[str, ...] = get_args(ReasonCode)
SCALING_REASON = Gauge(
    "aifleet_scaling_reason",
    "1 for the reason of the operator engine's last decision for an AIService (status.autoscaling.reason), "
    "0 for the others",
    [*FLEET_LABELS, "reason"],
    registry=REGISTRY,
)
METRICS_UNAVAILABLE = Gauge(
    "aifleet_metrics_unavailable",
    "1 while the operator engine cannot read an AIService's traffic metric (a failed, empty or bad answer after "
    "the warm-up), else 0",
    FLEET_LABELS,
    registry=REGISTRY,
)
SCALE_FAILURES = Counter(
    "aifleet_scale_failures_total",
    "Resizes of an AIService's inference fleet that the API server refused or that failed",
    FLEET_LABELS,
    registry=REGISTRY,
)
PREFLIGHT_FAILURES = Counter(
    "aifleet_preflight_failures_total",
    "Startup preflight checks that failed, by check (api, crd, permissions, peering)",
    ["check"],
    registry=REGISTRY,
)

for _result in RESULTS:  # export zeros, so rate() and absent() behave from the first scrape
    RECONCILES.labels(result=_result)
    RECONCILE_SECONDS.labels(result=_result)
for _direction in DIRECTIONS:
    SCALING_DECISIONS.labels(direction=_direction)


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else OTHER


def record_reconcile(result: str, seconds: float) -> None:
    """One pass ended: ``result`` is "changed", "unchanged", "error", or "polled" (a poll that decided nothing new,
    so the rest of the pass was skipped)."""
    try:
        result = _bounded(result, RESULTS)
        RECONCILES.labels(result=result).inc()
        RECONCILE_SECONDS.labels(result=result).observe(max(0.0, float(seconds)))
    except Exception:  # never let metrics break a reconcile
        log.debug("record_reconcile failed", exc_info=True)


def error_reason(exc: BaseException) -> str:
    """A bounded label for an error: "conflict", "forbidden", "notfound", "invalid", "http4xx", "http5xx",
    or the exception's type name for non-HTTP errors."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        named = {409: "conflict", 403: "forbidden", 404: "notfound", 422: "invalid", 401: "unauthorized",
                 0: "unreachable"}
        return named.get(status) or f"http{status // 100}xx"
    return type(exc).__name__[:40]


def record_api_request(method: str, status: int) -> None:
    """One request of the reconciler's API client and its answer (0 when none came)."""
    try:
        API_REQUESTS.labels(verb=_bounded(method.lower(), API_VERBS), code=str(int(status))).inc()
    except Exception:
        log.debug("record_api_request failed", exc_info=True)


def record_error(exc_or_reason: BaseException | str) -> None:
    """A reconcile failed: pass the exception (its reason is derived) or a short reason string."""
    try:
        reason = exc_or_reason if isinstance(exc_or_reason, str) else error_reason(exc_or_reason)
        ERRORS.labels(reason=reason[:40]).inc()
    except Exception:
        log.debug("record_error failed", exc_info=True)


# The last values recorded per AIService and kind of record: a poll or pass that changes nothing sets nothing
# (a thousand AIServices polled every 15 s made labels() lookups a tenth of a quiet operator's CPU).
_last: dict[tuple[str, str, str], tuple[Any, ...]] = {}


def _unchanged(kind: str, namespace: str, name: str, values: tuple[Any, ...]) -> bool:
    key = (kind, namespace, name)
    if _last.get(key) == values:
        return True
    _last[key] = values
    return False


def record_desired(namespace: str, name: str, desired: int | None, rps: float | None = None) -> None:
    """The autoscaler's current wish for one AIService (also without a change of replicas) and the RPS it read."""
    if _unchanged("desired", namespace, name, (desired, rps)):
        return
    try:
        if desired is not None:
            DESIRED_REPLICAS.labels(namespace=namespace, name=name).set(desired)
        if rps is not None:
            OBSERVED_RPS.labels(namespace=namespace, name=name).set(rps)
    except Exception:
        log.debug("record_desired failed", exc_info=True)


def record_scale(direction: str, namespace: str, name: str, desired: int) -> None:
    """The operator engine changed an AIService's replicas: ``direction`` "up" or "down"."""
    try:
        SCALING_DECISIONS.labels(direction=_bounded(direction, DIRECTIONS)).inc()
    except Exception:
        log.debug("record_scale failed", exc_info=True)
    record_desired(namespace, name, desired)


def record_metric_failure(kind: str) -> None:
    """A metric query failed: ``kind`` is short and bounded (e.g. "unreachable", "empty", "invalid")."""
    try:
        METRIC_FAILURES.labels(kind=str(kind)[:40] or OTHER).inc()
    except Exception:
        log.debug("record_metric_failure failed", exc_info=True)


def record_fleet(
    namespace: str, name: str, *, ready: bool, replicas: int, ready_replicas: int, min_replicas: int,
    max_replicas: int, target_rps_per_pod: float,
) -> None:
    """An AIService's state after a reconcile pass: its Ready condition, its fleet's size and its bounds."""
    if _unchanged("fleet", namespace, name, (ready, replicas, ready_replicas, min_replicas, max_replicas,
                                              target_rps_per_pod)):
        return
    try:
        AISERVICE_READY.labels(namespace=namespace, name=name).set(1 if ready else 0)
        REPLICAS.labels(namespace=namespace, name=name).set(replicas)
        READY_REPLICAS.labels(namespace=namespace, name=name).set(ready_replicas)
        MIN_REPLICAS.labels(namespace=namespace, name=name).set(min_replicas)
        MAX_REPLICAS.labels(namespace=namespace, name=name).set(max_replicas)
        TARGET_RPS.labels(namespace=namespace, name=name).set(target_rps_per_pod)
        # Exported at zero before the first failure, so that increase() sees the first one.
        SCALE_FAILURES.labels(namespace=namespace, name=name)
    except Exception:
        log.debug("record_fleet failed", exc_info=True)


def record_decision(namespace: str, name: str, reason: str, metrics_unavailable: bool) -> None:
    """The operator engine decided for an AIService: why (one of the status reason codes), and whether it could
    read the traffic metric."""
    if _unchanged("decision", namespace, name, (reason, metrics_unavailable)):
        return
    try:
        reason = _bounded(reason, REASONS)
        for known in (*REASONS, OTHER):
            SCALING_REASON.labels(namespace=namespace, name=name, reason=known).set(1 if known == reason else 0)
        METRICS_UNAVAILABLE.labels(namespace=namespace, name=name).set(1 if metrics_unavailable else 0)
    except Exception:
        log.debug("record_decision failed", exc_info=True)


def record_scale_failure(namespace: str, name: str) -> None:
    """Resizing an AIService's fleet failed."""
    try:
        SCALE_FAILURES.labels(namespace=namespace, name=name).inc()
    except Exception:
        log.debug("record_scale_failure failed", exc_info=True)


_PER_FLEET = (DESIRED_REPLICAS, OBSERVED_RPS, AISERVICE_READY, REPLICAS, READY_REPLICAS, MIN_REPLICAS, MAX_REPLICAS,
              TARGET_RPS, METRICS_UNAVAILABLE, SCALE_FAILURES)


def forget(namespace: str, name: str) -> None:
    """The AIService is gone: drop its per-object series."""
    for kind in ("desired", "fleet", "decision"):
        _last.pop((kind, namespace, name), None)
    labelsets: list[tuple[Gauge | Counter, tuple[str, ...]]] = [(metric, (namespace, name)) for metric in _PER_FLEET]
    labelsets += [(SCALING_REASON, (namespace, name, reason)) for reason in (*REASONS, OTHER)]
    for metric, labels in labelsets:
        try:
            metric.remove(*labels)
        except KeyError:
            pass
        except Exception:
            log.debug("forget failed", exc_info=True)


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of this process's metrics, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
