"""A real NVIDIA Triton Inference Server (via PyTriton) serving a tiny CPU model.

Run under the PyTriton venv built by e2e/services/install.sh (Debian's python3), e.g.:

    $CACHE/venvs/pytriton/bin/python model_server.py --http-port 8000 --grpc-port 8001 \
        --metrics-port 8002 --workspace /tmp/x/workspace

The model ``echo`` (name configurable) returns its FP32 input unchanged, optionally after a
fixed per-batch delay so that queueing metrics move under load. Triton itself exposes the
real Prometheus metrics the autoscaler reads (nv_inference_request_success,
nv_inference_pending_request_count, nv_inference_queue_duration_us, ...) on the metrics port.
Every endpoint binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Optional

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

LOOPBACK = "127.0.0.1"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--workspace", type=Path, required=True,
                        help="PyTriton workspace (sockets, model store, copied binaries); "
                             "PyTriton deletes it on a clean stop")
    parser.add_argument("--model-name", default="echo")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="simulated compute time per batch")
    parser.add_argument("--metrics-interval-ms", type=int, default=1000)
    parser.add_argument("--log-verbose", type=int, default=0)
    parser.add_argument("--metrics-config", action="append", default=[],
                        help="a Triton metrics setting, e.g. summary_latencies=true (repeatable)")
    parser.add_argument("--http-restricted-api", help="passed to tritonserver as is")
    parser.add_argument("--grpc-restricted-protocol", help="passed to tritonserver as is")
    parser.add_argument("--access-token",
                        help="the header value PyTriton itself sends to the restricted APIs (to load its model)")
    return parser.parse_args(argv)


def make_infer_fn(delay_s: float):
    @batch
    def infer(data: np.ndarray) -> dict[str, np.ndarray]:
        if delay_s > 0:
            time.sleep(delay_s)
        return {"out": data.astype(np.float32)}

    return infer


def raise_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit.

    Python's default SIGTERM action kills the interpreter at once, skipping Triton's
    context-manager exit, which would orphan the tritonserver child process and leak
    its /dev/shm regions. Raising lets `with Triton(...)` shut everything down.
    """

    def handler(signum: int, _frame: Optional[FrameType]) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_on_sigterm()

    config = TritonConfig(
        http_address=LOOPBACK,
        http_port=args.http_port,
        grpc_address=LOOPBACK,
        grpc_port=args.grpc_port,
        metrics_address=LOOPBACK,
        metrics_port=args.metrics_port,
        allow_metrics=True,
        allow_cpu_metrics=True,
        allow_gpu_metrics=False,  # no GPU here; avoids DCGM probing noise
        metrics_interval_ms=args.metrics_interval_ms,
        metrics_config=args.metrics_config or None,
        log_verbose=args.log_verbose,
        exit_timeout_secs=5,  # enough to unload the model cleanly (~2 s); less leaks shm
        http_restricted_api=args.http_restricted_api,
        grpc_restricted_protocol=args.grpc_restricted_protocol,
    )
    # PyTriton restricts no endpoint itself: by default this loopback-only test server is open (the tests read
    # /v2/models/.../stats without a token); restrictions come only from the flags above, and the token lets
    # PyTriton load its own model through them.
    security = TritonSecurityConfig(access_token=args.access_token, restricted_endpoints=[])
    args.workspace.parent.mkdir(parents=True, exist_ok=True)

    with Triton(config=config, workspace=args.workspace, security_config=security) as triton:
        triton.bind(
            model_name=args.model_name,
            infer_func=make_infer_fn(args.delay_ms / 1000.0),
            inputs=[Tensor(name="data", dtype=np.float32, shape=(-1,))],
            outputs=[Tensor(name="out", dtype=np.float32, shape=(-1,))],
            config=ModelConfig(max_batch_size=args.max_batch_size),
            strict=True,
        )
        logging.info("serving model %r on http://%s:%d (grpc %d, metrics %d)",
                     args.model_name, LOOPBACK, args.http_port, args.grpc_port, args.metrics_port)
        triton.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
