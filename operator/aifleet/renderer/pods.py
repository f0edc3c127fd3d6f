"""Why a workload's pods do not become available, in words a person on call can act on.

A Deployment's status only counts pods; the reason a model fails to load, an image is missing or no node fits is
on the pods. These pure functions read pods as the API returns them; the reconciler lists them only for a
workload that has stopped making progress, so a healthy fleet costs no extra request.
"""

from __future__ import annotations

from typing import Any

from ..api.timestamps import parse_timestamp

# How long a workload with unavailable pods may go without progress before its pods are read.
STALL_SECONDS = 20.0
# Waiting reasons that mean the container will not start by itself.
_STUCK = {
    "CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
}
_MAX_DETAIL = 300


def stalled(workload: dict[str, Any] | None, now: float) -> bool:
    """Pods are missing and the Deployment has not made progress (a pod becoming available) for a while."""
    if workload is None:
        return False
    status = workload.get("status") or {}
    wanted = (workload.get("spec") or {}).get("replicas", 1)
    if (status.get("availableReplicas") or 0) >= wanted:
        return False
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing":
            since = cond.get("lastUpdateTime") or cond.get("lastTransitionTime")
            try:
                return now - parse_timestamp(since) >= STALL_SECONDS
            except (TypeError, ValueError):
                return False
    return False


def pod_problems(pods: list[dict[str, Any]], container: str) -> list[str]:
    """One sentence per failing pod: not schedulable, a container that cannot start, or one that keeps exiting."""
    problems = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        problem = _pod_problem(pod, container)
        if problem:
            problems.append(f"pod {pod['metadata']['name']} {problem}")
    return problems


def _pod_problem(pod: dict[str, Any], container: str) -> str | None:
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"cannot be scheduled: {cond.get('message') or cond.get('reason')}"
    for c in status.get("containerStatuses") or []:
        if c.get("name") != container:
            continue
        waiting = (c.get("state") or {}).get("waiting") or {}
        last = (c.get("lastState") or {}).get("terminated") or {}
        if last and (waiting.get("reason") == "CrashLoopBackOff" or c.get("restartCount", 0) > 0):
            return f"keeps exiting (code {last.get('exitCode')}): {_last_words(last)}"
        if waiting.get("reason") in _STUCK:
            return f"cannot start: {waiting.get('reason')}: {_short(waiting.get('message') or '')}"
    return None


def _last_words(terminated: dict[str, Any]) -> str:
    """The line of the container's last words that says why: Triton's own error, else its last line."""
    lines = [line.strip() for line in (terminated.get("message") or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if "failed to load" in line or "error:" in line.lower():
            return _short(line)
    return _short(lines[-1]) if lines else terminated.get("reason") or "no message"


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."
