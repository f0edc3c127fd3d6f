"""The operator's own health and metrics: Prometheus metrics, liveness/readiness endpoints, startup preflight.

The reconciler records what it does with the functions re-exported here; each is cheap and never raises::

    from aifleet import observability

    observability.record_reconcile("changed", seconds)     # or "unchanged", "error"
    observability.record_error(exc)                        # a failed pass, labelled by reason
    observability.record_scale("up", namespace, name, 43)  # the operator engine resized a fleet
    observability.record_desired(namespace, name, 43)      # the autoscaler's wish, also without a change
    observability.record_metric_failure("unreachable")     # a Prometheus read failed
    observability.record_fleet(namespace, name, ready=True, replicas=3, ...)  # an AIService's state and bounds
    observability.record_decision(namespace, name, "ScaleUp", False)          # why the engine decided, metric ok?
    observability.record_scale_failure(namespace, name)    # a resize failed
    observability.forget(namespace, name)                  # the AIService is gone: drop its series
"""

from .metrics import (
    forget,
    record_decision,
    record_desired,
    record_error,
    record_fleet,
    record_metric_failure,
    record_reconcile,
    record_scale,
    record_scale_failure,
)

__all__ = [
    "forget",
    "record_decision",
    "record_desired",
    "record_error",
    "record_fleet",
    "record_metric_failure",
    "record_reconcile",
    "record_scale",
    "record_scale_failure",
]
