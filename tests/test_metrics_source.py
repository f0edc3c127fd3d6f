"""PrometheusSource parsing and edge handling, against canned answers from a local HTTP server.

A unit test of how answers are read; the real-Prometheus test lives in the e2e suite.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from harness.net import free_port

from aifleet.autoscaler.prometheus import BATCH_RPS_QUERY, Batch, PrometheusSource, parse_result, redact_url
from aifleet.autoscaler.sample import Sample

TOKEN = "s3cr3t-t0ken"
NOW = 1_700_000_000.0


def vector(*series):
    return {"status": "success", "data": {"resultType": "vector", "result": list(series)}}


def point(value, labels=None, ts=NOW):
    return {"metric": labels or {}, "value": [ts, value]}


# query text -> (HTTP status, body bytes, delay seconds)
ANSWERS: dict[str, tuple[int, bytes, float]] = {
    "one": (200, json.dumps(vector(point("4210.5"))).encode(), 0),
    "empty": (200, json.dumps(vector()).encode(), 0),
    "nan": (200, json.dumps(vector(point("NaN"))).encode(), 0),
    "inf": (200, json.dumps(vector(point("+Inf"))).encode(), 0),
    "negative": (200, json.dumps(vector(point("-3"))).encode(), 0),
    "garbage": (200, json.dumps(vector(point("abc"))).encode(), 0),
    "two": (200, json.dumps(vector(point("1", {"pod": "a"}), point("2", {"pod": "b"}))).encode(), 0),
    "scalar": (200, json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [NOW, "7"]}}).encode(), 0),
    "matrix": (200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[NOW - 15, "1"], [NOW, "9"]]}]}}).encode(), 0),
    "error500": (500, b'{"status":"error","error":"boom"}', 0),
    "bad400": (400, b'{"status":"error","errorType":"bad_data","error":"parse error"}', 0),
    "notjson": (200, b"<html>proxy login</html>", 0),
    "wrongshape": (200, b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}', 0),
    "slow": (200, json.dumps(vector(point("1"))).encode(), 2.0),
    "batch": (200, json.dumps(vector(
        point("12", {"namespace": "prod", "aiservice": "chat"}),
        point("3.5", {"namespace": "prod", "aiservice": "embed"}),
        point("NaN", {"namespace": "dev", "aiservice": "chat"}),
    )).encode(), 0),
    "dupes": (200, json.dumps(vector(
        point("1", {"namespace": "prod", "aiservice": "chat", "pod": "a"}),
        point("2", {"namespace": "prod", "aiservice": "chat", "pod": "b"}),
    )).encode(), 0),
}


class Handler(BaseHTTPRequestHandler):
    seen_auth: ClassVar[list[str | None]] = []

    def do_GET(self):
        url = urlsplit(self.path)
        Handler.seen_auth.append(self.headers.get("Authorization"))
        if url.path != "/api/v1/query":
            self.send_error(404)
            return
        query = parse_qs(url.query).get("query", [""])[0]
        status, body, delay = ANSWERS.get(query, (200, json.dumps(vector()).encode(), 0))
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def prom():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def source(prom):
    return PrometheusSource(prom, timeout_seconds=1, bearer_token=TOKEN, clock=lambda: NOW)


def test_one_series(source):
    s = source.query("one")
    assert s == Sample(value=4210.5, timestamp=NOW)
    assert Handler.seen_auth[-1] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    "query, kind",
    [("empty", "empty"), ("nan", "nan"), ("inf", "invalid"), ("negative", "invalid"), ("garbage", "invalid"), ("two", "invalid")],
)
def test_bad_answers_are_errors_never_zero(source, query, kind):
    s = source.query(query)
    assert (s.value, s.error) == (None, kind)


def test_scalar_and_matrix_results(source):
    assert source.query("scalar").value == 7.0
    assert source.query("matrix").value == 9.0  # newest point


@pytest.mark.parametrize("query, detail", [("error500", "HTTP 500"), ("bad400", "HTTP 400"), ("notjson", "answer is not JSON")])
def test_http_failures(source, query, detail):
    s = source.query(query)
    assert (s.error, s.detail) == ("failed", detail)
    assert TOKEN not in s.detail


def test_unexpected_shape_is_a_failure(source):
    s = source.query("wrongshape")
    assert s.error == "failed" and "unexpected answer" in s.detail


def test_timeout(prom):
    src = PrometheusSource(prom, timeout_seconds=0.3)
    asked = len(Handler.seen_auth)
    s = src.query("slow")
    assert (s.error, s.detail, s.unreachable) == ("failed", "timeout", True)
    assert len(Handler.seen_auth) - asked == 1  # no retries inside a poll


def test_connection_refused_fails_fast():
    port = free_port()  # nothing listens on it
    src = PrometheusSource(f"http://user:pw@127.0.0.1:{port}", timeout_seconds=1, bearer_token=TOKEN)
    s = src.query("one")
    assert (s.error, s.detail, s.unreachable) == ("failed", "connection failed", True)
    assert TOKEN not in repr(src) and "pw" not in repr(src) and "user" not in repr(src)


def test_batch_keyed_by_labels(source):
    b = source.query_many(BATCH_RPS_QUERY.replace(BATCH_RPS_QUERY, "batch"))
    assert b.error is None
    assert b.get("prod", "chat") == Sample(value=12.0, timestamp=NOW)
    assert b.get("prod", "embed").value == 3.5
    assert b.get("dev", "chat").error == "nan"
    assert b.get("prod", "absent").error == "empty"  # a service without series: an error, never zero


def test_batch_refuses_unaggregated_series(source):
    assert source.query_many("dupes").get("prod", "chat").error == "invalid"


def test_batch_failure_applies_to_every_service(source):
    b = source.query_many("error500")
    assert b.error is not None and b.get("prod", "chat").error == "failed" and b.get("x", "y").error == "failed"
    assert not b.error.unreachable  # Prometheus answered, with an error: not the same as no Prometheus


def test_async_wrappers(source):
    async def both():
        return await source.aquery("one"), await source.aquery_many("batch")

    one, batch = asyncio.run(both())
    assert one.value == 4210.5 and isinstance(batch, Batch) and batch.get("prod", "embed").value == 3.5


def test_redact_url():
    assert redact_url("https://u:p@prom.example:9090/x") == "https://prom.example:9090/x"
    assert redact_url("http://prom:9090") == "http://prom:9090"


def test_parse_result_rejects_unknown_shapes():
    with pytest.raises(ValueError):
        parse_result({"not": "a list"}, NOW)
    with pytest.raises(ValueError):
        parse_result(["x"], NOW)


def test_sample_checked_marks_old_samples_stale():
    assert Sample.of(5, NOW - 200).checked(NOW, 120).error == "stale"
    assert Sample.of(5, NOW - 60).checked(NOW, 120).ok
    assert Sample(value=float("nan")).checked(NOW, 120).error == "nan"
