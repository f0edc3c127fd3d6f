"""Reading a Secret as the API returns it: the one place that decodes `data`."""

from __future__ import annotations

import base64
import binascii
from typing import Any


def decode_key(secret: dict[str, Any] | None, key: str) -> str | None:
    """The text under `key` of a Secret object; None when absent or not UTF-8."""
    if not secret:
        return None
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        plain = (secret.get("stringData") or {}).get(key)
        return plain if isinstance(plain, str) else None
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
