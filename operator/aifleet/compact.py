"""Equal parts of the objects the operator keeps, kept once.

A thousand AIServices' children differ in a few names, uids and hashes, yet each decoded watch event and each
rendering holds its own copy of every key, value, probe and port: they were most of the operator's live objects
while a fleet converged.
"""

from __future__ import annotations

import sys
from typing import Any


class Compactor:
    """Equal strings become one string, and equal dicts and lists one dict or list: what it returns must never be
    mutated (it may be part of other objects too).

    Which dicts and lists were seen is remembered for at most `limit` of them, then forgotten whole (what was shared
    stays shared): objects long gone are not kept, and the table stays small. Not thread-safe."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._seen: dict[tuple[Any, ...], Any] = {}

    def share(self, value: Any) -> Any:
        """The shared equal of a JSON value (dicts, lists, strings, numbers, booleans, None)."""
        if len(self._seen) >= self._limit:
            self._seen = {}
        return self._share(value, [])

    def _share(self, value: Any, named: list[Any]) -> Any:
        """The shared equal of `value`; what names it in the key of the dict or list holding it goes on `named`: a
        type and a value (True and 1 are equal, yet not the same JSON value), or a dict or list by identity (every
        one named in a key is held by the table for as long as that key is)."""
        if isinstance(value, str):
            value = sys.intern(value)
            named += (str, value)
            return value
        shared: dict[Any, Any] | list[Any]
        if isinstance(value, dict):
            key: list[Any] = [dict]
            members: dict[Any, Any] = {}
            for k, v in value.items():
                k = sys.intern(k) if isinstance(k, str) else k
                key.append(k)
                members[k] = self._share(v, key)
            shared = members
        elif isinstance(value, list):
            key = [list]
            shared = [self._share(v, key) for v in value]
        else:
            # -0.0 equals 0.0, yet is not written the same.
            named += (type(value), repr(value) if isinstance(value, float) else value)
            return value
        found = self._seen.setdefault(tuple(key), shared)
        named += (_BY_IDENTITY, id(found))
        return found


# Names a dict or a list in a Compactor's keys: never a type, so never taken for a value.
_BY_IDENTITY = object()
