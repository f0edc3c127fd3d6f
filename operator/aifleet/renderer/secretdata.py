"""Secrets as data: checking a referenced key, writing `data`, and checksums that do not leak what they cover.

Pure. The reconciler fetches Secrets; these functions only look at the dictionaries it passes in.
Messages name the field and the Secret, never a value.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
from typing import Any

from ..api import AIService
from ..api.children import common_labels
from ..api.data import SecretKeyRef
from ..api.secret_data import decode_key

CHECKSUM_ANNOTATION = "aifleet.dev/config-checksum"
GENERATED_ANNOTATION = "aifleet.dev/generated"
# As many PBKDF2 rounds as PostgreSQL's own SCRAM verifier: the pod annotation exposes no more about a
# password than pg_authid does, at ~2 ms once per password per process (cached).
_ROUNDS = 4096


def encode_data(values: dict[str, str]) -> dict[str, str]:
    """A Secret's `data`. Not `stringData`: the API server never returns that, so drift checks would always fire."""
    return {key: base64.b64encode(value.encode()).decode() for key, value in sorted(values.items())}


def new_password() -> str:
    """A fresh password or key: 32 random bytes, URL-safe, so it needs no quoting anywhere."""
    return secrets.token_urlsafe(32)


def generated_secret(ais: AIService, name: str, component: str, key: str, value: str) -> dict[str, Any]:
    """A Secret the operator generates once (a password, a key). Create-only: never apply it, so it never rotates."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ais.metadata.namespace,
            "labels": common_labels(ais, component),
            "annotations": {GENERATED_ANNOTATION: "true"},
        },
        "type": "Opaque",
        "data": encode_data({key: value}),
    }


def secret_ref_problem(field: str, ref: SecretKeyRef, secret: dict[str, Any] | None) -> str | None:
    """Why `ref` cannot be used, in words for a condition or event; None when the key holds a usable value.

    `field` is the spec path of the reference, e.g. `spec.pgbouncer.passwordSecretRef`.
    """
    if secret is None:
        return f'{field}: Secret "{ref.name}" not found'
    data = secret.get("data") or {}
    if ref.key not in data and ref.key not in (secret.get("stringData") or {}):
        return f'{field}: Secret "{ref.name}" has no key "{ref.key}"'
    value = decode_key(secret, ref.key)
    if value is None:
        return f'{field}: Secret "{ref.name}" key "{ref.key}" is not UTF-8 text'
    if not value:
        return f'{field}: Secret "{ref.name}" key "{ref.key}" is empty'
    if "\n" in value or "\r" in value or "\0" in value:
        # A line break would end the value early in pgbouncer's userlist.txt; refuse rather than mangle.
        return f'{field}: Secret "{ref.name}" key "{ref.key}" contains a line break or NUL'
    return None


@functools.lru_cache(maxsize=8192)
def _stretched(secret: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), _ROUNDS).hex()


def config_checksum(salt: str, public: str, secret: str) -> str:
    """A digest that changes whenever `public` (config text) or `secret` (a password) changes.

    Stamped on pod templates so a change rolls the pods. A plain hash of a config holding a password would
    let anyone who can read pods test guesses at full speed; the password goes through PBKDF2 first.
    """
    digest = hashlib.sha256()
    digest.update(public.encode())
    digest.update(b"\0")
    digest.update(_stretched(secret, salt).encode())
    return digest.hexdigest()[:32]
