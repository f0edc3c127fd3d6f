"""The operator's own health and metrics: Prometheus metrics, liveness/readiness endpoints, startup preflight.

The reconciler records what it does with the functions re-exported here; each is cheap and never raises::

    from aifleet import observability

    observability.record_reconcile("changed", seconds)     # or "unchanged", "error"
    observability.record_error(exc)                        # a failed pass, labelled by reason
    observability.record_scale("up", namespace, name, 43)  # the operator engine resized a fleet
    observability.record_desired(namespace, name, 43)      # the autoscaler's wish, also without a change
    observability.record_metric_failure("unreachable")     # a Prometheus read failed
    observability.forget(namespace, name)                  # the AIService is gone: drop its series
"""

from .metrics import (
    forget,
    record_desired,
    record_error,
    record_metric_failure,
    record_reconcile,
    record_scale,
)

__all__ = [
    "forget",
    "record_desired",
    "record_error",
    "record_metric_failure",
    "record_reconcile",
    "record_scale",
]
