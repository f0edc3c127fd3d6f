"""Where the traffic signal comes from: one small interface, one Prometheus implementation.

A source turns a PromQL instant query into a `Sample` (a value, or the kind of error) and never
raises for a bad answer: the policy decides what an error means (hold, fallback), the source only
says which one it was. An empty vector is `empty`, never zero.

`query_many` answers for many AIServices with one query (`sum by (namespace, aiservice)`), so a
thousand services cost one Prometheus round trip per poll instead of a thousand.

Secrets: the bearer token lives only in the request headers; it is not in `repr()`, logs or
`Sample.detail`, and neither is user:password from an address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from ..api.children import triton_pod_regex
from .forecast import HistoryView
from .sample import Sample

HTTP_POOL_SIZE = 32  # the operator's worker threads (reconciler/handlers.py)

log = logging.getLogger(__name__)

# One query for every AIService behind a Prometheus: the service name is recovered from the pod name, so no
# relabelling has to be set up for it to work.
BATCH_RPS_QUERY = (
    "sum by (namespace, aiservice) (label_replace("
    f'rate(nv_inference_request_success{{pod=~"{triton_pod_regex(".+")}"}}[1m]), '
    f'"aiservice", "$1", "pod", "{triton_pod_regex("(.+)")}"))'
)
# The fast path's default short-window rate, batched the same way.
BATCH_FAST_RPS_QUERY = BATCH_RPS_QUERY.replace("rate(nv_inference_request_success", "irate(nv_inference_request_success")
DEFAULT_KEY_LABELS = ("namespace", "aiservice")


class MetricSource(Protocol):
    def query(self, promql: str) -> Sample:
        """One sample from a query that must return exactly one series (or a scalar)."""
        ...

    def query_many(self, promql: str, key_labels: Sequence[str] = DEFAULT_KEY_LABELS) -> Batch:
        """One sample per series, keyed by the values of `key_labels`."""
        ...


class HistorySource(Protocol):
    def query_range(self, promql: str, span: float, step: float) -> HistoryView | None:
        """The one series of `promql` over the last `span` seconds at `step`; None when the query failed."""
        ...


def parse_range(result: Any, step: float) -> HistoryView | None:
    """A range query's matrix of exactly one series as a HistoryView; NaN and infinite points are left out."""
    if not isinstance(result, list) or len(result) != 1:
        return None
    points = []
    for t, v in result[0].get("values") or []:
        value = float(v)
        if value == value and abs(value) != float("inf"):
            points.append((float(t), value))
    return HistoryView(step=step, points=tuple(points))


@dataclass(frozen=True)
class Batch:
    """The answer to one batched query. `error` is set when the whole query failed."""

    samples: dict[tuple[str, ...], Sample] = field(default_factory=dict)
    error: Sample | None = None

    def get(self, *key: str) -> Sample:
        if self.error is not None:
            return self.error
        # A service absent from a successful batch has no series: the same as an empty vector.
        return self.samples.get(tuple(key), Sample.failure("empty", "no series for this service"))


