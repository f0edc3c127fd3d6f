"""Before the operator starts: can it work at all? One clear line when not, instead of a crash loop.

Checks, in order, each against the real API server with the operator's own identity:

1. credentials: in a pod, or a kubeconfig;
2. api: the API server answers;
3. crd: the AIService CRD is served (API discovery, which every authenticated identity may read);
4. permissions: a SelfSubjectAccessReview for every verb on every resource the operator uses
   (``permissions.py``), in every watched namespace, or cluster-wide;
5. peering (with ``--peering``): kopf's peering CRD is served and the peering object exists: without it
   kopf would pause the operator forever, silently.

The result is one line: what is wrong, who is asking, and how to fix it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from ..api import GROUP, PLURAL, VERSION
from . import permissions

log = logging.getLogger("aifleet.preflight")

TIMEOUT = 10
CRD_FILE = "crds/aifleet.dev_aiservices.yaml"


@dataclass
class Result:
    ok: bool
    check: str  # the first check that failed, or "all"
    message: str  # one line
    missing: list[permissions.Check] = field(default_factory=list)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        try:
            return f"HTTP {exc.status}: {json.loads(exc.body or '').get('message') or exc.reason}"
        except (TypeError, ValueError, AttributeError):
            return f"HTTP {exc.status}: {exc.reason}"
    text = str(exc).strip()
    # urllib3 wraps the cause several times; the socket error says it best ("[Errno 111] Connection refused").
    errno = re.search(r"\[Errno -?\d+\] [^'\")\\]+", text)
    if errno:
        return errno.group(0).strip()
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate verify failed (wrong CA in the kubeconfig?)"
    lines = text.splitlines()
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]


def _who(api: kubernetes.client.ApiClient) -> str:
    """The authenticated user name (SelfSubjectReview; any identity may ask), or a neutral phrase."""
    try:
        review = kubernetes.client.AuthenticationV1Api(api).create_self_subject_review(
            kubernetes.client.V1SelfSubjectReview(), _request_timeout=TIMEOUT
        )
        user = review.status.user_info if review.status else None
        return (user.username if user else None) or "this identity"
    except Exception:  # noqa: BLE001 - only for the message
        return "this identity"


def _served(api: kubernetes.client.ApiClient, group: str, version: str, plural: str) -> bool:
    """API discovery: does the server serve this resource? (Any authenticated identity may ask.)"""
    try:
        found = kubernetes.client.CustomObjectsApi(api).get_api_resources(group, version, _request_timeout=TIMEOUT)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return any(r.name == plural for r in (found.resources or []))


def _allowed(api: kubernetes.client.ApiClient, check: permissions.Check) -> bool:
    spec = kubernetes.client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=kubernetes.client.V1ResourceAttributes(
            verb=check.verb, group=check.group, resource=check.resource,
            subresource=check.subresource or None, namespace=check.namespace or None,
        )
    )
    review = kubernetes.client.AuthorizationV1Api(api).create_self_subject_access_review(
        kubernetes.client.V1SelfSubjectAccessReview(spec=spec), _request_timeout=TIMEOUT
    )
    assert review.status is not None  # the API server always answers a review with its status
    return bool(review.status.allowed)


def missing_permissions(
    api: kubernetes.client.ApiClient, namespaces: Sequence[str], *, peering: bool, secret_access: str = "byName"
) -> list[permissions.Check]:
    wanted = permissions.checks(namespaces, peering=peering, secret_access=secret_access)
    with ThreadPoolExecutor(max_workers=8) as pool:
        allowed = list(pool.map(lambda c: _allowed(api, c), wanted))
    return [c for c, ok in zip(wanted, allowed) if not ok]


def _peering_object_missing(api: kubernetes.client.ApiClient, namespaces: Sequence[str], name: str) -> str | None:
    group, version = permissions.PEERING_GROUP, "v1"
    plural, kind = ("kopfpeerings", "KopfPeering") if namespaces else ("clusterkopfpeerings", "ClusterKopfPeering")
    if not _served(api, group, version, plural):
        return (f"peering is on (--peering {name}) but kopf's {kind} CRD ({plural}.{group}) is not installed: "
                f"kopf would keep the operator paused; install the Helm chart's CRDs")
    objects = kubernetes.client.CustomObjectsApi(api)
    selector = f"metadata.name={name}"  # list by name: the operator may list, not get
    absent = []
    for namespace in namespaces or [""]:
        if namespace:
            found = objects.list_namespaced_custom_object(
                group, version, namespace, plural, field_selector=selector, _request_timeout=TIMEOUT)
        else:
            found = objects.list_cluster_custom_object(
                group, version, plural, field_selector=selector, _request_timeout=TIMEOUT)
        if not cast("dict[str, Any]", found or {}).get("items"):
            absent.append(namespace)
    if not absent:
        return None
    place = f" in namespace(s) {', '.join(absent)}" if namespaces else ""
    return (f"peering is on (--peering {name}) but {kind} {name!r} does not exist{place}: kopf would keep the "
            f"operator paused forever; create it (the Helm chart does when replicaCount > 1)")


def run(
    namespaces: Sequence[str] = (),
    *,
    peering: str = "",
    api: kubernetes.client.ApiClient | None = None,
    crd: tuple[str, str, str] = (GROUP, VERSION, PLURAL),
    secret_access: str = "byName",
) -> Result:
    """Run every check; the first failure decides the result. ``api`` defaults to in-cluster or KUBECONFIG."""
    if api is None:
        from ..clients.kube import load_config

        try:
            load_config()
        except Exception as exc:  # noqa: BLE001
            return Result(False, "credentials",
                          f"no Kubernetes credentials: not in a pod and no usable kubeconfig ({_reason(exc)})")
        configuration = kubernetes.client.Configuration.get_default_copy()
        configuration.retries = 0  # the preflight retries by itself; no urllib3 warning per attempt
        api = kubernetes.client.ApiClient(configuration)
    host = api.configuration.host
    try:
        kubernetes.client.VersionApi(api).get_code(_request_timeout=TIMEOUT)
    except Exception as exc:  # noqa: BLE001
        return Result(False, "api", f"cannot reach the Kubernetes API at {host}: {_reason(exc)}")

    group, version, plural = crd
    try:
        if not _served(api, group, version, plural):
            return Result(False, "crd",
                          f"the AIService CRD is not installed: {host} serves no {plural}.{group}/{version}; "
                          f"install it (`kubectl apply --server-side -f {CRD_FILE}`, or the Helm chart)")
    except Exception as exc:  # noqa: BLE001
        return Result(False, "crd", f"cannot read API discovery for {group}/{version} at {host}: {_reason(exc)}")

    who = _who(api)
    try:
        missing = missing_permissions(api, namespaces, peering=bool(peering), secret_access=secret_access)
    except Exception as exc:  # noqa: BLE001
        return Result(False, "permissions", f"cannot check the permissions of {who}: {_reason(exc)}")
    if missing:
        return Result(False, "permissions",
                      f"{who} lacks {len(missing)} permission(s) the operator needs: "
                      f"{permissions.summarize(missing)} (grant them: the Helm chart's RBAC does)", missing)

    if peering and not any(permissions.is_pattern(n) for n in namespaces):
        try:
            problem = _peering_object_missing(api, namespaces, peering)
        except Exception as exc:  # noqa: BLE001
            problem = f"cannot read the peering objects: {_reason(exc)}"
        if problem:
            return Result(False, "peering", problem)

    scope = f"namespace(s) {', '.join(namespaces)}" if namespaces else "all namespaces"
    return Result(True, "all", f"preflight passed: {who} may do everything aifleet needs in {scope}")
