"""One pass for one AIService, as the worker runs it: autoscale when due, then reconcile everything; and the
topic cleanup a deletion runs. Plain functions over the operator's engines; kopf only hands them data.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..api import AIService
from ..api.children import INSTANCE_LABEL
from ..api.dbcheck import CheckTarget, DatabaseCheck
from ..autoscaler.policy import Decision
from ..clients.kinds import HTTPROUTE
from ..clients.kube import Discovery, Kube
from ..observability import metrics
from ..renderer import secret_names
from ..renderer.component import Lookup
from ..renderer.pods import STALL_SECONDS
from ..topics.apply import (
    CLEANUP_TIMEOUT_SECONDS,
    TopicAdmin,
    TopicsResult,
    deletable_topics,
    delete_topics,
    give_up_reason,
    kafka_credentials,
    kafka_credentials_problem,
    left_behind,
)
from .canary import Analyse, analyser, recorded
from .dbchecks import DatabaseChecks
from .observed import AppliedCache, PodReader, SecretReader
from .scaling import Autoscalers, autoscale, autoscale_if_quiet
from .sync import Emit, ParsedCache, last_status, parse, pod_lister, reconcile
from .topic_schedule import TopicsEngine

log = logging.getLogger("aifleet.topics")
USER_RECHECK_SECONDS = 10.0  # how soon a fix the user makes (e.g. creating a missing Secret) is noticed


@dataclass
class Engines:
    """What the passes of every AIService share: the API client and the in-memory state of each engine."""

    kube: Kube = field(default_factory=lambda: Kube(observe=metrics.record_api_request))
    applied: AppliedCache = field(default_factory=AppliedCache)
    autoscalers: Autoscalers = field(default_factory=Autoscalers)
    topics: TopicsEngine = field(default_factory=TopicsEngine)
    parsed: ParsedCache = field(default_factory=ParsedCache)
    databases: DatabaseChecks = field(default_factory=DatabaseChecks)  # the checks through the poolers
    discovery: Discovery = field(init=False)  # what the API server serves beyond the core kinds
    secrets: SecretReader = field(init=False)  # Secrets by name, when the operator does not watch them
    pods: PodReader = field(init=False)  # pods for the failure report, one list per namespace shared

    def __post_init__(self) -> None:
        self.discovery = Discovery(self.kube)
        self.secrets = SecretReader(lambda namespace, name: self.kube.get("Secret", namespace, name))
        self.pods = PodReader(pod_lister(self.kube), shared_label=INSTANCE_LABEL)


@dataclass(frozen=True)
class PassResult:
    poll_interval: float | None  # the operator engine's poll interval, when it runs
    polled: bool  # a decision was made (not before the fleet's Deployment exists)
    changed: bool  # something was written
    wake_in: float | None  # come back this soon for another engine (Kafka retries)
    reconciled: bool = True  # False: a poll that decided nothing new, so nothing else was looked at
    ready: bool | None = None  # the AIService's Ready condition as this pass left it (None: not known)
    settled: bool = False  # every component Ready: see sync.Outcome.settled
    handed_off: bool = False  # a sweep's poll that found something to do: nothing was kept, the worker runs it


def aligned_delay(interval: float) -> float:
    """Seconds to the next multiple of `interval` on the wall clock. Every AIService with the same poll interval
    polls at the same moments, so one batched Prometheus query answers all of them and each acts within one
    poll of the data changing."""
    now = time.time()
    return (math.floor(now / interval) + 1) * interval - now


def run_pass(
    snapshot: dict[str, Any], lookup: Lookup, engines: Engines, emit: Emit, poll_due: bool, poll_only: bool = False,
    hand_off: bool = False,
) -> PassResult:
    """One pass for one AIService: autoscale when due, then reconcile everything.

    `poll_only`: nothing but the poll timer brought this pass (no watch event since the last full pass, which is
    younger than the resync and found every component Ready). If the poll decides what is already shown, the rest
    would find nothing to do: it is skipped. That is the whole cost of a quiet fleet, once per poll per AIService.
    A component still on its way (pods pending, a rollout) is looked at on every poll: time alone changes what is
    said of it (pods stalled, the warm-up over).

    `hand_off` (the fleet's sweep): a poll that would act or change the status keeps nothing and says so
    (`handed_off`), for the AIService's worker to run the whole pass; a quiet one goes on as usual."""
    if (snapshot.get("metadata") or {}).get("deletionTimestamp"):
        # Being deleted: apply nothing, and above all create no topic the delete handler is removing.
        return PassResult(None, False, False, None)
    ais = engines.parsed.parse(snapshot)
    decision: Decision | None = None
    poll_interval: float | None = None
    wake_in: float | None = None
    polled = acted = False
    analyse: Analyse | None = None
    if ais is not None and ais.spec.autoscaling.engine == "operator":
        poll_interval = float(ais.spec.autoscaling.poll_interval_seconds)
        memory = engines.autoscalers.memory(ais.metadata.namespace, ais.metadata.name)
        shown_before = memory.shown
        if poll_due:
            canary = recorded(last_status(snapshot, engines.applied))
            if hand_off:
                if canary is not None or not autoscale_if_quiet(
                    ais, lookup, engines.kube, engines.autoscalers, engines.applied, emit
                ):
                    return PassResult(poll_interval, False, False, None, reconciled=False, handed_off=True)
                polled = True
                if poll_only:
                    return PassResult(poll_interval, polled, False, None, reconciled=False)
            else:
                decision = autoscale(ais, lookup, engines.kube, engines.autoscalers, engines.applied, emit, canary)
                polled = decision is not None
                acted = decision is not None and decision.act
                if poll_only and canary is None and not acted and memory.shown is shown_before:
                    return PassResult(poll_interval, polled, False, None, reconciled=False)
            # The canary's analysis runs each poll too, on the same Prometheus.
            analyse = analyser(lambda ais: engines.autoscalers.source(ais, engines.kube), time.time())
        decision = memory.shown

    def topics(ais: AIService, secret: dict[str, Any] | None) -> TopicsResult | None:
        return engines.topics.sync(ais, secret, emit)

    def database(ais: AIService, target: CheckTarget | None) -> DatabaseCheck | None:
        return engines.databases.observe((ais.metadata.namespace, ais.metadata.name), target)

    gateway_api = engines.discovery.serves(HTTPROUTE)
    outcome = reconcile(
        snapshot, lookup, engines.kube, engines.applied, emit, decision, topics, analyse, gateway_api=gateway_api,
        parsed=ais, pods=engines.pods.read, database=database,
    )
    if ais is not None:
        engines.secrets.settle(ais.metadata.namespace, secret_names(ais), outcome.settled)
    if ais is not None and ais.spec.kafka is not None:
        due = engines.topics.next_due(ais.metadata.namespace, ais.metadata.name)
        wake_in = None if due is None else max(1.0, due - time.monotonic())
    if outcome.waiting_on_user:
        wake_in = min(wake_in or USER_RECHECK_SECONDS, USER_RECHECK_SECONDS)
    if ais is not None and outcome.error is None and not outcome.settled:
        # Pods on their way give no watch event while they fail to start: look again when they would count as
        # stalled, whatever the engine, so that their failure is reported then.
        wake_in = min(wake_in or STALL_SECONDS, STALL_SECONDS)
    changed = bool(outcome.applied or outcome.status_written or acted)
    return PassResult(poll_interval, polled, changed, wake_in, ready=outcome.ready, settled=outcome.settled)


def clean_up_topics(
    snapshot: dict[str, Any], annotations: dict[str, str], deletion_timestamp: str | None, engines: Engines, emit: Emit,
    timeout_seconds: float = CLEANUP_TIMEOUT_SECONDS,
) -> str | None:
    """deletionPolicy Delete: remove the topics aifleet created. None when done (or given up, see
    `give_up_reason`); otherwise why it must be retried. Whatever fails on the way (the Secret, the client, Kafka)
    is a failed attempt that the give-up rules then judge: nothing here may keep the object forever."""
    ais = parse(snapshot)
    if ais is None or ais.spec.kafka is None:
        return None
    spec = ais.spec.kafka
    owned = list((snapshot.get("status") or {}).get("createdTopics") or [])
    engines.topics.retire(ais.metadata.namespace, ais.metadata.name, ais.metadata.uid)
    problem: str | None = None
    try:
        problem, admin = _deletion_admin(ais, engines)
        result = (TopicsResult("Degraded", "CannotConnect", problem or "") if admin is None
                  else delete_topics(spec, admin, owned))
    except Exception as exc:  # noqa: BLE001 - a failed attempt, judged below like any other
        log.warning("topic cleanup attempt failed", extra={"aiservice": f"{ais.metadata.namespace}/{ais.metadata.name}",
                                                           "error": str(exc)})
        result = TopicsResult("Degraded", "CleanupFailed", f"{type(exc).__name__}: {exc}")
    for message in result.events:
        emit("Normal", "TopicsDeleted", message)
    if result.state == "Ready":
        return None
    give_up = give_up_reason(annotations, deletion_timestamp, datetime.now(UTC), timeout_seconds, problem)
    if give_up:
        remaining = result.topics or deletable_topics(spec, owned)[0]
        message = left_behind(give_up, remaining, spec.bootstrap_servers)
        # In a namespace being deleted the API server refuses new events: the log line is what stays.
        log.warning("topics left behind", extra={"aiservice": f"{ais.metadata.namespace}/{ais.metadata.name}",
                                                 "why": give_up, "topics": remaining})
        emit("Warning", "TopicCleanupAbandoned", message)
        return None
    return f"cannot delete topics yet: {result.message}"


def _deletion_admin(ais: AIService, engines: Engines) -> tuple[str | None, TopicAdmin | None]:
    """(why the topics cannot be reached at all, the client to delete them with). The Secret may be gone already
    (a namespace deletes everything at once): the client this AIService used last still holds its credentials."""
    spec = ais.spec.kafka
    assert spec is not None
    refusal = engines.topics.policy.kafka_refusal(spec.bootstrap_servers)
    if refusal:
        return refusal, None
    secret = None
    if spec.credentials_secret:
        secret = engines.kube.get("Secret", ais.metadata.namespace, spec.credentials_secret)
    problem = kafka_credentials_problem(spec, secret)
    if problem is None:
        return None, engines.topics.admin(ais, spec, kafka_credentials(secret))
    held = engines.topics.last_admin(ais)
    return (None, held) if held is not None else (problem, None)
