"""The operator's heap: what survives is frozen out of the collector's reach, and a cycle that turned to garbage
after it was frozen is still reclaimed, at the next reclaim."""

from __future__ import annotations

import gc
import weakref

import pytest

from aifleet.heap import HeapKeeper


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture(autouse=True)
def _unfrozen():
    yield
    gc.unfreeze()


def test_survivors_are_frozen_and_a_frozen_cycle_is_reclaimed_at_the_next_reclaim():
    now = [0.0]
    keeper = HeapKeeper(reclaim_seconds=3600, clock=lambda: now[0])
    node = _Node()
    gone = weakref.ref(node)
    keeper.tick()
    assert gc.get_freeze_count() > 0
    del node  # garbage now, but frozen: no collection reaches it
    gc.collect()
    assert gone() is not None
    now[0] = 3599
    keeper.tick()
    assert gone() is not None
    now[0] = 3600
    keeper.tick()
    assert gone() is None


def test_young_garbage_goes_before_the_freeze():
    keeper = HeapKeeper(clock=lambda: 0.0)
    node = _Node()
    gone = weakref.ref(node)
    del node
    keeper.tick()
    assert gone() is None
