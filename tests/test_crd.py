"""The CRD in crds/ is generated from the pydantic models and must stay identical to the generator's output."""

from __future__ import annotations

import yaml

from aifleet.api.crd import crd
from conftest import ROOT

CRD_FILE = ROOT / "crds" / "aifleet.dev_aiservices.yaml"


def _walk(node, path="$"):
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def test_committed_crd_matches_models():
    assert yaml.safe_load(CRD_FILE.read_text()) == crd(), "crds/ is stale: run `aifleet crd > crds/aifleet.dev_aiservices.yaml`"


def test_chart_crd_matches_models():
    chart_crd = ROOT / "charts" / "aifleet-operator" / "crds" / "aifleet.dev_aiservices.yaml"
    if chart_crd.exists():
        assert yaml.safe_load(chart_crd.read_text()) == crd()


def schema():
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_schema_is_structural():
    """No construct the API server rejects in a structural schema: refs, anyOf-null, titles, untyped nodes."""
    for path, node in _walk(schema()):
        if not isinstance(node, dict) or {"x-kubernetes-validations", "default"} & set(path.split(".")):
            continue
        for forbidden in ("$ref", "anyOf", "allOf", "title", "const"):
            assert forbidden not in node, f"{path} has {forbidden}"
        if path.rsplit(".", 1)[0].endswith(".properties"):
            assert "type" in node, f"{path} has no type"


def test_every_spec_field_is_described():
    spec = schema()["properties"]["spec"]
    missing = [p for p, n in _walk(spec) if p.rsplit(".", 1)[0].endswith(".properties") and not n.get("description")]
    assert not missing, missing


def test_cross_field_rules_present():
    rules = [r["rule"] for _, n in _walk(schema()) if isinstance(n, dict) for r in n.get("x-kubernetes-validations", [])]
    assert "self.minReplicas <= self.maxReplicas" in rules
    assert "self.partitions >= oldSelf.partitions" in rules


def test_printer_columns_and_subresources():
    version = crd()["spec"]["versions"][0]
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    for wanted in ("Ready", "Replicas", "Desired", "RPS", "Min", "Max", "Age"):
        assert wanted in names
    assert "status" in version["subresources"]
    assert crd()["spec"]["names"]["shortNames"] == ["ais"]
    assert "all" in crd()["spec"]["names"]["categories"]


def test_defaults_follow_models():
    autoscaling = schema()["properties"]["spec"]["properties"]["autoscaling"]
    assert autoscaling["default"]["scaleDown"]["stabilizationWindowSeconds"] == 180
    assert autoscaling["properties"]["minReplicas"]["default"] == 1
    # Not just above 0: the HPA engine's target is a quantity in thousandths, and 0 is refused.
    target = autoscaling["properties"]["targetRPSPerPod"]
    assert target["exclusiveMinimum"] is True and target["minimum"] == 0
    assert target["x-kubernetes-validations"][0]["rule"] == "self >= 0.001"
