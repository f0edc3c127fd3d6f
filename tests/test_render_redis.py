"""Redis rendering: redis.conf from the spec, the password only in Secrets, StatefulSet with or without a volume."""

from __future__ import annotations

import base64
import json

import kubernetes_validate
import pytest
from pydantic import ValidationError

from aifleet.api import AIService
from aifleet.api.data import parse_maxmemory
from aifleet.api.errors import describe_validation_error
from aifleet.renderer.redis import (
    generated_redis_secret,
    new_password,
    redis_conf,
    redis_password,
    redis_password_ref,
    redis_secret_problem,
    render_redis,
)

K8S_SCHEMA_VERSION = "1.35.0"
PASSWORD = "r3dis-pass_word"


def _ais(redis: dict | None = None) -> AIService:
    spec = {"inference": {"modelRepository": {"uri": "s3://m/shop"}}, "redis": redis if redis is not None else {}}
    return AIService.model_validate({"metadata": {"name": "shop", "namespace": "prod"}, "spec": spec})


def _by_kind(manifests):
    return {m["kind"]: m for m in manifests}


def _conf(manifests) -> str:
    secret = next(m for m in manifests if m["metadata"]["name"] == "shop-redis-config")
    return base64.b64decode(secret["data"]["redis.conf"]).decode()


