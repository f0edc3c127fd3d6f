"""Generate the AIService CustomResourceDefinition from the pydantic models.

The models are the one source of truth; `crds/` holds this function's output and a unit test keeps
the two identical. The JSON Schema pydantic emits is close to OpenAPI v3, with four differences the
API server cares about: `$ref`s must be inlined, `Optional[X]` must become plain `X`, exclusive bounds
are booleans, and defaults made by factories must be spelled out (nested defaults only apply when the
parent object exists, so an object-valued default of `{}` is what makes them fire).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from .aiservice import (
    CATEGORIES,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    AIServiceSpec,
)
from .base import DNS_1035_LABEL, cel, pattern_rule
from .children import MAX_NAME_LENGTH
from .status import AIServiceStatus

_DROP = {"title"}


class _CrdSchema(GenerateJsonSchema):
    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is None:
            return super().default_schema(schema)
        inner = self.generate_inner(schema["schema"])
        value = cast("Callable[[], Any]", factory)()  # the models' factories take no arguments
        if isinstance(value, BaseModel):
            inner["default"] = value.model_dump(by_alias=True, exclude_none=True, mode="json")
        elif value not in ([], {}):
            inner["default"] = value
        return inner


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline(defs[node["$ref"].split("/")[-1]], defs)
        return {**target, **{k: _inline(v, defs) for k, v in node.items() if k != "$ref"}}
    out = {k: _inline(v, defs) for k, v in node.items() if k not in _DROP and k != "$defs"}
    # Optional[X] arrives as anyOf [X, null]: the CRD expresses optionality by absence instead.
    variants = out.get("anyOf")
    if variants is not None:
        real = [v for v in variants if v.get("type") != "null"]
        if len(real) == 1:
            del out["anyOf"]
            out = {**real[0], **out}
            if out.get("default", 0) is None:
                del out["default"]
    if "allOf" in out and len(out["allOf"]) == 1:
        out = {**out.pop("allOf")[0], **out}
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if isinstance(out.get(bound), (int, float)) and not isinstance(out.get(bound), bool):
            out[bound.replace("exclusiveM", "m")] = out[bound]
            out[bound] = True
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", None)
        if out["additionalProperties"] in (False, None):
            del out["additionalProperties"]
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_CrdSchema)
    schema: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    return schema


PRINTER_COLUMNS = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.readyReplicas",
     "description": "Triton pods ready and serving"},
    {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
    {"name": "RPS", "type": "number", "jsonPath": ".status.currentRPS"},
    {"name": "Canary", "type": "integer", "jsonPath": ".status.canary.share",
     "description": "Percent of the pods (and traffic) running the canary version"},
    {"name": "Min", "type": "integer", "jsonPath": ".spec.autoscaling.minReplicas"},
    {"name": "Max", "type": "integer", "jsonPath": ".spec.autoscaling.maxReplicas"},
    {"name": "Engine", "type": "string", "jsonPath": ".spec.autoscaling.engine", "priority": 1},
    {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason', "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


# The API server asks only that a custom resource's name be a path segment; children need more. They are named
# `<name>-<component>`: Services need DNS-1035 labels, and every generated name and label must fit
# (api/children.py says why MAX_NAME_LENGTH). The same rules as ObjectMeta.name's constraints.
NAME_RULES = [
    cel(
        f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
        f"metadata.name must be at most {MAX_NAME_LENGTH} characters: the names of its children derive from it",
    ),
    cel(
        f"self.metadata.name.matches('{DNS_1035_LABEL}')",
        f"metadata.name must be {pattern_rule(DNS_1035_LABEL)}",
    ),
]


def crd() -> dict[str, Any]:
    schema = {
        "type": "object",
        "description": "An AI inference API fleet: Triton, its autoscaler, and the data plane around it.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": openapi_schema(AIServiceSpec),
            "status": openapi_schema(AIServiceStatus),
        },
        "x-kubernetes-validations": NAME_RULES,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "aifleet"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": CATEGORIES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.autoscaling.minReplicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }
