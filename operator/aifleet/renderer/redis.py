"""The Redis cache: a config Secret, a one-replica StatefulSet, a Service, and the generated password Secret.

Pure. Where the password comes from:
- `spec.redis.passwordSecretRef` set: the reconciler reads that key (`redis_password_ref`, report problems
  with `redis_secret_problem`) and passes the value to `render_redis`.
- absent: the reconciler creates `generated_redis_secret(ais, new_password())` with create-only semantics
  (an existing Secret is never replaced, so the password never rotates), then reads it back like a reference.
`redis.conf` holds `requirepass`, so it is a Secret too.
"""

from __future__ import annotations

from typing import Any

from ..api import AIService
from ..api.children import REDIS, REDIS_PORT, common_labels, names, selector_labels, service_host
from ..api.data import RedisSpec, SecretKeyRef
from ..api.secret_data import decode_key
from .common import from_template
from .component import Observed, Rendering, RenderInputs, WorkloadComponent
from .network import network_policy
from .secretdata import (
    CHECKSUM_ANNOTATION,
    config_checksum,
    encode_data,
    generated_secret,
    new_password,
    secret_ref_problem,
)
from .workload import image_tag, resources

CONFIG_DIR = "/etc/redis"
DATA_DIR = "/data"
PASSWORD_FIELD = "spec.redis.passwordSecretRef"
GENERATED_KEY = "password"
# Redis 7's default snapshot points, written out so the file says what the server does.
_DEFAULT_SAVE = "3600 1 300 100 60 10000"
_NO_SNAPSHOTS = '""'
TEMPLATES = (
    "redis-config-secret.yaml.j2",
    "redis-service.yaml.j2",
    "redis-statefulset.yaml.j2",
)


def cache_host(ais: AIService) -> str:
    return service_host(names(ais).redis, ais.metadata.namespace)


def wanted(ais: AIService) -> RedisSpec | None:
    spec = ais.spec.redis
    return spec if spec is not None and spec.enabled else None


def redis_password_ref(ais: AIService) -> SecretKeyRef:
    """The Secret key holding the password: the user's reference, or the one the operator generates."""
    spec = ais.spec.redis
    if spec is not None and spec.password_secret_ref is not None:
        return spec.password_secret_ref
    return SecretKeyRef(name=names(ais).redis_auth, key=GENERATED_KEY)


def redis_secret_problem(ais: AIService, secret: dict[str, Any] | None) -> str | None:
    """Why the password Secret cannot be used, naming the field; None when Redis is off or all is well."""
    spec = wanted(ais)
    if spec is None:
        return None
    field = PASSWORD_FIELD if spec.password_secret_ref is not None else "spec.redis (generated password)"
    return secret_ref_problem(field, redis_password_ref(ais), secret)


def redis_password(ais: AIService, secret: dict[str, Any] | None) -> str | None:
    if wanted(ais) is None or redis_secret_problem(ais, secret) is not None:
        return None
    return decode_key(secret, redis_password_ref(ais).key)


def generated_redis_secret(ais: AIService, password: str) -> dict[str, Any]:
    """The Secret to create once when no `passwordSecretRef` is given. Create-only: never apply it."""
    return generated_secret(ais, names(ais).redis_auth, REDIS, GENERATED_KEY, password)


def _quoted(value: str) -> str:
    """A redis.conf string: double quotes, with backslash, quote and non-printables escaped as redis reads them."""
    out = []
    for ch in value:
        if ch in '\\"':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.extend(f"\\x{byte:02x}" for byte in ch.encode())
    return '"' + "".join(out) + '"'


def redis_conf(spec: RedisSpec, password: str) -> str:
    """The `redis.conf` text the pod runs."""
    persistent = spec.persistence.enabled
    lines = [
        "# Rendered by aifleet from the AIService spec; edits are overwritten.",
        # Every IPv4 address of the pod, and IPv6 where the pod has it (`-` = skip if unavailable).
        "bind 0.0.0.0 -::*",
        f"port {REDIS_PORT}",
        "protected-mode yes",
        f"requirepass {_quoted(password)}",
        f"maxmemory {spec.max_memory}",
        f"maxmemory-policy {spec.eviction_policy}",
        f"appendonly {'yes' if persistent else 'no'}",
        "appendfsync everysec",
        # Without persistence the volume is an emptyDir: snapshots would only cost forks and memory.
        f"save {_DEFAULT_SAVE if persistent else _NO_SNAPSHOTS}",
        f"dir {DATA_DIR}",
        "daemonize no",
        'logfile ""',
        "tcp-keepalive 300",
        "",
    ]
    return "\n".join(lines)


def render_redis(ais: AIService, password: str | None) -> list[dict[str, Any]]:
    """Redis's children, or [] when it is off or the password is unknown (the caller reports why)."""
    spec = wanted(ais)
    if spec is None or password is None:
        return []
    children = names(ais)
    conf = redis_conf(spec, password)
    ref = redis_password_ref(ais)
    labels = common_labels(ais, REDIS, image_tag(spec.image))
    context = {
        "spec": spec,
        "names": children,
        "namespace": ais.metadata.namespace,
        "labels": labels,
        "selector": selector_labels(ais, REDIS),
        "config_secret": children.redis_config,
        "config_data": encode_data({"redis.conf": conf}),
        "checksum_annotation": CHECKSUM_ANNOTATION,
        # The public part of the checksum is the config without its password.
        "checksum": config_checksum(
            f"{ais.metadata.namespace}/{ais.metadata.name}/{REDIS}", redis_conf(spec, ""), password
        ),
        "password_ref": ref,
        "resources": resources(spec.resources),
        "port": REDIS_PORT,
        "config_dir": CONFIG_DIR,
        "data_dir": DATA_DIR,
        "persistence": spec.persistence if spec.persistence.enabled else None,
    }
    policy = network_policy(ais, REDIS, children.redis, (REDIS_PORT,))
    return [from_template(template, **context) for template in TEMPLATES] + policy


class Redis(WorkloadComponent):
    name = REDIS
    status_key = "cache"
    workload_kind = "StatefulSet"

    def wanted(self, ais: AIService) -> bool:
        return wanted(ais) is not None

    def workload_name(self, ais: AIService) -> str:
        return names(ais).redis

    def secret_names(self, ais: AIService) -> list[str]:
        return [redis_password_ref(ais).name] if wanted(ais) is not None else []

    def render(self, ais: AIService, inputs: RenderInputs) -> Rendering:
        spec = wanted(ais)
        if spec is None:
            return Rendering()
        ref = redis_password_ref(ais)
        secret = inputs.secrets.get(ref.name)
        if secret is None and spec.password_secret_ref is None:
            # Created now, rendered on the next pass (the Secret's watch event triggers it): rendering with
            # the fresh password right away would be wrong whenever the create loses a race to an older one.
            password = (inputs.new_password or new_password)()
            return Rendering(
                create_once=[generated_redis_secret(ais, password)], pending=f"creating the password Secret {ref.name}"
            )
        if problem := redis_secret_problem(ais, secret):
            return Rendering(problem=problem)
        return Rendering(manifests=render_redis(ais, redis_password(ais, secret)))

    def endpoints(self, ais: AIService, observed: Observed) -> dict[str, str]:
        return {"cache": f"{cache_host(ais)}:{REDIS_PORT}", "cacheSecret": redis_password_ref(ais).name}
