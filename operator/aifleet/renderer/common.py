"""What every child shares: owner references and the template engine (names and labels: `api.children`)."""

from __future__ import annotations

import functools
from typing import Any

import jinja2
import yaml

from ..api import API_VERSION, KIND, AIService


def owner_reference(ais: AIService) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": ais.metadata.name,
        "uid": ais.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


# libyaml's loader parses our templates about ten times faster than the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("aifleet.renderer", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the package; no stat() of the file on every render
    )


def from_template(template: str, **context: Any) -> dict[str, Any]:
    """Render one YAML template to a manifest. Values go through `tojson`, so quoting cannot break YAML."""
    text = _environment().get_template(template).render(**context)
    manifest: dict[str, Any] = yaml.load(text, Loader=_LOADER)  # a safe loader: the C one when libyaml is there
    return manifest


def owned(ais: AIService, manifest: dict[str, Any]) -> dict[str, Any]:
    """Attach the owner reference (when the AIService exists in a cluster) so deletion cascades."""
    if ais.metadata.uid:
        manifest["metadata"]["ownerReferences"] = [owner_reference(ais)]
    return manifest
