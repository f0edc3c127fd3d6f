"""docs/api.md is generated from the models (through the CRD schema) and must stay identical to the generator."""

from __future__ import annotations

import re

from aifleet.api.crd import crd
from aifleet.api.reference import reference
from aifleet.cli import main
from conftest import ROOT

API_DOC = ROOT / "docs" / "api.md"


def leaf_paths(node: dict, path: str) -> set[str]:
    out = {path}
    for name, child in (node.get("properties") or {}).items():
        out |= leaf_paths(child, f"{path}.{name}")
    items = node.get("items") or {}
    for name, child in (items.get("properties") or {}).items():
        out |= leaf_paths(child, f"{path}[].{name}")
    values = node.get("additionalProperties")
    if isinstance(values, dict):
        for name, child in (values.get("properties") or {}).items():
            out |= leaf_paths(child, f"{path}{{key}}.{name}")
    return out


def test_committed_reference_is_current():
    assert API_DOC.read_text() == reference(), "docs/api.md is stale: run `aifleet docs > docs/api.md` (or make crd)"


def test_every_field_of_the_crd_has_a_row():
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    documented = set(re.findall(r"^\| `([^`]+)` \|", reference(), re.M))
    for top in ("spec", "status"):
        missing = leaf_paths(schema["properties"][top], top) - {top} - documented  # the top is a section
        assert not missing, sorted(missing)


def test_a_row_has_type_default_bounds_and_description():
    row = next(line for line in reference().splitlines() if line.startswith("| `spec.autoscaling.maxReplicas` |"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells[1:4] == ["integer", "`10`", ">= 1; <= 10000"], cells
    assert cells[4], cells
    assert "`self.minReplicas <= self.maxReplicas`" in reference()


def test_the_cli_prints_it(capsys):
    assert main(["docs"]) == 0
    assert capsys.readouterr().out == reference()