def test_renders_config_secret_service_statefulset_and_network_policy():
    manifests = render_redis(_ais(), PASSWORD)
    assert [(m["kind"], m["metadata"]["name"]) for m in manifests] == [
        ("Secret", "shop-redis-config"),
        ("Service", "shop-redis"),
        ("StatefulSet", "shop-redis"),
        ("NetworkPolicy", "shop-redis"),
    ]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_SCHEMA_VERSION, strict=True)
    service = _by_kind(manifests)["Service"]
    assert service["spec"]["ports"] == [{"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}]


def test_nothing_when_off_or_password_unknown():
    assert render_redis(_ais({"enabled": False}), PASSWORD) == []
    assert render_redis(_ais(), None) == []
    bare = AIService.model_validate({"metadata": {"name": "shop"}, "spec": {"inference": {"modelRepository": {"uri": "s3://m"}}}})
    assert render_redis(bare, PASSWORD) == []


def test_conf_carries_the_spec():
    conf = _conf(render_redis(_ais({"maxMemory": "2gb", "evictionPolicy": "volatile-ttl", "resources": {"limits": {"memory": "3Gi"}}}), PASSWORD)).splitlines()
    for wanted in (
        "bind 0.0.0.0 -::*",
        "port 6379",
        "protected-mode yes",
        f'requirepass "{PASSWORD}"',
        "maxmemory 2gb",
        "maxmemory-policy volatile-ttl",
        "appendonly no",
        'save ""',
        "dir /data",
    ):
        assert wanted in conf, wanted


def test_persistence_turns_on_aof_and_a_retained_volume():
    manifests = render_redis(_ais({"persistence": {"enabled": True, "size": "5Gi", "storageClassName": "ssd"}}), PASSWORD)
    conf = _conf(manifests).splitlines()
    assert "appendonly yes" in conf and "save 3600 1 300 100 60 10000" in conf
    sts = _by_kind(manifests)["StatefulSet"]["spec"]
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    (claim,) = sts["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "ssd"
    assert "data" not in {v["name"] for v in sts["template"]["spec"]["volumes"]}


def test_without_persistence_data_is_an_emptydir():
    sts = _by_kind(render_redis(_ais(), PASSWORD))["StatefulSet"]["spec"]
    assert "volumeClaimTemplates" not in sts
    volumes = {v["name"]: v for v in sts["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}


def test_statefulset_is_single_restricted_and_probes_with_auth_from_env():
    sts = _by_kind(render_redis(_ais(), PASSWORD))["StatefulSet"]
    assert sts["spec"]["replicas"] == 1
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["env"] == [
        {"name": "REDISCLI_AUTH", "valueFrom": {"secretKeyRef": {"name": "shop-redis-auth", "key": "password"}}}
    ]
    probe = " ".join(container["readinessProbe"]["exec"]["command"])
    assert "redis-cli" in probe and "ping" in probe and PASSWORD not in probe
    assert container["command"] == ["redis-server", "/etc/redis/redis.conf"]


def test_user_secret_ref_is_used_for_the_probe():
    ais = _ais({"passwordSecretRef": {"name": "cache-creds", "key": "pw"}})
    env = _by_kind(render_redis(ais, PASSWORD))["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0]["valueFrom"]["secretKeyRef"] == {"name": "cache-creds", "key": "pw"}
    assert redis_password_ref(ais).name == "cache-creds"


def test_password_lives_only_in_secrets():
    manifests = render_redis(_ais(), PASSWORD)
    assert not any(m["kind"] == "ConfigMap" for m in manifests)
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    for manifest in manifests:
        if manifest["kind"] != "Secret":
            text = json.dumps(manifest)
            assert PASSWORD not in text and encoded not in text


def test_checksum_follows_config_and_password():
    def checksum(ais, pw):
        sts = _by_kind(render_redis(ais, pw))["StatefulSet"]
        return sts["spec"]["template"]["metadata"]["annotations"]["aifleet.dev/config-checksum"]

    base = checksum(_ais(), PASSWORD)
    assert base == checksum(_ais(), PASSWORD)
    assert base != checksum(_ais(), "other")
    assert base != checksum(_ais({"maxMemory": "128mb"}), PASSWORD)


def test_render_is_deterministic():
    assert json.dumps(render_redis(_ais(), PASSWORD)) == json.dumps(render_redis(_ais(), PASSWORD))


def test_conf_quotes_any_password():
    conf = redis_conf(_ais().spec.redis, 'a "b" \\c\n')
    assert 'requirepass "a \\"b\\" \\\\c\\x0a"' in conf.splitlines()


def test_generated_secret_and_password():
    pw = new_password()
    assert len(pw) >= 40 and pw != new_password()
    assert set(pw) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    secret = generated_redis_secret(_ais(), pw)
    kubernetes_validate.validate(secret, K8S_SCHEMA_VERSION, strict=True)
    assert secret["metadata"]["name"] == "shop-redis-auth"
    assert base64.b64decode(secret["data"]["password"]).decode() == pw
    # The generated Secret reads back through the same path as a user's reference.
    assert redis_secret_problem(_ais(), secret) is None
    assert redis_password(_ais(), secret) == pw


def test_secret_problems_name_the_field():
    ais = _ais({"passwordSecretRef": {"name": "cache-creds", "key": "pw"}})
    assert redis_secret_problem(ais, None) == 'spec.redis.passwordSecretRef: Secret "cache-creds" not found'
    assert redis_secret_problem(ais, {"data": {}}) == 'spec.redis.passwordSecretRef: Secret "cache-creds" has no key "pw"'
    assert redis_secret_problem(_ais(), None) == 'spec.redis (generated password): Secret "shop-redis-auth" not found'


@pytest.mark.parametrize(
    "value,size",
    [("100", 100), ("1k", 1000), ("1kb", 1024), ("256mb", 256 * 2**20), ("2GB", 2 * 2**30), ("3m", 3_000_000)],
)
def test_parse_maxmemory(value, size):
    assert parse_maxmemory(value) == size


@pytest.mark.parametrize("value", ["", "lots", "1tb", "1.5gb", "-1mb"])
def test_parse_maxmemory_refuses(value):
    with pytest.raises(ValueError):
        parse_maxmemory(value)


@pytest.mark.parametrize(
    "redis,field",
    [
        ({"maxMemory": "a lot"}, "spec.redis.maxMemory"),
        ({"maxMemory": "0"}, "spec.redis.maxMemory"),
        ({"maxMemory": "1tb"}, "spec.redis.maxMemory"),
        ({"evictionPolicy": "lru"}, "spec.redis.evictionPolicy"),
        ({"persistence": {"size": "big"}}, "spec.redis.persistence.size"),
        ({"passwordSecretRef": {"name": "x"}}, "spec.redis.passwordSecretRef.key"),
        ({"maxMemory": "1gb", "resources": {"limits": {"memory": "512Mi"}}},
         "spec.redis.maxMemory (1gb) must be below spec.redis.resources.limits.memory (512Mi)"),
    ],
)
def test_bad_input_names_the_field(redis, field):
    with pytest.raises(ValidationError) as info:
        _ais(redis)
    assert field in describe_validation_error(info.value)


def test_maxmemory_below_the_limit_is_fine():
    assert _ais({"maxMemory": "400mb", "resources": {"limits": {"memory": "512Mi"}}}).spec.redis.max_memory == "400mb"


def test_the_component_creates_the_generated_secret_once_then_renders():
    from aifleet.renderer import secret_names
    from aifleet.renderer.component import Observed, RenderInputs
    from aifleet.renderer.redis import Redis

    ais = _ais()
    assert secret_names(ais) == ["shop-triton-admin", "shop-redis-auth"]
    first = Redis().render(ais, RenderInputs(secrets={}, new_password=lambda: PASSWORD))
    assert first.manifests == [] and first.pending == "creating the password Secret shop-redis-auth"
    (created,) = first.create_once
    second = Redis().render(ais, RenderInputs(secrets={"shop-redis-auth": created}))
    assert second.create_once == [] and second.problem is None and second.pending is None
    assert second.manifests == render_redis(ais, PASSWORD)
    endpoints = Redis().endpoints(ais, Observed(lambda kind, ns, name: None))
    assert endpoints == {"cache": "shop-redis.prod.svc:6379", "cacheSecret": "shop-redis-auth"}


def test_the_component_reports_a_missing_user_secret_and_renders_nothing_for_it():
    from aifleet.renderer import render_all

    ais = _ais({"passwordSecretRef": {"name": "cache-creds", "key": "pw"}})
    out = render_all(ais, secrets={"cache-creds": None})
    assert [m for m in out.manifests if m["metadata"]["name"].startswith("shop-redis")] == [] and [s["metadata"]["name"] for s in out.create_once] == ["shop-triton-admin"]
    assert out.problems == {"redis": 'spec.redis.passwordSecretRef: Secret "cache-creds" not found'}
