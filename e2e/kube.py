"""Helpers the e2e suite uses to act as a person would: real kubectl, real waits."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class KubectlError(RuntimeError):
    def __init__(self, args: list[str], code: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} exited {code}: {stderr.strip()}")
        self.stderr = stderr


def build_tool(script: Path) -> str:
    """Run one of e2e/tools/build-*.sh (cached after the first build; a cold build takes minutes) and return
    the path of the binary it prints last."""
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise AssertionError(f"{script.name} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def kubectl(*args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> str:
    proc = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise KubectlError(list(args), proc.returncode, proc.stderr)
    return proc.stdout if check else proc.stdout + proc.stderr


@contextlib.contextmanager
def scratch_namespace(purpose: str, prefix: str = "e2e-") -> Iterator[str]:
    """A namespace for one module's tests, deleted (without waiting) when they are done."""
    name = f"{prefix}{purpose}-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def get_json(*args: str) -> dict[str, Any] | None:
    proc = subprocess.run(["kubectl", "get", *args, "-o", "json"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr or "not found" in proc.stderr:
            return None
        raise KubectlError(["get", *args], proc.returncode, proc.stderr)
    return json.loads(proc.stdout)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90, interval: float = 0.5) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except KubectlError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions", []) or []:
        if cond.get("type") == type_:
            return cond
    return None


def is_true(obj: dict[str, Any] | None, type_: str) -> bool:
    cond = condition(obj, type_)
    return bool(cond and cond.get("status") == "True")


def wait_crd_established(name: str, timeout: float = 60) -> None:
    """Waits for CRD `name` to be Established by polling: `kubectl wait` fails outright on a CRD whose status
    has no conditions yet, as a just-created one may."""
    jsonpath = "jsonpath={.status.conditions[?(@.type==\"Established\")].status}"
    wait_for(f"the CRD {name} Established", lambda: kubectl("get", f"crd/{name}", "-o", jsonpath) == "True",
             timeout=timeout)
