"""A small, synchronous Kubernetes client: server-side apply, status and scale patches, events.

The operator's handlers run these calls in worker threads; kopf's own async machinery handles watches.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from .kinds import AISERVICE, BY_KIND, Kind, kind_of

FIELD_MANAGER = "aifleet"
log = logging.getLogger("aifleet.kube")


class KubeError(RuntimeError):
    """An API call failed; carries the HTTP status and the API server's own message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def load_config() -> None:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


def _message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message", exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)


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
        try:
            return self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=json.dumps(body) if body is not None else None,
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=30,
            )
        except ApiException as exc:
            raise KubeError(exc.status, _message(exc)) from None

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

    def get(self, kind: Kind | str, namespace: str, name: str) -> dict[str, Any] | None:
        kind = BY_KIND[kind] if isinstance(kind, str) else kind
        try:
            return self._call("GET", kind.path(namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

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
