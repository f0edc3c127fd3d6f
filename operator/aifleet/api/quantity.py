"""Kubernetes resource quantities (`500m`, `16Gi`, `1.5e3`) as numbers, the way the API server reads them."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_DECIMAL_EXPONENT = {"n": -3, "u": -2, "m": -1, "": 0, "k": 1, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_BINARY_EXPONENT = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)")


def parse_quantity(value: str) -> Decimal | None:
    """The number a quantity stands for; None when `value` is not a quantity."""
    match = _QUANTITY.fullmatch(value.strip())
    if not match:
        return None
    number, suffix = match.groups()
    try:
        if suffix in _BINARY_EXPONENT:
            return Decimal(number) * Decimal(1024) ** _BINARY_EXPONENT[suffix]
        if suffix in _DECIMAL_EXPONENT:
            return Decimal(number) * Decimal(1000) ** _DECIMAL_EXPONENT[suffix]
    except InvalidOperation:
        return None
    return None
