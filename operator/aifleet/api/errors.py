"""Turn pydantic's errors into the sentence a person needs: which field, what is allowed."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        path = field_path(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        lines.append(f"{path}: {message}" if path and not message.startswith(path) else message)
    return "; ".join(lines)
