"""The bad-manifest corpus (tests/bad_inputs/), judged by the real API server through the CRD's schema and CEL
rules: the same verdict as `aifleet render` offline (tests/test_validation.py), and a message naming the same field.

Each case is one server-side dry run (nothing is stored), all in one namespace. Before any cluster, the API
server's own validation code for custom resources (crdcheck, built from the control plane's k8s.io modules)
judges the whole corpus in one run: the CRD is valid, and every case it can see gets the same verdict and field.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from aifleet.api.aiservice import GROUP, PLURAL, VERSION
from aifleet.offline import as_json, read_documents
from bad_inputs import BAD_UPDATES, CASES, Case
from kube import KubectlError, build_tool, kubectl, scratch_namespace

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())
CRD = ROOT / "crds" / "aifleet.dev_aiservices.yaml"
BUILD_CRDCHECK = ROOT / "e2e" / "tools" / "build-crdcheck.sh"


def test_crd_validation_code_judges_the_corpus_as_offline():
    """No cluster needed: the CRD passes the API server's CRD validation (CEL compiles, within its cost budget),
    and each case the CRD judges (not kubectl, not the request's decoding) gets the offline verdict and field."""
    judged = [c for c in CASES if c.judge == "schema"]
    objects = [{"id": c.id, "object": as_json(read_documents(c.path)[0])} for c in judged]
    for obj in objects:
        obj["object"]["metadata"].setdefault("namespace", "e2e")
    proc = subprocess.run(
        [build_tool(BUILD_CRDCHECK), str(CRD)], input=json.dumps(objects), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["crd"] == []
    wrong = []
    for case in judged:
        errors = " | ".join(report["objects"][case.id])
        agrees = not errors if case.verdict == "accepted" else case.server.lower() in errors.lower()
        if not agrees:
            wrong.append(f"{case.id}: expected {case.verdict} naming {case.server!r}, got {errors or 'accepted'}")
    assert not wrong, "\n".join(wrong)


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
def test_api_server_judges_the_corpus_as_offline(crd, corpus_namespace, case, tmp_path):
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
