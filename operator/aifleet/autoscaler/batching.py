"""One Prometheus query per poll for every AIService that uses the default RPS query.

A thousand services polling every 15 s would send a thousand queries per poll; the batched query
(`sum by (namespace, aiservice)`) answers all of them in one round trip. Services with a query of
their own still query for themselves.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

from .forecast import HistoryView
from .prometheus import BATCH_RPS_QUERY, DEFAULT_KEY_LABELS, Batch, MetricSource
from .sample import Sample


class BatchingSource:
    def __init__(self, inner: MetricSource, clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._clock = clock
        self._lock = threading.Lock()
        self._batch: Batch | None = None
        self._fetched_at = -math.inf
        self.batches_fetched = 0

    def service_rps(self, namespace: str, name: str, max_age: float) -> Sample:
        """This service's RPS from a batch at most `max_age` seconds old, fetching a new one if needed."""
        with self._lock:  # one thread refreshes; the others wait for its answer instead of querying too
            if self._batch is None or self._clock() - self._fetched_at > max_age:
                self._batch = self._inner.query_many(BATCH_RPS_QUERY)
                self._fetched_at = self._clock()
                self.batches_fetched += 1
            batch = self._batch
        return batch.get(namespace, name)

    def query(self, promql: str) -> Sample:
        return self._inner.query(promql)

    def query_many(self, promql: str, key_labels: Sequence[str] = DEFAULT_KEY_LABELS) -> Batch:
        return self._inner.query_many(promql, key_labels)

    def query_range(self, promql: str, span: float, step: float) -> HistoryView | None:
        inner = getattr(self._inner, "query_range", None)  # a source without history: no forecast
        return inner(promql, span, step) if inner is not None else None
