"""The edge to Kafka: a small admin client over `confluent_kafka.admin.AdminClient`.

Every call is bounded by `timeout`. Failures of the whole call (no broker reachable, bad credentials) raise
`KafkaAdminError` with a machine-matchable `reason`; failures of single topics come back per topic so one bad
topic does not hide what happened to the others. SASL credentials are held in the client configuration
only: they are never logged, never put in an exception, and `repr()` leaves them out.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from ..api.data import KafkaSpec

log = logging.getLogger("aifleet.kafka")


@dataclass(frozen=True)
class TopicState:
    """A topic as the cluster has it. `configs` holds at least the keys we manage, as strings."""

    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


class _Repeats(logging.Filter):
    """librdkafka logs every failed reconnect (several a second while a cluster is down): pass one line per
    distinct message (numbers ignored) per minute, so an outage is visible without flooding the log."""

    def __init__(self, window: float = 60.0) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = re.sub(r"\d+", "#", record.getMessage())
        now = time.monotonic()
        if now - self._seen.get(key, -self.window) < self.window:
            return False
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = now
        return True


# librdkafka's own lines go through this logger (never with credentials: librdkafka does not log them).
rdkafka_log = logging.getLogger("aifleet.kafka.librdkafka")
rdkafka_log.addFilter(_Repeats())

# Reasons, one CamelCase word each, fit for a condition's `reason`.
BROKER_UNAVAILABLE = "BrokerUnavailable"
AUTHENTICATION_FAILED = "AuthenticationFailed"
NOT_AUTHORIZED = "NotAuthorized"
INVALID_REQUEST = "InvalidRequest"
TIMEOUT = "Timeout"
KAFKA_ERROR = "KafkaError"
ALREADY_EXISTS = "AlreadyExists"

_UNAVAILABLE = {
    KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE, KafkaError._SSL,
    KafkaError.BROKER_NOT_AVAILABLE, KafkaError.NOT_CONTROLLER, KafkaError.LEADER_NOT_AVAILABLE,
}
_TIMED_OUT = {KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT, KafkaError._MSG_TIMED_OUT}
_AUTHN = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError.ILLEGAL_SASL_STATE,
          KafkaError.UNSUPPORTED_SASL_MECHANISM}
_AUTHZ = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}
_INVALID = {KafkaError.INVALID_REPLICATION_FACTOR, KafkaError.INVALID_PARTITIONS, KafkaError.INVALID_CONFIG,
            KafkaError.POLICY_VIOLATION, KafkaError.INVALID_REQUEST, KafkaError.TOPIC_EXCEPTION,
            KafkaError.INVALID_REPLICA_ASSIGNMENT, KafkaError.UNSUPPORTED_VERSION}
# Reasons that say nothing about one topic but about the whole connection.
CLUSTER_WIDE = frozenset({BROKER_UNAVAILABLE, AUTHENTICATION_FAILED, TIMEOUT})


class KafkaAdminError(Exception):
    """An admin call failed. `reason` is one word (BrokerUnavailable, ...); the message has no secrets."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _classify(error: KafkaError) -> str:
    code = error.code()
    if code in _UNAVAILABLE:
        return BROKER_UNAVAILABLE
    if code in _TIMED_OUT:
        return TIMEOUT
    if code in _AUTHN:
        return AUTHENTICATION_FAILED
    if code in _AUTHZ:
        return NOT_AUTHORIZED
    if code in _INVALID:
        return INVALID_REQUEST
    if code == KafkaError.TOPIC_ALREADY_EXISTS:
        return ALREADY_EXISTS
    return KAFKA_ERROR


def _as_error(exc: BaseException, what: str) -> KafkaAdminError:
    if isinstance(exc, KafkaAdminError):
        return exc
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        error: KafkaError = exc.args[0]
        return KafkaAdminError(_classify(error), f"{what}: {error.str()}")
    if isinstance(exc, concurrent.futures.TimeoutError):
        return KafkaAdminError(TIMEOUT, f"{what}: no answer from the brokers in time")
    return KafkaAdminError(KAFKA_ERROR, f"{what}: {type(exc).__name__}: {exc}")


def _code(exc: BaseException) -> int | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code()
    return None


