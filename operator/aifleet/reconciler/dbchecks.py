"""The database checks through the poolers, on their own cadence and off the reconcile path.

A pass hands over where its pooler's check should log in (or None: no pooler, no ready pod, no Service yet) and
reads the last result; it never waits for a check. A thread of this engine starts each check when it is due (every
30 s while the database answers, every 5 s while it does not), at most one in flight per AIService, in a small pool
of threads, and wakes the AIService's worker only when the result changes what its status says. A fleet without
poolers has no entry, no thread and no work here; a quiet fleet with poolers runs checks, not passes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..api.dbcheck import CheckTarget, DatabaseCheck
from ..clients import dbcheck

log = logging.getLogger("aifleet.dbcheck")

HEALTHY_EVERY_SECONDS = 30.0
FAILING_EVERY_SECONDS = 5.0
CHECK_THREADS = 8

Key = tuple[str, str]  # (namespace, name)
Check = Callable[[CheckTarget], DatabaseCheck]
Wake = Callable[[str, str], None]


@dataclass
class CheckMemory:
    target: CheckTarget
    result: DatabaseCheck | None = None
    due: float = 0.0
    in_flight: bool = False
    unreachable: int = 0  # checks in a row that could not reach the pooler


def verdict(result: DatabaseCheck | None) -> tuple[str, str]:
    """What a result changes in the status: nothing for a passing check (or none yet), else its outcome and words."""
    if result is None or result.outcome == "ok":
        return ("ok", "")
    return (result.outcome, result.error)


def next_due(result: DatabaseCheck, now: float, unreachable: int = 0, healthy: float = HEALTHY_EVERY_SECONDS,
             failing: float = FAILING_EVERY_SECONDS) -> float:
    """A database that answers is checked again after `healthy`; one that does not after `failing`, so its return
    is seen within it. A pooler out of reach is tried again soon once (a new Service may not be routed yet), then
    after `healthy`: it says nothing about the database, and an operator outside the cluster network would
    otherwise keep a thread busy per pooler."""
    if result.outcome == "ok" or (result.outcome == "unreachable" and unreachable > 1):
        return now + healthy
    return now + failing


class DatabaseChecks:
    """Per AIService: the target, the last result, when the next check is due, whether one runs."""

    def __init__(self, check: Check = dbcheck.check, clock: Callable[[], float] = time.monotonic,
                 threads: int = CHECK_THREADS, background: bool = True) -> None:
        self._check, self._clock, self._threads, self._background = check, clock, threads, background
        self._lock = threading.Condition()
        self._memory: dict[Key, CheckMemory] = {}
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._scheduler: threading.Thread | None = None
        self._said_unreachable = False
        self.wake: Wake | None = None  # set by the handlers: pokes the AIService's worker

    def observe(self, key: Key, target: CheckTarget | None) -> DatabaseCheck | None:
        """Called by each pass: where to check (None: do not), and the last result for that target."""
        if target is None and key not in self._memory:
            return None  # no pooler (most of a fleet): no lock, no work
        with self._lock:
            if target is None:
                self._memory.pop(key, None)
                return None
            memory = self._memory.get(key)
            if memory is None or memory.target != target:
                # New, or the Service, the database or the password changed: the old answer says nothing now.
                self._memory[key] = memory = CheckMemory(target, due=self._clock())
                self._lock.notify_all()
            result = memory.result
        if self._background:
            self._start()
        return result

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._memory.pop((namespace, name), None)

    def due(self) -> list[tuple[Key, CheckTarget]]:
        """The checks to start now, marked in flight (none is started twice)."""
        now = self._clock()
        with self._lock:
            ready = [(key, m) for key, m in self._memory.items() if not m.in_flight and m.due <= now]
            for _, memory in ready:
                memory.in_flight = True
            return [(key, memory.target) for key, memory in ready]

    def run(self, key: Key, target: CheckTarget) -> bool:
        """Run one check and record it; whether the AIService's status should change (its worker is woken)."""
        try:
            result = self._check(target)
        except Exception as exc:  # a check that breaks is a check that could not run
            log.warning("database check failed to run", exc_info=True, extra={"aiservice": "/".join(key)})
            result = DatabaseCheck(outcome="unreachable", error=type(exc).__name__, pooler=f"{target.host}:{target.port}",
                                   server=target.server)
        return self.record(key, target, result)

    def record(self, key: Key, target: CheckTarget, result: DatabaseCheck) -> bool:
        with self._lock:
            memory = self._memory.get(key)
            if memory is None or memory.target != target:
                return False  # forgotten or retargeted meanwhile: this answer is about something else
            before = verdict(memory.result)
            memory.unreachable = memory.unreachable + 1 if result.outcome == "unreachable" else 0
            memory.in_flight, memory.due = False, next_due(result, self._clock(), memory.unreachable)
            # A pooler out of reach once is often a Service kube-proxy has not routed yet (a new pooler): the
            # status says so only when the next check, on the failing cadence, cannot reach it either.
            if memory.unreachable != 1:
                memory.result = result
            self._lock.notify_all()
            shown = memory.result
        if shown is not None:
            self._log(key, shown)
        return verdict(shown) != before

    def _log(self, key: Key, result: DatabaseCheck) -> None:
        if result.outcome == "unreachable" and not self._said_unreachable:
            self._said_unreachable = True  # once: outside the cluster network, every pooler is out of reach
            log.warning("cannot reach a pooler Service to check its database; the pooler state follows its pods",
                        extra={"aiservice": "/".join(key), "pooler": result.pooler, "error": result.error})
        elif result.outcome != "unreachable" and self._said_unreachable:
            self._said_unreachable = False
            log.info("reached a pooler Service again", extra={"aiservice": "/".join(key), "pooler": result.pooler})

    def _start(self) -> None:
        with self._lock:
            if self._scheduler is not None:
                return
            self._pool = concurrent.futures.ThreadPoolExecutor(self._threads, thread_name_prefix="aifleet-dbcheck")
            self._scheduler = threading.Thread(target=self._schedule, name="aifleet-dbcheck", daemon=True)
        self._scheduler.start()

    def _schedule(self) -> None:
        assert self._pool is not None
        while True:
            for key, target in self.due():
                self._pool.submit(self._run_and_wake, key, target)
            with self._lock:
                self._lock.wait(self._wait_seconds())

    def _wait_seconds(self) -> float:
        waiting = [m.due for m in self._memory.values() if not m.in_flight]
        return max(0.0, min(waiting) - self._clock()) if waiting else 60.0

    def _run_and_wake(self, key: Key, target: CheckTarget) -> None:
        if self.run(key, target) and self.wake is not None:
            self.wake(*key)