def redact_url(url: str) -> str:
    """The URL without user:password, fit for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def parse_result(result: Any, now: float) -> list[tuple[dict[str, str], Sample]]:
    """Prometheus `data.result` -> [(labels, Sample)]. Raises ValueError on a shape it does not know."""
    # scalar / string result types: [<unix time>, "<value>"]
    if isinstance(result, list) and len(result) == 2 and isinstance(result[0], (int, float)) and not isinstance(result[0], bool):
        return [({}, Sample.of(result[1], float(result[0])))]
    if not isinstance(result, list):
        raise ValueError("result is not a list")
    out = []
    for series in result:
        if not isinstance(series, dict):
            raise ValueError("series is not an object")
        if "value" in series:
            point = series["value"]
        elif series.get("values"):  # a range vector: take the newest point
            point = series["values"][-1]
        else:
            raise ValueError("series has no value")
        if not (isinstance(point, list) and len(point) == 2):
            raise ValueError("value is not [time, value]")
        try:
            ts = float(point[0])
        except (TypeError, ValueError):
            ts = now
        labels = series.get("metric") or {}
        out.append(({str(k): str(v) for k, v in labels.items()}, Sample.of(point[1], ts)))
    return out


class PrometheusSource:
    """MetricSource backed by prometheus-api-client's PrometheusConnect (synchronous, `requests`)."""

    def __init__(
        self,
        address: str,
        *,
        timeout_seconds: float = 5,
        bearer_token: str | None = None,
        insecure_skip_tls_verify: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import requests
        from prometheus_api_client import PrometheusConnect
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self._address = redact_url(address)
        self._timeout = timeout_seconds
        self._clock = clock
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else None
        # No retries inside one poll: the next poll is the retry, and a slow retry loop would make
        # one service's outage delay every other service's decision.
        session = requests.Session()
        session.verify = not insecure_skip_tls_verify
        self._client = PrometheusConnect(
            url=address.rstrip("/"),
            headers=headers,
            disable_ssl=insecure_skip_tls_verify,
            retry=Retry(total=0, raise_on_status=False),
            timeout=timeout_seconds,
            session=session,
        )
        # One source serves every AIService polling this Prometheus, from the operator's worker threads: a pool as
        # large as their number keeps their connections (the library mounts requests' default pool of 10, which
        # dropped a connection per extra thread). Mounted after the library's own adapter, so it replaces it.
        session.mount(address.rstrip("/"), HTTPAdapter(pool_maxsize=HTTP_POOL_SIZE,
                                                       max_retries=Retry(total=0, raise_on_status=False)))

    def __repr__(self) -> str:  # never the headers
        return f"PrometheusSource({self._address!r})"

    def _raw(self, promql: str) -> Any:
        return self._client.custom_query(query=promql, timeout=self._timeout)

    def _fetch(self, promql: str) -> tuple[list[tuple[dict[str, str], Sample]] | None, Sample | None]:
        now = self._clock()
        try:
            result = self._raw(promql)
        except Exception as exc:  # noqa: BLE001 - every failure of the request is one kind: failed
            detail = _describe_failure(exc)
            log.warning("prometheus query failed at %s: %s", self._address, detail)
            return None, Sample.failure("failed", detail, unreachable=detail in UNREACHABLE)
        try:
            return parse_result(result, now), None
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            return None, Sample.failure("failed", f"unexpected answer: {exc}")

    def query(self, promql: str) -> Sample:
        series, error = self._fetch(promql)
        if error is not None:
            return error
        assert series is not None
        if not series:
            return Sample.failure("empty", "query returned no series")
        if len(series) > 1:
            return Sample.failure("invalid", f"query returned {len(series)} series; aggregate it to one (e.g. sum(...))")
        return series[0][1]

    def query_many(self, promql: str, key_labels: Sequence[str] = DEFAULT_KEY_LABELS) -> Batch:
        series, error = self._fetch(promql)
        if error is not None:
            return Batch(error=error)
        assert series is not None
        samples: dict[tuple[str, ...], Sample] = {}
        for labels, sample in series:
            key = tuple(labels.get(k, "") for k in key_labels)
            if key in samples:  # the query did not aggregate by key_labels: refuse to guess
                samples[key] = Sample.failure("invalid", "several series for one key")
            else:
                samples[key] = sample
        return Batch(samples=samples)

    def query_range(self, promql: str, span: float, step: float) -> HistoryView | None:
        """The forecaster's history: a range query, so an operator restart forgets nothing."""
        from datetime import UTC, datetime

        end = self._clock()
        try:
            result = self._client.custom_query_range(
                query=promql,
                start_time=datetime.fromtimestamp(end - span, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{step:g}s",
                timeout=self._timeout,
            )
            return parse_range(result, step)
        except Exception as exc:  # noqa: BLE001 - no history is no forecast, never an error of the decision
            log.warning("prometheus range query failed at %s: %s", self._address, _describe_failure(exc))
            return None

    async def aquery(self, promql: str) -> Sample:
        """`query` off the event loop (kopf handlers are async; requests is not)."""
        return await asyncio.to_thread(self.query, promql)

    async def aquery_many(self, promql: str, key_labels: Sequence[str] = DEFAULT_KEY_LABELS) -> Batch:
        return await asyncio.to_thread(self.query_many, promql, key_labels)


# The failures of `_describe_failure` that mean Prometheus did not answer at all (as opposed to an error answer).
UNREACHABLE = ("connection failed", "timeout")


def _describe_failure(exc: Exception) -> str:
    """A failure in words without URLs, headers or bodies (they may carry credentials)."""
    import requests
    from prometheus_api_client.exceptions import PrometheusApiClientException

    if isinstance(exc, PrometheusApiClientException):
        text = str(exc)
        code = text.split("HTTP Status Code ", 1)[1].split(" ", 1)[0] if "HTTP Status Code " in text else "?"
        return f"HTTP {code}"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.ConnectionError):
        # Without retries urllib3 wraps a read timeout in MaxRetryError, which requests reports as a
        # ConnectionError: look at the cause to tell the two apart.
        import urllib3.exceptions

        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        # (NewConnectionError, i.e. refused, is historically a subclass of ConnectTimeoutError)
        if isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(reason, urllib3.exceptions.NewConnectionError):
            return "timeout"
        return "connection failed"
    if isinstance(exc, ValueError):  # a body that is not JSON
        return "answer is not JSON"
    return type(exc).__name__
