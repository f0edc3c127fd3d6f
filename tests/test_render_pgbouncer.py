"""PgBouncer rendering: the ini and userlist, the password only ever in Secrets, restricted pods, clear errors."""

from __future__ import annotations

import base64
import json

import kubernetes_validate
import pytest
from pydantic import ValidationError

from aifleet.api import AIService
from aifleet.api.errors import describe_validation_error
from aifleet.renderer.pgbouncer import (
    pgbouncer_ini,
    pgbouncer_password,
    pgbouncer_secret_problem,
    render_pgbouncer,
    userlist_txt,
)

K8S_SCHEMA_VERSION = "1.35.0"
PASSWORD = 's3cr3t "quoted" p@ss/word'
PGB = {
    "databaseHost": "db.data.svc",
    "databasePort": 5433,
    "databaseName": "orders",
    "user": "app",
    "passwordSecretRef": {"name": "db-creds", "key": "password"},
}


def _ais(**pgbouncer) -> AIService:
    spec = {"inference": {"modelRepository": {"uri": "s3://m/shop"}}}
    if pgbouncer is not None:
        spec["pgbouncer"] = {**PGB, **pgbouncer}
    return AIService.model_validate({"metadata": {"name": "shop", "namespace": "prod"}, "spec": spec})


def _by_name(manifests):
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def _decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_renders_the_six_children():
    manifests = render_pgbouncer(_ais(), PASSWORD)
    assert sorted(_by_name(manifests)) == [
        ("Deployment", "shop-pgbouncer"),
        ("NetworkPolicy", "shop-pgbouncer"),
        ("PodDisruptionBudget", "shop-pgbouncer"),
        ("Secret", "shop-pgbouncer-config"),
        ("Secret", "shop-pgbouncer-connection"),
        ("Service", "shop-pgbouncer"),
    ]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_SCHEMA_VERSION, strict=True)
        assert manifest["metadata"]["namespace"] == "prod"
        assert manifest["metadata"]["labels"]["app.kubernetes.io/component"] == "pgbouncer"


def test_nothing_when_off_disabled_or_password_unknown():
    no_pgb = AIService.model_validate(
        {"metadata": {"name": "shop"}, "spec": {"inference": {"modelRepository": {"uri": "s3://m/shop"}}}}
    )
    assert render_pgbouncer(no_pgb, PASSWORD) == []
    assert render_pgbouncer(_ais(enabled=False), PASSWORD) == []
    assert render_pgbouncer(_ais(), None) == []


def test_ini_carries_the_spec():
    ini = pgbouncer_ini(
        _ais(poolMode="session", defaultPoolSize=30, reservePoolSize=7, reservePoolTimeoutSeconds=4,
             maxClientConn=5000, maxDbConnections=50, serverIdleTimeoutSeconds=300, queryWaitTimeoutSeconds=60,
             authType="md5").spec.pgbouncer
    )
    lines = ini.splitlines()
    for wanted in (
        "[databases]",
        "orders = host=db.data.svc port=5433 dbname=orders",
        "[pgbouncer]",
        "listen_addr = 0.0.0.0",
        "listen_port = 6432",
        "auth_type = md5",
        "auth_file = /etc/pgbouncer/userlist.txt",
        "pool_mode = session",
        "max_client_conn = 5000",
        "default_pool_size = 30",
        "reserve_pool_size = 7",
        "reserve_pool_timeout = 4",
        "max_db_connections = 50",
        "server_idle_timeout = 300",
        "query_wait_timeout = 60",
        "ignore_startup_parameters = extra_float_digits",
        "stats_users = app",
        "admin_users =",
        "logfile =",
    ):
        assert wanted in lines, wanted
    assert lines.index("[databases]") < lines.index("[pgbouncer]")
    assert PASSWORD not in ini


def test_default_auth_is_scram_and_admin_console_is_opt_in():
    assert "auth_type = scram-sha-256" in pgbouncer_ini(_ais().spec.pgbouncer).splitlines()
    assert "admin_users = app" in pgbouncer_ini(_ais(adminConsole=True).spec.pgbouncer).splitlines()


def test_userlist_escapes_quotes():
    assert userlist_txt("app", 'a"b') == '"app" "a""b"\n'


def test_password_lives_only_in_secrets():
    manifests = render_pgbouncer(_ais(), PASSWORD)
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    assert not any(m["kind"] == "ConfigMap" for m in manifests)
    for manifest in manifests:
        text = json.dumps(manifest)
        if manifest["kind"] == "Secret":
            continue
        assert PASSWORD not in text and encoded not in text, manifest["kind"]
    secrets = _by_name(manifests)
    assert _decoded(secrets[("Secret", "shop-pgbouncer-config")])["userlist.txt"] == userlist_txt("app", PASSWORD)


def test_connection_secret_tells_the_pooled_address():
    conn = _decoded(_by_name(render_pgbouncer(_ais(), PASSWORD))[("Secret", "shop-pgbouncer-connection")])
    assert conn == {
        "host": "shop-pgbouncer.prod.svc",
        "port": "5432",
        "dbname": "orders",
        "user": "app",
        "password": PASSWORD,
        "uri": "postgresql://app:s3cr3t%20%22quoted%22%20p%40ss%2Fword@shop-pgbouncer.prod.svc:5432/orders",
    }


