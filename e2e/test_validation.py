"""The bad-manifest corpus (tests/bad_inputs/), judged by the real API server through the CRD's schema and CEL
rules: the same verdict as `aifleet render` offline (tests/test_validation.py), and a message naming the same field.

Each case is one server-side dry run (nothing is stored), all in one namespace.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from aifleet.api.aiservice import GROUP, PLURAL, VERSION
from bad_inputs import BAD_UPDATES, CASES, Case
from kube import KubectlError, kubectl, scratch_namespace

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())


@pytest.fixture(scope="module")
def corpus_namespace(cluster):
    with scratch_namespace("validation") as name:
        yield name


def _judge(case: Case, namespace: str, tmp_path: Path) -> None:
    if case.apply == "raw":
        # kubectl turns YAML into JSON before sending it, dropping duplicate keys: post the bytes themselves.
        body = tmp_path / "body.json"
        body.write_bytes(case.body)
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}?dryRun=All&fieldValidation=Strict"
        kubectl("create", "--raw", path, "-f", str(body))
    else:
        kubectl(
            "apply", "--server-side", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", str(case.path)
        )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_api_server_agrees_with_offline_validation(crd, corpus_namespace, case, tmp_path):
    if case.verdict == "accepted":
        _judge(case, corpus_namespace, tmp_path)
        return
    with pytest.raises(KubectlError) as info:
        _judge(case, corpus_namespace, tmp_path)
    assert case.server.lower() in info.value.stderr.lower(), info.value.stderr


def _manifest(doc: dict, namespace: str) -> str:
    doc["metadata"]["namespace"] = namespace
    return yaml.safe_dump(doc)


@pytest.mark.parametrize("case", BAD_UPDATES, ids=[c[0] for c in BAD_UPDATES])
def test_api_server_refuses_bad_update(crd, namespace, case):
    _, before, after, message = case
    kubectl("apply", "--server-side", "-f", "-", input=_manifest(before(copy.deepcopy(MINIMAL)), namespace))
    with pytest.raises(KubectlError) as info:
        kubectl("apply", "--server-side", "-f", "-", input=_manifest(after(copy.deepcopy(MINIMAL)), namespace))
    assert message in info.value.stderr, info.value.stderr
