"""The data plane around the fleet: `spec.pgbouncer`, `spec.redis`, `spec.kafka`."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import ConfigDict, Field, model_validator

from .base import ApiModel, cel
from .inference import QUANTITY, ResourceList

SECRET_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
TOPIC_NAME = r"^[a-zA-Z0-9._-]{1,200}$"


class SecretKeyRef(ApiModel):
    name: str = Field(max_length=253, pattern=SECRET_NAME, description="Secret in the AIService's namespace.")
    key: str = Field(min_length=1, max_length=253, description="Key inside the Secret.")


class ComponentResources(ApiModel):
    requests: ResourceList = Field(default_factory=lambda: ResourceList(cpu="100m", memory="128Mi"), description="Guaranteed resources.")
    limits: ResourceList = Field(default_factory=lambda: ResourceList(memory="512Mi"), description="Upper bounds.")


# --- PgBouncer -------------------------------------------------------------------------------------------


class PgBouncerSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.defaultPoolSize + self.reservePoolSize <= self.maxDbConnections || self.maxDbConnections == 0",
                    "spec.pgbouncer.defaultPoolSize + reservePoolSize must be <= maxDbConnections (0 means unlimited)",
                )
            ]
        }
    )

    enabled: bool = Field(True, description="Run PgBouncer for this service.")
    image: str = Field("bitnami/pgbouncer:1.23.1", min_length=1, description="PgBouncer image with tag.")
    replicas: int = Field(2, ge=1, le=20, description="PgBouncer pods (each holds its own server pool).")
    database_host: str = Field(min_length=1, max_length=253, description="Host of the existing PostgreSQL server.")
    database_port: int = Field(5432, ge=1, le=65535, description="Port of the PostgreSQL server.")
    database_name: str = Field(min_length=1, max_length=63, description="Database clients reach through the pool.")
    user: str = Field(min_length=1, max_length=63, description="PostgreSQL role the pool logs in as.")
    password_secret_ref: SecretKeyRef = Field(description="Secret key holding that role's password; never copied into a ConfigMap.")
    pool_mode: Literal["session", "transaction", "statement"] = Field("transaction", description="When a server connection returns to the pool.")
    max_client_conn: int = Field(10000, ge=1, le=100000, description="Client connections PgBouncer accepts, in total.")
    default_pool_size: int = Field(20, ge=1, le=10000, description="Server connections per user/database pair.")
    reserve_pool_size: int = Field(5, ge=0, le=10000, description="Extra server connections when clients wait too long.")
    reserve_pool_timeout_seconds: int = Field(3, ge=0, le=3600, description="Wait before the reserve pool is used.")
    max_db_connections: int = Field(0, ge=0, le=100000, description="Cap on server connections per database; 0 means no cap.")
    server_idle_timeout_seconds: int = Field(600, ge=0, le=86400, description="Close server connections idle this long.")
    query_wait_timeout_seconds: int = Field(120, ge=0, le=86400, description="Fail a query that waited this long for a server.")
    resources: ComponentResources = Field(default_factory=ComponentResources, description="CPU and memory per pod.")


# --- Redis -----------------------------------------------------------------------------------------------

MAXMEMORY = r"^[0-9]+(b|k|kb|m|mb|g|gb)?$"


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
    storage_class_name: Optional[str] = Field(None, description="StorageClass of the volume; empty uses the default.")


class RedisSpec(ApiModel):
    enabled: bool = Field(True, description="Run a Redis cache for this service.")
    image: str = Field("redis:7.0", min_length=1, description="Redis image with tag.")
    max_memory: str = Field(
        "256mb", pattern=MAXMEMORY, description="`maxmemory`: how much data Redis holds (e.g. `256mb`, `2gb`)."
    )
    eviction_policy: Literal[
        "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
        "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
    ] = Field("allkeys-lru", description="`maxmemory-policy`: what Redis drops when full.")
    persistence: RedisPersistence = Field(default_factory=RedisPersistence, description="Durability of the cache.")
    password_secret_ref: Optional[SecretKeyRef] = Field(
        None, description="Secret key holding the password; when absent the operator generates one once and never rotates it."
    )
    resources: ComponentResources = Field(default_factory=ComponentResources, description="CPU and memory.")


# --- Kafka -----------------------------------------------------------------------------------------------


class DeadLetter(ApiModel):
    enabled: bool = Field(True, description="Create a dead-letter topic beside the topic.")
    suffix: str = Field(".dlq", pattern=r"^[a-zA-Z0-9._-]{1,40}$", description="Appended to the topic name.")
    retention_ms: int = Field(1_209_600_000, ge=-1, description="How long failed events are kept (default 14 days).")


class KafkaTopic(ApiModel):
    # Transition rules sit on the item: topics are a list-map keyed by name, so the API server pairs old and new.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
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
    retention_ms: int = Field(604_800_000, ge=-1, description="`retention.ms` (default 7 days; -1 keeps forever).")
    configs: dict[str, str] = Field(default_factory=dict, description="Other topic configs, e.g. `cleanup.policy`.")
    dead_letter: DeadLetter = Field(default_factory=DeadLetter, description="The dead-letter topic for failed events.")


class KafkaSpec(ApiModel):
    enabled: bool = Field(True, description="Manage Kafka topics for this service.")
    bootstrap_servers: str = Field(min_length=1, description="Existing Kafka cluster, `host:port[,host:port]`.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How the operator talks to the brokers."
    )
    sasl_mechanism: Optional[Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]] = Field(None, description="SASL mechanism.")
    credentials_secret: Optional[str] = Field(
        None, pattern=SECRET_NAME, description="Secret with `username`/`password` (SASL) and `ca.crt` (TLS)."
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
    def _unique_topics(self) -> "KafkaSpec":
        names = [t.name for t in self.topics]
        if len(names) != len(set(names)):
            raise ValueError("spec.kafka.topics[].name must be unique")
        return self
