"""Turn pydantic's errors into the sentence a person needs: which field, what is allowed."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .base import pattern_rule


def field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_pattern_mismatch":
        regex = err.get("ctx", {}).get("pattern", "")
        rule = pattern_rule(regex)
        got = err.get("input")
        return f"must be {rule}, not {got!r}" if rule else f"must match {regex}, not {got!r}"
    return str(err["msg"]).removeprefix("Value error, ")


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        path = field_path(err["loc"])
        message = _message(err)
        lines.append(f"{path}: {message}" if path and not message.startswith(path) else message)
    return "; ".join(lines)
