"""Kafka topics off the fast path: synced on spec change and periodically, with backoff while Kafka is away.

Kafka calls block for up to the client timeout, so they run in the worker's thread, at most once per due time,
and their result is remembered: every other reconcile reports the last result without touching Kafka.

Admin clients are shared by AIServices that connect alike and bounded (`clients.cache`); an AIService's client is
dropped when it is deleted or its credentials change. An endpoint outside the operator's allow-list
(`clients.endpoints`) gets no client at all: the topics are Degraded with reason `EndpointNotAllowed`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..api import AIService
from ..api.data import KafkaSpec
from ..clients.cache import DEFAULT_MAX_CLIENTS, SharedClients
from ..clients.endpoints import EndpointPolicy
from ..clients.kafka import KafkaAdmin
from ..topics.apply import TopicsResult, kafka_credentials, kafka_credentials_problem, sync_topics

Emit = Callable[[str, str, str], None]
READY_RESYNC_SECONDS = 300.0
PROGRESSING_RETRY_SECONDS = 5.0
MIN_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS = 30.0, 300.0
RETIRED_UIDS_KEPT = 10_000


@dataclass
class TopicsMemory:
    spec_hash: str = ""
    result: TopicsResult | None = None
    due: float = 0.0
    failures: int = 0


def _spec_hash(spec: KafkaSpec, credentials: dict[str, str]) -> str:
    text = json.dumps([spec.to_wire(), sorted(credentials.items())], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


ENDPOINT_NOT_ALLOWED = "EndpointNotAllowed"


class TopicsEngine:
    def __init__(
        self, timeout: float = 5.0, policy: EndpointPolicy | None = None, max_clients: int = DEFAULT_MAX_CLIENTS
    ) -> None:
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, str], TopicsMemory] = {}
        # Per AIService: held while its topics are synced with Kafka, so that a deletion waits for a sync in flight.
        self._syncing: dict[tuple[str, str], threading.Lock] = {}
        self._retiring: set[tuple[str, str]] = set()  # being deleted: no sync may create their topics again
        # And after they are gone: a pass begun before the deletion may reach its sync only after the AIService and
        # its memory are gone. By uid (a new AIService of the same name syncs), the most recent ones kept.
        self._retired_uids: OrderedDict[str, None] = OrderedDict()
        self.admins: SharedClients[str, KafkaAdmin] = SharedClients(max_clients)
        self.policy = policy if policy is not None else EndpointPolicy.from_env()
        self._timeout = timeout

    def forget(self, namespace: str, name: str, *, keep_client: bool = False) -> None:
        """The AIService is gone: its memory and (unless shared) its client with its credentials. While it is being
        deleted the client is kept: the delete handler may need it when the credentials Secret is already gone."""
        with self._lock:
            self._memory.pop((namespace, name), None)
            if not keep_client:
                self._syncing.pop((namespace, name), None)
                self._retiring.discard((namespace, name))
        if not keep_client:
            self.admins.release((namespace, name))

    def _sync_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._syncing.setdefault(key, threading.Lock())

    def retire(self, namespace: str, name: str, uid: str | None = None) -> None:
        """The AIService is being deleted: no later sync touches its topics, and one in flight is waited for, so the
        delete handler never races a pass that would create again the topics it removes."""
        key = (namespace, name)
        with self._lock:
            self._retiring.add(key)
            if uid:
                self._retired_uids[uid] = None
                while len(self._retired_uids) > RETIRED_UIDS_KEPT:
                    self._retired_uids.popitem(last=False)
        with self._sync_lock(key):
            pass

    def admin(self, ais: AIService, spec: KafkaSpec, credentials: dict[str, str]) -> KafkaAdmin:
        """The AIService's admin client. Check `policy.kafka_refusal` first: this connects wherever it is told."""
        key = _spec_hash(spec.model_copy(update={"topics": []}), credentials)
        user = (ais.metadata.namespace, ais.metadata.name)
        return self.admins.get(user, key, lambda: KafkaAdmin.from_spec(spec, credentials, timeout=self._timeout))

    def last_admin(self, ais: AIService) -> KafkaAdmin | None:
        """The client this AIService used last, if still cached: it holds the credentials it was built with."""
        return self.admins.held((ais.metadata.namespace, ais.metadata.name))

    def next_due(self, namespace: str, name: str) -> float | None:
        with self._lock:
            memory = self._memory.get((namespace, name))
        return memory.due if memory else None

    def sync(self, ais: AIService, secret: dict | None, emit: Emit, now: float | None = None) -> TopicsResult | None:
        """The topics' state, syncing with Kafka only when the spec changed or the due time passed."""
        spec = ais.spec.kafka
        if spec is None or not spec.enabled:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            memory = self._memory.setdefault((ais.metadata.namespace, ais.metadata.name), TopicsMemory())
        refusal = self.policy.kafka_refusal(spec.bootstrap_servers)
        if refusal:
            if memory.result is None or memory.result.reason != ENDPOINT_NOT_ALLOWED:
                emit("Warning", ENDPOINT_NOT_ALLOWED, refusal)
            memory.result, memory.due = TopicsResult("Degraded", ENDPOINT_NOT_ALLOWED, refusal), now + MAX_BACKOFF_SECONDS
            memory.spec_hash = ""
            return memory.result
        problem = kafka_credentials_problem(spec, secret)
        if problem:
            memory.result, memory.due = TopicsResult("Degraded", "InvalidCredentials", problem), now + MAX_BACKOFF_SECONDS
            return memory.result
        credentials = kafka_credentials(secret)
        digest = _spec_hash(spec, credentials)
        if digest == memory.spec_hash and now < memory.due and memory.result is not None:
            return memory.result
        key = (ais.metadata.namespace, ais.metadata.name)
        with self._sync_lock(key):
            if key in self._retiring or (ais.metadata.uid and ais.metadata.uid in self._retired_uids):
                return memory.result
            result = sync_topics(spec, self.admin(ais, spec, credentials))
        for message in result.events:
            emit("Normal", "TopicsChanged", message)
        repeated = memory.result is not None and memory.result.warnings == result.warnings
        for message in [] if repeated else result.warnings:  # a standing refusal is said once, not every retry
            emit("Warning", "TopicChangeRefused", message)
        came_back = memory.result is not None and memory.result.state == "Degraded" and result.state == "Ready"
        if result.state == "Degraded" and (memory.result is None or memory.result.reason != result.reason):
            emit("Warning", result.reason, result.message)
        elif came_back:
            emit("Normal", "TopicsRecovered", result.message)
        memory.failures = memory.failures + 1 if result.state == "Degraded" else 0
        memory.spec_hash, memory.result = digest, result
        if result.state == "Ready":
            memory.due = now + READY_RESYNC_SECONDS
        elif result.state == "Progressing":
            memory.due = now + PROGRESSING_RETRY_SECONDS
        else:
            memory.due = now + min(MAX_BACKOFF_SECONDS, MIN_BACKOFF_SECONDS * 2 ** (memory.failures - 1))
        return result
