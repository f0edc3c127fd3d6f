"""A real Triton Inference Server (PyTriton) and the load generator that drives Triton endpoints."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

from .net import HOST, ServiceError, free_port, http_get, http_post
from .process import HERE, INSTALL_HINT, ManagedProcess, PathLike, Service, cache_dir


def pytriton_python() -> str:
    """The PyTriton venv's interpreter (Debian python3 based; see install.sh)."""
    py = os.environ.get("AIFLEET_PYTRITON_PYTHON") or str(cache_dir() / "venvs" / "pytriton" / "bin" / "python")
    if not os.access(py, os.X_OK):
        raise ServiceError(f"PyTriton venv python {py} missing; {INSTALL_HINT}")
    return py


class TritonServer(Service):
    """A real Triton Inference Server (PyTriton) serving the CPU model ``model``.

    Runs e2e/services/triton/model_server.py in the PyTriton venv. Attributes:
    ``http_port``/``grpc_port``/``metrics_port``; ``http_address`` ("127.0.0.1:port",
    the form tritonclient wants), ``http_url``, ``metrics_address`` (a Prometheus
    target) and ``metrics_url``. Ready once ``/v2/models/<model>/ready`` answers 200.
    PyTriton copies tritonserver into its workspace (``<state>/workspace``) on each
    start and deletes it on a clean stop.
    """

    name = "triton"
    start_timeout = 120.0
    stop_timeout = 30.0

    def __init__(self, state_dir: PathLike, *, http_port: Optional[int] = None, grpc_port: Optional[int] = None,
                 metrics_port: Optional[int] = None, model: str = "echo", delay_ms: float = 0.0,
                 max_batch_size: int = 64, metrics_interval_ms: int = 1000,
                 metrics_config: Sequence[str] = (), restrictions: Sequence[str] = (),
                 access_token: Optional[str] = None) -> None:
        super().__init__(state_dir)
        self.host = HOST
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.model = model
        self.delay_ms = delay_ms
        self.max_batch_size = max_batch_size
        self.metrics_interval_ms = metrics_interval_ms
        self.metrics_config = list(metrics_config)  # Triton's --metrics-config settings, e.g. summary_latencies=true
        # `--http-restricted-api=...`/`--grpc-restricted-protocol=...` flags for tritonserver, and the header value
        # PyTriton sends to load its model through them.
        self.restrictions = list(restrictions)
        self.access_token = access_token
        self.python = pytriton_python()
        self.workspace = self.state_dir / "workspace"

    @property
    def port(self) -> int:
        return self.http_port

    @property
    def http_address(self) -> str:
        return f"{HOST}:{self.http_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http_address}"

    url = http_url

    @property
    def metrics_address(self) -> str:
        return f"{HOST}:{self.metrics_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_address}/metrics"

    def _prepare(self) -> None:
        # A workspace left by a killed run would make PyTriton fail; start clean.
        shutil.rmtree(self.workspace, ignore_errors=True)

    def _argv(self) -> list[str]:
        return [self.python, str(HERE / "triton" / "model_server.py"),
                "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
                "--metrics-port", str(self.metrics_port), "--workspace", str(self.workspace),
                "--model-name", self.model, "--delay-ms", str(self.delay_ms),
                "--max-batch-size", str(self.max_batch_size), "--metrics-interval-ms", str(self.metrics_interval_ms),
                *[arg for setting in self.metrics_config for arg in ("--metrics-config", setting)],
                *self.restrictions, *([f"--access-token={self.access_token}"] if self.access_token else [])]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # Keep the pyenv interpreter's settings out of the Debian-python venv.
        for var in ("PYTHONPATH", "PYTHONHOME"):
            env.pop(var, None)
        return env

    def _ready(self) -> bool:
        return http_get(f"{self.http_url}/v2/models/{self.model}/ready", timeout=2)[0] == 200

    def infer(self, values: Sequence[float]) -> list[float]:
        """One inference over Triton's HTTP/JSON protocol (no client library needed)."""
        body = json.dumps({"inputs": [{"name": "data", "shape": [1, len(values)], "datatype": "FP32",
                                       "data": list(values)}]}).encode()
        status, out = http_post(f"{self.http_url}/v2/models/{self.model}/infer", body)
        if status != 200:
            raise ServiceError(f"infer failed: {status} {out[:200]!r}")
        return json.loads(out)["outputs"][0]["data"]

    def metrics(self) -> str:
        return http_get(self.metrics_url)[1].decode()

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.workspace, ignore_errors=True)


