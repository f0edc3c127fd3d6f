"""The renderer: a pure function from a validated AIService to the manifests of its children.

Same input, same output, byte for byte: the reconciler compares these against the cluster, and
`aifleet render` prints them for review.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..api import AIService
from ..clients.kinds import apply_order
from .common import owned
from .autoscaling import render_hpa
from .inference import render_inference

CONFIG_HASH = "aifleet.dev/config-hash"


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
    digest = config_hash(hashed)
    manifest["metadata"].setdefault("annotations", {})[CONFIG_HASH] = digest
    return manifest


def render(ais: AIService, *, replicas: int | None = None) -> list[dict[str, Any]]:
    """All children of `ais`, in apply order. `replicas` is the fleet size observed in the cluster, if any."""
    manifests = render_inference(ais, initial_replicas(ais, replicas))
    manifests += render_hpa(ais)
    manifests = [_stamp(owned(ais, m)) for m in manifests]
    return sorted(manifests, key=lambda m: (apply_order(m), m["metadata"]["name"]))

