"""Per-AIService wake-up signals and the turns of their passes: watch handlers poke, the AIService's worker waits
for a poke, then for its turn to run a pass.

Everything here runs on the operator's event loop (the watch handlers and the workers are coroutines), so plain
asyncio primitives and dicts need no locks; a poke from a worker thread goes through `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class Trigger:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.deleted = False  # the AIService is gone: its worker stops
        self.urgent = False  # its next pass is what someone waits for: it goes before the others (see PassSlots)
        self.ready = False  # the AIService's Ready condition as its last pass left it
        self.waiting: asyncio.Future[None] | None = None  # its place in the queue of PassSlots, while it waits

    @property
    def poked(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()
        self.urgent = False

    async def wait(self, timeout: float, stopped) -> None:
        """Until poked, the timeout passes, or the daemon is asked to stop."""
        waiters = [asyncio.ensure_future(self._event.wait()), asyncio.ensure_future(stopped.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


class PassSlots:
    """At most `size` passes run at once; the others wait for their turn, first come first served, except that a
    pass someone waits on (its fleet just became available, and the AIService does not say Ready yet) goes first.

    First come first served, because while a fleet of AIServices is created in bulk a pass that waits its turn then
    covers every change of its AIService since: passes and writes stay few. The exception, because the write that
    says Ready is the one the person who applied the fleet watches for, and it should not wait behind the creation
    of every other AIService."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._urgent) + len(self._normal)

    @contextlib.asynccontextmanager
    async def turn(self, trigger: Trigger) -> AsyncIterator[None]:
        if self._free > 0 and not self.queued:
            self._free -= 1
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            (self._urgent if trigger.urgent else self._normal).append(waiter)
            trigger.waiting = waiter
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # handed a turn just as the worker was stopped: pass it on
                else:
                    self._drop(waiter)
                raise
            finally:
                trigger.waiting = None
        try:
            yield
        finally:
            self._release()

    def promote(self, trigger: Trigger) -> None:
        """The AIService's pass, already waiting, turned urgent."""
        waiter = trigger.waiting
        if waiter is not None and waiter in self._normal:
            self._normal.remove(waiter)
            self._urgent.append(waiter)

    def _drop(self, waiter: asyncio.Future[None]) -> None:
        for lane in (self._urgent, self._normal):
            if waiter in lane:
                lane.remove(waiter)

    def _release(self) -> None:
        for lane in (self._urgent, self._normal):
            while lane:
                waiter = lane.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the turn passes straight to it
                    return
        self._free += 1


class Triggers:
    def __init__(self) -> None:
        self._triggers: dict[tuple[str, str], Trigger] = {}
        self.slots: PassSlots | None = None  # set at startup, on the loop

    def register(self, namespace: str, name: str) -> Trigger:
        trigger = self._triggers[(namespace, name)] = Trigger()
        return trigger

    def unregister(self, namespace: str, name: str, trigger: Trigger) -> None:
        if self._triggers.get((namespace, name)) is trigger:
            del self._triggers[(namespace, name)]

    def stop(self, namespace: str, name: str) -> None:
        """The AIService was deleted: wake its worker to stop for good."""
        trigger = self._triggers.get((namespace, name))
        if trigger is not None:
            trigger.deleted = True
            trigger.set()

    def poke(self, namespace: str, name: str) -> None:
        trigger = self._triggers.get((namespace, name))
        if trigger is not None:
            trigger.set()

    def fleet_available(self, namespace: str, name: str) -> None:
        """A Deployment of the AIService reports Available: if the AIService does not say Ready yet, its next pass
        will, and goes first."""
        trigger = self._triggers.get((namespace, name))
        if trigger is None:
            return
        if not trigger.ready:
            trigger.urgent = True
            if self.slots is not None:
                self.slots.promote(trigger)
        trigger.set()

    def poke_all(self) -> None:
        for trigger in self._triggers.values():
            trigger.set()