class LoadGenerator:
    """Runs e2e/services/triton/loadgen.py (PyTriton venv) against Triton HTTP endpoints.

    ``profile`` is [(seconds, rps), ...]. ``start()`` runs it in the background,
    ``wait()`` returns the JSON report (per step: target_rps, achieved_rps, ok, errors,
    p50_ms, p99_ms); ``run()`` does both. The generator stops by itself after the
    profile, ``max_seconds`` (default: profile length + 30 s) or ``max_requests``.
    """

    def __init__(self, state_dir: PathLike, urls: Sequence[str], profile: Sequence[tuple[float, float]], *,
                 model: str = "echo", workers: int = 16, max_seconds: Optional[float] = None,
                 max_requests: int = 200_000, timeout: float = 5.0, python: Optional[str] = None,
                 input_name: str = "data", window_s: float = 0.0, allow_networks: Sequence[str] = (),
                 fresh_connections: bool = False, batch: int = 1, live_path: Optional[PathLike] = None,
                 slo_ms: float = 0.0) -> None:
        if not urls or not profile:
            raise ValueError("need at least one URL and one (seconds, rps) step")
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.urls = [u.split("://", 1)[-1] for u in urls]
        self.profile = [(float(s), float(r)) for s, r in profile]
        self.model = model
        self.workers = workers
        self.max_seconds = max_seconds or sum(s for s, _ in self.profile) + 30
        self.max_requests = max_requests
        self.timeout = timeout
        self.input_name = input_name
        self.window_s = window_s
        self.allow_networks = list(allow_networks)
        self.fresh_connections = fresh_connections
        self.batch = batch
        self.live_path = Path(live_path) if live_path else None
        self.slo_ms = slo_ms
        # Any interpreter with tritonclient[http] + numpy works (the repo's .venv has them);
        # the PyTriton venv is the default because install.sh always builds it.
        self.python = python or pytriton_python()
        self.report_path = self.state_dir / "loadgen-report.json"
        self.log_path = self.state_dir / "loadgen.log"
        self.process: Optional[ManagedProcess] = None
        self.report: Optional[dict[str, Any]] = None

    def _argv(self) -> list[str]:
        argv = [self.python, str(HERE / "triton" / "loadgen.py"), "--model", self.model,
                "--workers", str(self.workers), "--max-seconds", str(self.max_seconds),
                "--max-requests", str(self.max_requests), "--timeout", str(self.timeout),
                "--report", str(self.report_path), "--input", self.input_name, "--window", str(self.window_s),
                "--batch", str(self.batch), "--slo-ms", str(self.slo_ms)]
        for network in self.allow_networks:
            argv += ["--allow-network", network]
        if self.fresh_connections:
            argv.append("--fresh-connections")
        if self.live_path:
            argv += ["--live", str(self.live_path)]
        for u in self.urls:
            argv += ["--url", u]
        for s, r in self.profile:
            argv += ["--step", f"{s:g}:{r:g}"]
        return argv

    def start(self) -> "LoadGenerator":
        self.report_path.unlink(missing_ok=True)
        self.process = ManagedProcess(self._argv(), self.log_path)
        self.process.start()
        return self

    def wait(self, timeout: Optional[float] = None) -> dict[str, Any]:
        assert self.process is not None and self.process.proc is not None, "start() first"
        try:
            self.process.proc.wait(timeout=timeout or self.max_seconds + 30)
        finally:
            self.process.stop(timeout=5)
        if self.process.returncode != 0 or not self.report_path.exists():
            raise ServiceError(f"loadgen failed ({self.process.returncode})\n{self.process.log_tail()}")
        self.report = json.loads(self.report_path.read_text())
        return self.report

    def run(self) -> dict[str, Any]:
        return self.start().wait()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def __enter__(self) -> "LoadGenerator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
