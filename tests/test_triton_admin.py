"""Triton's admin APIs (model repository, shared memory, trace, logging) answer only with the generated key."""

from __future__ import annotations

import base64
import copy
import json

from aifleet.api import AIService
from aifleet.api.children import TRITON_ADMIN_HEADER
from aifleet.renderer import render, render_all
from aifleet.renderer.component import RenderInputs
from aifleet.renderer.inference import ADMIN_APIS, ADMIN_KEY, ADMIN_KEY_ENV, Triton

KEY = "k3y-only-in-the-secret_0123456789"


def _ais(doc: dict) -> AIService:
    doc = copy.deepcopy(doc)
    doc["metadata"]["uid"] = "0b7c4c4e-1111-2222-3333-444455556666"
    return AIService.model_validate(doc)


def _container(manifests: list[dict]) -> dict:
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_admin_apis_need_the_key_from_the_secret_on_both_protocols(minimal):
    container = _container(render(_ais(minimal)))
    restriction = f"{','.join(ADMIN_APIS)}:{TRITON_ADMIN_HEADER}=$({ADMIN_KEY_ENV})"
    assert f"--http-restricted-api={restriction}" in container["args"]
    assert f"--grpc-restricted-protocol={restriction}" in container["args"]
    assert "model-repository" in ADMIN_APIS and "inference" not in ADMIN_APIS and "health" not in ADMIN_APIS
    (env,) = [e for e in container["env"] if e["name"] == ADMIN_KEY_ENV]
    assert env["valueFrom"] == {"secretKeyRef": {"name": "sentiment-triton-admin", "key": ADMIN_KEY}}


def test_models_loaded_explicitly_are_still_restricted(minimal):
    args = _container(render(_ais(minimal)))["args"]
    assert "--model-control-mode=explicit" in args
    assert any(a.startswith("--http-restricted-api=model-repository") for a in args)


def test_the_key_is_generated_once_and_never_in_a_manifest(minimal):
    ais = _ais(minimal)
    first = Triton().render(ais, RenderInputs(secrets={}, new_password=lambda: KEY))
    (secret,) = first.create_once
    assert secret["metadata"]["name"] == "sentiment-triton-admin"
    assert base64.b64decode(secret["data"][ADMIN_KEY]).decode() == KEY
    assert KEY not in json.dumps(first.manifests)
    assert first.manifests and first.problem is None and first.pending is None  # pods wait for the Secret, not us
    again = Triton().render(ais, RenderInputs(secrets={"sentiment-triton-admin": secret}))
    assert again.create_once == [] and again.manifests == first.manifests


def test_reconciler_creates_the_admin_secret_with_the_others(minimal):
    rendered = render_all(_ais(minimal), secrets={})
    assert "sentiment-triton-admin" in [s["metadata"]["name"] for s in rendered.create_once]
    assert all(s["metadata"]["ownerReferences"][0]["kind"] == "AIService" for s in rendered.create_once)
