"""The operator under test, run as a real process (KWOK pods run no containers, so not as a pod)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class OperatorProcess:
    def __init__(self, log_dir: Path, *, extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 metrics_port: int = 0) -> None:
        self.log_dir = log_dir
        self.metrics_port = metrics_port  # 0: no /metrics
        self.extra_args = extra_args or []
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aifleet.cli", "run", "--health-port", "0",
             "--metrics-port", str(self.metrics_port), *self.extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=ROOT,
        )

    def kill(self) -> None:
        """SIGKILL: no chance to finish what it was doing, like a node dying under it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def running(self) -> bool:
        return bool(self.proc and self.proc.poll() is None)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))

    def wait_log(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise AssertionError(f"operator never logged {needle!r}")
