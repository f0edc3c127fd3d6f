"""A small, synchronous Kubernetes client: server-side apply, status and scale patches, events.

The operator's handlers run these calls in worker threads; kopf's own async machinery handles watches.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from .kinds import AISERVICE, BY_KIND, Kind, kind_of

FIELD_MANAGER = "aifleet"
CONFLICT_RETRIES = 3
READYZ = "/readyz"
CONFLICT_BACKOFF_SECONDS = 0.1
log = logging.getLogger("aifleet.kube")


@dataclass(frozen=True)
class Cause:
    """One entry of a Status's `details.causes`: which field the API server refused, and why."""

    field: str
    message: str


class KubeError(RuntimeError):
    """An API call failed; carries the HTTP status, the API server's own message, its machine-readable reason
    (`Invalid`, `Conflict`, `AlreadyExists`...) and, for a refused object, the fields it named."""

    def __init__(self, status: int, message: str, reason: str = "", causes: tuple[Cause, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.causes = causes

    @property
    def refused(self) -> bool:
        """The API server (or an admission policy) refused the object itself: sending it again changes nothing
        until the object or the policy changes. Conflicts, throttling and server errors are passing."""
        return self.status in (400, 403, 422)


class UnreachableError(KubeError):
    """The API server did not answer (connection refused, reset or timed out) or answered that it cannot serve
    (5xx: its storage, etcd, is away). Passing: the same call succeeds once it is back."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(status, message)


Listener = Callable[[bool, str], None]


class Reachability:
    """Whether the API server answers the operator's calls, for the whole process (its end is told by the
    `/readyz` probe, `Kube.ping`).

    During an outage every pass of every AIService fails the same way: one warning says so when it starts, a
    reminder every `remind_every` seconds while it lasts, and one line when the API server answers again (not a
    line per object per pass). Listeners (the readiness check, the workers' wake-up) hear each change."""

    def __init__(self, remind_every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.remind_every, self.clock = remind_every, clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._back_at = float("-inf")  # when it last answered again after an outage
        self._said_at = 0.0
        self._failures = 0
        self._listeners: list[Listener] = []

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def now(self) -> float:
        return self.clock()

    def failed(self, detail: str, sent_at: float | None = None) -> None:
        """A request sent at `sent_at` got no usable answer. One sent before the API server came back (it waited
        through the outage and timed out just after) says nothing new: it starts no second outage."""
        now = self.clock()
        with self._lock:
            if self._down_since is None and sent_at is not None and sent_at < self._back_at:
                return
            self._failures += 1
            started = self._down_since is None
            remind = not started and now - self._said_at >= self.remind_every
            if started:
                self._down_since = now
            if started or remind:
                self._said_at = now
            down_for, failures, listeners = now - (self._down_since or now), self._failures, list(self._listeners)
        if started:
            log.warning(f"the API server does not answer: {detail}; reconciles wait for it and resume when it is back",
                        extra={"error": detail})
            self._tell(listeners, False, f"the API server does not answer: {detail}")
        elif remind:
            log.warning(f"the API server still does not answer after {down_for:.0f}s ({failures} calls failed): {detail}",
                        extra={"error": detail, "down_seconds": round(down_for), "failed_calls": failures})

    def answered(self) -> None:
        if self._down_since is None:  # the usual case: no lock, nothing to say
            return
        now = self.clock()
        with self._lock:
            if self._down_since is None:
                return
            down_for, failures, listeners = now - self._down_since, self._failures, list(self._listeners)
            self._down_since, self._failures, self._back_at = None, 0, now
        log.warning(f"the API server answers again after {down_for:.0f}s ({failures} calls failed); reconciling",
                    extra={"down_seconds": round(down_for), "failed_calls": failures})
        self._tell(listeners, True, "")

    @staticmethod
    def _tell(listeners: list[Listener], ok: bool, message: str) -> None:
        for listener in listeners:
            try:
                listener(ok, message)
            except Exception:  # a listener must not turn an API error into another
                log.debug("reachability listener failed", exc_info=True)


# Every client of the process reports here: the operator has one API server.
API_SERVER = Reachability()


def _unreachable_detail(exc: BaseException) -> str:
    """urllib3 wraps the socket error several times; its innermost reason says it best."""
    innermost: object = exc
    while isinstance(innermost, BaseException) and isinstance(getattr(innermost, "reason", None), BaseException):
        innermost = vars(innermost)["reason"]
    return str(innermost).strip()[:300]


def load_config() -> None:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


def status_error(status: int, raw: bytes | str | None, http_reason: str | None) -> KubeError:
    """A KubeError from an error response: the body is a `Status` (message, reason, details.causes) when the API
    server wrote it, and anything else when a proxy did."""
    try:
        body = json.loads(raw or "")
    except (TypeError, ValueError):
        body = None
    if not isinstance(body, dict):
        return KubeError(status, str(http_reason))
    details = body.get("details")
    causes = tuple(
        Cause(str(c.get("field") or ""), str(c.get("message") or ""))
        for c in (details.get("causes") or [] if isinstance(details, dict) else []) if isinstance(c, dict)
    )
    return KubeError(status, str(body.get("message", http_reason)), str(body.get("reason") or ""), causes)


class Kube:
    def __init__(self, api: kubernetes.client.ApiClient | None = None, reachability: Reachability = API_SERVER,
                 timeout: float = 30, retries: int | None = None, sleep: Callable[[float], None] = time.sleep,
                 observe: Callable[[str, int], None] | None = None) -> None:
        """`retries`: urllib3's, for a refused connection or a timeout (None: its default, 3; the readiness probe
        takes 0 to notice an outage within one timeout). `observe(method, status)` hears every request's outcome
        (the operator counts them in its metrics: the writes of an update flood, for one)."""
        if api is None:
            configuration = kubernetes.client.Configuration.get_default_copy()
            configuration.connection_pool_maxsize = 32
            configuration.retries = retries
            api = kubernetes.client.ApiClient(configuration)
        self.api = api
        self.reachability = reachability
        self.timeout = timeout
        self.sleep = sleep
        self.observe = observe or (lambda method, status: None)

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
              query: list[tuple[str, str]] | None = None, timeout: float | None = None) -> Any:
        """One request; a PATCH that meets a write conflict is sent again (CONFLICT_RETRIES times).

        The operator's patches carry no resourceVersion (server-side apply with force, merge patches of the status
        and the scale), so sending one again after a 409 is safe: it says what the fields must be, not what they
        were. Whatever another writer changed in between comes back as a watch event, and the next pass puts the
        spec's values back."""
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                return self._request(method, path, body, content_type, query, timeout)
            except KubeError as exc:
                if method != "PATCH" or exc.status != 409 or exc.reason == "AlreadyExists" or attempt == CONFLICT_RETRIES:
                    raise
                log.debug("write conflict, sending again", extra={"path": path, "attempt": attempt + 1, "error": str(exc)})
                self.sleep(CONFLICT_BACKOFF_SECONDS * (attempt + 1))
        raise AssertionError("unreachable")  # for mypy: the loop returns or raises

    def _request(
        self,
        method: str,
        path: str,
        body: Any,
        content_type: str,
        query: list[tuple[str, str]] | None,
        timeout: float | None,
    ) -> Any:
        method_, url, headers, payload, post = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        sent_at = self.reachability.now()
        try:
            response = self.api.call_api(method_, url, header_params=headers, body=payload, post_params=post,
                                         _request_timeout=timeout or self.timeout)
            raw = response.read()
        except ApiException as exc:
            status, raw, http_reason = exc.status or 0, exc.body, exc.reason
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            # Refused, reset, timed out (urllib3's MaxRetryError, ProtocolError, ReadTimeoutError): not answering.
            self.observe(method, 0)
            detail = _unreachable_detail(exc)
            self.reachability.failed(detail, sent_at)
            raise UnreachableError(f"API server unreachable: {detail}") from None
        else:
            status, http_reason = response.status, response.reason
        self.observe(method, status)
        if status >= 500:  # it answers, but cannot serve (etcd away): as good as unreachable for a pass
            error = status_error(status, raw, http_reason)
            self.reachability.failed(f"HTTP {status}: {error}", sent_at)
            raise UnreachableError(f"API server cannot serve: HTTP {status}: {error}", status) from None
        if path == READYZ:
            # Only the readiness probe says the API server is back: discovery and other answers from its memory
            # come while etcd is still away, and would end the outage too early, then start it again.
            self.reachability.answered()
        if status >= 400:
            raise status_error(status, raw, http_reason)
        try:
            return json.loads(raw) if raw else None
        except ValueError:  # /readyz answers in plain text
            return raw.decode(errors="replace") if isinstance(raw, bytes) else raw

    def ping(self, timeout: float = 5) -> None:
        """Ask the API server whether it can serve (`/readyz` checks etcd too, and every identity may read it).
        Raises UnreachableError when it cannot; either way Reachability hears the answer. The operator asks every
        few seconds: passes alone would not notice an outage while nothing changes. Every call can tell of an
        outage; only this one tells of its end."""
        self._call("GET", READYZ, timeout=timeout)

    def apply(self, manifest: dict[str, Any], *, field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply: the API server merges, owns the fields we set, and creates when missing."""
        kind = kind_of(manifest)
        meta = manifest["metadata"]
        return self._call(
            "PATCH",
            kind.path(meta["namespace"], meta["name"]),
            body=manifest,
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", field_manager), ("force", "true")],
        )

    def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create once; None if it already exists (used for generated Secrets that must never rotate)."""
        kind = kind_of(manifest)
        try:
            return self._call(
                "POST", kind.path(manifest["metadata"]["namespace"]), body=manifest,
                query=[("fieldManager", FIELD_MANAGER)],
            )
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise

    def delete(self, kind: str, namespace: str, name: str, *, orphan: bool = False) -> None:
        """Delete; `orphan` keeps the dependents (pods, volumes) running while their owner is replaced."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan" if orphan else "Background"}
        try:
            self._call("DELETE", BY_KIND[kind].path(namespace, name), body=body)
        except KubeError as exc:
            if exc.status != 404:
                raise

    def serves(self, kind: Kind) -> bool:
        """Whether the API server serves `kind` (API discovery of its group and version): False where the group
        or version is not installed, as for a CRD that is absent."""
        try:
            found = self._call("GET", f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}")
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.get("name") == kind.plural for r in (found or {}).get("resources") or [])

    def get(self, kind: Kind | str, namespace: str, name: str) -> dict[str, Any] | None:
        kind = BY_KIND[kind] if isinstance(kind, str) else kind
        try:
            return self._call("GET", kind.path(namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def find(self, kind: Kind | str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object of that name, by a list filtered on the name: the operator may list its child kinds, not
        get them (its watches read them). Lists carry no kind on their items, so it is set here. Secrets are read by
        name: the operator may get them, and need not be allowed to list them (`--secret-access byName`)."""
        kind = BY_KIND[kind] if isinstance(kind, str) else kind
        if kind.kind == "Secret":
            found_secret = self.get(kind, namespace, name)
            return {**found_secret, "apiVersion": kind.api_version, "kind": kind.kind} if found_secret else None
        found = self._call("GET", kind.path(namespace), query=[("fieldSelector", f"metadata.name={name}")])
        items = list((found or {}).get("items") or [])
        return {**items[0], "apiVersion": kind.api_version, "kind": kind.kind} if items else None

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(selector.items())))]
        found = self._call("GET", f"/api/v1/namespaces/{namespace}/pods", query=query)
        return list((found or {}).get("items") or [])

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            "PATCH",
            AISERVICE.path(namespace, name) + "/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    def scale(self, kind: str, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        return self._call(
            "PATCH",
            BY_KIND[kind].path(namespace, name) + "/scale",
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )


