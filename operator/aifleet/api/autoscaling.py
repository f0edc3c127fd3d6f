"""`spec.autoscaling` and `status.autoscaling`: how the Triton fleet follows its traffic.

The decision logic lives in `aifleet.autoscaler.policy.decide`; these models are its input (spec) and its
report (`AutoscalingStatus`); what it remembers between polls is `aifleet.autoscaler.state.AutoscalerState`.
Semantics follow the HorizontalPodAutoscaler's `behavior` wherever HPA has a notion, so people who
know HPA read this block without surprises.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .base import DNS_SUBDOMAIN, SECRET_KEY, ApiModel, cel, pattern
from .children import triton_pod_regex

_SELECTOR = 'namespace="{namespace}",pod=~"' + triton_pod_regex("{name}") + '"'

# Query templates. Only the literal tokens `{namespace}` and `{name}` are substituted (see
# `render_query`): every other brace is PromQL's own label-matcher syntax, so str.format is not used.
DEFAULT_RPS_QUERY = "sum(rate(nv_inference_request_success{" + _SELECTOR + "}[1m]))"
# The fast path's short-window rate: irate() is the rate between the last two scrapes (~15 s), where rate()
# over a window that short would often find fewer than two samples.
DEFAULT_FAST_RPS_QUERY = "sum(irate(nv_inference_request_success{" + _SELECTOR + "}[1m]))"
DEFAULT_PENDING_QUERY = "sum(nv_inference_pending_request_count{" + _SELECTOR + "})"
DEFAULT_QUEUE_TIME_QUERY = (
    "sum(rate(nv_inference_queue_duration_us{" + _SELECTOR + "}[1m]))"
    " / sum(rate(nv_inference_request_success{" + _SELECTOR + "}[1m])) / 1000"
)
DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
PAUSED_ANNOTATION = "aifleet.dev/paused"


def render_query(template: str, namespace: str, name: str) -> str:
    """Fill the `{namespace}` and `{name}` tokens of a PromQL template; nothing else is touched."""
    return template.replace("{namespace}", namespace).replace("{name}", name)


# ---------------------------------------------------------------------------------------------
# behaviour: the same shape and meaning as HPA's spec.behavior.scaleUp / scaleDown

# Default tolerances when neither the direction's own nor the spec's `tolerance` is set
# (benchmarks/results/autoscaling.md). Down: the scale-down window already filters noise on the way
# down, so HPA's 10% band there only keeps idle pods for hours; 2% stays because the 1-minute rate
# hides sub-minute bursts. Up: part of what that saves buys a tight scale-up band, since traffic
# between 100% and 110% of target is exactly what HPA leaves under-provisioned (1% measured best
# with the 180 s scale-down window, across every trace).
DEFAULT_SCALE_UP_TOLERANCE = 0.01
DEFAULT_SCALE_DOWN_TOLERANCE = 0.02


class ScalingPolicy(ApiModel):
    type: Literal["Pods", "Percent"] = Field(
        description="Pods: change by at most `value` pods per period. Percent: by at most `value`% of the replicas at the period's start."
    )
    value: int = Field(gt=0, le=2**31 - 1, description="How many pods, or what percentage, one period allows.")
    period_seconds: int = Field(
        gt=0, le=1800, description="Length of the sliding window the limit applies to, in seconds (1..1800)."
    )


_POLICIES_DOC = (
    "Rate limits; `selectPolicy` chooses among them. A change is allowed if the selected policy allows it."
)


def _tolerance(direction: Literal["up", "down"], default: float) -> Any:
    side = "above" if direction == "up" else "below"
    return Field(
        None,
        ge=0,
        le=0.9,
        description=f"Scale {direction} only when RPS is more than this fraction {side} target (HPA's "
        f"behavior.scale{direction.capitalize()}.tolerance). Unset: the spec's `tolerance`, else {default:g}.",
    )


def _select_policy(direction: Literal["up", "down"]) -> Any:
    return Field(
        "Max",
        description=f"Max: the policy allowing the biggest change wins. Min: the smallest. Disabled: never scale {direction}.",
    )


class ScaleUpRules(ApiModel):
    tolerance: float | None = _tolerance("up", DEFAULT_SCALE_UP_TOLERANCE)
    stabilization_window_seconds: int = Field(
        0,
        ge=0,
        le=3600,
        description="Scale up only to the lowest recommendation of this many past seconds (0: act on the first poll that shows the rise).",
    )
    select_policy: Literal["Max", "Min", "Disabled"] = _select_policy("up")
    policies: list[ScalingPolicy] = Field(
        # A plain default (not a factory) so the generated CRD spells it out; pydantic copies it per instance.
        default=[
            ScalingPolicy(type="Pods", value=4, period_seconds=15),
            ScalingPolicy(type="Percent", value=100, period_seconds=15),
        ],
        min_length=1,
        max_length=10,
        description=_POLICIES_DOC + " Default, as HPA: +4 pods or +100%, whichever is more, every 15 seconds.",
    )


class ScaleDownRules(ApiModel):
    tolerance: float | None = _tolerance("down", DEFAULT_SCALE_DOWN_TOLERANCE)
    stabilization_window_seconds: int = Field(
        180,
        ge=0,
        le=3600,
        description="Scale down only to the highest recommendation of this many past seconds: 180 means 3 minutes of calm "
        "first (HPA's default is 300; the fast path and the forecast cover a rise after a shorter calm). Measured across "
        "traffic shapes in benchmarks/results/autoscaling.md.",
    )
    select_policy: Literal["Max", "Min", "Disabled"] = _select_policy("down")
    policies: list[ScalingPolicy] = Field(
        default=[ScalingPolicy(type="Percent", value=100, period_seconds=15)],
        min_length=1,
        max_length=10,
        description=_POLICIES_DOC + " Default, as HPA: down to the stabilized recommendation at once (100% per 15 seconds).",
    )


# ---------------------------------------------------------------------------------------------
# metrics


class TokenSecretRef(ApiModel):
    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Secret in the AIService's namespace.",
    )
    key: str = Field("token", min_length=1, max_length=253, pattern=SECRET_KEY, description="Key of the Secret holding the bearer token.")


class QueueSignal(ApiModel):
    type: Literal["PendingRequests", "QueueTimeMs"] = Field(
        "PendingRequests",
        description="PendingRequests: the query returns requests waiting across the fleet (additive). QueueTimeMs: it returns the mean time a request waits, in milliseconds.",
    )
    query: str | None = Field(
        None,
        min_length=1,
        description="PromQL returning one sample; `{namespace}` and `{name}` are substituted. Default: Triton's nv_inference_pending_request_count (or queue duration) over this service's pods.",
    )
    target: float = Field(
        gt=0,
        description="PendingRequests: pending requests one pod may hold. QueueTimeMs: acceptable mean queue time in ms. The queue can only ever add pods, never remove them.",
    )

    def rendered_query(self, namespace: str, name: str) -> str:
        default = DEFAULT_PENDING_QUERY if self.type == "PendingRequests" else DEFAULT_QUEUE_TIME_QUERY
        return render_query(self.query or default, namespace, name)


class MetricsSpec(ApiModel):
    address: str = Field(
        DEFAULT_PROMETHEUS,
        pattern=pattern(r"^https?://[^\s]+$", "an http:// or https:// URL with no spaces"),
        description="Prometheus base URL (http or https).",
    )
    query: str | None = Field(
        None,
        min_length=1,
        description=(
            "PromQL returning one sample: the fleet's requests per second. The tokens `{namespace}` and `{name}` "
            "are replaced by the AIService's; other braces are PromQL's. Default: "
            + DEFAULT_RPS_QUERY
            + ". An empty result is an error, never zero."
        ),
    )
    timeout_seconds: int = Field(5, ge=1, le=60, description="Give up on one Prometheus query after this many seconds.")
    stale_after_seconds: int = Field(
        120, ge=5, le=3600, description="A sample older than this many seconds counts as missing."
    )
    warmup_seconds: int = Field(
        120,
        ge=0,
        le=3600,
        description=(
            "How long after the fleet turns available an empty result means 'not scraped yet' rather than a "
            "failure: no MetricsUnavailable warning and no failure counted until then, or until the first "
            "series has been read. Prometheus needs a scrape interval or two before rate() answers for new pods."
        ),
    )
    auth_secret_ref: TokenSecretRef | None = Field(
        None, description="Secret holding a bearer token for Prometheus. The token is never logged."
    )
    insecure_skip_tls_verify: bool = Field(
        False, alias="insecureSkipTLSVerify", description="Skip TLS verification of an https Prometheus."
    )
    queue: QueueSignal | None = Field(
        None, description="Optional second signal from Triton's queue; it can add pods, never remove them."
    )

    def rendered_query(self, namespace: str, name: str) -> str:
        return render_query(self.query or DEFAULT_RPS_QUERY, namespace, name)


_FALLBACK_REQUIRED = "spec.autoscaling.onMissingMetrics.fallbackReplicas is required when action is Fallback"


class OnMissingMetrics(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [cel("self.action != 'Fallback' || has(self.fallbackReplicas)", _FALLBACK_REQUIRED)]}
    )

    action: Literal["Hold", "Fallback"] = Field(
        "Hold",
        description="Hold: keep the current replicas while metrics are missing. Fallback: after `failuresBeforeFallback` failed polls, go to `fallbackReplicas`. Missing metrics never scale down unless `allowFallbackBelowCurrent`.",
    )
    fallback_replicas: int | None = Field(
        None, ge=1, le=10000, description="Replicas to run while metrics are missing (action Fallback); within [minReplicas, maxReplicas]."
    )
    failures_before_fallback: int = Field(
        3, ge=1, le=100, description="Consecutive failed polls before the fallback applies."
    )
    allow_fallback_below_current: bool = Field(
        False, description="Let the fallback remove pods. Off by default: a metrics outage is no reason to shrink."
    )

    @model_validator(mode="after")
    def _fallback_given(self) -> OnMissingMetrics:
        if self.action == "Fallback" and self.fallback_replicas is None:
            raise ValueError(_FALLBACK_REQUIRED)
        return self


class LookaheadSpec(ApiModel):
    enabled: bool = Field(
        False,
        description="Project a clearly rising RPS trend podStartupSeconds + pollIntervalSeconds ahead and have the pods ready for it.",
    )
    # 300 s: a trend needs several independent values, and successive polls of a 1-minute rate are not
    # independent; with 120 s the fit chased noise (benchmarks/results/autoscaling.md).
    window_seconds: int = Field(
        300,
        ge=30,
        le=3600,
        description="How much recent history the linear trend is fitted on, in seconds; several times the query's rate window.",
    )
    mode: Literal["Act", "Preview"] = Field(
        "Act", description="Act: the projection is a floor on scale-up. Preview: computed and reported in status, not acted on."
    )


class FastPathSpec(ApiModel):
    """Knative's panic window, HPA-style: a short-window rate that adds pods at once when it asks for far more."""

    enabled: bool = Field(
        True,
        description="Watch a short-window RPS (about the last 15 s) besides the 1-minute one, and when it asks for at least "
        "`scaleUpRatio` times the current replicas, scale up to it at once (scale-up rate policies do not apply). "
        "It never scales down.",
    )
    query: str | None = Field(
        None,
        min_length=1,
        description="PromQL returning one sample: the fleet's RPS over a short window. `{namespace}` and `{name}` are "
        "substituted. Default: " + DEFAULT_FAST_RPS_QUERY + " (the rate between the last two scrapes).",
    )
    scale_up_ratio: float = Field(
        2.0,
        ge=1.1,
        le=100,
        description="Act only when the short-window RPS asks for at least this many times the current replicas (1.1..100): "
        "a sudden rise, not a wiggle the 1-minute rate will handle.",
    )
    hold_seconds: int = Field(
        60,
        ge=0,
        le=3600,
        description="Keep what the fast path asked for at least this long (a floor), so a burst's pods are not taken back "
        "before the 1-minute rate has seen the burst.",
    )

    def rendered_query(self, namespace: str, name: str) -> str:
        return render_query(self.query or DEFAULT_FAST_RPS_QUERY, namespace, name)


_FORECAST_PERIODS = "spec.autoscaling.forecast.minPeriodSeconds must be <= maxPeriodSeconds"


class ForecastSpec(ApiModel):
    """A periodic forecast from the RPS history in Prometheus, used as a floor under the reactive decision."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [cel("self.minPeriodSeconds <= self.maxPeriodSeconds", _FORECAST_PERIODS)]}
    )

    enabled: bool = Field(
        True,
        description="Look for a period in the RPS history (Prometheus range queries of the RPS query) and, when it is clear, "
        "have the pods for the coming peak ready a pod startup ahead. Never below the reactive decision.",
    )
    mode: Literal["Act", "Preview"] = Field(
        "Act", description="Act: the forecast is a floor on the replicas. Preview: it is computed and reported in status only."
    )
    scale_down: bool = Field(
        False,
        description="Also let a clear forecast shrink the fleet without waiting out the scale-down window, down to what the "
        "coming pod startup's forecast and the current traffic need. Off by default.",
    )
    history_seconds: int = Field(
        345600,
        ge=3600,
        le=2419200,
        description="How much RPS history to read (default 4 days): a period is only trusted after 3 whole cycles.",
    )
    min_period_seconds: int = Field(300, ge=120, le=604800, description="Shortest period looked for.")
    max_period_seconds: int = Field(86400, ge=120, le=806400, description="Longest period looked for (at most a third of the history is usable).")
    min_autocorrelation: float = Field(
        0.6, ge=0.1, le=1, description="The history's autocorrelation at the period must reach this: a strong period."
    )
    max_backtest_error: float = Field(
        0.2,
        ge=0.01,
        le=1,
        description="Forecasting the last cycle from the earlier ones must err by at most this fraction of its mean traffic.",
    )
    min_trough_ratio: float = Field(
        0.2,
        ge=0,
        le=1,
        description="The forecast's trough must be at least this fraction below its peak: a real trough, not a flat line.",
    )
    refresh_seconds: int = Field(
        1800, ge=60, le=86400, description="How often the history is read again and the period re-fitted (a period changes slowly)."
    )


# ---------------------------------------------------------------------------------------------
# the spec block

_MIN_LE_MAX = "spec.autoscaling.minReplicas must be <= maxReplicas"
_FALLBACK_RANGE = "spec.autoscaling.onMissingMetrics.fallbackReplicas must be between minReplicas and maxReplicas"
_LOOKAHEAD_WINDOW = "spec.autoscaling.lookahead.windowSeconds must be >= 2 * pollIntervalSeconds (a trend needs 3 samples)"
_TARGET_RULE = "must be at least 0.001: the HorizontalPodAutoscaler counts in thousandths"
_HPA_ONLY_BASICS = "spec.autoscaling: engine hpa supports neither lookahead, the queue signal nor onMissingMetrics Fallback; use engine operator"


class AutoscalingSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.minReplicas <= self.maxReplicas", _MIN_LE_MAX),
                cel(
                    "!has(self.onMissingMetrics) || !has(self.onMissingMetrics.fallbackReplicas) || "
                    "(self.onMissingMetrics.fallbackReplicas >= self.minReplicas && "
                    "self.onMissingMetrics.fallbackReplicas <= self.maxReplicas)",
                    _FALLBACK_RANGE,
                ),
                cel(
                    "!has(self.lookahead) || !self.lookahead.enabled || "
                    "self.lookahead.windowSeconds >= 2 * self.pollIntervalSeconds",
                    _LOOKAHEAD_WINDOW,
                ),
                cel(
                    "self.engine != 'hpa' || ("
                    "(!has(self.lookahead) || !self.lookahead.enabled) && "
                    "(!has(self.metrics) || !has(self.metrics.queue)) && "
                    "(!has(self.onMissingMetrics) || self.onMissingMetrics.action != 'Fallback'))",
                    _HPA_ONLY_BASICS,
                ),
            ]
        }
    )

    engine: Literal["operator", "hpa"] = Field(
        "operator",
        description="operator: aifleet decides replicas itself (look-ahead, queue signal, fallback). hpa: aifleet renders a HorizontalPodAutoscaler with the same bounds and behaviour.",
    )
    # minReplicas >= 1: the traffic signal comes from the Triton pods themselves, so at zero pods there is
    # no signal to wake up on (an empty result is an error, not zero traffic), and a cold Triton start
    # takes `podStartupSeconds`. Use the paused annotation to hold a fleet where it is.
    min_replicas: int = Field(1, ge=1, le=10000, description="Fewest Triton pods, even with no traffic (>= 1: the pods are the traffic signal).")
    max_replicas: int = Field(10, ge=1, le=10000, description="Most Triton pods, whatever the traffic.")
    target_rps_per_pod: float = Field(
        10.0,
        # The HorizontalPodAutoscaler's target is a quantity in thousandths: below 0.001 it would round to 0,
        # which the API server refuses. Both bounds, because the API server compares a whole number with a
        # schema bound cut to a whole number (0 >= 0.001 would pass as 0 >= 0).
        gt=0,
        le=1_000_000,
        json_schema_extra={"x-kubernetes-validations": [cel("self >= 0.001", _TARGET_RULE)]},
        alias="targetRPSPerPod",
        description="Requests per second one ready pod should serve (0.001 to 1000000); replicas = ceil(RPS / targetRPSPerPod).",
    )
    tolerance: float | None = Field(
        None,
        ge=0,
        le=0.9,
        description=(
            "Do nothing while RPS is within this fraction of the target, both directions (HPA's single tolerance; 0.1 "
            "reproduces HPA). `scaleUp.tolerance` / `scaleDown.tolerance` override it per direction. Unset: "
            f"{DEFAULT_SCALE_UP_TOLERANCE:g} up, {DEFAULT_SCALE_DOWN_TOLERANCE:g} down."
        ),
    )
    poll_interval_seconds: int = Field(15, ge=5, le=600, description="How often metrics are read and a decision is made.")
    pod_startup_seconds: int = Field(
        60,
        ge=0,
        le=3600,
        description="Time a new Triton pod needs to load its models and turn ready; the look-ahead projects this far.",
    )
    scale_up: ScaleUpRules = Field(default_factory=ScaleUpRules, description="How fast the fleet may grow.")
    scale_down: ScaleDownRules = Field(default_factory=ScaleDownRules, description="How fast the fleet may shrink.")
    metrics: MetricsSpec = Field(default_factory=MetricsSpec, description="Where the traffic signal comes from.")
    on_missing_metrics: OnMissingMetrics = Field(
        default_factory=OnMissingMetrics, description="What to do while the traffic signal is missing or bad."
    )
    lookahead: LookaheadSpec = Field(
        default_factory=LookaheadSpec, description="Scale up ahead of a rising trend, by the pod startup time."
    )
    fast_path: FastPathSpec = Field(
        default_factory=FastPathSpec, description="Scale up at once on a sudden rise seen by a short-window rate (engine operator)."
    )
    forecast: ForecastSpec = Field(
        default_factory=ForecastSpec, description="A periodic forecast from the RPS history as a floor (engine operator)."
    )

    @field_validator("target_rps_per_pod")
    @classmethod
    def _target_in_thousandths(cls, target: float) -> float:
        if target < 0.001:
            raise ValueError(_TARGET_RULE)
        return target

    @model_validator(mode="after")
    def _cross_field(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(_MIN_LE_MAX)
        fb = self.on_missing_metrics.fallback_replicas
        if fb is not None and not (self.min_replicas <= fb <= self.max_replicas):
            raise ValueError(_FALLBACK_RANGE)
        if self.lookahead.enabled and self.lookahead.window_seconds < 2 * self.poll_interval_seconds:
            raise ValueError(_LOOKAHEAD_WINDOW)
        if self.forecast.min_period_seconds > self.forecast.max_period_seconds:
            raise ValueError(_FORECAST_PERIODS)
        if self.engine == "hpa" and (
            self.lookahead.enabled or self.metrics.queue is not None or self.on_missing_metrics.action == "Fallback"
        ):
            raise ValueError(_HPA_ONLY_BASICS)
        return self


# ---------------------------------------------------------------------------------------------
# status

MetricErrorKind = Literal["missing", "stale", "empty", "failed", "nan", "invalid"]
LimitReason = Literal["TooManyReplicas", "TooFewReplicas", "ScaleUpLimit", "ScaleDownLimit"]
ReasonCode = Literal[
    "ScaleUp",
    "ScaleDown",
    "WithinTolerance",
    "Stabilized",
    "Limited",
    "MetricsUnavailable",
    "WaitingForMetrics",
    "Fallback",
    "Paused",
    "OutOfRange",
]
# Which signal set the replicas of the last decision.
DecidedBy = Literal["Reactive", "Queue", "FastPath", "Trend", "Forecast", "Fallback", "None"]


class AutoscalingStatus(ApiModel):
    current_rps: float | None = Field(None, alias="currentRPS", description="Requests per second last read from Prometheus.")
    projected_rps: float | None = Field(
        None, alias="projectedRPS", description="Look-ahead: RPS projected podStartupSeconds + pollIntervalSeconds ahead (only while clearly rising)."
    )
    current_queue: float | None = Field(None, description="Last value of the queue signal, if configured.")
    reactive_replicas: int | None = Field(None, description="Replicas the current RPS alone asks for (after the tolerance band).")
    lookahead_replicas: int | None = Field(None, description="Replicas the projected RPS asks for (Act or Preview).")
    queue_replicas: int | None = Field(None, description="Replicas the queue signal asks for.")
    fast_rps: float | None = Field(None, alias="fastRPS", description="Fast path: the short-window RPS last read.")
    fast_path_replicas: int | None = Field(
        None, description="Replicas the fast path holds as a floor (only while it acts or holds)."
    )
    forecast_rps: float | None = Field(
        None, alias="forecastRPS", description="Forecast: the peak RPS expected within the next pod startup + poll (Act or Preview)."
    )
    forecast_replicas: int | None = Field(None, description="Replicas the forecast asks for (Act or Preview).")
    forecast_period_seconds: int | None = Field(
        None, description="The period found in the RPS history; unset while no clear period is found."
    )
    forecast_message: str | None = Field(None, description="What the forecaster found, or why it does not act, in words.")
    decided_by: DecidedBy | None = Field(
        None, description="Which signal set the last decision: Reactive, Queue, FastPath, Trend (look-ahead), Forecast, Fallback."
    )
    decided_by_margin: int | None = Field(
        None, description="How many replicas the deciding signal asked for above the reactive (1-minute RPS) proposal."
    )
    desired_replicas: int | None = Field(
        None, description="The final decision after stabilization, rate policies and [minReplicas, maxReplicas]."
    )
    reason: ReasonCode | None = Field(None, description="One CamelCase word for the last decision.")
    message: str | None = Field(None, description="The last decision in words, e.g. `rps 4210 over target 100/pod: 35 -> 43 replicas`.")
    limited: LimitReason | None = Field(None, description="What capped the last decision, as HPA's ScalingLimited reasons.")
    last_scale_time: str | None = Field(None, description="When the fleet was last resized (RFC 3339).")
    last_scale_reason: str | None = Field(None, description="Why the fleet was last resized.")
    last_metric_error: MetricErrorKind | None = Field(None, description="Kind of the last metric failure.")
    paused: bool = Field(False, description="True while the `aifleet.dev/paused: \"true\"` annotation holds the fleet.")
