"""Names: with the longest name an AIService may have, every child, every name Kubernetes generates from a child
(ReplicaSets, pods, revision labels) and every label fits its limit, and the default traffic query still finds
the Triton pods however Kubernetes cut their names.
"""

from __future__ import annotations

import random
import re

import kubernetes_validate
import pytest
from pydantic import ValidationError

from aifleet.api import AIService
from aifleet.api.autoscaling import MetricsSpec
from aifleet.api.children import (
    GENERATED_NAME_BASE,
    HASH_ALPHABET,
    MAX_HASH_LENGTH,
    MAX_NAME_LENGTH,
    canary_pod_regex,
    child_names,
    label_value,
    stable_pod_regex,
)
from aifleet.autoscaler.prometheus import BATCH_RPS_QUERY
from aifleet.renderer import render
from conftest import large_example

LONGEST = "chat-" * 9 + "z"  # 46 characters, dashes included
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
RANDOM = random.Random(13)


def _large(name: str, engine: str = "operator") -> AIService:
    doc = large_example()
    doc["metadata"]["name"] = name
    doc["spec"]["autoscaling"]["engine"] = engine
    for field in ("lookahead", "onMissingMetrics"):
        doc["spec"]["autoscaling"].pop(field, None)
    doc["spec"]["autoscaling"].get("metrics", {}).pop("queue", None)
    return AIService.model_validate(doc)


def _hash(length: int) -> str:
    return "".join(RANDOM.choice(HASH_ALPHABET) for _ in range(length))


def _generated(base: str) -> str:
    """A name the API server generates from `generateName: base`."""
    return base[:GENERATED_NAME_BASE] + _hash(5)


def _deployment_pod(deployment: str, hash_length: int = MAX_HASH_LENGTH) -> str:
    """A pod of the Deployment's ReplicaSet: `<deployment>-<pod-template-hash>`, then `-` for generateName."""
    return _generated(f"{deployment}-{_hash(hash_length)}-")


def _labels(manifest: dict) -> list[dict]:
    found = [manifest["metadata"].get("labels") or {}]
    spec = manifest.get("spec") or {}
    found.append((spec.get("selector") or {}).get("matchLabels") or {})
    found.append(((spec.get("template") or {}).get("metadata") or {}).get("labels") or {})
    return found


def test_the_longest_name_is_valid_and_one_more_is_refused():
    assert len(LONGEST) == MAX_NAME_LENGTH
    _large(LONGEST)
    with pytest.raises(ValidationError):
        _large(LONGEST + "x")


@pytest.mark.parametrize("name", ["chat.v2", "1chat", "Chat", "chät", "chat-", "-chat"])
def test_service_names_must_be_dns_1035_labels(name):
    with pytest.raises(ValidationError):
        _large(name)


@pytest.mark.parametrize("engine", ["operator", "hpa"])
def test_every_child_name_and_label_fits_with_the_longest_name(engine):
    manifests = render(_large(LONGEST, engine))
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "StatefulSet", "Service", "PodDisruptionBudget"} <= kinds
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.35.0", strict=True)
        name = manifest["metadata"]["name"]
        if manifest["kind"] == "Service":
            assert len(name) <= 63 and DNS_1035.fullmatch(name), name
        else:
            assert len(name) <= 253 and DNS_SUBDOMAIN.fullmatch(name), name
        for labels in _labels(manifest):
            for key, value in labels.items():
                assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), f"{name}: {key}={value}"
        if manifest["kind"] == "Deployment":
            replica_set = f"{name}-{_hash(MAX_HASH_LENGTH)}"
            assert len(replica_set) <= 253
            assert len(_deployment_pod(name)) <= 63
        if manifest["kind"] == "StatefulSet":
            # The controller labels each pod `controller-revision-hash: <statefulset>-<hash>`.
            assert len(f"{name}-{_hash(MAX_HASH_LENGTH)}") <= 63, name
            assert len(f"{name}-{manifest['spec']['replicas'] - 1}") <= 63


def _pod_pattern(name: str) -> re.Pattern[str]:
    query = MetricsSpec().rendered_query("prod", name)
    return re.compile(re.search(r'pod=~"([^"]+)"', query).group(1))  # PromQL anchors its regular expressions


