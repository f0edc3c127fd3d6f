"""Writes the Triton model repository that the e2e suite's real Triton pods serve.

    python3 e2e/images/models.py OUT_DIR [--name echo] [--service-time-ms 50] [--instances 2] [--fail-every 0]

Two Python-backend models (the nvcr.io/nvidia/tritonserver image built by build.sh runs them):

- `echo` (the name is a flag): FP32 `INPUT0` [-1] -> `OUTPUT0`, the same values. Each request takes a fixed
  service time and the model has a fixed number of instances, each serving one request at a time, so one
  pod's capacity is about instances / service time whatever the CPU, as on a GPU. `fail_every` = N makes an
  instance answer its every Nth request with an error (for canary tests); 0 never does.
- `broken`: its `initialize` raises, so the model never loads and, with `--strict-readiness=true`, the
  server never turns ready.

Standard library only: it runs on the host, before any image or venv exists.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ECHO_MODEL = '''\
"""aifleet e2e model: echoes INPUT0 after a fixed service time; can fail every Nth request."""

import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"]).get("parameters", {})

        def parameter(key, default):
            return parameters.get(key, {}).get("string_value", default)

        self.service_time_s = float(parameter("service_time_ms", "50")) / 1000.0
        self.fail_every = int(parameter("fail_every", "0"))
        self.name = args["model_name"]
        self.served = 0  # by this instance: each instance is a process of its own

    def execute(self, requests):
        responses = []
        for request in requests:
            # A fixed time per request, as a GPU kernel takes, rather than CPU work that would make the
            # capacity depend on the node.
            time.sleep(self.service_time_s)
            self.served += 1
            if self.fail_every > 0 and self.served % self.fail_every == 0:
                # Raised, not returned as an error response: Triton counts a response that carries an error as a
                # success in nv_inference_request_success, and only a raised exception in
                # nv_inference_request_failure{reason="BACKEND"}, the counter the canary analysis reads.
                raise pb_utils.TritonModelException(
                    f"{self.name}: request {self.served} of this instance fails on purpose (fail_every={self.fail_every})"
                )
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", data)]))
        return responses
'''

BROKEN_MODEL = '''\
"""aifleet e2e model: never loads."""


class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("broken: this model fails to load on purpose (aifleet e2e test model)")

    def execute(self, requests):
        raise RuntimeError("unreachable: initialize always fails")
'''


def config_pbtxt(name: str, instances: int, parameters: dict[str, str]) -> str:
    """The model's config.pbtxt: FP32 INPUT0 [-1] -> OUTPUT0 [-1], no batching, `instances` CPU instances."""
    params = "".join(
        f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n' for key, value in parameters.items()
    )
    return (
        f'name: "{name}"\n'
        'backend: "python"\n'
        "max_batch_size: 0\n"
        'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]\n'
        'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]\n'
        f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]\n"
        f"{params}"
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o755)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    # Triton runs as another user (1000) than whoever writes the repository: world-readable.
    tmp.chmod(0o644)
    os.replace(tmp, path)


def write_echo(repo: Path, name: str = "echo", service_time_ms: float = 50, instances: int = 2,
               fail_every: int = 0) -> Path:
    """Writes model `name` (the echo model) into `repo`; returns its directory."""
    if service_time_ms < 0 or instances < 1 or fail_every < 0:
        raise ValueError("service_time_ms >= 0, instances >= 1 and fail_every >= 0")
    model = repo / name
    parameters = {"service_time_ms": f"{service_time_ms:g}", "fail_every": str(fail_every)}
    _write(model / "config.pbtxt", config_pbtxt(name, instances, parameters))
    _write(model / "1" / "model.py", ECHO_MODEL)
    return model


def write_broken(repo: Path, name: str = "broken") -> Path:
    """Writes model `name`, whose initialize raises, into `repo`; returns its directory."""
    model = repo / name
    _write(model / "config.pbtxt", config_pbtxt(name, 1, {}))
    _write(model / "1" / "model.py", BROKEN_MODEL)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="the model repository to write (created if missing)")
    parser.add_argument("--name", default="echo", help="the echo model's name (default: echo)")
    parser.add_argument("--service-time-ms", type=float, default=50, help="time per request (default: 50)")
    parser.add_argument("--instances", type=int, default=2, help="instances per pod (default: 2)")
    parser.add_argument("--fail-every", type=int, default=0,
                        help="every Nth request of an instance fails; 0 = never (default: 0)")
    parser.add_argument("--broken", action=argparse.BooleanOptionalAction, default=True,
                        help="also write the `broken` model (default: yes)")
    args = parser.parse_args(argv)
    if args.broken and args.name == "broken":
        parser.error("--name broken clashes with the broken model (add --no-broken)")
    try:
        written = [write_echo(args.out_dir, args.name, args.service_time_ms, args.instances, args.fail_every)]
    except ValueError as exc:
        parser.error(str(exc))
    if args.broken:
        written.append(write_broken(args.out_dir))
    args.out_dir.chmod(0o755)
    for model in written:
        print(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
