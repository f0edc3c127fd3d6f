"""Triton's admin APIs, restricted as aifleet renders them, on a real Triton Inference Server.

The flags come from the rendered Deployment; `$(VAR)` in them is expanded from the generated admin Secret the
way the kubelet expands container args. Without the key, loading a model (and the other admin APIs) is refused;
with it, accepted; inference and health stay open.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from harness import TritonServer, http_get, http_post
from harness.triton import pytriton_python

from aifleet.api import AIService
from aifleet.api.children import TRITON_ADMIN_HEADER, TRITON_GRPC_ADMIN_HEADER
from aifleet.renderer import render_all
from aifleet.renderer.inference import ADMIN_KEY

pytestmark = pytest.mark.services

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minimal.yaml"
RESTRICTION_FLAGS = ("--http-restricted-api=", "--grpc-restricted-protocol=")
# Over gRPC, with tritonclient[grpc] (in the PyTriton venv only): the repository index without and with the
# key, and whether the server is ready (health, open to all).
GRPC_PROBE = """
import json, sys
import tritonclient.grpc as grpc
from tritonclient.utils import InferenceServerException
address, header, key = sys.argv[1:]
client = grpc.InferenceServerClient(address)
def index(headers):
    try:
        return [m.name for m in client.get_model_repository_index(headers=headers).models]
    except InferenceServerException as exc:
        return "refused: " + str(exc)
print(json.dumps({"anonymous": index(None), "wrong": index({header: "x"}), "admin": index({header: key}),
                  "ready": client.is_server_ready()}))
"""


def _rendered(model: str) -> tuple[list[str], str]:
    """The restriction flags of the rendered Triton container, expanded as the kubelet would, and the key."""
    doc = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    doc["metadata"]["uid"] = "0b7c4c4e-1111-2222-3333-444455556666"
    doc["spec"]["inference"]["models"] = [model]
    rendered = render_all(AIService.model_validate(doc), secrets={})
    (deployment,) = [m for m in rendered.manifests if m["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--model-control-mode=explicit" in container["args"]
    (secret,) = rendered.create_once
    key = base64.b64decode(secret["data"][ADMIN_KEY]).decode()
    env = {}
    for var in container["env"]:
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref["name"] == secret["metadata"]["name"]
            env[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        else:
            env[var["name"]] = var["value"]
    flags = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"] if a.startswith(RESTRICTION_FLAGS)]
    assert len(flags) == 2 and all(key in f for f in flags)
    return flags, key


def test_model_control_needs_the_generated_key_and_inference_stays_open(tmp_path: Path) -> None:
    flags, key = _rendered("echo")
    with TritonServer(tmp_path / "triton", restrictions=flags, access_token=key) as triton:
        url, admin = triton.http_url, {TRITON_ADMIN_HEADER: key}
        load, unload = f"{url}/v2/repository/models/echo/load", f"{url}/v2/repository/models/echo/unload"
        ready = f"{url}/v2/models/echo/ready"

        # Without the key (or with a wrong one), every admin API is refused and the model stays loaded.
        for status, body in (http_post(load), http_post(unload), http_post(load, headers={TRITON_ADMIN_HEADER: "x"}),
                             http_post(f"{url}/v2/repository/index"), http_get(f"{url}/v2/logging"),
                             http_get(f"{url}/v2/trace/setting")):
            assert status == 403 and b"This API is restricted" in body, (status, body)
        assert http_get(ready)[0] == 200

        # Inference, health, metadata and statistics need no key.
        assert triton.infer([1.0, 2.0]) == [1.0, 2.0]
        for path in ("/v2/health/ready", "/v2/models/echo", "/v2/models/echo/stats"):
            assert http_get(url + path)[0] == 200, path

        # With the key, the model repository answers. A load reaches Triton's repository (PyTriton keeps this
        # model's files elsewhere, so Triton reports it cannot poll them: its own answer, not the restriction's).
        status, body = http_post(load, headers=admin)
        assert status != 403 and b"restricted" not in body, (status, body)
        assert http_post(f"{url}/v2/repository/index", headers=admin)[0] == 200
        assert http_get(f"{url}/v2/logging", headers=admin)[0] == 200
        # The same over gRPC, where the header is `triton-grpc-protocol-<name>`.
        probe = subprocess.run([pytriton_python(), "-c", GRPC_PROBE, f"127.0.0.1:{triton.grpc_port}",
                                TRITON_GRPC_ADMIN_HEADER, key], capture_output=True, text=True, timeout=60)
        assert probe.returncode == 0, probe.stderr[-2000:]
        grpc = json.loads(probe.stdout.strip().splitlines()[-1])
        assert all("This protocol is restricted" in grpc[who] for who in ("anonymous", "wrong")), grpc
        assert isinstance(grpc["admin"], list) and grpc["ready"] is True, grpc

        # And model control takes effect: the key unloads the model the anonymous request could not.
        assert http_post(unload, headers=admin)[0] == 200
        assert http_get(ready)[0] == 400
