"""kopf handlers: thin. They route watch events to a per-AIService worker and hand it what the watches saw.

Design: level-triggered, like controller-runtime. Every event on an AIService or on a child it owns
pokes that AIService's worker (a kopf daemon); the worker reconciles the whole object from the watch
caches (kopf indexes), so the same code path serves create, update, drift, resume after a restart and
the periodic resync, and a quiet resync makes no API calls at all (with `--secret-access byName`, the default,
Secrets are not watched: a pass reads each one it needs by name at most every two minutes, one it generated
for a Ready AIService every half hour, see SecretReader).

Finalizers: only an AIService whose Kafka topics are to be deleted (`deletionPolicy: Delete`) carries one, because
only its topics live outside the cluster, where the garbage collector cannot reach them. Every child is removed by
the garbage collector through its owner reference, so any other AIService is deleted at once, even while the
operator is not running. kopf would put a finalizer on every object a daemon runs for (to stop the daemon before
the object goes); the worker is told about the deletion by the watch instead (`Triggers.stop`) and stops itself
(kopf_patches.py, which also keeps a namespace being deleted watched until it is gone).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import kopf

from ..api import GROUP, KIND, PLURAL, VERSION
from ..api.children import INSTANCE_LABEL, MANAGED_SELECTOR
from ..clients.kinds import BY_KIND, CHILD_KINDS, HTTPROUTE, Kind
from ..clients.kube import API_SERVER, Discovery
from ..compact import Compactor
from ..heap import FREEZE_SECONDS, HeapKeeper
from ..observability import metrics
from ..renderer import forget_rendering
from ..topics.apply import CLEANUP_TIMEOUT_SECONDS
from . import kopf_patches
from .observed import AppliedCache, SecretReader, trim
from .passes import Engines, clean_up_topics
from .schedule import Job
from .sweep import Entry, Sweep
from .sync import Emit
from .triggers import PassSlots, Triggers

log = logging.getLogger("aifleet.handlers")

# AIFLEET_RESYNC_SECONDS: shorter resyncs make "a quiet resync writes nothing" measurable in minutes (benchmarks).
RESYNC_SECONDS = float(os.environ.get("AIFLEET_RESYNC_SECONDS", "300"))
# How long a deletion waits for Kafka before it lets the AIService go, leaving its topics (see topics/apply.py).
TOPIC_CLEANUP_SECONDS = float(os.environ.get("AIFLEET_TOPIC_CLEANUP_SECONDS", CLEANUP_TIMEOUT_SECONDS))
# Passes mostly wait on the API server: threads, not CPUs. First in, first out: while a fleet is created in bulk,
# a pass waits its turn and then covers every change of its AIService since, which keeps passes and status
# writes few (benchmarks/results/fleet-findings.md).
WORKER_THREADS = 32
# A quiet AIService's worker wakes on its own only this long after a pass the sweep should have run.
SAFETY_NET_SECONDS = max(600.0, RESYNC_SECONDS)
# How often the API server is asked whether it serves the optional kinds (HTTPRoute): one small request.
DISCOVERY_SECONDS = 20.0


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
    memo.engines = Engines()
    memo.triggers = Triggers()
    memo.triggers.slots = PassSlots(WORKER_THREADS)
    memo.sweep = Sweep()


@kopf.on.startup()
async def start_background_tasks(memo: kopf.Memo, **_: Any) -> None:
    memo.background = [
        asyncio.create_task(memo.sweep.run(), name="aifleet-sweep"),
        asyncio.create_task(follow_api_discovery(memo.engines.discovery, memo.triggers), name="aifleet-discovery"),
        asyncio.create_task(keep_the_heap(HeapKeeper()), name="aifleet-heap"),
    ]


@kopf.on.cleanup()
async def stop_background_tasks(memo: kopf.Memo, **_: Any) -> None:
    for task in getattr(memo, "background", []):
        task.cancel()


async def keep_the_heap(keeper: HeapKeeper) -> None:
    """On the event loop: a collection holds the interpreter's lock whichever thread runs it."""
    while True:
        await asyncio.sleep(FREEZE_SECONDS)
        keeper.tick()


