"""The data plane around the fleet: `spec.pgbouncer`, `spec.redis`, `spec.kafka`."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.json_schema import JsonDict

from .base import DNS_SUBDOMAIN, MAX_SAFE_INTEGER, NO_SPACE, SECRET_KEY, ApiModel, cel, pattern
from .inference import QUANTITY, WITHIN_LIMITS, ResourceList, check_within_limits
from .quantity import parse_quantity

SECRET_NAME = DNS_SUBDOMAIN
TOPIC_NAME = pattern(r"^[a-zA-Z0-9._-]{1,200}$", "a Kafka topic name: 1 to 200 letters, digits, '.', '_' and '-'")
# These values are written into pgbouncer.ini and its connection strings, which have no quoting we can
# rely on across versions: a conservative character set keeps a value from ever becoming config syntax.
HOSTNAME = pattern(
    r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$",
    "a host name (letters, digits, '.' and '-') or an IP address",
)
PG_NAME = pattern(
    r"^[A-Za-z0-9_][A-Za-z0-9_.$-]*$", "a PostgreSQL name: letters, digits, '_', '.', '$' and '-', not starting with '.', '$' or '-'"
)
BOOTSTRAP_SERVERS = pattern(
    r"^[^\s,]+:[0-9]+(,[^\s,]+:[0-9]+)*$", "a comma-separated list of host:port with no spaces"
)


class SecretKeyRef(ApiModel):
    name: str = Field(max_length=253, pattern=SECRET_NAME, description="Secret in the AIService's namespace.")
    key: str = Field(min_length=1, max_length=253, pattern=SECRET_KEY, description="Key inside the Secret.")


class ComponentResources(ApiModel):
    model_config = WITHIN_LIMITS

    requests: ResourceList = Field(default_factory=lambda: ResourceList(cpu="100m", memory="128Mi"), description="Guaranteed resources.")
    limits: ResourceList = Field(default_factory=lambda: ResourceList(memory="512Mi"), description="Upper bounds.")

    @model_validator(mode="after")
    def _within_limits(self) -> ComponentResources:
        check_within_limits(self.requests, self.limits)
        return self


# --- PgBouncer -------------------------------------------------------------------------------------------


POOL_SIZE_RULE = "spec.pgbouncer.defaultPoolSize + reservePoolSize must be <= maxDbConnections (0 means unlimited)"


class PgBouncerSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.defaultPoolSize + self.reservePoolSize <= self.maxDbConnections || self.maxDbConnections == 0",
                    POOL_SIZE_RULE,
                )
            ]
        }
    )

    enabled: bool = Field(True, description="Run PgBouncer for this service.")
    image: str = Field(
        "ghcr.io/cloudnative-pg/pgbouncer:1.24.0",
        min_length=1,
        pattern=NO_SPACE,
        description="PgBouncer image with tag; any image with `pgbouncer` on its PATH (the operator supplies the config).",
    )
    replicas: int = Field(2, ge=1, le=20, description="PgBouncer pods (each holds its own server pool).")
    database_host: str = Field(
        min_length=1, max_length=253, pattern=HOSTNAME, description="Host name or IP of the existing PostgreSQL server."
    )
    database_port: int = Field(5432, ge=1, le=65535, description="Port of the PostgreSQL server.")
    database_name: str = Field(
        min_length=1, max_length=63, pattern=PG_NAME, description="Database clients reach through the pool."
    )
    user: str = Field(min_length=1, max_length=63, pattern=PG_NAME, description="PostgreSQL role the pool logs in as.")
    password_secret_ref: SecretKeyRef = Field(description="Secret key holding that role's password; never copied into a ConfigMap.")
    auth_type: Literal["scram-sha-256", "md5"] = Field(
        "scram-sha-256", description="How clients prove the password to PgBouncer (`auth_type`)."
    )
    pool_mode: Literal["session", "transaction", "statement"] = Field("transaction", description="When a server connection returns to the pool.")
    max_client_conn: int = Field(10000, ge=1, le=100000, description="Client connections PgBouncer accepts, in total.")
    default_pool_size: int = Field(20, ge=1, le=10000, description="Server connections per user/database pair.")
    reserve_pool_size: int = Field(5, ge=0, le=10000, description="Extra server connections when clients wait too long.")
    reserve_pool_timeout_seconds: int = Field(3, ge=0, le=3600, description="Wait before the reserve pool is used.")
    max_db_connections: int = Field(0, ge=0, le=100000, description="Cap on server connections per database; 0 means no cap.")
    server_idle_timeout_seconds: int = Field(600, ge=0, le=86400, description="Close server connections idle this long.")
    query_wait_timeout_seconds: int = Field(120, ge=0, le=86400, description="Fail a query that waited this long for a server.")
    admin_console: bool = Field(
        False,
        description="Also make `user` an admin of PgBouncer's console (PAUSE, RELOAD, KILL). It may always run SHOW commands.",
    )
    resources: ComponentResources = Field(default_factory=ComponentResources, description="CPU and memory per pod.")

    @model_validator(mode="after")
    def _pool_fits(self) -> PgBouncerSpec:
        if self.max_db_connections and self.default_pool_size + self.reserve_pool_size > self.max_db_connections:
            raise ValueError(POOL_SIZE_RULE)
        return self


# --- Redis -----------------------------------------------------------------------------------------------

# Redis's own memory units (case-insensitive): k/m/g are powers of 1000, kb/mb/gb powers of 1024. Zero is
# refused by the pattern: it means "no limit" to Redis, which in a container ends in an OOM kill.
MAXMEMORY = pattern(
    r"^[0-9]*[1-9][0-9]*([bB]|[kKmMgG][bB]?)?$",
    "a Redis memory size above zero such as 256mb or 2gb (units b, k, kb, m, mb, g, gb)",
)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}


def parse_maxmemory(value: str) -> int:
    """Bytes in a Redis memory value (`256mb`, `2GB`, `1000000`), as redis-server reads it."""
    match = re.fullmatch(r"([0-9]+)([a-zA-Z]*)", value.strip())
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"{value!r} is not a Redis memory size such as 256mb or 2gb")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


class RedisPersistence(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!oldSelf.enabled || self.enabled", "cannot be turned off once on: the volume holds data", ".enabled"),
                cel("!oldSelf.enabled || self.size == oldSelf.size", "is immutable once persistence is on", ".size"),
            ]
        }
    )

    enabled: bool = Field(False, description="Keep the cache on a PersistentVolume (append-only file) across restarts.")
    size: str = Field("1Gi", pattern=QUANTITY, description="Volume size.")
    storage_class_name: str | None = Field(
        None, max_length=253, pattern=DNS_SUBDOMAIN, description="StorageClass of the volume; empty uses the default."
    )


# Redis's units as Kubernetes quantity suffixes, so CEL can compare the two (it cannot afford arithmetic here).
_AS_QUANTITY = {"k": "k", "kb": "Ki", "m": "M", "mb": "Mi", "g": "G", "gb": "Gi"}


def _maxmemory_below_limit_rule() -> JsonDict:
    """CEL for `_fits_in_limit`: maxMemory rewritten as a quantity, then compared with the limit."""
    memory, limit = "self.maxMemory", "self.resources.limits.memory"
    unit = f"{memory}.lowerAscii().find('[a-z]+$')"
    suffix = " : ".join(f"{unit} == '{u}' ? '{q}'" for u, q in _AS_QUANTITY.items()) + " : ''"
    return cel(
        f"!has(self.resources) || !has(self.resources.limits) || !has({limit}) || !isQuantity({limit}) || "
        f"!{memory}.matches('{MAXMEMORY}') || "
        f"quantity({limit}).isGreaterThan(quantity({memory}.find('^[0-9]+') + ({suffix})))",
        _MAXMEMORY_BELOW_LIMIT,
    )


_MAXMEMORY_BELOW_LIMIT = (
    "spec.redis.maxMemory must be below spec.redis.resources.limits.memory: Redis also needs memory for"
    " connections and forks, and would be OOM-killed"
)


class RedisSpec(ApiModel):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_maxmemory_below_limit_rule()]})

    enabled: bool = Field(True, description="Run a Redis cache for this service.")
    image: str = Field("redis:7.0", min_length=1, pattern=NO_SPACE, description="Redis image with tag.")
    max_memory: str = Field(
        "256mb",
        max_length=20,
        pattern=MAXMEMORY,
        description="`maxmemory`: how much data Redis holds (e.g. `256mb`, `2gb`); keep it well below the memory limit.",
    )
    eviction_policy: Literal[
        "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
        "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
    ] = Field("allkeys-lru", description="`maxmemory-policy`: what Redis drops when full.")
    persistence: RedisPersistence = Field(default_factory=RedisPersistence, description="Durability of the cache.")
    password_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding the password; when absent the operator generates one once and never rotates it."
    )
    resources: ComponentResources = Field(default_factory=ComponentResources, description="CPU and memory.")

    @model_validator(mode="after")
    def _fits_in_limit(self) -> RedisSpec:
        limit = self.resources.limits.memory
        limit_bytes = parse_quantity(limit) if limit else None
        if limit_bytes is not None and parse_maxmemory(self.max_memory) >= int(limit_bytes):
            raise ValueError(
                f"spec.redis.maxMemory ({self.max_memory}) must be below spec.redis.resources.limits.memory ({limit}):"
                " Redis also needs memory for connections and forks, and would be OOM-killed"
            )
        return self


# --- Kafka -----------------------------------------------------------------------------------------------


class DeadLetter(ApiModel):
    enabled: bool = Field(True, description="Create a dead-letter topic beside the topic.")
    suffix: str = Field(
        ".dlq",
        max_length=40,
        pattern=pattern(r"^[a-zA-Z0-9._-]{1,40}$", "1 to 40 letters, digits, '.', '_' and '-'"),
        description="Appended to the topic name.",
    )
    retention_ms: int = Field(1_209_600_000, ge=-1, le=MAX_SAFE_INTEGER, description="How long failed events are kept (default 14 days).")


RETENTION_IN_CONFIGS = "set retention.ms with retentionMs, not in configs"


class KafkaTopic(ApiModel):
    # Transition rules sit on the item: topics are a list-map keyed by name, so the API server pairs old and new.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!has(self.configs) || !('retention.ms' in self.configs)", RETENTION_IN_CONFIGS, ".configs"),
                cel(
                    "self.partitions >= oldSelf.partitions",
                    "partitions cannot decrease: Kafka cannot remove partitions",
                    ".partitions",
                ),
                cel(
                    "self.replicationFactor == oldSelf.replicationFactor",
                    "replicationFactor is immutable once the topic exists",
                    ".replicationFactor",
                ),
            ]
        }
    )

    name: str = Field(max_length=200, pattern=TOPIC_NAME, description="Topic name. Renaming creates a new topic; the old one is kept.")
    partitions: int = Field(6, ge=1, le=10000, description="Partitions; can grow, never shrink.")
    replication_factor: int = Field(3, ge=1, le=32, description="Replicas per partition; fixed once created.")
    retention_ms: int = Field(604_800_000, ge=-1, le=MAX_SAFE_INTEGER, description="`retention.ms` (default 7 days; -1 keeps forever).")
    configs: dict[str, str] = Field(default_factory=dict, description="Other topic configs, e.g. `cleanup.policy`.")
    dead_letter: DeadLetter = Field(default_factory=DeadLetter, description="The dead-letter topic for failed events.")

    @model_validator(mode="after")
    def _retention_once(self) -> KafkaTopic:
        if "retention.ms" in self.configs:
            raise ValueError(f"spec.kafka.topics[{self.name}].configs: {RETENTION_IN_CONFIGS}")
        return self

    @property
    def dead_letter_name(self) -> str:
        return self.name + self.dead_letter.suffix




class KafkaSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.topics) || self.topics.all(t, !has(t.deadLetter) || !t.deadLetter.enabled || "
                    "!self.topics.exists(u, u.name == t.name + t.deadLetter.suffix))",
                    "spec.kafka.topics: a dead-letter topic (name + deadLetter.suffix) must not be one of the topics",
                )
            ]
        }
    )

    enabled: bool = Field(True, description="Manage Kafka topics for this service.")
    bootstrap_servers: str = Field(min_length=1, pattern=BOOTSTRAP_SERVERS, description="Existing Kafka cluster, `host:port[,host:port]`.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How the operator talks to the brokers."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(None, description="SASL mechanism.")
    credentials_secret: str | None = Field(
        None, max_length=253, pattern=SECRET_NAME, description="Secret with `username`/`password` (SASL) and `ca.crt` (TLS)."
    )
    topics: list[KafkaTopic] = Field(
        default_factory=list,
        max_length=200,
        description="Topics the service uses.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    deletion_policy: Literal["Retain", "Delete"] = Field(
        "Retain", description="What deleting the AIService does to its topics. Retain keeps them."
    )

    @model_validator(mode="after")
    def _unique_topics(self) -> KafkaSpec:
        names = [t.name for t in self.topics]
        if len(names) != len(set(names)):
            raise ValueError("spec.kafka.topics[].name must be unique")
        for topic in self.topics:
            if topic.dead_letter.enabled and topic.dead_letter_name in names:
                raise ValueError(
                    f"spec.kafka.topics[{topic.name}].deadLetter: {topic.dead_letter_name} is already a topic of its own"
                )
        return self

    def all_topic_names(self) -> list[str]:
        """Every topic this spec manages, dead-letter topics included, in spec order."""
        out: list[str] = []
        for topic in self.topics:
            out.append(topic.name)
            if topic.dead_letter.enabled:
                out.append(topic.dead_letter_name)
        return out
