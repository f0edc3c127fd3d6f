"""PgBouncer in front of an existing PostgreSQL: config Secret, Deployment, Service, PDB, connection Secret.

Pure. The reconciler reads `spec.pgbouncer.passwordSecretRef` and passes the password in; when it cannot
(`pgbouncer_secret_problem` says why), it renders nothing for PgBouncer and reports the problem.

Why userlist.txt holds the plain password (in a Secret, never a ConfigMap): PgBouncer must log in to a
PostgreSQL 15 that stores a SCRAM-SHA-256 verifier. With a plain password PgBouncer can answer that server
challenge itself and still demand SCRAM (or md5) from its clients. An md5 hash cannot answer a SCRAM
challenge at all, and a SCRAM verifier only works when it is byte for byte the one in the server's
`pg_authid` (same salt and iteration count) and only once a client has logged in with SCRAM; a verifier we
compute ourselves has a fresh salt, so the server refuses it. e2e/test_dataplane.py shows both sides.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from ..api import AIService
from ..api.children import (
    PGBOUNCER,
    PGBOUNCER_LISTEN_PORT,
    PGBOUNCER_SERVICE_PORT,
    common_labels,
    names,
    selector_labels,
    service_host,
)
from ..api.data import PgBouncerSpec
from ..api.dbcheck import CheckTarget, DatabaseCheck
from ..api.secret_data import decode_key
from .common import from_template
from .component import ComponentState, Lookup, Observed, Rendering, RenderInputs, Secrets, WorkloadComponent
from .network import network_policy
from .secretdata import CHECKSUM_ANNOTATION, config_checksum, encode_data, secret_ref_problem
from .workload import image_tag, resources

CONFIG_DIR = "/etc/pgbouncer"
SOCKET_DIR = "/tmp"  # an emptyDir: the root filesystem is read-only
PASSWORD_FIELD = "spec.pgbouncer.passwordSecretRef"
TEMPLATES = (
    "pgbouncer-config-secret.yaml.j2",
    "pgbouncer-connection-secret.yaml.j2",
    "pgbouncer-service.yaml.j2",
    "pgbouncer-deployment.yaml.j2",
    "pgbouncer-pdb.yaml.j2",
)


def pooler_host(ais: AIService) -> str:
    return service_host(names(ais).pgbouncer, ais.metadata.namespace)


def wanted(ais: AIService) -> PgBouncerSpec | None:
    spec = ais.spec.pgbouncer
    return spec if spec is not None and spec.enabled else None


def pgbouncer_secret_problem(ais: AIService, secret: dict[str, Any] | None) -> str | None:
    """Why the password Secret cannot be used, e.g. `spec.pgbouncer.passwordSecretRef: Secret "db" has no key "pw"`.

    `secret` is the Secret named by `passwordSecretRef` as the API returns it, or None when it does not exist.
    None when PgBouncer is off or the password is usable.
    """
    spec = wanted(ais)
    if spec is None:
        return None
    return secret_ref_problem(PASSWORD_FIELD, spec.password_secret_ref, secret)


def pgbouncer_password(ais: AIService, secret: dict[str, Any] | None) -> str | None:
    """The password to pass to `render_pgbouncer`, or None when `pgbouncer_secret_problem` has a complaint."""
    spec = wanted(ais)
    if spec is None or pgbouncer_secret_problem(ais, secret) is not None:
        return None
    return decode_key(secret, spec.password_secret_ref.key)


def pgbouncer_ini(spec: PgBouncerSpec) -> str:
    """The `pgbouncer.ini` text the pod runs."""
    db = spec.database_name
    admins = spec.user if spec.admin_console else ""
    lines = [
        "; Rendered by aifleet from the AIService spec; edits are overwritten.",
        "[databases]",
        f"{db} = host={spec.database_host} port={spec.database_port} dbname={db}",
        "",
        "[pgbouncer]",
        "listen_addr = 0.0.0.0",
        f"listen_port = {PGBOUNCER_LISTEN_PORT}",
        f"unix_socket_dir = {SOCKET_DIR}",
        f"auth_type = {spec.auth_type}",
        f"auth_file = {CONFIG_DIR}/userlist.txt",
        f"pool_mode = {spec.pool_mode}",
        f"max_client_conn = {spec.max_client_conn}",
        f"default_pool_size = {spec.default_pool_size}",
        f"reserve_pool_size = {spec.reserve_pool_size}",
        f"reserve_pool_timeout = {spec.reserve_pool_timeout_seconds}",
        f"max_db_connections = {spec.max_db_connections}",
        f"server_idle_timeout = {spec.server_idle_timeout_seconds}",
        f"query_wait_timeout = {spec.query_wait_timeout_seconds}",
        # JDBC and some drivers send it; PgBouncer would refuse the connection otherwise.
        "ignore_startup_parameters = extra_float_digits",
        # The pool's own role may run SHOW POOLS/STATS on the `pgbouncer` console database.
        f"stats_users = {spec.user}",
        f"admin_users = {admins}".rstrip(),
        # No logfile and no pidfile: the log goes to the container's stderr, the root filesystem stays read-only.
        "logfile =",
        "pidfile =",
        "syslog = 0",
        "log_pooler_errors = 1",
        "",
    ]
    return "\n".join(lines)


def userlist_txt(user: str, password: str) -> str:
    """`"user" "password"`; PgBouncer escapes a double quote by doubling it."""
    return f'"{_quote(user)}" "{_quote(password)}"\n'


def _quote(value: str) -> str:
    return value.replace('"', '""')


def connection_values(ais: AIService, password: str) -> dict[str, str]:
    """What an API pod needs to reach the database through the pool (the connection Secret's keys)."""
    spec = ais.spec.pgbouncer
    assert spec is not None
    host = pooler_host(ais)
    uri = (
        f"postgresql://{quote(spec.user, safe='')}:{quote(password, safe='')}@{host}:{PGBOUNCER_SERVICE_PORT}"
        f"/{quote(spec.database_name, safe='')}"
    )
    return {
        "host": host,
        "port": str(PGBOUNCER_SERVICE_PORT),
        "dbname": spec.database_name,
        "user": spec.user,
        "password": password,
        "uri": uri,
    }


def render_pgbouncer(ais: AIService, password: str | None) -> list[dict[str, Any]]:
    """PgBouncer's children, or [] when it is off or the password is unknown (the caller reports why)."""
    spec = wanted(ais)
    if spec is None or password is None:
        return []
    children = names(ais)
    ini = pgbouncer_ini(spec)
    userlist = userlist_txt(spec.user, password)
    context = {
        "spec": spec,
        "names": children,
        "namespace": ais.metadata.namespace,
        "labels": common_labels(ais, PGBOUNCER, image_tag(spec.image)),
        "selector": selector_labels(ais, PGBOUNCER),
        "config_secret": children.pgbouncer_config,
        "connection_secret": children.pgbouncer_connection,
        "config_data": encode_data({"pgbouncer.ini": ini, "userlist.txt": userlist}),
        "connection_data": encode_data(connection_values(ais, password)),
        "checksum_annotation": CHECKSUM_ANNOTATION,
        "checksum": config_checksum(f"{ais.metadata.namespace}/{ais.metadata.name}/{PGBOUNCER}", ini, userlist),
        "resources": resources(spec.resources),
        "listen_port": PGBOUNCER_LISTEN_PORT,
        "service_port": PGBOUNCER_SERVICE_PORT,
        "config_dir": CONFIG_DIR,
        "socket_dir": SOCKET_DIR,
    }
    policy = network_policy(ais, PGBOUNCER, children.pgbouncer, (PGBOUNCER_LISTEN_PORT,))
    return [from_template(template, **context) for template in TEMPLATES] + policy


def database_server(spec: PgBouncerSpec) -> str:
    return f"{spec.database_host}:{spec.database_port}"


def check_target(ais: AIService, lookup: Lookup, secrets: Secrets) -> CheckTarget | None:
    """Where the database check logs in: the pooler Service's ClusterIP and port, with the pool's own credentials
    (the ones its userlist.txt was rendered from). None, so that no check runs, while the pooler is off, its password
    unknown, no pod of it ready or its Service without an address yet."""
    spec = wanted(ais)
    if spec is None:
        return None
    password = pgbouncer_password(ais, secrets.get(spec.password_secret_ref.name))
    ns, name = ais.metadata.namespace, names(ais).pgbouncer
    deployment = lookup("Deployment", ns, name) or {}
    service = lookup("Service", ns, name) or {}
    ip = (service.get("spec") or {}).get("clusterIP")
    if password is None or not (deployment.get("status") or {}).get("readyReplicas") or not ip or ip == "None":
        return None
    return CheckTarget(host=ip, port=PGBOUNCER_SERVICE_PORT, database=spec.database_name, user=spec.user,
                       password=SecretStr(password), server=database_server(spec))


# How a state the database check set begins: how `recovered` tells it from a pod problem.
_REFUSED, _NO_ANSWER = "PgBouncer cannot reach or log in to the database at ", "PgBouncer gets no answer from the database at "


def with_database(pods: ComponentState, check: DatabaseCheck | None) -> ComponentState:
    """The pooler's state from its pods and the last database check through it. Pure.

    A check that passed (or none yet) leaves the pods' state as it is. PgBouncer answering with an error, or keeping
    the login or `SELECT 1` waiting past the timeout, is Degraded: every client query fails or waits. A check that
    could not reach PgBouncer at all knows nothing of the database: the pods' state stands, and its message says the
    check could not run. Pods that serve nobody, or a pooler Degraded already, are reported as they are.
    """
    if check is None or check.outcome == "ok" or not pods.serving or pods.state == "Degraded":
        return pods
    if check.outcome == "refused":
        return ComponentState("Degraded", f'{_REFUSED}{check.server}: it answers "{check.error}" ({pods.message}).', False)
    if check.outcome == "no_answer":
        return ComponentState(
            "Degraded", f"{_NO_ANSWER}{check.server}: {check.error} within {check.seconds:g} s ({pods.message}).", False
        )
    return ComponentState(
        pods.state,
        f"{pods.message}; the database check could not run: the operator cannot reach PgBouncer at {check.pooler} "
        f"({check.error})",
        pods.serving,
    )


class PgBouncer(WorkloadComponent):
    name = PGBOUNCER
    status_key = "pooler"
    workload_kind = "Deployment"

    def wanted(self, ais: AIService) -> bool:
        return wanted(ais) is not None

    def workload_name(self, ais: AIService) -> str:
        return names(ais).pgbouncer

    def secret_names(self, ais: AIService) -> list[str]:
        spec = wanted(ais)
        return [spec.password_secret_ref.name] if spec is not None else []

    def render(self, ais: AIService, inputs: RenderInputs) -> Rendering:
        spec = wanted(ais)
        if spec is None:
            return Rendering()
        secret = inputs.secrets.get(spec.password_secret_ref.name)
        problem = pgbouncer_secret_problem(ais, secret)
        if problem:
            return Rendering(problem=problem)
        return Rendering(manifests=render_pgbouncer(ais, pgbouncer_password(ais, secret)))

    def state(self, ais: AIService, observed: Observed, rendering: Rendering) -> ComponentState:
        return with_database(super().state(ais, observed, rendering), observed.database)

    def recovered(self, ais: AIService, before: ComponentState, now: ComponentState) -> str | None:
        spec = wanted(ais)
        if spec is None or now.state != "Ready" or not before.message.startswith((_REFUSED, _NO_ANSWER)):
            return None
        return f"PgBouncer reaches the database at {database_server(spec)} again: SELECT 1 answers ({now.message})."

    def endpoints(self, ais: AIService, observed: Observed) -> dict[str, str]:
        return {"pooler": f"{pooler_host(ais)}:{PGBOUNCER_SERVICE_PORT}", "poolerSecret": names(ais).pgbouncer_connection}