@pytest.mark.parametrize("length", [1, 5, 39, 40, 41, 45, MAX_NAME_LENGTH])
@pytest.mark.parametrize("hash_length", [1, 4, 9, MAX_HASH_LENGTH])
def test_the_default_query_finds_the_triton_pods_even_when_kubernetes_cut_their_names(length, hash_length):
    name = ("c" + "x-y" * 20)[:length].rstrip("-").ljust(length, "z")
    deployment = next(m for m in render(_large(name)) if m["kind"] == "Deployment" and "triton" in m["metadata"]["name"])
    pattern = _pod_pattern(name)
    batch = re.compile(re.search(r'"pod", "([^"]+)"', BATCH_RPS_QUERY).group(1))
    for _ in range(20):
        pod = _deployment_pod(deployment["metadata"]["name"], hash_length)
        assert len(pod) <= 63
        assert pattern.fullmatch(pod), (pod, pattern.pattern)
        match = batch.fullmatch(pod)
        assert match and match.group(1) == name, pod  # the batch query recovers the service from the pod


@pytest.mark.parametrize("length", [3, 30, 38])
def test_the_default_query_does_not_count_the_pods_of_a_service_whose_name_extends_this_one(length):
    name = "s" * length
    pattern = _pod_pattern(name)
    for other in (f"{name}-triton", f"{name}-triton-x", f"{name}-triton-b2", f"{name}-x"):
        if len(other) > MAX_NAME_LENGTH:
            continue
        for component in ("triton", "pgbouncer"):
            for hash_length in (1, 5, MAX_HASH_LENGTH):
                pod = _deployment_pod(f"{other}-{component}", hash_length)
                assert not pattern.fullmatch(pod), (pod, pattern.pattern)
    assert not pattern.fullmatch(_deployment_pod(f"{name}-pgbouncer"))


@pytest.mark.parametrize("length", [1, 20, 33, 34, 39, 40, 45, MAX_NAME_LENGTH])
@pytest.mark.parametrize("hash_length", [1, 4, MAX_HASH_LENGTH])
def test_each_version_has_its_own_pod_pattern_and_the_fleet_query_counts_both(length, hash_length):
    name = ("c" + "x-y" * 20)[:length].rstrip("-").ljust(length, "z")
    names = child_names(name)
    stable, canary = re.compile(stable_pod_regex(name)), re.compile(canary_pod_regex(name))
    fleet = _pod_pattern(name)
    batch = re.compile(re.search(r'"pod", "([^"]+)"', BATCH_RPS_QUERY).group(1))
    for _ in range(20):
        stable_pod, canary_pod = _deployment_pod(names.triton, hash_length), _deployment_pod(names.triton_canary, hash_length)
        assert stable.fullmatch(stable_pod) and not canary.fullmatch(stable_pod), stable_pod
        assert canary.fullmatch(canary_pod) and not stable.fullmatch(canary_pod), canary_pod
        for pod in (stable_pod, canary_pod):
            assert fleet.fullmatch(pod), pod
            match = batch.fullmatch(pod)
            assert match and match.group(1) == name, pod


def test_a_version_label_is_a_valid_label_value_or_absent():
    assert label_value("24.08-py3") == "24.08-py3"
    assert label_value("v" * 62 + "-x") == "v" * 62  # cut at 63, then the trailing dash dropped
    assert label_value("1.0+build") is None


def test_the_canary_deployment_is_valid_and_fits_with_the_longest_name():
    doc = large_example()
    doc["metadata"]["name"] = LONGEST
    doc["spec"]["autoscaling"]["engine"] = "operator"
    doc["spec"]["inference"]["canary"] = {"version": "24.09-py3", "trafficPercent": 25}
    manifests = render(AIService.model_validate(doc))
    canary = next(m for m in manifests if m["metadata"]["name"] == child_names(LONGEST).triton_canary)
    kubernetes_validate.validate(canary, "1.35.0", strict=True)
    assert len(canary["metadata"]["name"]) <= 63  # its ReplicaSets and pods derive their names from it
    for labels in _labels(canary):
        assert all(len(value) <= 63 for value in labels.values()), labels
