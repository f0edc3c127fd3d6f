"""The base every API model derives from, and the string rules its fields share.

Fields are snake_case in Python and camelCase on the wire, like every Kubernetes API.
Unknown fields are refused: a typo in a manifest must fail loudly, not be ignored.
Types are strict, as the CRD's are: the API server refuses `maxReplicas: "10"` and `gpusPerPod: true`,
so the models do not coerce them either; JSON has no infinity or NaN, so neither do the models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it appears in a manifest: camelCase keys, no unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# The largest integer a JSON number carries exactly; the API server reads schema bounds as float64, so a bound
# beyond it (such as int64's own maximum) is not the number it says.
MAX_SAFE_INTEGER = 2**53 - 1


def plain_dict(data: Any) -> Any:
    """Strict models take dicts, not other mappings (kopf's Body is one): copy the top level."""
    return dict(data) if isinstance(data, Mapping) and not isinstance(data, dict) else data


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One CEL validation rule as the CRD's `x-kubernetes-validations` entry wants it."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


# A pattern's rule in words, for the error a person reads; the CRD keeps the pattern itself.
_RULES: dict[str, str] = {}


def pattern(regex: str, rule: str) -> str:
    """`regex`, remembered with the rule it stands for (`must be ...`)."""
    _RULES[regex] = rule
    return regex


def pattern_rule(regex: str) -> str | None:
    return _RULES.get(regex)


_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_LABEL = pattern(
    f"^{_LABEL}$",
    "a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit",
)
DNS_1035_LABEL = pattern(
    "^[a-z]([-a-z0-9]*[a-z0-9])?$",
    "a DNS-1035 label: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
)
DNS_SUBDOMAIN = pattern(
    rf"^{_LABEL}(\.{_LABEL})*$",
    "a DNS subdomain: lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a "
    "letter or digit",
)
# Kubernetes label values; node selector values and toleration values are label values.
LABEL_VALUE = pattern(
    "^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$",
    "a label value: at most 63 ASCII letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
)
# A label key: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters.
QUALIFIED_NAME = pattern(
    rf"^({_LABEL}(\.{_LABEL})*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$",
    "a label key: an optional DNS-subdomain prefix and '/', then at most 63 ASCII letters, digits, '-', '_' and '.',"
    " starting and ending with a letter or digit",
)
# What Kubernetes allows as a key of a Secret or ConfigMap.
SECRET_KEY = pattern("^[-._a-zA-Z0-9]+$", "a Secret key: letters, digits, '-', '_' and '.'")
NO_SPACE = pattern(r"^\S+$", "one word with no spaces")

LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE)]
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=317, pattern=QUALIFIED_NAME)]
