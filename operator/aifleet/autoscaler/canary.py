"""Canary policy, pure: how the fleet the autoscaler sized is split between two versions, how a canary is
judged from its counters, and how the rollout moves on (a step, promotion, roll back).

No I/O here: the reconciler reads the counters from Prometheus and the state from `status.canary`, calls these
functions, and applies and records what they return. Everything a verdict depends on is in `status.canary`
(the window's start, the step, the verdict so far), so an operator restarted mid-analysis resumes it.

Precision of the split. Without a traffic-splitting proxy, the Service spreads requests evenly over ready pods,
so the canary's share of requests is its share of pods: round(total * share / 100) pods of `total`. The error
is at most half a pod, i.e. 50 / total percentage points (at 4 pods, 25 % is exact and 10 % becomes 25 %; at
10 pods, within 5 points; at 20 pods, within 2.5 points), except that a share above 0 always gets one canary
pod and a share below 100 always leaves one stable pod, which is why a split fleet has at least two pods.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Literal

from ..api.canary import CanaryAnalysis, CanaryStatus, Verdict
from ..api.children import canary_pod_regex, triton_pod_regex
from ..api.inference import CANARY_FIELDS, CanarySpec
from ..api.timestamps import format_timestamp, parse_timestamp

# A fleet split between two versions needs a pod of each.
MIN_SPLIT_FLEET = 2


@dataclass(frozen=True)
class Split:
    stable: int
    canary: int

    @property
    def total(self) -> int:
        return self.stable + self.canary

    @property
    def canary_percent(self) -> float:
        """The canary's share of pods, and so of requests, that this split gives (percent)."""
        return 100.0 * self.canary / self.total if self.total else 0.0


def split(total: int, share: int, max_replicas: int) -> Split:
    """Stable and canary pod counts for a fleet of `total` pods (the autoscaler's decision, within
    [minReplicas, maxReplicas]) with `share` percent for the canary.

    The canary gets round(total * share / 100) pods, rounded half up, at least one while share > 0 and at most
    total - 1 while share < 100. A fleet of one pod becomes two while split (if maxReplicas allows it; otherwise
    the canary waits), since one pod cannot run two versions.
    """
    if share <= 0:
        return Split(total, 0)
    if share >= 100:
        return Split(0, total)
    total = max(total, min(MIN_SPLIT_FLEET, max_replicas))
    if total < MIN_SPLIT_FLEET:
        return Split(total, 0)
    canary = math.floor(total * share / 100 + 0.5)
    return Split(total - min(max(canary, 1), total - 1), min(max(canary, 1), total - 1))


@dataclass(frozen=True)
class Counters:
    """One version's requests over the watch window, as Prometheus answered; None where it had no answer."""

    success: float | None = None
    failure: float | None = None
    p95_latency_ms: float | None = None
    p95_queue_ms: float | None = None

    @property
    def requests(self) -> float | None:
        if self.success is None or self.failure is None:
            return None
        return self.success + self.failure


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    message: str  # the signal and its value, in words
    signal: str = ""  # failureRatio, p95Latency, p95Queue; empty for Continue and Promote


def judge(analysis: CanaryAnalysis, canary: Counters, watched_seconds: float) -> Judgement:
    """The canary's verdict after `watched_seconds` of its window.

    A threshold crossed rolls it back at once. The failure ratio counts against at least `minRequests`
    requests, so that one early failure among three requests does not read as 33 %: the canary is rolled back
    once its failures are more than the threshold allows even if the rest of `minRequests` succeed. Missing
    metrics never roll back (a Prometheus outage says nothing about the canary) and never promote.
    """
    requests = canary.requests
    if requests is None or canary.failure is None:
        return Judgement("Continue", "no request counters for the canary yet")
    ratio = canary.failure / max(requests, analysis.min_requests)
    if canary.failure > 0 and ratio > analysis.max_failure_ratio:
        return Judgement(
            "RollBack",
            f"failure ratio {_ratio(canary.failure, requests)} above {analysis.max_failure_ratio:g} "
            f"({canary.failure:.0f} failed of {requests:.0f} requests)",
            "failureRatio",
        )
    enough = requests >= analysis.min_requests
    for signal, value, limit, what in (
        ("p95Latency", canary.p95_latency_ms, analysis.max_p95_latency_ms, "p95 latency"),
        ("p95Queue", canary.p95_queue_ms, analysis.max_p95_queue_ms, "p95 queue time"),
    ):
        if limit is not None and enough and value is not None and value > limit:
            return Judgement("RollBack", f"{what} {value:.1f} ms above {limit:g} ms", signal)
    so_far = f"failure ratio {_ratio(canary.failure, requests)} over {requests:.0f} requests"
    if not enough:
        return Judgement("Continue", f"{so_far}; waiting for {analysis.min_requests} requests")
    if any(limit is not None for limit in (analysis.max_p95_latency_ms, analysis.max_p95_queue_ms)) and (
        (analysis.max_p95_latency_ms is not None and canary.p95_latency_ms is None)
        or (analysis.max_p95_queue_ms is not None and canary.p95_queue_ms is None)
    ):
        return Judgement("Continue", f"{so_far}; no latency reading for the canary yet")
    if watched_seconds < analysis.watch_seconds:
        return Judgement("Continue", f"{so_far}; {watched_seconds:.0f}/{analysis.watch_seconds} s watched")
    return Judgement("Promote", f"{so_far} within {analysis.max_failure_ratio:g} for {analysis.watch_seconds} s")


