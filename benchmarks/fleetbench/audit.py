"""The API server's audit log: who asked for what, and which status fields a window's writes changed."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .common import WRITE_VERBS, rfc3339


@dataclass
class Req:
    ts: float
    user: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int


class Audit:
    """Reads the API server's audit log (Metadata level, one JSON line per stage) from a mark. The API server rotates
    it at 100 MB (renaming it `audit-<time>.log`, same inode), which a fleet of 10,000 passes several times while it
    converges: a mark is (inode, size), and reading follows it into the files that came after."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> tuple[int, int]:
        try:
            stat = self.path.stat()
        except OSError:
            return (0, 0)
        return (stat.st_ino, stat.st_size)

    def files_since(self, offset: tuple[int, int]) -> list[tuple[Path, int]]:
        """(file, byte to start at), oldest first, holding everything written since `offset`."""
        inode, size = offset
        rotated = sorted(self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}"))  # named by time: in order
        out: list[tuple[Path, int]] = []
        for path in [*rotated, self.path]:
            try:
                this = path.stat().st_ino
            except OSError:
                continue
            if this == inode:
                out = [(path, size)]  # the file the mark was taken in; whatever came before it is older
            elif out or not inode:
                out.append((path, 0))
        return out or [(self.path, 0)]

    def read(self, offset: tuple[int, int], t0: float, t1: float) -> list[Req]:
        out, seen = [], set()
        for path, start in self.files_since(offset):
            with open(path, "rb") as f:
                f.seek(start)
                for raw in f:
                    try:
                        e = json.loads(raw)
                    except ValueError:
                        continue  # a line still being written
                    if e.get("auditID") in seen:
                        continue  # watches log ResponseStarted and ResponseComplete
                    seen.add(e.get("auditID"))
                    ts = rfc3339(e["requestReceivedTimestamp"])
                    if not (t0 <= ts < t1):
                        continue
                    o = e.get("objectRef") or {}
                    out.append(Req(ts, e.get("user", {}).get("username", ""), e.get("verb", ""),
                                   o.get("resource", ""), o.get("subresource", ""), o.get("namespace", ""),
                                   o.get("name", ""), (e.get("responseStatus") or {}).get("code", 0)))
        return out


def status_changes(before: dict[tuple, dict], after: dict[tuple, dict]) -> dict[tuple, set[str]]:
    """Per AIService, which status fields differ between two snapshots (conditions by type, autoscaling by key)."""
    out: dict[tuple, set[str]] = {}
    for key in set(before) | set(after):
        a, b = before.get(key) or {}, after.get(key) or {}
        changed: set[str] = set()
        for f in set(a) | set(b):
            if f == "conditions":
                ca = {c.get("type"): c for c in a.get(f) or []}
                cb = {c.get("type"): c for c in b.get(f) or []}
                changed |= {f"conditions[{t}]" for t in set(ca) | set(cb) if ca.get(t) != cb.get(t)}
            elif isinstance(a.get(f), dict) and isinstance(b.get(f), dict):
                changed |= {f"{f}.{k}" for k in set(a[f]) | set(b[f]) if a[f].get(k) != b[f].get(k)}
            elif a.get(f) != b.get(f):
                changed.add(f)
        if changed:
            out[key] = changed
    return out


def why_written(changes: dict[tuple, set[str]], writes_per_object: collections.Counter) -> dict:
    """Writes on objects whose status did not change at all between the window's ends are no-op writes (a lower
    bound: an object that changed may also have had no-op writes)."""
    fields = collections.Counter(f for fs in changes.values() for f in fs)
    return {
        "objects_status_changed": len(changes),
        "status_fields_changed": dict(fields.most_common(8)),
        "writes_on_unchanged_objects": sum(n for k, n in writes_per_object.items() if k not in changes),
    }


def by_verb(reqs: Iterable[Req]) -> dict[str, int]:
    return dict(collections.Counter(r.verb for r in reqs).most_common())


def writes_by_target(reqs: Iterable[Req]) -> dict[str, int]:
    c = collections.Counter(
        f"{r.verb} {r.resource}{'/' + r.subresource if r.subresource else ''}" for r in reqs if r.verb in WRITE_VERBS
    )
    return dict(c.most_common())


def fmt_counts(counts: dict[str, int], limit: int = 6) -> str:
    if not counts:
        return "0"
    items = list(counts.items())
    text = ", ".join(f"{k} {v:,}" for k, v in items[:limit])
    return text + (f", … ({len(items) - limit} more)" if len(items) > limit else "")

