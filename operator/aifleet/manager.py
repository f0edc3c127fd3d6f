"""The operator's entry point (`aifleet run`): serve health and metrics, pass the preflight, then run kopf with
the reconciler's handlers.

A failed preflight (no CRD, missing permission, peering object absent, API unreachable) is reported in one log
line and on ``/readyz``, and re-checked every ``retry_seconds``: the operator starts by itself once an admin
fixes it, and the pod shows 0/1 Ready instead of CrashLoopBackOff. ``check_only`` runs the preflight once and
returns its exit code (0 passed, 1 failed) for scripts and CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .api import GROUP, PLURAL
from .clients import endpoints
from .clients.kube import API_SERVER, Kube, KubeError
from .observability import metrics, permissions, preflight
from .observability.health import Health, Servers

log = logging.getLogger("aifleet.operator")

HEARTBEAT_SECONDS = 5.0
API_PROBE_SECONDS = 5.0  # how soon readiness notices the API server gone while nothing is being reconciled
HANDLERS = "aifleet.reconciler.handlers"  # importing it registers the kopf handlers


@dataclass
class RunOptions:
    namespaces: list[str] = field(default_factory=list)
    peering: str = ""
    priority: int = 0
    peering_lifetime: int = 60
    health_port: int = 8080
    metrics_port: int = 9090
    retry_seconds: float = 15.0
    check_only: bool = False
    allowed_endpoints: list[str] = field(default_factory=list)  # see clients/endpoints.py
    secret_access: str = "byName"  # see observability/permissions.py's SECRET_RULES


def publish_allowed_endpoints(options: RunOptions) -> endpoints.EndpointPolicy:
    """The engines read the allow-list from the environment when kopf starts them; `--allow-endpoint` adds to it."""
    if options.allowed_endpoints:
        extra = [os.environ.get(endpoints.ENV, ""), *options.allowed_endpoints]
        os.environ[endpoints.ENV] = ",".join(p for p in extra if p)
    return endpoints.EndpointPolicy.from_env()


def run(options: RunOptions) -> int:
    publish_allowed_endpoints(options)
    if options.check_only:
        result = preflight.run(options.namespaces, peering=options.peering, secret_access=options.secret_access)
        (log.info if result.ok else log.error)(result.message, extra={"check": result.check})
        return 0 if result.ok else 1

    health = Health(stale_after=max(60.0, 6 * HEARTBEAT_SECONDS))
    servers = Servers(health, health_port=options.health_port, metrics_port=options.metrics_port)
    servers.start()
    try:
        asyncio.run(_operate(options, health))
    except KeyboardInterrupt:
        pass
    finally:
        servers.stop()
    return 0


class RetryForever:
    """kopf's error backoffs, never exhausted: a fresh sequence for every request (kopf iterates it per request,
    and takes one without a length as endless)."""

    def __iter__(self) -> Iterator[float]:
        return itertools.chain((1, 1, 2, 3, 5, 8, 13), itertools.repeat(15))


class QuietDuringOutage(logging.Filter):
    """While API_SERVER knows the API server is away (and has said so once), kopf's own line per failed attempt
    of every watch and patch ("Request attempt #3 failed; will retry") is left out: the same outage, many times."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not API_SERVER.down or not record.name.startswith("kopf"):
            return True
        message = record.getMessage()
        return not (message.startswith("Request attempt") and "will retry" in message)


async def _heartbeat(health: Health) -> None:
    while True:
        health.beat()
        await asyncio.sleep(HEARTBEAT_SECONDS)


async def _probe_api_server(health: Health) -> None:
    """Readiness follows the API server: every call the operator makes reports to API_SERVER, and this probe
    keeps asking while nothing else does. The probe's own failure is said by API_SERVER, once per outage."""
    kube = Kube(retries=0)
    health.set("apiserver", True)
    API_SERVER.subscribe(lambda answers, message: health.set("apiserver", answers, message))
    while True:
        with contextlib.suppress(KubeError):
            await asyncio.to_thread(kube.ping)
        await asyncio.sleep(API_PROBE_SECONDS)


