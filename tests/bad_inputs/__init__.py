"""Bad AIService manifests, judged offline (tests/test_validation.py) and by the real API server
(e2e/test_validation.py), with the same verdict and the same field both ways.

Each `*.yaml` here is one manifest as a person would write it, headed by comments:

    # verdict: refused | accepted
    # field: the field path both messages name (empty: the document as a whole, e.g. not YAML of a mapping)
    # server: what the API server's or kubectl's message names instead, where it cannot name the field
    # apply: raw (post the bytes to the API server as they are; kubectl would rewrite them first)
    # judge: request (refused while the request is read, by kubectl or the API server's decoding, before the
    #   CRD's schema and rules are consulted)
    # why it is bad

A manifest names no namespace unless the namespace is what is wrong: the e2e suite applies it in its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Case:
    id: str
    path: Path
    verdict: str  # refused | accepted
    field: str
    server: str  # what the API server's (or kubectl's) message must contain
    apply: str  # kubectl | raw
    judge: str  # schema (the CRD's schema and rules) | request (kubectl or the request's decoding)
    why: str

    @property
    def body(self) -> bytes:
        """The manifest without its header."""
        lines = self.path.read_bytes().splitlines(keepends=True)
        return b"".join(line for line in lines if not line.startswith(b"#"))


def _case(path: Path) -> Case:
    header: dict[str, str] = {}
    why = []
    for line in path.read_bytes().splitlines():
        if not line.startswith(b"# "):
            break
        key, sep, value = line[2:].decode("ascii").partition(": ")
        if sep and key in ("verdict", "field", "server", "apply", "judge"):
            header[key] = value.strip()
        else:
            why.append(line[2:].decode("ascii"))
    field = header.get("field", "")
    return Case(
        id=path.stem,
        path=path,
        verdict=header["verdict"],
        field=field,
        server=header.get("server", field),
        apply=header.get("apply", "kubectl"),
        judge=header.get("judge", "schema"),
        why=" ".join(why),
    )


CASES = [_case(path) for path in sorted(HERE.glob("*.yaml"))]

# --- transition rules: valid on create, refused as an update of an existing object

Doc = dict[str, Any]


def _set(path: str, value: Any) -> Callable[[Doc], Doc]:
    def edit(doc: Doc) -> Doc:
        node = doc
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        return doc

    return edit


KAFKA = {"bootstrapServers": "kafka:9092", "topics": [{"name": "events", "partitions": 6, "replicationFactor": 1}]}

BAD_UPDATES = [
    (
        "partition-decrease",
        _set("spec.kafka", KAFKA),
        _set("spec.kafka", {**KAFKA, "topics": [{"name": "events", "partitions": 3, "replicationFactor": 1}]}),
        "partitions cannot decrease",
    ),
    (
        "replication-factor-change",
        _set("spec.kafka", KAFKA),
        _set("spec.kafka", {**KAFKA, "topics": [{"name": "events", "partitions": 6, "replicationFactor": 3}]}),
        "replicationFactor is immutable",
    ),
    (
        "redis-persistence-off",
        _set("spec.redis", {"persistence": {"enabled": True}}),
        _set("spec.redis", {"persistence": {"enabled": False}}),
        "cannot be turned off once on",
    ),
]
