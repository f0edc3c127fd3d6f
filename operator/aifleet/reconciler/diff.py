"""Does a live child still match what we rendered? Pure: no I/O.

The API server adds defaults and other managers' fields to every object, so "matches" means every field
we set still holds our value (a subset test), not equality. Quantities are compared by value because the
API server canonicalises them (`1000m` comes back as `1`).
"""

from __future__ import annotations

from typing import Any

from ..api.quantity import parse_quantity
from ..renderer import CONFIG_HASH

# Metadata the API server or other controllers own; our own labels and annotations are still compared.
_IGNORED_METADATA = {"resourceVersion", "uid", "generation", "creationTimestamp", "managedFields", "selfLink"}


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    if (isinstance(want, (int, float)) and isinstance(have, str)) or (isinstance(want, str) and isinstance(have, (int, float))):
        want, have = str(want), str(have)
    if isinstance(want, str) and isinstance(have, str):
        a, b = parse_quantity(want), parse_quantity(have)
        return a is not None and a == b
    return False


def first_difference(want: Any, have: Any, path: str = "") -> str | None:
    """The path of the first field we set that the live object no longer holds, or None."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return path or "."
        for key, value in want.items():
            if path == ".metadata" and key in _IGNORED_METADATA:
                continue
            found = first_difference(value, have.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return path
        for index, (a, b) in enumerate(zip(want, have)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    if want is None:
        return None
    return None if _same_scalar(want, have) else path


def drift(desired: dict[str, Any], live: dict[str, Any] | None) -> str | None:
    """Why `desired` must be applied: `missing`, the first drifted path, or None when it already holds."""
    if live is None:
        return "missing"
    return first_difference(desired, live)


class DriftMemo:
    """`drift`, remembered per child while neither side changes: what we render is named by its config hash and
    replica count, the live object by its uid and resourceVersion. A quiet fleet compares every child on every pass
    otherwise, and those comparisons were the largest part of a pass that changes nothing."""

    def __init__(self, max_children: int = 200_000) -> None:
        self._max = max_children
        self._verdicts: dict[tuple[str, str, str], tuple[tuple[Any, ...], str | None]] = {}

    def __call__(self, desired: dict[str, Any], live: dict[str, Any] | None) -> str | None:
        live_meta = (live or {}).get("metadata") or {}
        meta = desired["metadata"]
        rendered = (meta.get("annotations") or {}).get(CONFIG_HASH)
        if live is None or not live_meta.get("resourceVersion") or rendered is None:
            return drift(desired, live)
        key = (desired["kind"], meta.get("namespace", ""), meta["name"])
        version = (rendered, (desired.get("spec") or {}).get("replicas"), live_meta.get("uid"),
                   live_meta["resourceVersion"])
        known = self._verdicts.get(key)
        if known is not None and known[0] == version:
            return known[1]
        verdict = drift(desired, live)
        if len(self._verdicts) >= self._max:  # children of deleted AIServices linger until this
            self._verdicts.clear()
        self._verdicts[key] = (version, verdict)
        return verdict
