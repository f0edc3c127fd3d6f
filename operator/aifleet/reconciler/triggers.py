"""Per-AIService wake-up signals: watch handlers poke, the AIService's worker waits.

Everything here runs on the operator's event loop (the watch handlers and the workers are coroutines), so plain
asyncio.Events and a dict need no locks; a poke from a worker thread would need `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio


class Trigger:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.deleted = False  # the AIService is gone: its worker stops

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, timeout: float, stopped) -> None:
        """Until poked, the timeout passes, or the daemon is asked to stop."""
        waiters = [asyncio.ensure_future(self._event.wait()), asyncio.ensure_future(stopped.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


class Triggers:
    def __init__(self) -> None:
        self._triggers: dict[tuple[str, str], Trigger] = {}

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

    def poke_all(self) -> None:
        for trigger in self._triggers.values():
            trigger.set()
