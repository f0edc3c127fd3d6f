"""Three deliberate departures from kopf's behaviour, each where kopf has no option for it (kopf<2 is pinned).

1. No finalizer for the worker daemon. kopf puts a finalizer on every object a daemon runs for, so that it can
   stop the daemon before the object goes; the worker learns about a deletion from the watch instead and stops
   itself, so only an AIService whose topics are deleted with it carries a finalizer (see handlers.py).
2. A namespace being deleted stays watched until it is gone. When kopf watches namespaces by pattern (with exact
   names the operator turns kopf's namespace scan off, see manager.py), it stops watching a namespace at the first
   event that shows it marked for deletion with conditions and none of them true: the namespace controller posts
   exactly that before it finds the content that remains. kopf then never sees the deletion of the AIServices in
   it, their finalizers stay, and the namespace never goes. Here a namespace is dropped only when the API server
   reports it deleted.
3. A watcher or an object's worker that ends gives up its hold on the operator's readiness. kopf runs no handler
   until every watcher has listed its objects and every listed object has been indexed, and each of them holds a
   toggle until then; one stopped before (the watcher of a namespace deleted just as the operator starts, and its
   objects' workers) kept its toggle, and the restarted operator waited for it forever, handling nothing.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import kopf
from kopf._core.reactor import observation, queueing


def drop_daemon_finalizer(handler_id: str) -> None:
    """The registered daemon `handler_id` no longer asks for a finalizer."""
    spawning = kopf.get_default_registry()._spawning
    spawning._handlers[:] = [
        dataclasses.replace(h, requires_finalizer=False) if h.id == handler_id else h for h in spawning._handlers
    ]


def _unmarked(raw_event: Any) -> Any:
    """A namespace event as kopf should weigh it: marked for deletion is still there until it is deleted."""
    obj = raw_event["object"]
    if raw_event.get("type") == "DELETED" or not obj.get("metadata", {}).get("deletionTimestamp"):
        return raw_event
    metadata = {k: v for k, v in obj["metadata"].items() if k != "deletionTimestamp"}
    return {**raw_event, "object": {**obj, "metadata": metadata}}


_revise_namespaces = observation.revise_namespaces


def revise_namespaces(*, insights: Any, namespaces: Collection[Any], raw_events: Collection[Any] = (),
                      raw_bodies: Collection[Any] = ()) -> None:
    _revise_namespaces(
        insights=insights, namespaces=namespaces,
        raw_events=[_unmarked(e) for e in raw_events],
        raw_bodies=[_unmarked({"type": None, "object": b})["object"] for b in raw_bodies],
    )


def keep_terminating_namespaces_watched() -> None:
    observation.revise_namespaces = revise_namespaces


def _releasing_readiness(task: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """`task` (kopf's watcher or per-object worker), dropping its readiness toggle however it ends."""

    @functools.wraps(task)
    async def run(*args: Any, operator_indexed: Any = None, resource_indexed: Any = None, **kwargs: Any) -> None:
        try:
            await task(*args, operator_indexed=operator_indexed, resource_indexed=resource_indexed, **kwargs)
        finally:
            if operator_indexed is not None and resource_indexed is not None:
                await operator_indexed.drop_toggle(resource_indexed)

    return run


def release_readiness_of_stopped_watchers() -> None:
    queueing.watcher = _releasing_readiness(queueing.watcher)  # type: ignore[assignment]
    queueing.worker = _releasing_readiness(queueing.worker)  # type: ignore[assignment]
