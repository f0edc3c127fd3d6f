"""The `hpa` engine: an autoscaling/v2 HorizontalPodAutoscaler with the spec's bounds and behaviour."""

from __future__ import annotations

from typing import Any

from ..api import AIService
from ..api.autoscaling import ScaleDownRules, ScaleUpRules
from ..api.children import TRITON, common_labels, names
from .common import from_template

# The per-pod metric a custom-metrics adapter serves from Triton's nv_inference_request_success counter.
HPA_METRIC = "triton_requests_per_second"


def _rules(rules: ScaleUpRules | ScaleDownRules, tolerance: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stabilizationWindowSeconds": rules.stabilization_window_seconds,
        "selectPolicy": rules.select_policy,
        "policies": [p.to_wire() for p in rules.policies],
    }
    # Only what the user set: a cluster without the HPAConfigurableTolerance gate (beta, on by default since
    # Kubernetes 1.35) drops the field, and an unset tolerance there means the cluster's own (HPA's 0.1).
    if tolerance is not None:
        out["tolerance"] = _milli(tolerance)
    return out


def _explicit(direction: float | None, both: float | None) -> float | None:
    return direction if direction is not None else both


def _milli(value: float) -> str:
    """A quantity the API server keeps as written: whole numbers plain, fractions in milli-units."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def render_hpa(ais: AIService) -> list[dict[str, Any]]:
    scaling = ais.spec.autoscaling
    if scaling.engine != "hpa":
        return []
    return [
        from_template(
            "triton-hpa.yaml.j2",
            spec=ais.spec,
            names=names(ais),
            namespace=ais.metadata.namespace,
            labels=common_labels(ais, TRITON, ais.spec.inference.version),
            metric_name=HPA_METRIC,
            target=_milli(scaling.target_rps_per_pod),
            behavior={
                "scaleUp": _rules(scaling.scale_up, _explicit(scaling.scale_up.tolerance, scaling.tolerance)),
                "scaleDown": _rules(scaling.scale_down, _explicit(scaling.scale_down.tolerance, scaling.tolerance)),
            },
        )
    ]
