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
from kubernetes.client.exceptions import ApiException

from .kinds import AISERVICE, BY_KIND, Kind, kind_of

FIELD_MANAGER = "aifleet"
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
    def __init__(self, api: kubernetes.client.ApiClient | None = None) -> None:
        if api is None:
            configuration = kubernetes.client.Configuration.get_default_copy()
            configuration.connection_pool_maxsize = 32
            api = kubernetes.client.ApiClient(configuration)
        self.api = api

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        method_, url, headers, payload, post = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(method_, url, header_params=headers, body=payload, post_params=post,
                                         _request_timeout=30)
            raw = response.read()
        except ApiException as exc:
            raise status_error(exc.status or 0, exc.body, exc.reason) from None
        except OSError as exc:  # connection refused, reset, timed out: the API server is not answering
            raise KubeError(0, f"API server unreachable: {exc}") from None
        if response.status >= 400:
            raise status_error(response.status, raw, response.reason)
        return json.loads(raw) if raw else None

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
        get them (its watches read them). Lists carry no kind on their items, so it is set here."""
        kind = BY_KIND[kind] if isinstance(kind, str) else kind
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
        try:
            answer = self.kube.serves(kind)
        except KubeError as exc:
            log.warning("API discovery of %s failed: %s", kind.api_version, exc)
            answer = known[0] if known is not None else False
        with self._lock:
            self._known[kind] = (answer, now)
        return answer