async def _preflight(options: RunOptions, health: Health) -> None:
    """Until the preflight passes: one line per distinct problem, not one per retry."""
    said = None
    while True:
        result = await asyncio.to_thread(
            preflight.run, options.namespaces, peering=options.peering, secret_access=options.secret_access)
        health.set("preflight", result.ok, result.message)
        if result.ok:
            log.info(result.message)
            allowed = endpoints.EndpointPolicy.from_env().patterns
            log.info("endpoints allowed for metrics and Kafka: " + (", ".join(allowed) if allowed else "any"),
                     extra={"allowed_endpoints": list(allowed)})
            return
        if result.message != said:
            metrics.PREFLIGHT_FAILURES.labels(check=result.check).inc()
            log.error(f"not starting: {result.message}; retrying every {options.retry_seconds:g}s",
                      extra={"check": result.check})
            said = result.message
        await asyncio.sleep(options.retry_seconds)


def _insights() -> Any:
    try:  # kopf.run() takes it; the class is not exported (kopf<2 is pinned in pyproject.toml)
        from kopf._cogs.structs.references import Insights

        return Insights()
    except Exception:  # noqa: BLE001 - readiness then only waits for kopf's own start
        return None


async def _track_readiness(health: Health, started: asyncio.Event, insights: Any) -> None:
    health.set("kopf", False, "starting")
    health.set("watching", False, "waiting for kopf to start")
    await started.wait()
    health.set("kopf", True)
    while True:
        if insights is None:
            health.set("watching", True, "not observable in this kopf version")
            return
        watched = any(r.group == GROUP and r.plural == PLURAL for r in insights.watched_resources)
        if watched:
            health.set("watching", True)
        else:
            health.set("watching", False, f"kopf does not watch {PLURAL}.{GROUP} (CRD removed?)")
        await asyncio.sleep(2.0)


async def _operate(options: RunOptions, health: Health) -> None:
    import kopf

    importlib.import_module(HANDLERS).watch_children(watch_secrets=options.secret_access == "watch")

    for handler in logging.getLogger().handlers:
        handler.addFilter(QuietDuringOutage())
    beat = asyncio.create_task(_heartbeat(health), name="aifleet heartbeat")
    tracker = probe = None
    try:
        await _preflight(options, health)
        probe = asyncio.create_task(_probe_api_server(health), name="aifleet API server probe")
        if options.peering:
            log.info(f"peering as {options.peering!r} with priority {options.priority}",
                     extra={"peering": options.peering, "priority": options.priority})
        settings = kopf.OperatorSettings()
        settings.peering.lifetime = options.peering_lifetime
        # kopf gives up on a request after about a minute of errors, and a watch that gives up ends the operator
        # with a traceback: an etcd outage of two minutes would be a crash. Keep trying; readiness says why.
        settings.networking.error_backoffs = RetryForever()
        settings.posting.default_backoffs = RetryForever()  # an event said during an outage is posted after it
        if options.namespaces and not any(permissions.is_pattern(n) for n in options.namespaces):
            # Exact namespaces need no cluster-wide read: no runtime scan of CRDs and namespaces (kopf would
            # list both cluster-wide); the preflight has already waited for the CRD. Patterns keep the scan.
            settings.scanning.disabled = True
        started = asyncio.Event()
        insights = _insights()
        tracker = asyncio.create_task(_track_readiness(health, started, insights), name="aifleet readiness")
        extra = {"insights": insights} if insights is not None else {}
        await kopf.operator(
            clusterwide=not options.namespaces,
            namespaces=options.namespaces,
            standalone=not options.peering,
            peering_name=options.peering or None,
            priority=options.priority,
            settings=settings,
            ready_flag=started,
            **extra,
        )
    finally:
        for task in (beat, tracker, probe):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
