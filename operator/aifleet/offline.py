"""`aifleet render`: validate AIService files as the API server would and print their children, exactly as the
operator would.

A file is read the way kubectl reads it before anything reaches the API server: UTF-8 YAML whose mappings have
no duplicate keys, turned into JSON (so `.inf` cannot pass, and `3.0` is the integer 3). Timestamps stay
strings and `1:20` is not a number, as in Kubernetes's YAML. Documents of other kinds are skipped; one that
names aifleet's group or a kind spelt like AIService in another case is refused, not skipped.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .api import AIService
from .api.aiservice import API_VERSION, GROUP, KIND
from .api.errors import describe_validation_error, field_path
from .renderer import render


class RenderError(ValueError):
    pass


class _KubeYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, closer to Kubernetes's YAML: duplicate keys are errors, no timestamps, no base 60."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict, set)):
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a scalar", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_DROPPED = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_KubeYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_KubeYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_KubeYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
# y and n are booleans to Kubernetes's YAML (as yes and no are to both).
_KubeYamlLoader.bool_values = {**yaml.SafeLoader.bool_values, "y": True, "n": False}
_KubeYamlLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


# YAML aliases can make a small file expand to billions of values; no manifest comes near this many.
MAX_VALUES = 100_000


def as_json(value: Any) -> Any:
    """The JSON kubectl would send for a YAML value; RenderError naming the field when there is none."""
    budget = [MAX_VALUES]

    def convert(node: Any, loc: tuple[int | str, ...]) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise RenderError(f"more than {MAX_VALUES} values once aliases are expanded: not a manifest")
        if isinstance(node, dict):
            return {_key(k): convert(v, (*loc, _key(k))) for k, v in node.items()}
        if isinstance(node, list):
            return [convert(v, (*loc, i)) for i, v in enumerate(node)]
        if isinstance(node, float):
            if not math.isfinite(node):
                raise RenderError(f"{field_path(loc) or 'document'}: {node} is not a number JSON can carry")
            return int(node) if node.is_integer() else node
        if node is None or isinstance(node, (str, int)):
            return node
        raise RenderError(f"{field_path(loc) or 'document'}: a YAML {type(node).__name__} has no JSON form")

    return convert(value, ())


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "value")


# What a custom resource may hold; the API server refuses other fields (strict field validation), and the
# model reads only part of metadata.
_TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}
_OBJECT_META = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields",
}


def _unknown_fields(doc: dict[str, Any]) -> None:
    metadata = doc.get("metadata")
    unknown = sorted(set(doc) - _TOP_LEVEL)
    unknown += sorted(f"metadata.{k}" for k in set(metadata) - _OBJECT_META) if isinstance(metadata, dict) else []
    if unknown:
        raise RenderError("; ".join(f"{field}: unknown field" for field in unknown))


def _parse(doc: Any) -> AIService | None:
    """The AIService in one document; None for a document of another kind."""
    if not isinstance(doc, dict):
        raise RenderError(f"a manifest must be a mapping (apiVersion, kind, metadata, spec), not a {_json_kind(doc)}")
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(kind, str) or not kind:
        raise RenderError("kind: required, a string")
    if not isinstance(api_version, str) or not api_version:
        raise RenderError("apiVersion: required, a string")
    group = api_version.rpartition("/")[0]
    if kind.lower() != KIND.lower() and group != GROUP:
        return None
    if kind != KIND:
        raise RenderError(f"kind: must be {KIND} (kinds are case-sensitive), not {_short(kind)}")
    if api_version != API_VERSION:
        raise RenderError(f"apiVersion: must be {API_VERSION}, not {_short(api_version)}")
    _unknown_fields(doc)
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    try:
        return AIService.model_validate(doc)
    except ValidationError as exc:
        raise RenderError(f"AIService {name if isinstance(name, str) else '(no name)'}: {describe_validation_error(exc)}") from None


def read_documents(path: Path) -> list[Any]:
    """The documents of a YAML file, as Kubernetes's YAML reads them (empty ones left out)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise RenderError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RenderError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return [d for d in yaml.load_all(text, Loader=_KubeYamlLoader) if d is not None]
    except yaml.YAMLError as exc:
        raise RenderError(f"{path}: {exc}") from None
    except RecursionError:
        raise RenderError(f"{path}: nested too deeply") from None


def load_aiservices(path: Path) -> list[AIService]:
    documents = read_documents(path)
    services = []
    for index, doc in enumerate(documents):
        where = f"{path}" if len(documents) == 1 else f"{path} (document {index + 1})"
        try:
            ais = _parse(as_json(doc))
        except RenderError as exc:
            raise RenderError(f"{where}: {exc}") from None
        except RecursionError:
            raise RenderError(f"{where}: nested too deeply") from None
        if ais is not None:
            services.append(ais)
    if not services:
        raise RenderError(f"{path}: no {KIND} in the file")
    return services


def render_files(paths: list[Path]) -> str:
    manifests = []
    for path in paths:
        for ais in load_aiservices(path):
            manifests += render(ais)
    return yaml.safe_dump_all(manifests, sort_keys=False)
