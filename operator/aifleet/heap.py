"""The operator's heap and Python's cyclic garbage collector.

Nearly everything the operator keeps lives as long as what it watches: the children of a thousand AIServices, their
renderings, kopf's memory of each object, a few million small objects in all. The collector scans every one of them
at each full collection, and it runs one whenever what survived since the last has grown by a quarter: while a fleet
converged that was about a sixth of the operator's CPU (benchmarks/results/fleet-findings.md, round 5).

So, once a minute, what has survived is frozen (`gc.freeze`): out of the collector's reach, and freed by reference
counting as before once nothing refers to it. The one thing reference counting cannot free, a reference cycle that
turned to garbage after it was frozen, waits for the hourly reclaim: unfreeze, one full collection, freeze again.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

FREEZE_SECONDS = 60.0
RECLAIM_SECONDS = 3600.0


class HeapKeeper:
    def __init__(self, reclaim_seconds: float = RECLAIM_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.reclaim_seconds, self._clock = reclaim_seconds, clock
        self._reclaimed = clock()

    def tick(self) -> None:
        """Freeze what survived; once per `reclaim_seconds`, collect everything first."""
        now = self._clock()
        if now - self._reclaimed >= self.reclaim_seconds:
            gc.unfreeze()
            gc.collect()
            self._reclaimed = now
        else:
            gc.collect(1)  # the young garbage goes now, rather than be kept until the reclaim
        gc.freeze()
