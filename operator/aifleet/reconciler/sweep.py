"""The fleet's sweep: the passes that only time brings (the metrics poll, the resync), for every quiet AIService at
once, on a few threads.

A quiet fleet of a thousand AIServices polls a thousand times per poll interval, all at the same aligned instant.
Run by each AIService's own worker, every one of those passes is a wake-up, a turn in the queue and a hand-off to a
thread, and at that instant a thousand of them contend for the same threads and locks: most of a quiet operator's
CPU went there, not into the passes (benchmarks/results/fleet-findings.md). The sweep runs the same passes
(`Job.step`) one after the other on `SWEEP_THREADS` threads; only an AIService whose pass finds something to do (a
component on its way, a failure) goes back to its worker, which is woken for it. Watch events still poke the
workers directly, so the sweep never delays a reaction to a change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..clients.kube import API_SERVER
from .schedule import Job
from .triggers import Trigger

log = logging.getLogger("aifleet.sweep")
SWEEP_THREADS = 4
# Just after each wall-clock second: the aligned poll instants (passes.aligned_delay) are whole seconds.
_OFFSET_SECONDS = 0.02


@dataclass(frozen=True)
class Entry:
    job: Job
    trigger: Trigger
    snapshot: Callable[[], dict[str, Any]]  # the AIService as it is now (called on the event loop)


class Sweep:
    def __init__(self, threads: int = SWEEP_THREADS, clock: Callable[[], float] = time.monotonic) -> None:
        self.threads, self._clock = threads, clock
        self._entries: dict[tuple[str, str], Entry] = {}
        self.passes = 0  # run by the sweep since the start (tests, debugging)

    def add(self, entry: Entry) -> None:
        self._entries[entry.job.key] = entry

    def remove(self, entry: Entry) -> None:
        if self._entries.get(entry.job.key) is entry:
            del self._entries[entry.job.key]

    def due(self) -> list[Entry]:
        """Quiet AIServices whose next pass time has brought, and that no poke has handed to their worker."""
        now = self._clock()
        # Due first: once a second over every AIService, and most of them are not due.
        return [e for e in self._entries.values()
                if e.job.schedule.due_at() <= now and e.job.schedule.quiet and not e.trigger.poked
                and not e.trigger.deleted and e.trigger.waiting is None]

    async def run(self) -> None:
        """Forever, once a second; cancelled at shutdown."""
        while True:
            await asyncio.sleep(1.0 - time.time() % 1.0 + _OFFSET_SECONDS)
            try:
                await self.sweep()
            except Exception:  # the next second's sweep tries again; the workers' safety net holds
                log.exception("sweep failed")

    async def sweep(self) -> None:
        due = self.due()
        if not due:
            return
        if API_SERVER.down:
            # Every pass would fail the same way: each worker backs off on its own and is woken when it returns.
            for entry in due:
                entry.trigger.set()
            return
        work = [(entry, entry.snapshot()) for entry in due]
        size = -(-len(work) // self.threads)
        chunks = [work[i:i + size] for i in range(0, len(work), size)]
        handed = await asyncio.gather(*(asyncio.to_thread(self._run, chunk) for chunk in chunks))
        for entry in due:
            if entry.job.ready is not None:
                entry.trigger.ready = entry.job.ready
            if not entry.job.schedule.quiet:
                entry.trigger.set()  # something to follow now (a failure to retry, a component on its way)
        for entry in (e for chunk in handed for e in chunk):
            entry.trigger.set()  # its poll found something to do: its worker runs the pass

    def _run(self, work: list[tuple[Entry, dict[str, Any]]]) -> list[Entry]:
        """One chunk, one pass after the other. Returns the entries handed back to their workers."""
        handed: list[Entry] = []
        for entry, snapshot in work:
            result = entry.job.try_step(snapshot)
            if result == "ran":
                self.passes += 1
            elif result == "handed off":
                handed.append(entry)
            if API_SERVER.down:
                break  # the rest waits for the next sweep, which hands them to their workers
        return handed
