"""The bad-input table, judged by the real API server through the CRD schema and CEL rules."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from bad_inputs import BAD_INPUTS, BAD_UPDATES
from kube import KubectlError, kubectl

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())


def _manifest(doc: dict, namespace: str) -> str:
    doc["metadata"]["namespace"] = namespace
    return yaml.safe_dump(doc)


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.id for c in BAD_INPUTS])
def test_api_server_refuses_bad_input(crd, namespace, case):
    doc = case.apply(copy.deepcopy(MINIMAL))
    with pytest.raises(KubectlError) as info:
        # Strict field validation: unknown fields are errors, not warnings.
        kubectl("apply", "--server-side", "--validate=strict", "-f", "-", input=_manifest(doc, namespace))
    assert case.server_field in info.value.stderr, info.value.stderr
    assert kubectl("get", "aiservices", "-n", namespace, "-o", "name").strip() == ""


@pytest.mark.parametrize("case", BAD_UPDATES, ids=[c[0] for c in BAD_UPDATES])
def test_api_server_refuses_bad_update(crd, namespace, case):
    _, before, after, message = case
    kubectl("apply", "--server-side", "-f", "-", input=_manifest(before(copy.deepcopy(MINIMAL)), namespace))
    with pytest.raises(KubectlError) as info:
        kubectl("apply", "--server-side", "-f", "-", input=_manifest(after(copy.deepcopy(MINIMAL)), namespace))
    assert message in info.value.stderr, info.value.stderr
