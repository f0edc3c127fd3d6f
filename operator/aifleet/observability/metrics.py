"""The operator's own Prometheus metrics, and the small functions the reconciler calls to record them.

Every function here is cheap, thread-safe (prometheus_client's locks) and never raises: observability must not
break a reconcile. Label values are bounded: results, directions and failure kinds are normalised to a fixed
set, and the per-AIService gauge is removed when its AIService goes (``forget``).
"""

from __future__ import annotations

import logging

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

log = logging.getLogger("aifleet.observability")

disable_created_metrics()  # no `_created` series: twice the series for nothing a dashboard uses
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

RESULTS = ("changed", "unchanged", "error")
DIRECTIONS = ("up", "down")
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
    """One reconcile pass ended: ``result`` is "changed", "unchanged" or "error"."""
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
        named = {409: "conflict", 403: "forbidden", 404: "notfound", 422: "invalid", 401: "unauthorized"}
        return named.get(status) or f"http{status // 100}xx"
    return type(exc).__name__[:40]


def record_error(exc_or_reason: BaseException | str) -> None:
    """A reconcile failed: pass the exception (its reason is derived) or a short reason string."""
    try:
        reason = exc_or_reason if isinstance(exc_or_reason, str) else error_reason(exc_or_reason)
        ERRORS.labels(reason=reason[:40]).inc()
    except Exception:
        log.debug("record_error failed", exc_info=True)


def record_desired(namespace: str, name: str, desired: int | None, rps: float | None = None) -> None:
    """The autoscaler's current wish for one AIService (also without a change of replicas) and the RPS it read."""
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


def forget(namespace: str, name: str) -> None:
    """The AIService is gone: drop its per-object series."""
    for gauge in (DESIRED_REPLICAS, OBSERVED_RPS):
        try:
            gauge.remove(namespace, name)
        except KeyError:
            pass
        except Exception:
            log.debug("forget failed", exc_info=True)


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of this process's metrics, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