async def follow_api_discovery(discovery: Discovery, triggers: Triggers) -> None:
    """Whether the API server serves HTTPRoute decides what a canary renders. A quiet AIService's passes are polls
    that render nothing, so when the Gateway API is installed (or removed) every AIService is poked for a full
    pass: its canary gets its route within `DISCOVERY_SECONDS`, not at its next resync."""
    while True:
        await asyncio.sleep(DISCOVERY_SECONDS)
        try:
            changed = await asyncio.to_thread(discovery.refresh, HTTPROUTE)
        except Exception:  # the next round asks again
            log.exception("API discovery failed")
            continue
        if changed:
            served = discovery.serves(HTTPROUTE)
            log.info("the API server %s HTTPRoute now: every AIService reconciles",
                     "serves" if served else "no longer serves", extra={"kind": HTTPROUTE.api_version})
            triggers.poke_all()


@kopf.on.startup()
async def wake_when_the_api_server_returns(memo: kopf.Memo, **_: Any) -> None:
    """Workers that failed during an outage back off; when the API server answers again, they all reconcile now
    (the watches re-list too, but only for what changed while they were away)."""
    loop = asyncio.get_running_loop()

    def heard(answers: bool, _: str) -> None:
        if answers:  # called from a worker thread: hand the pokes to the loop
            loop.call_soon_threadsafe(memo.triggers.poke_all)

    API_SERVER.subscribe(heard)

    def checked(namespace: str, name: str) -> None:  # a database check's result changed; from its thread
        loop.call_soon_threadsafe(memo.triggers.poke, namespace, name)

    memo.engines.databases.wake = checked


@kopf.on.startup()
async def size_worker_threads(**_: Any) -> None:
    # Workers hand their blocking API calls to the loop's default executor; its default (CPUs + 4 threads)
    # would queue a thousand AIServices behind six threads.
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="aifleet")
    )


# What the watches keep, compacted: an AIService's children share its labels and owner reference, and the
# AIServices' copies (_Snapshot) much of their specs. In the event loop only.
_compactor = Compactor()


def _compact(body: kopf.Body) -> dict[str, Any]:
    shared: dict[str, Any] = _compactor.share(trim(dict(body)))
    return shared


def _register_child(kind: Kind) -> None:
    """Index one child kind by (namespace, name) and poke the owner on every change to it."""
    resource = (kind.group, kind.version, kind.plural) if kind.group else (kind.version, kind.plural)

    # async: they only touch memory, and a sync handler costs a thread hop per watch event (thousands per minute
    # while a fleet converges).
    # kopf types `namespace` as optional; every kind here is namespaced.
    async def index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], Any]:
        return {(namespace or "", name): _compact(body)}

    async def on_event(
        namespace: str | None, labels: Mapping[str, str], type: str | None, name: str, body: kopf.Body,
        memo: kopf.Memo, **_: Any
    ) -> None:
        if type == "DELETED":
            memo.engines.applied.forget(kind.kind, namespace or "", name)
        owner = labels.get(INSTANCE_LABEL)
        if not owner:
            return
        if kind.kind == "Deployment" and type != "DELETED" and _available(body):
            memo.triggers.fleet_available(namespace or "", owner)
        else:
            memo.triggers.poke(namespace or "", owner)

    kopf.index(*resource, labels=MANAGED_SELECTOR, id=index_id(kind))(index)
    kopf.on.event(*resource, labels=MANAGED_SELECTOR, id=f"watch_{kind.plural}")(on_event)


def _available(deployment: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Available" and c.get("status") == "True"
               for c in (deployment.get("status") or {}).get("conditions") or [])


_watched: set[str] = set()


