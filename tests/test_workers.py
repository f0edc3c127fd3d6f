"""The workers' thread pool: urgent passes before first passes, results and errors back to the caller."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from aifleet.reconciler.workers import FIRST_PASS, URGENT, PriorityWorkers

WHO = contextvars.ContextVar("who", default="nobody")


def test_urgent_passes_overtake_queued_first_passes():
    async def main():
        workers = PriorityWorkers(1)
        gate, order = threading.Event(), []
        blocker = asyncio.ensure_future(workers.run(FIRST_PASS, gate.wait))
        await asyncio.sleep(0.05)  # the only thread is now busy
        firsts = [asyncio.ensure_future(workers.run(FIRST_PASS, order.append, f"first{i}")) for i in range(3)]
        urgent = asyncio.ensure_future(workers.run(URGENT, order.append, "urgent"))
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(blocker, urgent, *firsts)
        workers.shutdown()
        return order

    assert asyncio.run(main()) == ["urgent", "first0", "first1", "first2"]


def test_results_errors_and_context_reach_the_caller():
    async def main():
        workers = PriorityWorkers(2)
        WHO.set("worker of ns/a")
        seen = await workers.run(URGENT, WHO.get)
        with pytest.raises(ValueError, match="bad"):
            await workers.run(URGENT, lambda: (_ for _ in ()).throw(ValueError("bad")))
        total = await workers.run(URGENT, sum, [1, 2, 3])
        workers.shutdown()
        return seen, total

    assert asyncio.run(main()) == ("worker of ns/a", 6)