def _ratio(failure: float, requests: float) -> str:
    return f"{failure / requests:.3f}" if requests else "0"


def revision(canary: CanarySpec) -> str:
    """A fingerprint of what the canary runs and how it is judged; the share may change without restarting."""
    body = canary.model_dump(mode="json", include={*CANARY_FIELDS, "analysis"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


Action = Literal["none", "start", "step", "promote", "rollback"]


@dataclass(frozen=True)
class Progress:
    status: CanaryStatus
    action: Action  # what changed, for the event the reconciler records


_WAITING = "waiting for the canary's pods to be ready"


def start(canary: CanarySpec, now: float) -> CanaryStatus:
    """A new canary's state. Its window opens when its pods are ready (`serving`), not before: the watch time
    counts only while it can be judged."""
    return CanaryStatus(
        revision=revision(canary),
        phase="Watching" if canary.analysis.promotion == "Auto" else "Testing",
        share=canary.traffic_percent,
        verdict=_WAITING,
    )


def serving(state: CanaryStatus, ready: bool, now: float) -> CanaryStatus:
    """Open the window when the canary's pods are all ready; close it while they are not (a step's new pods
    start, a pod is replaced), so a canary is never judged on time it could not serve."""
    if state.phase not in ("Watching", "Testing"):
        return state
    if not ready:
        return state if state.window_start is None else state.model_copy(update={"window_start": None, "verdict": _WAITING})
    if state.window_start is None:
        return state.model_copy(update={"window_start": format_timestamp(now), "verdict": "watching"})
    return state


def current(canary: CanarySpec | None, state: CanaryStatus | None, now: float) -> Progress | None:
    """The state for this spec: the recorded one if it is for this canary, else a fresh start (or None when
    there is no canary). A new share (trafficPercent edited) applies to a canary still at its first step."""
    if canary is None or canary.traffic_percent == 0:
        return None
    if state is None or state.revision != revision(canary):
        return Progress(start(canary, now), "start")
    if state.phase in ("Watching", "Testing") and state.step == 0 and state.share != canary.traffic_percent:
        return Progress(state.model_copy(update={"share": canary.traffic_percent}), "none")
    return Progress(state, "none")


def advance(canary: CanarySpec, state: CanaryStatus, judgement: Judgement, now: float) -> Progress:
    """Apply a verdict to the state: roll back, move to the next step (a new window), promote, or go on."""
    if state.phase not in ("Watching", "Testing"):
        return Progress(state, "none")  # promoted or rolled back: final until the canary's spec changes
    if judgement.verdict == "RollBack":
        return Progress(state.model_copy(update={"phase": "RolledBack", "share": 0, "verdict": judgement.message}),
                        "rollback")
    if judgement.verdict == "Promote" and state.phase == "Watching":
        steps = canary.analysis.steps
        if state.step < len(steps) and steps[state.step] < 100:
            return Progress(
                state.model_copy(update={
                    "share": steps[state.step], "step": state.step + 1, "window_start": None,
                    "verdict": f"{judgement.message}; moving to {steps[state.step]} %",
                }),
                "step",
            )
        return Progress(state.model_copy(update={"phase": "Promoted", "share": 0, "verdict": judgement.message}),
                        "promote")
    return Progress(state.model_copy(update={"verdict": judgement.message}), "none")


def watched_seconds(state: CanaryStatus, now: float) -> float:
    """How long the current window has run; 0 before it opens, or when its start cannot be read."""
    if state.window_start is None:
        return 0.0
    try:
        return max(0.0, now - parse_timestamp(state.window_start))
    except (TypeError, ValueError):
        return 0.0


# --- the PromQL the analysis reads (pure: the reconciler runs it through the metric source) ---------------

SHARE_WINDOW_SECONDS = 60  # the observed share is the last minute's, like the autoscaler's RPS


def _pods(namespace: str, regex: str) -> str:
    return f'namespace="{namespace}",pod=~"{regex}"'


@dataclass(frozen=True)
class CanaryQueries:
    success: str
    failure: str
    p95_latency_ms: str
    p95_queue_ms: str
    canary_share: str  # percent of the fleet's requests the canary answered over the last minute


def canary_queries(namespace: str, name: str, window_seconds: float, poll_seconds: int) -> CanaryQueries:
    """The queries for one poll of the analysis. The window is the watch window so far, at least two polls: a
    counter's increase needs two scrapes, and the first poll of a window reads the minute before it."""
    canary = _pods(namespace, canary_pod_regex(name))
    fleet = _pods(namespace, triton_pod_regex(name))
    window = f"{max(int(window_seconds), 2 * poll_seconds)}s"
    share = SHARE_WINDOW_SECONDS
    return CanaryQueries(
        success=f"sum(increase(nv_inference_request_success{{{canary}}}[{window}]))",
        failure=f"sum(increase(nv_inference_request_failure{{{canary}}}[{window}]))",
        # Summaries are per model and pod; the worst one judges the version.
        p95_latency_ms=f'max(nv_inference_request_summary_us{{{canary},quantile="0.95"}}) / 1000',
        p95_queue_ms=f'max(nv_inference_queue_summary_us{{{canary},quantile="0.95"}}) / 1000',
        canary_share=(
            f"100 * sum(rate(nv_inference_request_success{{{canary}}}[{share}s]))"
            f" / sum(rate(nv_inference_request_success{{{fleet}}}[{share}s]))"
        ),
    )