class Discovery:
    """`Kube.serves`, remembered for `ttl` seconds: asked on every pass, it costs one request per refresh, and a
    CRD installed or removed is seen within `ttl`. When the API server cannot answer, the last answer stands
    (False before any)."""

    def __init__(self, kube: Kube, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.kube, self.ttl, self.clock = kube, ttl, clock
        self._known: dict[Kind, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def serves(self, kind: Kind) -> bool:
        now = self.clock()
        with self._lock:
            known = self._known.get(kind)
        if known is not None and now - known[1] < self.ttl:
            return known[0]
        return self._ask(kind, known, now)

    def refresh(self, kind: Kind) -> bool:
        """Ask now, whatever the age of the last answer. True if the answer changed (a first answer of True
        counts as a change: nothing was rendered for the kind before it)."""
        with self._lock:
            known = self._known.get(kind)
        before = known[0] if known is not None else False
        return self._ask(kind, known, self.clock()) != before

    def _ask(self, kind: Kind, known: tuple[bool, float] | None, now: float) -> bool:
        try:
            answer = self.kube.serves(kind)
        except KubeError as exc:
            if not isinstance(exc, UnreachableError):  # an outage is said once, by Reachability
                log.warning("API discovery of %s failed: %s", kind.api_version, exc)
            answer = known[0] if known is not None else False
        with self._lock:
            self._known[kind] = (answer, now)
        return answer
