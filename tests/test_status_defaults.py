"""A status the operator writes must read back unchanged: if the CRD defaulted a field the operator leaves out,
every comparison would differ and every pass would send a status patch (a quiet resync must write nothing)."""

from __future__ import annotations

import copy

import yaml

from aifleet.api import AIService
from aifleet.api.crd import crd
from aifleet.autoscaler.policy import Observation, decide
from aifleet.autoscaler.sample import Sample
from aifleet.autoscaler.state import AutoscalerState
from aifleet.reconciler.sync import build_status, component_states
from aifleet.renderer import render_all
from conftest import EXAMPLES


def apply_defaults(value, schema):
    """What the API server does with a structural schema's defaults, for objects present in the value."""
    if isinstance(value, dict) and schema.get("type") == "object":
        out = dict(value)
        for key, sub in (schema.get("properties") or {}).items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = apply_defaults(out[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in set(out) - set(schema.get("properties") or {}):
                out[key] = apply_defaults(out[key], extra)
        return out
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


def _status_schema():
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]


def test_written_status_survives_defaulting_unchanged():
    doc = yaml.safe_load((EXAMPLES / "minimal.yaml").read_text())
    doc["metadata"].update(uid="u", generation=1)
    ais = AIService.model_validate(doc)
    deployment = {"metadata": {"generation": 1}, "spec": {"replicas": 2},
                  "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 2}}

    def lookup(kind, ns, name):
        return deployment if kind == "Deployment" else None

    for sample in (Sample.of(42.0, 1000.0), Sample.failure("empty"), Sample.failure("failed")):
        decision = decide(Observation(rps=sample, current_replicas=2, ready_replicas=2), AutoscalerState(), ais.spec.autoscaling, 1000.0)
        states = component_states(ais, lookup, render_all(ais), None)
        status = build_status(ais, lookup, {}, "2026-01-01T00:00:00Z", states, decision)
        assert apply_defaults(status, _status_schema()) == status
