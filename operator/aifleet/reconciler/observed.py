"""What the cluster holds, as fed by watches: the reconciler reads these instead of calling the API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..renderer.secretdata import GENERATED_ANNOTATION

# Written by `kubectl apply`: the whole object again, and no comparison reads it.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def trim(body: dict[str, Any]) -> dict[str, Any]:
    """Keep what comparisons need; managedFields alone can be most of an object."""
    meta = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    annotations = meta.get("annotations")
    if annotations and _LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
    return {**{k: v for k, v in body.items() if k != "metadata"}, "metadata": meta}


def resource_version(obj: dict[str, Any] | None) -> int:
    try:
        return int(obj["metadata"]["resourceVersion"]) if obj else -1
    except (KeyError, TypeError, ValueError):
        return -1


# How long our own copy of an object stands in for one the watch has not shown yet. A deletion after our write
# comes as a DELETED event, which forgets our copy at once; this only bounds a copy no event ever corrected.
UNSEEN_GRACE_SECONDS = 30.0


class AppliedCache:
    """The objects our own writes returned, so a reconcile that runs before the watch catches up does not
    mistake a stale copy (or no copy yet) for drift and write again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._objects: dict[tuple[str, str, str], tuple[dict[str, Any], float]] = {}

    def remember(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        with self._lock:
            self._objects[(obj["kind"], meta["namespace"], meta["name"])] = (trim(obj), self._clock())

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._objects.pop((kind, namespace, name), None)

    def newest(self, kind: str, namespace: str, name: str, watched: dict[str, Any] | None) -> dict[str, Any] | None:
        with self._lock:
            ours, written = self._objects.get((kind, namespace, name), (None, 0.0))
        if ours is None:
            return watched
        if watched is None:
            # Not in the watch cache yet: just created, its ADDED event still on the way (a deletion since would
            # have forgotten our copy).
            return ours if self._clock() - written < UNSEEN_GRACE_SECONDS else None
        if resource_version(ours) > resource_version(watched):
            return ours
        # The watch caught up: our copy is no longer needed (kept, it doubled the memory of every child).
        with self._lock:
            if self._objects.get((kind, namespace, name), (None, 0.0))[0] is ours:
                del self._objects[(kind, namespace, name)]
        return watched


# How long a Secret read by name stands for the live one: a hand edit of a Secret aifleet manages is put back
# within about this long (at the next pass after it), and a quiet fleet costs one read per Secret per period.
SECRET_READ_TTL_SECONDS = 120.0
# A Secret aifleet generated (a password, a key) is never changed by design: only whether it still exists matters.
# While its AIService is settled (every component Ready) it is read again this rarely; one of an AIService with a
# component not Ready is read as often as any other, so a deleted one is made again within a pass or two of its pods
# failing for it. At 1,000 AIServices the reads by name were a quarter of a quiet operator's CPU.
GENERATED_SECRET_TTL_SECONDS = 1800.0


def _generated(secret: dict[str, Any]) -> bool:
    return ((secret.get("metadata") or {}).get("annotations") or {}).get(GENERATED_ANNOTATION) == "true"


class SecretReader:
    """Secrets by name, for an operator that may not list or watch them (`--secret-access byName`): one GET per
    Secret per `ttl` (a generated one of a settled AIService: per `generated_ttl`, see `settle`), then the
    remembered answer. A missing Secret is asked about again after `miss_ttl` (one pass asks twice: for rendering,
    then before creating a generated one): it is about to be created (by this pass, or by the user a Degraded
    condition asked), and remembering its absence longer would make the next passes create or wait for it again.
    `read` runs in the workers' threads."""

    def __init__(self, get: Callable[[str, str], dict[str, Any] | None], ttl: float = SECRET_READ_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic, miss_ttl: float = 1.0,
                 generated_ttl: float = GENERATED_SECRET_TTL_SECONDS) -> None:
        self._get, self.ttl, self._clock, self.miss_ttl, self.generated_ttl = get, ttl, clock, miss_ttl, generated_ttl
        self._lock = threading.Lock()
        self._read: dict[tuple[str, str], tuple[dict[str, Any] | None, float]] = {}
        self._settled: set[tuple[str, str]] = set()  # Secrets of AIServices whose last full pass found all Ready
        self._swept = clock()

    def _lifetime(self, key: tuple[str, str], obj: dict[str, Any] | None) -> float:
        if obj is None:
            return self.miss_ttl
        return self.generated_ttl if key in self._settled and _generated(obj) else self.ttl

    def settle(self, namespace: str, names: list[str], settled: bool) -> None:
        """After a full pass of the AIService that reads `names`: whether it found every component Ready."""
        keys = {(namespace, name) for name in names}
        with self._lock:
            if settled:
                self._settled |= keys
            else:
                self._settled -= keys

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        now, key = self._clock(), (namespace, name)
        with self._lock:
            if now - self._swept >= self.ttl:
                # An answer past its lifetime is never used again: keep only the Secrets read lately (those of
                # deleted AIServices go with a later sweep).
                self._read = {k: v for k, v in self._read.items() if now - v[1] < self._lifetime(k, v[0])}
                self._settled &= self._read.keys()
                self._swept = now
            known = self._read.get(key)
            fresh = known is not None and now - known[1] < self._lifetime(key, known[0])
        if known is not None and fresh:
            return known[0]
        found = self._get(namespace, name)
        obj = None if found is None else {**trim(found), "kind": "Secret"}
        with self._lock:
            self._read[key] = (obj, now)
        return obj


# How long one list of a namespace's pods serves every AIService of it that needs them.
POD_LIST_TTL_SECONDS = 10.0


class PodReader:
    """Pods of a component, for the report on why a stalled workload's pods fail. One list per namespace and
    component per `ttl`, shared by its AIServices: while a thousand fleets are created at once, each of them stalls
    for a while, and a list per AIService per pass was a fifth of the operator's requests. `read` runs in the
    workers' threads; a failed list leaves the report out (the pod counts still stand)."""

    def __init__(self, list_pods: Callable[[str, dict[str, str]], list[dict[str, Any]]], shared_label: str,
                 ttl: float = POD_LIST_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._list, self._shared_label, self.ttl, self._clock = list_pods, shared_label, ttl, clock
        self._lock = threading.Lock()
        self._lists: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[list[dict[str, Any]], float]] = {}

    def read(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        """The pods of `namespace` that match every label of `selector`."""
        shared = tuple(sorted((k, v) for k, v in selector.items() if k != self._shared_label))
        key, now = (namespace, shared), self._clock()
        with self._lock:
            self._lists = {k: v for k, v in self._lists.items() if now - v[1] < self.ttl}
            known = self._lists.get(key)
        if known is None:
            known = (self._list(namespace, dict(shared)), now)
            with self._lock:
                self._lists[key] = known
        return [pod for pod in known[0]
                if all(((pod.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())]
