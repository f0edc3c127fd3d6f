"""The Kubernetes client wrapper against real sockets: an API server that is gone, one that answers 5xx while etcd
is away, write conflicts, and what the process says and reports about it (one line per outage, not per call)."""

from __future__ import annotations

import collections.abc
import itertools
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kubernetes
import pytest

from aifleet.clients.kube import Kube, KubeError, Reachability, UnreachableError
from aifleet.observability.health import Health

CONFLICT = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
            "message": 'Operation cannot be fulfilled on deployments.apps "chat-triton": the object has been modified; '
                       "please apply your changes to the latest version and try again",
            "details": {"name": "chat-triton", "group": "apps", "kind": "deployments"}}
ETCD_DOWN = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500,
             "message": "etcdserver: request timed out"}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "chat-triton", "namespace": "ml", "resourceVersion": "7"}}


class Scripted:
    """A loopback HTTP server answering each request with the next scripted (status, body)."""

    def __init__(self, answers: list[tuple[int, dict | str]]) -> None:
        self.answers, self.requests = list(answers), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((self.command, self.path, self.rfile.read(length)))
                status, body = outer.answers.pop(0) if outer.answers else (200, {})
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_PATCH = do_POST = _answer  # noqa: N815 - http.server's names

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted([])
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _kube(url: str, reachability: Reachability, sleeps: list[float] | None = None, retries: int = 0) -> Kube:
    configuration = kubernetes.client.Configuration()
    configuration.host = url
    configuration.retries = retries
    return Kube(kubernetes.client.ApiClient(configuration), reachability=reachability, timeout=5,
                sleep=(sleeps.append if sleeps is not None else lambda _: None))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(caplog, logger: str = "aifleet.kube") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= logging.WARNING]


def test_a_refused_connection_is_one_kube_error_and_one_line(caplog):
    """urllib3 raises MaxRetryError (not an OSError) when the API server is gone: it must not escape."""
    caplog.set_level(logging.INFO)
    reachability = Reachability(remind_every=60, clock=lambda: 100.0)
    heard: list[tuple[bool, str]] = []
    reachability.subscribe(lambda ok, message: heard.append((ok, message)))
    kube = _kube(f"http://127.0.0.1:{_closed_port()}", reachability, retries=2)
    for _ in range(5):
        with pytest.raises(UnreachableError) as caught:
            kube.get("Deployment", "ml", "chat-triton")
        assert caught.value.status == 0 and not caught.value.refused
        assert "Connection refused" in str(caught.value)
    lines = _lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("the API server does not answer:") and "Connection refused" in lines[0]
    assert [ok for ok, _ in heard] == [False] and reachability.down
    assert not [r for r in caplog.records if r.exc_info]  # no traceback


def test_an_outage_is_recalled_at_most_once_a_minute_and_its_end_said_once(caplog, scripted):
    caplog.set_level(logging.INFO)
    now = [1000.0]
    reachability = Reachability(remind_every=60, clock=lambda: now[0])
    health = Health()
    reachability.subscribe(lambda ok, message: health.set("apiserver", ok, message))
    discovery = {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": []}
    scripted.answers = [(500, ETCD_DOWN)] * 30 + [(200, discovery), (200, "ok"), (200, DEPLOYMENT)]
    kube = _kube(scripted.url, reachability)
    for _ in range(30):  # 30 failing calls over 90 s: the start, then one reminder at 60 s
        with pytest.raises(UnreachableError, match="etcdserver: request timed out"):
            kube.get("Deployment", "ml", "chat-triton")
        assert health.ready()[1]["checks"]["apiserver"]["ok"] is False
        now[0] += 3
    # Discovery is answered from the API server's memory while etcd may still be away: not the end of it.
    kube._call("GET", "/apis/apps/v1")
    assert reachability.down and health.ready()[1]["checks"]["apiserver"]["ok"] is False
    kube.ping()  # the readiness probe gets through: it is
    assert kube.get("Deployment", "ml", "chat-triton") == DEPLOYMENT
    lines = _lines(caplog)
    assert len(lines) == 3, lines
    assert lines[0].startswith("the API server does not answer: HTTP 500: etcdserver: request timed out")
    assert lines[1].startswith("the API server still does not answer after 60s (21 calls failed)")
    assert lines[2] == "the API server answers again after 90s (30 calls failed); reconciling"
    check = health.ready()[1]["checks"]["apiserver"]
    assert check == {"ok": True, "message": "ok"}
    kube.ping()
    assert len(_lines(caplog)) == 3  # answering again is said once


def test_the_readiness_probe_reads_readyz(scripted):
    reachability = Reachability()
    scripted.answers = [(200, "ok"), (500, "[-]etcd failed: reason withheld\nreadyz check failed")]
    kube = _kube(scripted.url, reachability)
    kube.ping()
    with pytest.raises(UnreachableError, match="HTTP 500"):
        kube.ping()
    assert [r[1] for r in scripted.requests] == ["/readyz", "/readyz"] and reachability.down


def test_a_write_conflict_is_sent_again_until_it_goes_through(scripted):
    sleeps: list[float] = []
    scripted.answers = [(409, CONFLICT), (409, CONFLICT), (200, DEPLOYMENT)]
    kube = _kube(scripted.url, Reachability(), sleeps)
    seen: list[tuple[str, int]] = []
    kube.observe = lambda method, status: seen.append((method, status))
    assert kube.scale("Deployment", "ml", "chat-triton", 3) == DEPLOYMENT
    assert len(scripted.requests) == 3 and len(sleeps) == 2
    assert seen == [("PATCH", 409), ("PATCH", 409), ("PATCH", 200)]  # each request counts (aifleet_api_requests_total)
    assert {body for _, _, body in scripted.requests} == {b'{"spec": {"replicas": 3}}'}  # the same patch each time


def test_conflicts_that_do_not_end_give_up_with_the_api_servers_message(scripted):
    scripted.answers = [(409, CONFLICT)] * 10
    kube = _kube(scripted.url, Reachability())
    with pytest.raises(KubeError, match="the object has been modified") as caught:
        kube.patch_status("ml", "chat", {"replicas": 1})
    assert caught.value.status == 409 and caught.value.reason == "Conflict"
    assert len(scripted.requests) == 4  # one and three more


def test_a_create_that_finds_the_object_is_not_retried(scripted):
    exists = {**CONFLICT, "reason": "AlreadyExists", "message": 'secrets "chat-redis" already exists'}
    scripted.answers = [(409, exists)]
    kube = _kube(scripted.url, Reachability())
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "chat-redis", "namespace": "ml"}}
    assert kube.create(secret) is None and len(scripted.requests) == 1


