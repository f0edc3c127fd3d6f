"""PgBouncer and Redis in one call, from the Secrets the reconciler has already read.

Pure apart from drawing a fresh password when the generated Redis Secret does not exist yet. The reconciler:
1. reads (from its watch cache) each Secret named by `secret_names(ais)` into `secrets` (None when missing);
2. calls `render_dataplane(ais, secrets)`;
3. creates each of `create_once` with create-only semantics (never apply: an existing one must not change);
4. applies `manifests` with the other children;
5. reports each entry of `problems` on that component's condition (Degraded) and as a Warning event (the
   messages name the field and the Secret, never a value); each entry of `pending` as Progressing.
A component with a problem renders nothing, so a missing Secret leaves the running pods as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api import AIService
from ..api.children import PGBOUNCER_SERVICE_PORT, REDIS_PORT, names
from . import pgbouncer, redis


@dataclass
class DataPlane:
    manifests: list[dict[str, Any]] = field(default_factory=list)
    create_once: list[dict[str, Any]] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # component ("pgbouncer", "redis") -> why not rendered
    pending: dict[str, str] = field(default_factory=dict)  # component -> what it waits for (not an error)


def secret_names(ais: AIService) -> list[str]:
    """The Secrets (in the AIService's namespace) that rendering the data plane needs to read."""
    names = []
    if (pooler := pgbouncer.wanted(ais)) is not None:
        names.append(pooler.password_secret_ref.name)
    if redis.wanted(ais) is not None:
        names.append(redis.redis_password_ref(ais).name)
    kafka = ais.spec.kafka
    if kafka is not None and kafka.enabled and kafka.credentials_secret:
        names.append(kafka.credentials_secret)
    return list(dict.fromkeys(names))


def render_dataplane(
    ais: AIService,
    secrets: Mapping[str, dict[str, Any] | None],
    password_factory: Callable[[], str] = redis.new_password,
) -> DataPlane:
    out = DataPlane()
    if (pooler := pgbouncer.wanted(ais)) is not None:
        secret = secrets.get(pooler.password_secret_ref.name)
        problem = pgbouncer.pgbouncer_secret_problem(ais, secret)
        if problem:
            out.problems["pgbouncer"] = problem
        else:
            out.manifests += pgbouncer.render_pgbouncer(ais, pgbouncer.pgbouncer_password(ais, secret))
    if (cache := redis.wanted(ais)) is not None:
        ref = redis.redis_password_ref(ais)
        secret = secrets.get(ref.name)
        if secret is None and cache.password_secret_ref is None:
            # Created now, rendered on the next pass (the Secret's watch event triggers it): rendering with
            # the fresh password right away would be wrong whenever the create loses a race to an older one.
            out.create_once.append(redis.generated_redis_secret(ais, password_factory()))
            out.pending["redis"] = f"creating the password Secret {ref.name}"
        elif problem := redis.redis_secret_problem(ais, secret):
            out.problems["redis"] = problem
        else:
            out.manifests += redis.render_redis(ais, redis.redis_password(ais, secret))
    return out


def dataplane_endpoints(ais: AIService) -> dict[str, str]:
    """`status.endpoints` entries for the pooler and the cache (camelCase keys, as on the wire)."""
    out = {}
    if pgbouncer.wanted(ais) is not None:
        out["pooler"] = f"{pgbouncer.pooler_host(ais)}:{PGBOUNCER_SERVICE_PORT}"
        out["poolerSecret"] = names(ais).pgbouncer_connection
    if redis.wanted(ais) is not None:
        out["cache"] = f"{redis.cache_host(ais)}:{REDIS_PORT}"
        out["cacheSecret"] = redis.redis_password_ref(ais).name
    return out
