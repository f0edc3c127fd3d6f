"""kopf handlers: thin. They route watch events to a per-AIService worker and hand it what the watches saw.

Design: level-triggered, like controller-runtime. Every event on an AIService or on a child it owns
pokes that AIService's worker (a kopf daemon); the worker reconciles the whole object from the watch
caches (kopf indexes), so the same code path serves create, update, drift, resume after a restart and
the periodic resync, and a quiet resync makes no API calls at all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from ..api import GROUP, PLURAL, VERSION
from ..clients.kinds import CHILD_KINDS, Kind
from ..clients.kube import Kube, KubeError
from ..renderer.common import INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from .observed import AppliedCache, trim
from .sync import reconcile
from .triggers import Triggers

log = logging.getLogger("aifleet.handlers")

RESYNC_SECONDS = 300.0
MAX_BACKOFF_SECONDS = 300.0
MANAGED = {MANAGED_BY_LABEL: MANAGED_BY}


def index_id(kind: Kind) -> str:
    return f"children_{kind.plural}"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Events are posted on purpose, never as a side effect of log lines.
    settings.posting.enabled = False
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.execution.max_workers = 16
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    memo.kube = Kube()
    memo.applied = AppliedCache()
    memo.triggers = Triggers()


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
    """Reconcile when poked or when the resync period passes; back off exponentially on errors."""
    indexes = {k: v for k, v in kwargs.items() if k.startswith("children_")}
    trigger = memo.triggers.register(namespace, name)
    failures = 0
    try:
        while not stopped:
            trigger.clear()
            wait = RESYNC_SECONDS
            try:
                await asyncio.to_thread(_reconcile_once, dict(body), indexes, memo, body)
                failures = 0
            except KubeError as exc:
                failures += 1
                wait = min(MAX_BACKOFF_SECONDS, 2.0**failures)
                log.warning(
                    "reconcile failed, retrying",
                    extra={"aiservice": f"{namespace}/{name}", "status": exc.status, "error": str(exc), "retry_in": wait},
                )
            except Exception:  # noqa: BLE001 - one bad object must not stop its worker
                failures += 1
                wait = min(MAX_BACKOFF_SECONDS, 2.0**failures)
                log.exception("reconcile crashed, retrying", extra={"aiservice": f"{namespace}/{name}", "retry_in": wait})
            await trigger.wait(wait, stopped)
    finally:
        memo.triggers.unregister(namespace, name, trigger)


def _reconcile_once(snapshot: dict, indexes: dict, memo: kopf.Memo, body: kopf.Body) -> None:
    def emit(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    reconcile(snapshot, _lookup(indexes), memo.kube, memo.applied, emit)
