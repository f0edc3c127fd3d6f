"""A bounded cache of clients shared by AIServices: Kafka admin clients and Prometheus sources.

A client is keyed by what it connects with (address, credentials); AIServices with the same key share one (that is
what lets a thousand services share one batched Prometheus query). Each AIService holds at most one key: when its
key changes (new credentials, another address) or it is deleted (`release`), the old client is dropped as soon as
no other AIService uses it, so credentials that changed do not live on in memory. Past `max_size` clients the least
recently used one is dropped too (it is built again when next asked for).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
User = tuple[str, str]  # (namespace, name) of an AIService

DEFAULT_MAX_CLIENTS = 256


class SharedClients(Generic[K, V]):
    def __init__(self, max_size: int = DEFAULT_MAX_CLIENTS) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._lock = threading.Lock()
        self._clients: OrderedDict[K, V] = OrderedDict()
        self._keys: dict[User, K] = {}

    def get(self, user: User, key: K, build: Callable[[], V]) -> V:
        """The client for `key`, built once; `user` now holds `key` (and lets go of the key it held before)."""
        with self._lock:
            before = self._keys.get(user)
            self._keys[user] = key
            if before is not None and before != key:
                self._drop_unused(before)
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = build()
            self._clients.move_to_end(key)
            while len(self._clients) > self.max_size:
                self._clients.popitem(last=False)
            return client

    def held(self, user: User) -> V | None:
        """The client `user` used last, if it is still cached (e.g. to reach Kafka after its Secret is gone)."""
        with self._lock:
            key = self._keys.get(user)
            return None if key is None else self._clients.get(key)

    def release(self, user: User) -> None:
        """`user` is gone: drop its client unless another AIService uses it."""
        with self._lock:
            key = self._keys.pop(user, None)
            if key is not None:
                self._drop_unused(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._clients

    def _drop_unused(self, key: K) -> None:
        if key not in self._keys.values():
            self._clients.pop(key, None)
