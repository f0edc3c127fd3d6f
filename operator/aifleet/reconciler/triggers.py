"""Per-AIService wake-up signals: watch handlers poke, the AIService's worker waits."""

from __future__ import annotations

import asyncio
import threading


class Trigger:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def set(self) -> None:
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self._loop:
            self._event.set()
        else:  # from a worker thread: asyncio.Event is not thread-safe
            self._loop.call_soon_threadsafe(self._event.set)

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
        self._lock = threading.Lock()
        self._triggers: dict[tuple[str, str], Trigger] = {}

    def register(self, namespace: str, name: str) -> Trigger:
        trigger = Trigger(asyncio.get_running_loop())
        with self._lock:
            self._triggers[(namespace, name)] = trigger
        return trigger

    def unregister(self, namespace: str, name: str, trigger: Trigger) -> None:
        with self._lock:
            if self._triggers.get((namespace, name)) is trigger:
                del self._triggers[(namespace, name)]

    def poke(self, namespace: str, name: str) -> None:
        with self._lock:
            trigger = self._triggers.get((namespace, name))
        if trigger is not None:
            trigger.set()
