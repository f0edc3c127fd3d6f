"""Threads for the workers' blocking passes, most urgent first.

A fleet created in bulk queues a thousand first passes, each several API round trips (it creates the children).
In a first-in-first-out pool, the pass that would report a fleet Ready, or act on a poll, waits behind all of
them: the fleet is available for a minute before its AIService says so. Here the passes of AIServices already
reconciled go first (they are short), and first passes take the rest of the threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import math
import queue
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")

URGENT = 0  # an AIService this process has reconciled before: status, polls, drift
FIRST_PASS = 1  # creates an AIService's children


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():  # the awaiting worker was cancelled meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class PriorityWorkers:
    def __init__(self, threads: int, name: str = "aifleet") -> None:
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()  # first in, first out within a priority
        self._threads = [threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    async def run(self, priority: int, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on a worker thread, in the caller's context (kopf posts events through it)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._queue.put((priority, next(self._order), (contextvars.copy_context(), fn, args, loop, future)))
        return await future

    def pending(self) -> int:
        return self._queue.qsize()

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put((math.inf, next(self._order), None))

    def _serve(self) -> None:
        while True:
            _, _, job = self._queue.get()
            if job is None:
                return
            context, fn, args, loop, future = job
            if future.cancelled():
                continue
            try:
                result, exc = context.run(fn, *args), None
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
                result, exc = None, error
            try:
                loop.call_soon_threadsafe(_settle, future, result, exc)
            except RuntimeError:  # the loop is closed: the operator is shutting down
                return