def watch_children(*, watch_secrets: bool) -> None:
    """Register the watches of the child kinds, once, before kopf starts. Without `watch_secrets` (the operator's
    token may not list or watch Secrets), Secrets are read by name instead (see observed.SecretReader)."""
    for kind in CHILD_KINDS:
        if kind.kind in _watched or (kind.kind == "Secret" and not watch_secrets):
            continue
        _register_child(kind)
        _watched.add(kind.kind)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_aiservice_event(namespace: str | None, name: str, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        memo.triggers.stop(namespace or "", name)
        memo.engines.topics.forget(namespace or "", name)  # the client kept through a topic cleanup, too
    else:
        memo.triggers.poke(namespace or "", name)


def _lookup(indexes: dict[str, Any], secrets: SecretReader, applied: AppliedCache):
    def lookup(kind: str, namespace: str, name: str) -> dict | None:
        index = indexes.get(index_id(BY_KIND[kind]))
        if index is None and kind == "Secret" and "Secret" not in _watched:
            # Not watched: one we generated moments ago is known; others are read by name, cached.
            return applied.newest(kind, namespace, name, None) or secrets.read(namespace, name)
        for obj in index.get((namespace, name), []) if index is not None else []:
            return obj
        return None

    return lookup


class _Snapshot:
    """The AIService as a pass reads it: a copy, since kopf updates the live body while a pass runs in a thread, but
    one copy per resourceVersion (an object of one version never changes, and a pass never mutates what it reads).
    Compacted as the children are (no managedFields, what it has in common with other AIServices shared): it stands
    beside kopf's own copy of every AIService."""

    def __init__(self) -> None:
        self._version: str | None = None
        self._copy: dict[str, Any] = {}

    def snapshot(self, body: kopf.Body) -> dict[str, Any]:
        version = body.get("metadata", {}).get("resourceVersion")
        if version is None or version != self._version:
            self._copy, self._version = _compact(body), version
        return self._copy


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0, id="worker")
async def worker(
    body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, stopped: kopf.DaemonStopped, **kwargs: Any
) -> None:
    """Reconcile when poked; run the timers (poll, resync, retries) while the AIService is not quiet, and leave
    them to the fleet's sweep while it is (sweep.py)."""
    namespace = namespace or ""
    lookup = _lookup({k: v for k, v in kwargs.items() if k.startswith("children_")}, memo.engines.secrets,
                     memo.engines.applied)
    triggers: Triggers = memo.triggers
    trigger = triggers.register(namespace, name)
    slots = triggers.slots
    assert slots is not None
    kept = _Snapshot()
    job = Job((namespace, name), lookup, memo.engines, _emitter(body), RESYNC_SECONDS)
    swept = Entry(job, trigger, lambda: kept.snapshot(body))
    memo.sweep.add(swept)
    schedule = job.schedule
    try:
        while not stopped and not trigger.deleted:
            if trigger.poked or time.monotonic() >= schedule.due_at():
                async with slots.turn(trigger):
                    if trigger.deleted:  # gone while it waited for its turn: nothing to reconcile any more
                        break
                    poked = trigger.poked
                    # Taken when the turn comes, not when it was asked for: this pass covers every change until now,
                    # and only what happens from here on brings another.
                    trigger.clear()
                    await asyncio.to_thread(job.step, kept.snapshot(body), poked)
                if job.ready is not None:
                    trigger.ready = job.ready
            wait = schedule.due_at() - time.monotonic()
            if schedule.quiet:
                wait += SAFETY_NET_SECONDS  # the sweep runs its timers: this wake-up is only in case it stopped
            await trigger.wait(max(0.0, wait), stopped)
    finally:
        memo.sweep.remove(swept)
        memo.triggers.unregister(namespace, name, trigger)
        if trigger.deleted or (stopped.reason and stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED):
            memo.engines.autoscalers.forget(namespace, name)
            memo.engines.databases.forget(namespace, name)
            # Stopped for a deletion that waits on the topic cleanup: it may still need the Kafka client.
            memo.engines.topics.forget(namespace, name, keep_client=not trigger.deleted)
            memo.engines.applied.forget(KIND, namespace, name)
            memo.engines.parsed.forget(namespace, name)
            forget_rendering(namespace, name)
            metrics.forget(namespace, name)


kopf_patches.drop_daemon_finalizer("worker")
kopf_patches.keep_terminating_namespaces_watched()
kopf_patches.release_readiness_of_stopped_watchers()


def _emitter(body: kopf.Body) -> Emit:
    def emit(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    return emit


def _deletes_topics(spec: kopf.Spec, **_: Any) -> bool:
    kafka = spec.get("kafka") or {}
    return bool(kafka) and kafka.get("enabled", True) and kafka.get("deletionPolicy") == "Delete"


# Not optional: this handler is what puts the finalizer on an AIService with deletionPolicy Delete (and only there).
@kopf.on.delete(GROUP, VERSION, PLURAL, when=_deletes_topics, id="delete_topics",
                backoff=30, errors=kopf.ErrorsMode.TEMPORARY)
def delete_topics_on_deletion(body: kopf.Body, meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    """deletionPolicy Delete: remove the topics. Never blocks deletion forever: see `give_up_reason`."""
    retry = clean_up_topics(
        copy.deepcopy(dict(body)), dict(meta.get("annotations") or {}), meta.get("deletionTimestamp"), memo.engines,
        _emitter(body), TOPIC_CLEANUP_SECONDS,
    )
    if retry is not None:
        raise kopf.TemporaryError(retry, delay=min(30.0, max(1.0, TOPIC_CLEANUP_SECONDS / 4)))
