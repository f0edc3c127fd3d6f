"""What every child shares: owner references and the template engine (names and labels: `api.children`)."""

from __future__ import annotations

import functools
import json
import re
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
class _TemplateLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader that also reads JSON's `1e-05` as a number (YAML 1.1 wants a dot in it)."""


_TemplateLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^-?[0-9]+[eE][-+]?[0-9]+$"), list("-0123456789"))
TEMPLATE_LOADER = _TemplateLoader


# JSON writes a character beyond the BMP as a UTF-16 surrogate pair (\ud800\udc00), which YAML refuses: YAML
# spells it \U00010000. Only a pair whose backslash starts an escape (after an even run of backslashes) is one.
_SURROGATE_PAIR = re.compile(r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def _yaml_pair(match: re.Match[str]) -> str:
    high, low = int(match[2], 16) - 0xD800, int(match[3], 16) - 0xDC00
    return f"{match[1]}\\U{0x10000 + (high << 10) + low:08x}"


def json_for_yaml(value: Any, **kwargs: Any) -> str:
    """JSON text that YAML reads back as the same value (`tojson` uses it)."""
    return _SURROGATE_PAIR.sub(_yaml_pair, json.dumps(value, **kwargs))


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("aifleet.renderer", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the package; no stat() of the file on every render
    )
    env.policies["json.dumps_function"] = json_for_yaml
    return env


def from_template(template: str, **context: Any) -> dict[str, Any]:
    """Render one YAML template to a manifest. Values go through `tojson`, so quoting cannot break YAML."""
    text = _environment().get_template(template).render(**context)
    manifest: dict[str, Any] = yaml.load(text, Loader=TEMPLATE_LOADER)  # a safe loader: the C one when libyaml is there
    return manifest


def owned(ais: AIService, manifest: dict[str, Any]) -> dict[str, Any]:
    """Attach the owner reference (when the AIService exists in a cluster) so deletion cascades."""
    if ais.metadata.uid:
        manifest["metadata"]["ownerReferences"] = [owner_reference(ais)]
    return manifest
