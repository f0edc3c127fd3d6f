"""What the cluster holds, as fed by watches: the reconciler reads these instead of calling the API."""

from __future__ import annotations

import threading
from typing import Any, Callable

Lookup = Callable[[str, str, str], "dict[str, Any] | None"]  # (kind, namespace, name) -> live object


def trim(body: dict[str, Any]) -> dict[str, Any]:
    """Keep what comparisons need; managedFields alone can be most of an object."""
    meta = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    return {**{k: v for k, v in body.items() if k != "metadata"}, "metadata": meta}


def resource_version(obj: dict[str, Any] | None) -> int:
    try:
        return int(obj["metadata"]["resourceVersion"]) if obj else -1
    except (KeyError, TypeError, ValueError):
        return -1


class AppliedCache:
    """The objects our own writes returned, so a reconcile that runs before the watch catches up does not
    mistake a stale copy for drift and write again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def remember(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        with self._lock:
            self._objects[(obj["kind"], meta["namespace"], meta["name"])] = trim(obj)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._objects.pop((kind, namespace, name), None)

    def newest(self, kind: str, namespace: str, name: str, watched: dict[str, Any] | None) -> dict[str, Any] | None:
        with self._lock:
            ours = self._objects.get((kind, namespace, name))
        if ours is None:
            return watched
        if watched is None:
            # The watch saw no object: either it was deleted after our write (trust the watch once it has
            # moved past our write) or the watch has not caught up yet. Our copy answers only the latter.
            return None
        return ours if resource_version(ours) > resource_version(watched) else watched
