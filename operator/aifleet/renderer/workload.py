"""What the workload renderers share beyond names and labels: the version label and container resources."""

from __future__ import annotations

from typing import Any

from ..api.data import ComponentResources


def image_tag(image: str) -> str | None:
    """The tag of `repo:tag` (not the port of `host:port/repo`), for the version label."""
    last = image.rsplit("/", 1)[-1]
    tag = last.split("@", 1)[0].partition(":")[2]
    return tag or None


def resources(spec: ComponentResources) -> dict[str, Any]:
    out = {"requests": spec.requests.to_wire(), "limits": spec.limits.to_wire()}
    return {k: v for k, v in out.items() if v}
