"""What every child shares: names, labels, owner references and the template engine."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jinja2
import yaml

from ..api import API_VERSION, KIND, AIService

MANAGED_BY = "aifleet"
PART_OF = "aifleet"
INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
COMPONENT_LABEL = "app.kubernetes.io/component"


@dataclass(frozen=True)
class Names:
    """Child names derive from the AIService name; the CRD caps it at 53 characters so these fit 63."""

    base: str

    @property
    def triton(self) -> str:
        return f"{self.base}-triton"

    @property
    def pgbouncer(self) -> str:
        return f"{self.base}-pgbouncer"

    @property
    def redis(self) -> str:
        return f"{self.base}-redis"


def service_host(service: str, namespace: str) -> str:
    """The in-cluster DNS name clients use for one of our Services."""
    return f"{service}.{namespace}.svc"


def selector_labels(ais: AIService, component: str) -> dict[str, str]:
    """The immutable subset used in Deployment selectors: never add to it."""
    return {
        "app.kubernetes.io/name": component,
        INSTANCE_LABEL: ais.metadata.name,
        COMPONENT_LABEL: component,
    }


def common_labels(ais: AIService, component: str, version: str | None = None) -> dict[str, str]:
    labels = {
        **selector_labels(ais, component),
        "app.kubernetes.io/part-of": PART_OF,
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    if version:
        labels["app.kubernetes.io/version"] = version[:63]
    return labels


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
