"""One Prometheus query per poll for every AIService that uses the default RPS query.

A thousand services polling every 15 s would send a thousand queries per poll; the batched query
(`sum by (namespace, aiservice)`) answers all of them in one round trip. Services with a query of
their own still query for themselves. The forecaster's history (range queries, one service each, every few
minutes) is paced by a `RateBudget` instead: at fleet scale they would otherwise all fall on the same poll.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

from .forecast import HistoryView
from .prometheus import BATCH_FAST_RPS_QUERY, BATCH_RPS_QUERY, DEFAULT_KEY_LABELS, Batch, MetricSource
from .sample import Sample


class BatchingSource:
    def __init__(self, inner: MetricSource, clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._clock = clock
        self._lock = threading.Lock()
        self._batches: dict[str, tuple[Batch, float]] = {}  # per batched query: the answer and when it came
        self.batches_fetched = 0

    def _from_batch(self, promql: str, namespace: str, name: str, max_age: float) -> Sample:
        with self._lock:  # one thread refreshes; the others wait for its answer instead of querying too
            batch, fetched_at = self._batches.get(promql, (None, -math.inf))
            if batch is None or self._clock() - fetched_at > max_age:
                batch = self._inner.query_many(promql)
                self._batches[promql] = (batch, self._clock())
                self.batches_fetched += 1
        return batch.get(namespace, name)

    def service_rps(self, namespace: str, name: str, max_age: float) -> Sample:
        """This service's RPS from a batch at most `max_age` seconds old, fetching a new one if needed."""
        return self._from_batch(BATCH_RPS_QUERY, namespace, name, max_age)

    def service_fast_rps(self, namespace: str, name: str, max_age: float) -> Sample:
        """This service's short-window RPS (the fast path's default query), batched the same way."""
        return self._from_batch(BATCH_FAST_RPS_QUERY, namespace, name, max_age)

    def query(self, promql: str) -> Sample:
        return self._inner.query(promql)

    def query_many(self, promql: str, key_labels: Sequence[str] = DEFAULT_KEY_LABELS) -> Batch:
        return self._inner.query_many(promql, key_labels)

    def query_range(self, promql: str, span: float, step: float) -> HistoryView | None:
        inner = getattr(self._inner, "query_range", None)  # a source without history: no forecast
        return inner(promql, span, step) if inner is not None else None


class RateBudget:
    """A token bucket shared by every AIService: `take(n)` says whether n more requests may go now. What is refused
    is tried again at a later poll (a forecast a few polls late is no error; a thousand range queries at once
    stalled every decision of that poll)."""

    def __init__(self, per_second: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second, self.burst, self._clock = per_second, burst, clock
        self._lock = threading.Lock()
        self._tokens, self._at = burst, clock()

    def take(self, n: float = 1.0) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
            self._at = now
            if self._tokens < n:
                return False
            self._tokens -= n
            return True
