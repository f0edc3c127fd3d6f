"""The renderer: a pure function from a validated AIService to the manifests of its children.

Same input, same output, byte for byte: the reconciler compares these against the cluster, and
`aifleet render` prints them for review. Every component (renderer/components.py) renders its own part.

Secrets are passed in, never fetched here, apart from drawing a fresh password for a generated Secret.
The reconciler:
1. reads (from its watch cache) each Secret named by `secret_names(ais)` (None when missing);
2. calls `render_all(ais, replicas=..., secrets=...)`;
3. creates each of `create_once` with create-only semantics (never apply: an existing one must not change);
4. applies `manifests`;
5. reports each entry of `problems` on that component's condition (Degraded) and as a Warning event (the
   messages name the field and the Secret, never a value); each entry of `pending` as Progressing.
A component with a problem renders nothing, so a missing Secret leaves the running pods as they are.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api import AIService
from ..api.canary import CanaryStatus
from ..api.children import APPLY_ORDER
from ..autoscaler.canary import start
from ..compact import Compactor
from .common import owned
from .component import Rendering, RenderInputs
from .components import COMPONENTS

CONFIG_HASH = "aifleet.dev/config-hash"


@dataclass
class Rendered:
    manifests: list[dict[str, Any]]
    create_once: list[dict[str, Any]] = field(default_factory=list)  # generated Secrets: created, never updated
    parts: dict[str, Rendering] = field(default_factory=dict)  # component name -> its part (wanted ones only)

    @property
    def problems(self) -> dict[str, str]:
        """component -> why it could not be rendered"""
        return {name: part.problem for name, part in self.parts.items() if part.problem is not None}

    @property
    def pending(self) -> dict[str, str]:
        """component -> what it waits for"""
        return {name: part.pending for name, part in self.parts.items() if part.pending is not None}


def secret_names(ais: AIService) -> list[str]:
    """The Secrets (in the AIService's namespace) that rendering reads."""
    return list(dict.fromkeys(name for c in COMPONENTS if c.wanted(ais) for name in c.secret_names(ais)))


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


@dataclass(frozen=True)
class _Slot:
    """The last rendering of one AIService and what it was rendered from."""

    ais: AIService
    replicas: int | None
    secrets: Mapping[str, Any] | None
    canary: CanaryStatus | None
    gateway_api: bool
    key: str
    rendered: Rendered

    def serves(self, ais: AIService, replicas: int | None, secrets: Mapping[str, Any] | None,
               canary: CanaryStatus | None, gateway_api: bool) -> bool:
        # `ais is self.ais`: the reconciler parses an object once per resourceVersion, so a pass with nothing new
        # hands over the very same model and needs no digest at all.
        return (ais is self.ais and replicas == self.replicas and secrets == self.secrets and canary == self.canary
                and gateway_api == self.gateway_api)


# One slot per AIService (its latest rendering): the memory grows with the fleet, not with its history.
_MAX_SLOTS = 100_000
_slots: dict[tuple[str, str], _Slot] = {}
_slots_lock = threading.Lock()


def _cache_key(
    ais: AIService,
    replicas: int | None,
    secrets: Mapping[str, Any] | None,
    canary: CanaryStatus | None,
    gateway_api: bool,
) -> str:
    state = canary.to_wire() if canary else None
    body = [ais.model_dump(mode="json", by_alias=True), replicas, secrets, state, gateway_api]
    text = json.dumps(body, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def forget_rendering(namespace: str, name: str) -> None:
    """The AIService is gone: drop its slot."""
    with _slots_lock:
        _slots.pop((namespace, name), None)


# Every AIService's rendering is kept (its slot), and they are nearly all alike. Not the generated Secrets: nothing
# in them is shared.
_compactor = Compactor()
_compactor_lock = threading.Lock()


def _share_manifests(rendered: Rendered) -> None:
    """What the manifests have in common with other renderings, kept once. In place: a component's part holds the
    very same manifests."""
    with _compactor_lock:
        for manifest in rendered.manifests:
            for key, value in manifest.items():
                manifest[key] = _compactor.share(value)


def render_all(
    ais: AIService,
    *,
    replicas: int | None = None,
    secrets: Mapping[str, dict[str, Any] | None] | None = None,
    canary: CanaryStatus | None = None,
    gateway_api: bool = False,
) -> Rendered:
    """Every child of `ais`, in apply order. `replicas` is the fleet size observed in the cluster, if any;
    `secrets` are the referenced Secrets as read from the cluster (None: use placeholders, for offline use);
    `canary` is the canary rollout's state (`status.canary`), which decides how the fleet is split;
    `gateway_api` says the cluster serves the Gateway API's HTTPRoute, which then splits a canary's requests.

    Results are memoised by input, one per AIService: a resync re-renders every AIService, and the same input
    gives the same output. Callers must not mutate what they get back.
    """
    slot_key = (ais.metadata.namespace, ais.metadata.name)
    with _slots_lock:
        slot = _slots.get(slot_key)
    if slot is not None and slot.serves(ais, replicas, secrets, canary, gateway_api):
        return slot.rendered
    key = _cache_key(ais, replicas, secrets, canary, gateway_api)
    if slot is not None and slot.key == key:
        rendered = slot.rendered
    else:
        rendered = _render_all(ais, replicas, secrets, canary, gateway_api)
        _share_manifests(rendered)
    with _slots_lock:
        if len(_slots) >= _MAX_SLOTS:  # slots of AIServices deleted while no one said so
            _slots.clear()
        _slots[slot_key] = _Slot(ais, replicas, secrets, canary, gateway_api, key, rendered)
    return rendered


def _render_all(
    ais: AIService,
    replicas: int | None,
    secrets: Mapping[str, dict[str, Any] | None] | None,
    canary: CanaryStatus | None,
    gateway_api: bool,
) -> Rendered:
    secrets = placeholder_secrets(ais) if secrets is None else secrets
    inputs = RenderInputs(secrets, replicas, canary, gateway_api=gateway_api)
    parts = {c.name: c.render(ais, inputs) for c in COMPONENTS if c.wanted(ais)}
    manifests = [_stamp(owned(ais, m)) for part in parts.values() for m in part.manifests]
    return Rendered(
        manifests=sorted(manifests, key=lambda m: (APPLY_ORDER.index(m["kind"]), m["metadata"]["name"])),
        create_once=[owned(ais, m) for part in parts.values() for m in part.create_once],
        parts=parts,
    )


def render(
    ais: AIService, *, replicas: int | None = None, canary: CanaryStatus | None = None, gateway_api: bool = False
) -> list[dict[str, Any]]:
    """The manifests alone, with placeholder credentials: what `aifleet render` prints (a fresh copy). Offline
    there is no rollout state: a canary renders as it starts, at its trafficPercent."""
    if canary is None and ais.spec.inference.canary is not None:
        canary = start(ais.spec.inference.canary, 0.0)
    return copy.deepcopy(render_all(ais, replicas=replicas, canary=canary, gateway_api=gateway_api).manifests)