def test_service_maps_5432_to_the_pool_port():
    objs = _by_name(render_pgbouncer(_ais(), PASSWORD))
    service, deployment = objs[("Service", "shop-pgbouncer")], objs[("Deployment", "shop-pgbouncer")]
    assert service["spec"]["ports"] == [{"name": "postgres", "port": 5432, "targetPort": "pgbouncer", "protocol": "TCP"}]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0] == {"name": "pgbouncer", "containerPort": 6432, "protocol": "TCP"}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_deployment_is_restricted_and_mounts_the_secret():
    objs = _by_name(render_pgbouncer(_ais(replicas=3), PASSWORD))
    deployment = objs[("Deployment", "shop-pgbouncer")]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["tcpSocket"] == {"port": "pgbouncer"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "pgbouncer"}
    assert container["command"] == ["pgbouncer", "/etc/pgbouncer/pgbouncer.ini"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["secret"]["secretName"] == "shop-pgbouncer-config"
    assert "emptyDir" in volumes["run"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/pgbouncer"]["readOnly"] is True and "/tmp" in mounts
    assert container["resources"]["limits"]["memory"] == "512Mi"
    assert objs[("PodDisruptionBudget", "shop-pgbouncer")]["spec"]["maxUnavailable"] == 1


def _checksum(ais, password):
    deployment = _by_name(render_pgbouncer(ais, password))[("Deployment", "shop-pgbouncer")]
    return deployment["spec"]["template"]["metadata"]["annotations"]["aifleet.dev/config-checksum"]


def test_checksum_rolls_pods_on_config_or_password_change_only():
    base = _checksum(_ais(), PASSWORD)
    assert base == _checksum(_ais(), PASSWORD)
    assert base != _checksum(_ais(), PASSWORD + "x")
    assert base != _checksum(_ais(defaultPoolSize=21), PASSWORD)
    assert base == _checksum(_ais(replicas=5), PASSWORD)


def test_render_is_deterministic():
    assert json.dumps(render_pgbouncer(_ais(), PASSWORD)) == json.dumps(render_pgbouncer(_ais(), PASSWORD))


def _secret(**data: str) -> dict:
    return {"kind": "Secret", "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


@pytest.mark.parametrize(
    "secret,problem",
    [
        (None, 'spec.pgbouncer.passwordSecretRef: Secret "db-creds" not found'),
        (_secret(pw="x"), 'spec.pgbouncer.passwordSecretRef: Secret "db-creds" has no key "password"'),
        (_secret(password=""), 'spec.pgbouncer.passwordSecretRef: Secret "db-creds" key "password" is empty'),
        (_secret(password="a\nb"), 'spec.pgbouncer.passwordSecretRef: Secret "db-creds" key "password" contains a line break or NUL'),
        ({"kind": "Secret", "data": {"password": "!!notbase64"}},
         'spec.pgbouncer.passwordSecretRef: Secret "db-creds" key "password" is not UTF-8 text'),
    ],
)
def test_secret_problems_name_the_field_and_never_the_value(secret, problem):
    assert pgbouncer_secret_problem(_ais(), secret) == problem
    assert pgbouncer_password(_ais(), secret) is None


def test_password_is_read_from_the_secret():
    secret = _secret(password=PASSWORD)
    assert pgbouncer_secret_problem(_ais(), secret) is None
    assert pgbouncer_password(_ais(), secret) == PASSWORD


@pytest.mark.parametrize(
    "edit,field",
    [
        ({"poolMode": "batch"}, "spec.pgbouncer.poolMode"),
        ({"authType": "trust"}, "spec.pgbouncer.authType"),
        ({"defaultPoolSize": 0}, "spec.pgbouncer.defaultPoolSize"),
        ({"maxClientConn": 0}, "spec.pgbouncer.maxClientConn"),
        ({"databaseHost": "db\nadmin_users = x"}, "spec.pgbouncer.databaseHost"),
        ({"databaseName": "orders dbname=other"}, "spec.pgbouncer.databaseName"),
        ({"maxDbConnections": 10, "defaultPoolSize": 8, "reservePoolSize": 5},
         "spec.pgbouncer.defaultPoolSize + reservePoolSize must be <= maxDbConnections"),
    ],
)
def test_bad_input_names_the_field(edit, field):
    with pytest.raises(ValidationError) as info:
        _ais(**edit)
    assert field in describe_validation_error(info.value)


@pytest.mark.parametrize("missing", ["databaseHost", "databaseName", "user", "passwordSecretRef"])
def test_missing_required_field_is_named(missing):
    spec = {k: v for k, v in PGB.items() if k != missing}
    with pytest.raises(ValidationError) as info:
        AIService.model_validate(
            {"metadata": {"name": "shop"}, "spec": {"inference": {"modelRepository": {"uri": "s3://m"}}, "pgbouncer": spec}}
        )
    assert f"spec.pgbouncer.{missing}: Field required" in describe_validation_error(info.value)


def test_the_component_wiring():
    from aifleet.renderer import secret_names
    from aifleet.renderer.component import Observed, RenderInputs
    from aifleet.renderer.pgbouncer import PgBouncer

    ais = _ais()
    assert secret_names(ais) == ["shop-triton-admin", "db-creds"]
    missing = PgBouncer().render(ais, RenderInputs(secrets={}))
    assert missing.manifests == [] and missing.problem == 'spec.pgbouncer.passwordSecretRef: Secret "db-creds" not found'
    ok = PgBouncer().render(ais, RenderInputs(secrets={"db-creds": _secret(password=PASSWORD)}))
    assert ok.manifests == render_pgbouncer(ais, PASSWORD) and ok.problem is None
    endpoints = PgBouncer().endpoints(ais, Observed(lambda kind, ns, name: None))
    assert endpoints == {"pooler": "shop-pgbouncer.prod.svc:5432", "poolerSecret": "shop-pgbouncer-connection"}
