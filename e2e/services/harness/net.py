"""Loopback networking for tests: free ports, readiness polling and plain HTTP, standard library only.

The unit tests (tests/) and the e2e suites share these, so that one rule picks ports and one reads HTTP answers.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Callable, Mapping, Optional

if TYPE_CHECKING:
    from .process import ManagedProcess

HOST = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service failed to install-check, start, become ready or stop."""


_ports_lock = threading.Lock()
_ports_given: set[int] = set()


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, never the same one twice per process.

    The OS may still hand the port to someone else before the server binds it; the
    per-process memory at least keeps two services of one test from colliding.
    """
    with _ports_lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((HOST, 0))
                port = s.getsockname()[1]
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise ServiceError("could not find a free loopback port")


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               proc: Optional["ManagedProcess"] = None, interval: float = 0.2) -> None:
    """Poll ``check`` until true; fail after ``timeout`` s or as soon as ``proc`` dies."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - a not-yet-ready server may fail the probe any way
            pass
        if proc is not None and not proc.running:
            raise ServiceError(f"{what}: process exited with {proc.returncode}\n{proc.log_tail()}")
        if time.monotonic() >= deadline:
            tail = proc.log_tail() if proc else ""
            raise ServiceError(f"{what}: not ready after {timeout:.0f}s\n{tail}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0, headers: Optional[Mapping[str, str]] = None) -> tuple[int, bytes]:
    """GET returning (status, body) for any HTTP status; raises only on network errors."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=dict(headers or {})), timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def http_post(url: str, data: bytes = b"", timeout: float = 10.0,
              headers: Optional[Mapping[str, str]] = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method="POST", headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()




def http_get_text(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body text) for any HTTP answer, (0, the error) when nothing answers: for probes that a
    test polls until the server is up."""
    try:
        status, body = http_get(url, timeout)
    except OSError as err:
        return 0, str(err)
    return status, body.decode(errors="replace")
