"""Kubernetes timestamps: RFC 3339 in UTC to the second (`2026-05-01T12:00:00Z`), as metav1.Time writes them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_timestamp(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, tz=UTC).strftime(_FORMAT)


def now_timestamp() -> str:
    return format_timestamp(time.time())


def parse_timestamp(text: str) -> float:
    """Unix seconds of an RFC 3339 timestamp; ValueError when it is not one."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return parsed.timestamp()
