"""One AIService's passes and when the next one is due: what its worker runs when poked, and what the fleet's sweep
(sweep.py) runs when only time brings a pass (the metrics poll, the resync, a retry timer of an engine).

Both run `Job.step` in a worker thread, one at a time per AIService (`Job.lock`); the schedule it keeps is the
whole state of the AIService's timers, so whoever runs the next step finds it where the last one left it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..clients.kube import KubeError, UnreachableError
from ..observability import metrics
from ..renderer.component import Lookup
from .passes import Engines, PassResult, aligned_delay, run_pass
from .sync import Emit

log = logging.getLogger("aifleet.handlers")

MAX_BACKOFF_SECONDS = 300.0
OUTAGE_RETRY_SECONDS = 30.0  # while the API server is away; its return wakes every worker at once anyway
Swept = Literal["ran", "busy", "handed off"]  # what became of a pass the sweep asked for


@dataclass
class Schedule:
    """When the next pass is due, and why."""

    resync_seconds: float
    next_poll: float = 0.0  # the operator engine's next metrics poll (inf: the AIService has none)
    next_full: float = 0.0  # a pass must look at everything even if nothing was poked: resync, retries, timers
    settled: bool = False  # the last full pass found every component Ready
    failures: int = 0  # passes failed in a row; the next one is a retry after a backoff

    def due_at(self) -> float:
        """While retrying, only the retry is due (a poll would be a retry before its backoff)."""
        return self.next_full if self.failures else min(self.next_poll, self.next_full)

    @property
    def quiet(self) -> bool:
        """Nothing but time will bring its next pass, and that pass will most likely find nothing to do: the fleet's
        sweep may run it, and the worker waits for pokes only."""
        return self.settled and not self.failures

    def plan(self, now: float, poked: bool) -> tuple[bool, bool]:
        """(poll due, poll only): see `run_pass`."""
        poll_due = now >= self.next_poll
        return poll_due, poll_due and not poked and now < self.next_full and self.settled

    def passed(self, done: PassResult, poll_due: bool, now: float) -> None:
        if done.handed_off:
            return  # still due: the worker runs it now
        self.failures = 0
        if done.reconciled:
            wake_in = done.wake_in if done.wake_in is not None else self.resync_seconds
            self.next_full = now + min(self.resync_seconds, wake_in)
            self.settled = done.settled
        if done.poll_interval is None:
            self.next_poll = math.inf
        elif poll_due or self.next_poll == math.inf:
            # No Deployment to decide for yet: look again shortly rather than a whole poll later.
            self.next_poll = now + (aligned_delay(done.poll_interval) if done.polled else 1.0)

    def failed(self, exc: Exception, now: float) -> float:
        """A pass raised: back off, and make the retry look at everything. Returns the wait."""
        self.failures += 1
        wait = min(MAX_BACKOFF_SECONDS, 2.0**self.failures)
        if isinstance(exc, UnreachableError):
            # Said once for the whole process (clients/kube.py's Reachability); its return wakes every worker.
            wait = min(wait, OUTAGE_RETRY_SECONDS)
        self.next_full = now + wait
        return wait


class Job:
    """One AIService's passes: its inputs, its schedule, and the lock that keeps its passes one at a time."""

    def __init__(
        self, key: tuple[str, str], lookup: Lookup, engines: Engines, emit: Emit, resync_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key, self.lookup, self.engines, self.emit, self.clock = key, lookup, engines, emit, clock
        self.schedule = Schedule(resync_seconds)
        self.lock = threading.Lock()
        self.ready: bool | None = None  # the Ready condition as the last pass left it (None: not known yet)

    def step(self, snapshot: dict[str, Any], poked: bool) -> None:
        """One pass, in a worker thread: `snapshot` is the AIService as it is now, `poked` whether a watch event
        (or anything but time) asked for it."""
        with self.lock:
            self._step(snapshot, poked)

    def try_step(self, snapshot: dict[str, Any]) -> Swept:
        """The sweep's pass, unless the worker is running one right now. A poll that finds something to do is left
        to the worker (see `run_pass`'s `hand_off`)."""
        if not self.lock.acquire(blocking=False):
            return "busy"
        try:
            done = self._step(snapshot, poked=False, hand_off=True)
        finally:
            self.lock.release()
        return "handed off" if done is not None and done.handed_off else "ran"

    def _step(self, snapshot: dict[str, Any], poked: bool, hand_off: bool = False) -> PassResult | None:
        schedule = self.schedule
        started = self.clock()
        poll_due, poll_only = schedule.plan(started, poked)
        try:
            done = run_pass(snapshot, self.lookup, self.engines, self.emit, poll_due, poll_only, hand_off)
        except Exception as exc:  # noqa: BLE001 - one bad object must not stop its worker
            now = self.clock()
            metrics.record_reconcile("error", now - started)
            metrics.record_error(exc)
            wait = schedule.failed(exc, now)
            outage = isinstance(exc, UnreachableError)
            namespace, name = self.key
            (log.debug if outage else log.warning)(
                "reconcile failed, retrying",
                exc_info=not isinstance(exc, KubeError),
                extra={"aiservice": f"{namespace}/{name}", "error": str(exc),
                       "status": getattr(exc, "status", None), "retry_in": wait},
            )
            return None
        now = self.clock()
        if not done.handed_off:
            metrics.record_reconcile(
                ("changed" if done.changed else "unchanged") if done.reconciled else "polled", now - started
            )
        schedule.passed(done, poll_due, now)
        if done.ready is not None:
            self.ready = done.ready
        return done