class KafkaAdmin:
    """Describe, create, grow, reconfigure and delete topics on one Kafka cluster."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        security_protocol: str = "PLAINTEXT",
        sasl_mechanism: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_pem: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout = timeout
        ms = int(timeout * 1000)
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "security.protocol": security_protocol,
            "socket.timeout.ms": ms,
            "socket.connection.setup.timeout.ms": ms,
            # Come back quickly once a broker returns, instead of backing off for minutes.
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 2000,
            "log.connection.close": False,
            "logger": rdkafka_log,
        }
        if sasl_mechanism:
            config["sasl.mechanism"] = sasl_mechanism
        if username is not None:
            config["sasl.username"] = username
        if password is not None:
            config["sasl.password"] = password
        if ca_pem:
            config["ssl.ca.pem"] = ca_pem
        self._admin = AdminClient(config)

    @classmethod
    def from_spec(
        cls, spec: KafkaSpec, credentials: dict[str, str] | None = None, *, timeout: float = 10.0
    ) -> KafkaAdmin:
        """`credentials` are the decoded keys of `spec.credentialsSecret` (`username`, `password`, `ca.crt`)."""
        creds = credentials or {}
        return cls(
            spec.bootstrap_servers,
            security_protocol=spec.security_protocol,
            sasl_mechanism=spec.sasl_mechanism,
            username=creds.get("username"),
            password=creds.get("password"),
            ca_pem=creds.get("ca.crt"),
            timeout=timeout,
        )

    def __repr__(self) -> str:
        return f"KafkaAdmin({self.bootstrap_servers!r}, timeout={self.timeout})"

    # -- reads ---------------------------------------------------------------------------------------

    def describe(self, names: Iterable[str]) -> dict[str, TopicState]:
        """The state of those of `names` that exist. Raises KafkaAdminError when the cluster cannot answer."""
        wanted = list(dict.fromkeys(names))
        try:
            # All topics, not one by one: a metadata request naming a topic may auto-create it on some brokers.
            metadata = self._admin.list_topics(timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one typed error
            raise _as_error(exc, f"listing topics on {self.bootstrap_servers}") from None
        finally:
            self._drain_logs()
        present = {}
        for name in wanted:
            topic = metadata.topics.get(name)
            if topic is None or (topic.error is not None and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                continue
            if topic.error is not None:
                raise KafkaAdminError(_classify(topic.error), f"describing topic {name}: {topic.error.str()}")
            replicas = [len(p.replicas) for p in topic.partitions.values()]
            present[name] = (len(topic.partitions), max(replicas, default=0))
        configs = self._configs(list(present))
        return {
            name: TopicState(partitions=parts, replication_factor=rf, configs=configs.get(name, {}))
            for name, (parts, rf) in present.items()
        }

    def _configs(self, names: list[str]) -> dict[str, dict[str, str]]:
        if not names:
            return {}
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
        futures = self._admin.describe_configs(resources, request_timeout=self.timeout)
        out: dict[str, dict[str, str]] = {}
        for resource, future in futures.items():
            try:
                entries = future.result(timeout=self.timeout + 1)
            except Exception as exc:  # noqa: BLE001
                raise _as_error(exc, f"reading configs of topic {resource.name}") from None
            out[resource.name] = {key: e.value for key, e in entries.items() if e.value is not None}
        self._drain_logs()
        return out

    # -- writes: each returns {name: KafkaAdminError} for the topics that failed ------------------------

    def create(self, topics: Iterable[tuple[str, int, int, dict[str, str]]]) -> dict[str, KafkaAdminError]:
        """Create `(name, partitions, replication_factor, configs)` topics. A topic that exists already comes back
        with reason `AlreadyExists`: someone else made it, so it is not ours to delete."""
        new = [NewTopic(name, num_partitions=p, replication_factor=rf, config=dict(cfg)) for name, p, rf, cfg in topics]
        if not new:
            return {}
        futures = self._admin.create_topics(new, operation_timeout=self.timeout, request_timeout=self.timeout)
        return self._collect(futures, "creating topic")

    def add_partitions(self, totals: dict[str, int]) -> dict[str, KafkaAdminError]:
        """Grow each topic to the given total partition count."""
        if not totals:
            return {}
        futures = self._admin.create_partitions(
            [NewPartitions(name, total) for name, total in totals.items()],
            operation_timeout=self.timeout,
            request_timeout=self.timeout,
        )
        return self._collect(futures, "adding partitions to topic")

    def alter_configs(self, changes: dict[str, dict[str, str]]) -> dict[str, KafkaAdminError]:
        """Set these keys (incrementally: keys not named keep their values)."""
        resources = [
            ConfigResource(
                ResourceType.TOPIC,
                name,
                incremental_configs=[
                    ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET) for key, value in sorted(kv.items())
                ],
            )
            for name, kv in changes.items()
            if kv
        ]
        if not resources:
            return {}
        futures = self._admin.incremental_alter_configs(resources, request_timeout=self.timeout)
        return self._collect({r.name: f for r, f in futures.items()}, "changing configs of topic")

    def delete(self, names: Iterable[str]) -> dict[str, KafkaAdminError]:
        """Delete topics; one that does not exist is already deleted, not an error."""
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        futures = self._admin.delete_topics(names, operation_timeout=self.timeout, request_timeout=self.timeout)
        return self._collect(futures, "deleting topic", ignore=frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART}))

    def _collect(
        self, futures: dict[Any, concurrent.futures.Future], what: str, ignore: frozenset[int] = frozenset()
    ) -> dict[str, KafkaAdminError]:
        failed: dict[str, KafkaAdminError] = {}
        for key, future in futures.items():
            name = getattr(key, "topic", key)
            try:
                future.result(timeout=self.timeout + 1)
            except Exception as exc:  # noqa: BLE001
                if _code(exc) in ignore:
                    continue
                failed[str(name)] = _as_error(exc, f"{what} {name}")
        self._drain_logs()
        # A connection problem is not about one topic: raise it so the caller reports the cluster.
        for error in failed.values():
            if error.reason in CLUSTER_WIDE:
                raise error
        return failed

    def _drain_logs(self) -> None:
        # librdkafka queues its log lines for the Python logger until poll() is called.
        self._admin.poll(0)
