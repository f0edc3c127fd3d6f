from __future__ import annotations

from aifleet.autoscaler.batching import BatchingSource
from aifleet.autoscaler.prometheus import BATCH_FAST_RPS_QUERY, BATCH_RPS_QUERY, Batch
from aifleet.autoscaler.sample import Sample


class CountingSource:
    def __init__(self, batch: Batch) -> None:
        self.batch, self.queries = batch, []

    def query(self, promql):
        self.queries.append(promql)
        return Sample.of(1.0)

    def query_many(self, promql, key_labels=("namespace", "aiservice")):
        self.queries.append(promql)
        return self.batch


def test_many_services_share_one_query_per_poll():
    now = [0.0]
    inner = CountingSource(Batch(samples={("a", "x"): Sample.of(5.0), ("b", "y"): Sample.of(7.0)}))
    source = BatchingSource(inner, clock=lambda: now[0])
    assert source.service_rps("a", "x", max_age=7.5).value == 5.0
    assert source.service_rps("b", "y", max_age=7.5).value == 7.0
    assert inner.queries == [BATCH_RPS_QUERY]
    now[0] = 8.0
    source.service_rps("a", "x", max_age=7.5)
    assert len(inner.queries) == 2


def test_a_service_absent_from_the_batch_is_empty_not_zero():
    source = BatchingSource(CountingSource(Batch(samples={})))
    sample = source.service_rps("a", "missing", max_age=10)
    assert not sample.ok and sample.error == "empty"


def test_a_failed_batch_fails_every_service():
    source = BatchingSource(CountingSource(Batch(error=Sample.failure("failed", "connection refused"))))
    assert source.service_rps("a", "x", max_age=10).error == "failed"


def test_the_fast_path_has_its_own_batch():
    now = [0.0]
    inner = CountingSource(Batch(samples={("a", "x"): Sample.of(5.0)}))
    source = BatchingSource(inner, clock=lambda: now[0])
    source.service_rps("a", "x", max_age=7.5)
    source.service_fast_rps("a", "x", max_age=7.5)
    source.service_fast_rps("a", "x", max_age=7.5)
    assert inner.queries == [BATCH_RPS_QUERY, BATCH_FAST_RPS_QUERY]
    assert "irate(nv_inference_request_success" in BATCH_FAST_RPS_QUERY
