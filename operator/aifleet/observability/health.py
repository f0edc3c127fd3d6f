"""Liveness, readiness and the metrics endpoint, served by small stdlib HTTP servers in daemon threads.

* ``/healthz`` (liveness): 200 while the operator's event loop keeps beating. A missing CRD or a missing
  permission does NOT fail liveness: restarting would not fix it, it would only turn one clear message into a
  crash loop. The event loop stalling for ``stale_after`` seconds does.
* ``/readyz`` (readiness): 200 once every check passed: the preflight (API reachable, CRD installed,
  permissions granted), kopf started, kopf watching AIServices, and the API server answering now (it goes false
  while the API server or its etcd is away, and true again when they return). 503 otherwise, with a JSON body naming
  each check and, for a failed one, what is wrong: ``kubectl get --raw`` is not needed, the pod's
  readiness-probe event shows it.
* ``/metrics``: the Prometheus exposition (on its own port, so a NetworkPolicy or ServiceMonitor can target it).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import metrics

log = logging.getLogger("aifleet.observability")

READINESS_CHECKS = ("preflight", "kopf", "watching", "apiserver")


class Health:
    def __init__(self, stale_after: float = 60.0) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, tuple[bool, str]] = dict.fromkeys(READINESS_CHECKS, (False, "not checked yet"))
        self._beat = time.monotonic()
        self.stale_after = stale_after

    def set(self, name: str, ok: bool, message: str = "") -> None:
        with self._lock:
            self._checks[name] = (ok, "ok" if ok and not message else message)
            ready = all(v[0] for v in self._checks.values())
        metrics.READY.set(1 if ready else 0)

    def beat(self) -> None:
        with self._lock:
            self._beat = time.monotonic()

    def live(self) -> tuple[bool, dict]:
        with self._lock:
            age = time.monotonic() - self._beat
        ok = age < self.stale_after
        return ok, {"live": ok, "lastHeartbeatSecondsAgo": round(age, 1)}

    def ready(self) -> tuple[bool, dict]:
        with self._lock:
            checks = dict(self._checks)
        ok = all(v[0] for v in checks.values())
        return ok, {"ready": ok, "checks": {k: {"ok": v[0], "message": v[1]} for k, v in checks.items()}}


Route = Callable[[], tuple[int, bytes, str]]


def _json_route(probe: Callable[[], tuple[bool, dict]]) -> Route:
    def route() -> tuple[int, bytes, str]:
        ok, body = probe()
        return (200 if ok else 503), json.dumps(body).encode() + b"\n", "application/json"

    return route


def _metrics_route() -> tuple[int, bytes, str]:
    body, content_type = metrics.exposition()
    return 200, body, content_type


def _handler(routes: dict[str, Route]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                code, body, content_type = 404, b"not found\n", "text/plain"
            else:
                try:
                    code, body, content_type = route()
                except Exception as exc:  # noqa: BLE001 - a probe must answer, not hang up
                    code, body, content_type = 500, f"{exc}\n".encode(), "text/plain"
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:  # probes every few seconds: no access log
            pass

    return Handler


class Servers:
    """The health and metrics endpoints; one server when both ports are the same. Port 0 disables one."""

    def __init__(self, health: Health, *, health_port: int, metrics_port: int, host: str = "0.0.0.0") -> None:
        self.health = health
        self.host = host
        plan: dict[int, dict[str, Route]] = {}
        if health_port:
            plan.setdefault(health_port, {}).update(
                {"/healthz": _json_route(health.live), "/readyz": _json_route(health.ready)}
            )
        if metrics_port:
            plan.setdefault(metrics_port, {})["/metrics"] = _metrics_route
        self._plan = plan
        self._servers: list[ThreadingHTTPServer] = []

    def start(self) -> None:
        for port, routes in self._plan.items():
            try:
                server = ThreadingHTTPServer((self.host, port), _handler(routes))
            except OSError as exc:
                # Not fatal: the operator still works; the line says what is missing and why.
                log.warning(
                    f"cannot serve {', '.join(sorted(routes))} on port {port}: {exc.strerror or exc}",
                    extra={"port": port},
                )
                continue
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.2,), name=f"http-{port}", daemon=True).start()
            self._servers.append(server)

    @property
    def ports(self) -> list[int]:
        return [s.server_address[1] for s in self._servers]

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
