"""The renderer: a pure function from a validated AIService to the manifests of its children.

Same input, same output, byte for byte: the reconciler compares these against the cluster, and
`aifleet render` prints them for review. Secrets the data plane needs are passed in, never fetched here.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api import AIService
from ..api.children import APPLY_ORDER
from .autoscaling import render_hpa
from .common import owned
from .dataplane import render_dataplane, secret_names
from .inference import render_inference

CONFIG_HASH = "aifleet.dev/config-hash"


@dataclass
class Rendered:
    manifests: list[dict[str, Any]]
    create_once: list[dict[str, Any]] = field(default_factory=list)  # generated Secrets: created, never updated
    problems: dict[str, str] = field(default_factory=dict)  # component -> why it could not be rendered
    pending: dict[str, str] = field(default_factory=dict)  # component -> what it waits for


def initial_replicas(ais: AIService, current: int | None) -> int:
    """Keep the replicas the autoscaler (or HPA) chose, inside [min, max]; start new fleets at min."""
    scaling = ais.spec.autoscaling
    wanted = scaling.min_replicas if current is None else current
    return max(scaling.min_replicas, min(scaling.max_replicas, wanted))


def config_hash(manifest: dict[str, Any]) -> str:
    """A short digest of what we render, stamped on the child so a later change reads as an update, not drift."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stamp(manifest: dict[str, Any]) -> dict[str, Any]:
    # Replicas belong to the autoscaler: a resize is not a new configuration.
    hashed = {**manifest, "spec": {k: v for k, v in manifest.get("spec", {}).items() if k != "replicas"}}
    manifest["metadata"].setdefault("annotations", {})[CONFIG_HASH] = config_hash(hashed)
    return manifest


def placeholder_secrets(ais: AIService) -> dict[str, dict[str, Any]]:
    """Stand-ins for the referenced Secrets, so an offline render shows every child without real credentials."""
    def encode(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    keys = ("password", "username", "ca.crt")
    refs = [ais.spec.pgbouncer and ais.spec.pgbouncer.password_secret_ref,
            ais.spec.redis and ais.spec.redis.password_secret_ref]
    out = {name: {"data": {key: encode(f"from-secret-{name}") for key in keys}} for name in secret_names(ais)}
    for ref in refs:
        if ref:
            out[ref.name]["data"][ref.key] = encode(f"from-secret-{ref.name}-{ref.key}")
    return out


_CACHE_SIZE = 4096
_cache: OrderedDict[str, Rendered] = OrderedDict()
_cache_lock = threading.Lock()


def _cache_key(ais: AIService, replicas: int | None, secrets: Mapping[str, Any] | None) -> str:
    text = json.dumps([ais.model_dump(mode="json", by_alias=True), replicas, secrets], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def render_all(
    ais: AIService, *, replicas: int | None = None, secrets: Mapping[str, dict[str, Any] | None] | None = None
) -> Rendered:
    """Every child of `ais`, in apply order. `replicas` is the fleet size observed in the cluster, if any;
    `secrets` are the referenced Secrets as read from the cluster (None: use placeholders, for offline use).

    Results are memoised by input: a resync re-renders every AIService, and the same input gives the same
    output. Callers must not mutate what they get back.
    """
    key = _cache_key(ais, replicas, secrets)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    rendered = _render_all(ais, replicas, secrets)
    with _cache_lock:
        _cache[key] = rendered
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return rendered


def _render_all(
    ais: AIService, replicas: int | None, secrets: Mapping[str, dict[str, Any] | None] | None
) -> Rendered:
    dataplane = render_dataplane(ais, placeholder_secrets(ais) if secrets is None else secrets)
    manifests = render_inference(ais, initial_replicas(ais, replicas)) + render_hpa(ais) + dataplane.manifests
    manifests = [_stamp(owned(ais, m)) for m in manifests]
    return Rendered(
        manifests=sorted(manifests, key=lambda m: (APPLY_ORDER.index(m["kind"]), m["metadata"]["name"])),
        create_once=[owned(ais, m) for m in dataplane.create_once],
        problems=dataplane.problems,
        pending=dataplane.pending,
    )


def render(ais: AIService, *, replicas: int | None = None) -> list[dict[str, Any]]:
    """The manifests alone, with placeholder credentials: what `aifleet render` prints (a fresh copy)."""
    return copy.deepcopy(render_all(ais, replicas=replicas).manifests)