def test_kopf_keeps_retrying_through_a_long_outage():
    from aifleet.manager import RetryForever

    backoffs = RetryForever()
    first = list(itertools.islice(backoffs, 12))
    assert first == [1, 1, 2, 3, 5, 8, 13, 15, 15, 15, 15, 15]
    assert list(itertools.islice(backoffs, 3)) == [1, 1, 2]  # each request starts its own sequence
    assert not isinstance(backoffs, collections.abc.Sized)  # kopf counts no last attempt: it never escalates


def test_kopfs_line_per_retry_is_left_out_only_while_the_outage_is_known():
    from aifleet.clients.kube import API_SERVER
    from aifleet.manager import QuietDuringOutage

    quiet = QuietDuringOutage()

    def record(name: str, message: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)

    retry = record("kopf.objects", "Request attempt #2/9 failed; will retry: GET https://x/apis -> ClientConnectorError()")
    other = record("kopf.objects", "Handler 'worker' failed")
    assert quiet.filter(retry) and quiet.filter(other)
    API_SERVER.failed("[Errno 111] Connection refused")
    try:
        assert not quiet.filter(retry) and quiet.filter(other)
        assert quiet.filter(record("aifleet.kube", retry.getMessage()))  # only kopf's
    finally:
        API_SERVER.answered()
    assert quiet.filter(retry)


def test_requests_are_counted_by_verb_and_answer():
    from aifleet.observability import metrics

    def count(verb: str, code: str) -> float:
        return metrics.REGISTRY.get_sample_value("aifleet_api_requests_total", {"verb": verb, "code": code}) or 0.0

    before = count("patch", "200"), count("get", "0"), count("other", "200")
    metrics.record_api_request("PATCH", 200)
    metrics.record_api_request("GET", 0)
    metrics.record_api_request("TRACE", 200)  # bounded labels
    assert (count("patch", "200"), count("get", "0"), count("other", "200")) == tuple(b + 1 for b in before)


def test_a_request_that_waited_through_the_outage_does_not_start_another(caplog):
    caplog.set_level(logging.INFO)
    now = [0.0]
    reachability = Reachability(clock=lambda: now[0])
    heard: list[bool] = []
    reachability.subscribe(lambda ok, _: heard.append(ok))
    reachability.failed("timed out", sent_at=0.0)
    now[0] = 20.0
    reachability.answered()  # the probe gets through
    now[0] = 30.0
    reachability.failed("read timed out", sent_at=1.0)  # sent during the outage, timed out after it
    assert not reachability.down and heard == [False, True]
    reachability.failed("[Errno 111] Connection refused", sent_at=29.0)  # a new request fails: a new outage
    assert reachability.down and heard == [False, True, False]
    assert len([m for m in _lines(caplog) if m.startswith("the API server does not answer")]) == 2


def test_a_paused_server_times_out_as_unreachable_and_is_back_on_resume():
    """SIGSTOP, as the e2e suite pauses kube-apiserver: the kernel still accepts the connection, nothing answers."""
    import os
    import signal
    import subprocess
    import sys
    import time

    port = _closed_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        reachability = Reachability()
        kube = _kube(f"http://127.0.0.1:{port}", reachability)
        with pytest.raises(KubeError) as answered:
            kube.ping(timeout=2)
        assert answered.value.status == 404 and not reachability.down  # it answers (no /readyz there)
        os.kill(server.pid, signal.SIGSTOP)
        try:
            with pytest.raises(UnreachableError, match="timed out"):
                kube.ping(timeout=0.5)
            assert reachability.down
        finally:
            os.kill(server.pid, signal.SIGCONT)
        with pytest.raises(KubeError) as back:
            kube.ping(timeout=2)
        assert back.value.status == 404 and not reachability.down
    finally:
        server.kill()
        server.wait(timeout=10)
