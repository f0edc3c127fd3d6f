"""A real Prometheus (the e2e harness's, with its query log on) and a fake Triton /metrics endpoint it scrapes."""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from .common import ROOT

sys.path.insert(0, str(ROOT / "e2e" / "services"))
from harness import Prometheus


class BenchPrometheus(Prometheus):
    """The harness's Prometheus, with the query log on (which queries, how many, for which services)."""

    @property
    def query_log(self) -> Path:
        return self.state_dir / "queries.log"

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["global"]["query_log_file"] = str(self.query_log)
        return cfg

    own_queries = 0

    def instant(self, expr: str) -> list[dict]:
        BenchPrometheus.own_queries += 1
        return self.query(expr)

    def query_requests(self) -> float:
        """Prometheus' own count of /api/v1/query requests so far, from its /metrics (all status codes)."""
        body = requests.get(f"{self.url}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line)


class FakeTriton:
    """A /metrics endpoint with Triton's nv_inference_request_success counter for many AIServices' pods,
    each growing at a steady rate (explicit sample timestamps, so rate() is exact)."""

    def __init__(self, services: list[tuple[str, str]], base_rps: float = 10.0) -> None:
        self.t0 = time.time()
        self.series = []
        for i, (ns, name) in enumerate(services):
            labels = f'namespace="{ns}",pod="{name}-triton-5f7b8c9d4-x{"bcdfghj"[i % 7]}",model="m",version="1"'
            self.series.append((labels, base_rps + i % 80))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                now = time.time()
                ms = int(now * 1000)
                body = ["# TYPE nv_inference_request_success counter"]
                body += [f"nv_inference_request_success{{{lab}}} {r * (now - outer.t0):.3f} {ms}"
                         for lab, r in outer.series]
                data = ("\n".join(body) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="fake triton")
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

