"""What the autoscaler remembers between polls of one AIService: small, serialisable, carried by the caller.

It lives in the operator's memory only, never in the cluster: a restarted operator starts from a fresh state,
which waits a full scale-down window before it shrinks anything. The forecaster's history is not kept here: it
is read from Prometheus (range queries), so a restart forgets only the last fit, which the first poll redoes.
"""

from __future__ import annotations

from pydantic import Field

from ..api.base import ApiModel
from .forecast import SeasonalModel


class TimedReplicas(ApiModel):
    t: float = Field(description="Unix time in seconds.")
    replicas: int = Field(description="A replica count (recommendations) or a replica change (scale events).")


class TimedValue(ApiModel):
    t: float = Field(description="Unix time in seconds.")
    value: float = Field(description="An observed RPS.")


class AutoscalerState(ApiModel):
    """What `decide` needs to remember between polls; it returns the updated copy in its Decision.

    Bounded by the windows: recommendations span the longer stabilization window, scale events the
    longest policy period, RPS samples the look-ahead window; about 50 entries at the defaults, plus the
    forecast's profile (at most 720 values) while a period is known.
    """

    initialized: bool = Field(False, description="False until the first decision; a fresh state waits one scale-down window before shrinking.")
    recommendations: list[TimedReplicas] = Field(
        default_factory=list, description="Recent unstabilized recommendations, for the stabilization windows."
    )
    scale_up_events: list[TimedReplicas] = Field(default_factory=list, description="Recent scale-ups (pods added), for the rate policies.")
    scale_down_events: list[TimedReplicas] = Field(
        default_factory=list, description="Recent scale-downs (pods removed), for the rate policies."
    )
    rps_samples: list[TimedValue] = Field(default_factory=list, description="Recent good RPS samples, for the look-ahead trend.")
    lookahead_floor: list[TimedValue] = Field(
        default_factory=list, description="Recent look-ahead forecasts (projected RPS); each holds until its horizon has passed."
    )
    fast_floor: list[TimedReplicas] = Field(
        default_factory=list, description="Fast-path floors (replicas); each holds for fastPath.holdSeconds."
    )
    forecast_model: SeasonalModel | None = Field(None, description="The period last found in the RPS history, if clear.")
    forecast_note: str | None = Field(None, description="What the last fit found, or why no period is clear.")
    forecast_checked_at: float | None = Field(None, description="Unix time the history was last fitted.")
    consecutive_failures: int = Field(0, ge=0, description="Polls in a row whose RPS was missing or bad.")
    measured: bool = Field(False, description="An RPS sample has been read at least once (the warm-up is over).")
    last_scale_up_time: float | None = Field(None, description="Unix time of the last scale-up.")
    last_scale_time: float | None = Field(None, description="Unix time of the last resize.")
    last_scale_reason: str | None = Field(None, description="Why the last resize happened.")
