"""kopf handlers: thin. They route watch events to a per-AIService worker and hand it what the watches saw.

Design: level-triggered, like controller-runtime. Every event on an AIService or on a child it owns
pokes that AIService's worker (a kopf daemon); the worker reconciles the whole object from the watch
caches (kopf indexes), so the same code path serves create, update, drift, resume after a restart and
the periodic resync, and a quiet resync makes no API calls at all.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

import kopf

from ..api import GROUP, PLURAL, VERSION
from ..clients.kinds import CHILD_KINDS, Kind
from ..clients.kube import Kube, KubeError
from ..renderer.common import INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from .observed import AppliedCache, trim
from .scaling import Autoscalers, autoscale
from .sync import parse, reconcile
from .triggers import Triggers

log = logging.getLogger("aifleet.handlers")

RESYNC_SECONDS = 300.0
MAX_BACKOFF_SECONDS = 300.0
MANAGED = {MANAGED_BY_LABEL: MANAGED_BY}


def index_id(kind: Kind) -> str:
    return f"children_{kind.plural}"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Events are posted on purpose (kopf.event), never as a side effect of log lines.
    settings.posting.loggers = False
    settings.posting.reporting_component = "aifleet"
    settings.posting.event_name_prefix = "aifleet-"
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.execution.max_workers = 16
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    memo.kube = Kube()
    memo.applied = AppliedCache()
    memo.triggers = Triggers()
    memo.autoscalers = Autoscalers()


def _register_child(kind: Kind) -> None:
    """Index one child kind by (namespace, name) and poke the owner on every change to it."""
    resource = (kind.group, kind.version, kind.plural) if kind.group else (kind.version, kind.plural)

    def index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
        return {(namespace, name): trim(dict(body))}

    def on_event(namespace: str, labels: dict, type: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
        if type == "DELETED":
            memo.applied.forget(kind.kind, namespace, name)
        owner = labels.get(INSTANCE_LABEL)
        if owner:
            memo.triggers.poke(namespace, owner)

    kopf.index(*resource, labels=MANAGED, id=index_id(kind))(index)
    kopf.on.event(*resource, labels=MANAGED, id=f"watch_{kind.plural}")(on_event)


for _kind in CHILD_KINDS:
    _register_child(_kind)


@kopf.on.event(GROUP, VERSION, PLURAL)
def on_aiservice_event(namespace: str, name: str, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    if type != "DELETED":
        memo.triggers.poke(namespace, name)


def _lookup(indexes: dict[str, Any]):
    def lookup(kind: str, namespace: str, name: str) -> dict | None:
        index = indexes.get(index_id(next(k for k in CHILD_KINDS if k.kind == kind)))
        for obj in index.get((namespace, name), []) if index is not None else []:
            return obj
        return None

    return lookup


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0, id="worker")
async def worker(
    body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, stopped: kopf.DaemonStopped, **kwargs: Any
) -> None:
    """Reconcile when poked, poll the metrics when due, resync periodically; back off on errors."""
    lookup = _lookup({k: v for k, v in kwargs.items() if k.startswith("children_")})
    trigger = memo.triggers.register(namespace, name)
    next_poll = 0.0  # the first poll happens at once
    failures = 0
    try:
        while not stopped:
            trigger.clear()
            wait = RESYNC_SECONDS
            try:
                poll_due = time.monotonic() >= next_poll
                interval = await asyncio.to_thread(_tick, copy.deepcopy(dict(body)), lookup, memo, body, poll_due)
                if poll_due and interval:
                    next_poll = time.monotonic() + interval
                if interval:
                    wait = max(0.0, min(wait, next_poll - time.monotonic()))
                failures = 0
            except Exception as exc:  # noqa: BLE001 - one bad object must not stop its worker
                failures += 1
                wait = min(MAX_BACKOFF_SECONDS, 2.0**failures)
                status = getattr(exc, "status", None)
                log.warning(
                    "reconcile failed, retrying",
                    exc_info=not isinstance(exc, KubeError),
                    extra={"aiservice": f"{namespace}/{name}", "error": str(exc), "status": status, "retry_in": wait},
                )
            await trigger.wait(wait, stopped)
    finally:
        memo.triggers.unregister(namespace, name, trigger)
        if stopped.reason and stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED:
            memo.autoscalers.forget(namespace, name)


def _tick(snapshot: dict, lookup, memo: kopf.Memo, body: kopf.Body, poll_due: bool) -> float | None:
    """One pass for one AIService; returns the poll interval of the operator engine, or None."""

    def emit(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    ais = parse(snapshot)
    decision = None
    interval = None
    if ais is not None and ais.spec.autoscaling.engine == "operator":
        interval = float(ais.spec.autoscaling.poll_interval_seconds)
        memory = memo.autoscalers.memory(ais.metadata.namespace, ais.metadata.name)
        decision = autoscale(ais, lookup, memo.kube, memo.autoscalers, emit) if poll_due else memory.decision
    reconcile(snapshot, lookup, memo.kube, memo.applied, emit, decision)
    return interval
