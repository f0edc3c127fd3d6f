"""One pass for one AIService, as the worker runs it: autoscale when due, then reconcile everything; and the
topic cleanup a deletion runs. Plain functions over the operator's engines; kopf only hands them data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..api import AIService
from ..autoscaler.policy import Decision
from ..clients.kinds import HTTPROUTE
from ..clients.kube import Discovery, Kube
from ..observability import metrics
from ..renderer.component import Lookup
from ..topics.apply import TopicsResult, delete_topics, give_up_reason, kafka_credentials
from .canary import Analyse, analyser, recorded
from .observed import AppliedCache, SecretReader
from .scaling import Autoscalers, autoscale
from .sync import Emit, last_status, parse, reconcile
from .topic_schedule import TopicsEngine

USER_RECHECK_SECONDS = 10.0  # how soon a fix the user makes (e.g. creating a missing Secret) is noticed


@dataclass
class Engines:
    """What the passes of every AIService share: the API client and the in-memory state of each engine."""

    kube: Kube = field(default_factory=lambda: Kube(observe=metrics.record_api_request))
    applied: AppliedCache = field(default_factory=AppliedCache)
    autoscalers: Autoscalers = field(default_factory=Autoscalers)
    topics: TopicsEngine = field(default_factory=TopicsEngine)
    discovery: Discovery = field(init=False)  # what the API server serves beyond the core kinds
    secrets: SecretReader = field(init=False)  # Secrets by name, when the operator does not watch them

    def __post_init__(self) -> None:
        self.discovery = Discovery(self.kube)
        self.secrets = SecretReader(lambda namespace, name: self.kube.get("Secret", namespace, name))


@dataclass(frozen=True)
class PassResult:
    poll_interval: float | None  # the operator engine's poll interval, when it runs
    polled: bool  # a decision was made (not before the fleet's Deployment exists)
    changed: bool  # something was written
    wake_in: float | None  # come back this soon for another engine (Kafka retries)


def aligned_delay(interval: float) -> float:
    """Seconds to the next multiple of `interval` on the wall clock. Every AIService with the same poll interval
    polls at the same moments, so one batched Prometheus query answers all of them and each acts within one
    poll of the data changing."""
    now = time.time()
    return (math.floor(now / interval) + 1) * interval - now


def run_pass(snapshot: dict[str, Any], lookup: Lookup, engines: Engines, emit: Emit, poll_due: bool) -> PassResult:
    """One pass for one AIService: autoscale when due, then reconcile everything."""
    ais = parse(snapshot)
    decision: Decision | None = None
    poll_interval: float | None = None
    wake_in: float | None = None
    polled = acted = False
    analyse: Analyse | None = None
    if ais is not None and ais.spec.autoscaling.engine == "operator":
        poll_interval = float(ais.spec.autoscaling.poll_interval_seconds)
        memory = engines.autoscalers.memory(ais.metadata.namespace, ais.metadata.name)
        if poll_due:
            canary = recorded(last_status(snapshot, engines.applied))
            decision = autoscale(ais, lookup, engines.kube, engines.autoscalers, engines.applied, emit, canary)
            # The canary's analysis runs each poll too, on the same Prometheus.
            analyse = analyser(lambda ais: engines.autoscalers.source(ais, engines.kube), time.time())
            polled = decision is not None
        acted = decision is not None and decision.act
        decision = memory.shown

    def topics(ais: AIService, secret: dict[str, Any] | None) -> TopicsResult | None:
        return engines.topics.sync(ais, secret, emit)

    gateway_api = engines.discovery.serves(HTTPROUTE)
    outcome = reconcile(
        snapshot, lookup, engines.kube, engines.applied, emit, decision, topics, analyse, gateway_api=gateway_api
    )
    if ais is not None and ais.spec.kafka is not None:
        due = engines.topics.next_due(ais.metadata.namespace, ais.metadata.name)
        wake_in = None if due is None else max(1.0, due - time.monotonic())
    if outcome.waiting_on_user:
        wake_in = min(wake_in or USER_RECHECK_SECONDS, USER_RECHECK_SECONDS)
    changed = bool(outcome.applied or outcome.status_written or acted)
    return PassResult(poll_interval, polled, changed, wake_in)


def clean_up_topics(
    snapshot: dict[str, Any], annotations: dict[str, str], deletion_timestamp: str | None, engines: Engines, emit: Emit
) -> str | None:
    """deletionPolicy Delete: remove the topics. None when done (or given up, see `give_up_reason`); otherwise
    why it must be retried."""
    ais = parse(snapshot)
    if ais is None or ais.spec.kafka is None:
        return None
    spec = ais.spec.kafka
    secret = engines.kube.get("Secret", ais.metadata.namespace, spec.credentials_secret) if spec.credentials_secret else None
    result = delete_topics(spec, engines.topics.admin(spec, kafka_credentials(secret)))
    for message in result.events:
        emit("Normal", "TopicsDeleted", message)
    if result.state == "Ready":
        return None
    give_up = give_up_reason(annotations, deletion_timestamp, datetime.now(UTC))
    if give_up:
        emit("Warning", "TopicCleanupAbandoned", give_up)
        return None
    return f"cannot delete topics yet: {result.message}"
