"""One metric reading, or why there is none.

An empty Prometheus answer is an error, never zero: zero pods scraped and zero traffic look the same
as an empty vector, and reading "no data" as "no traffic" would scale a live fleet down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..api.autoscaling import MetricErrorKind

# missing: the source has no answer for this service (e.g. absent from a batched query)
# stale:   the sample is older than allowed
# empty:   Prometheus returned an empty vector
# failed:  the request itself failed (connection, timeout, HTTP error, unparsable answer)
# nan:     the value is NaN (e.g. 0/0 in the query)
# invalid: negative, infinite or not a number at all


@dataclass(frozen=True, slots=True)
class Sample:
    value: float | None = None
    error: MetricErrorKind | None = None
    timestamp: float | None = None  # Unix seconds of the data point, when the source knows it
    detail: str = ""  # for logs; never holds a URL with credentials or a token
    # The source could not be reached at all (connection refused, timeout): for a new fleet the same as no series yet.
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def of(cls, value: object, timestamp: float | None = None) -> Sample:
        """Classify a raw value: NaN, inf, negative and non-numbers become errors."""
        try:
            v = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return cls(error="invalid", timestamp=timestamp, detail="not a number")
        if math.isnan(v):
            return cls(error="nan", timestamp=timestamp)
        if math.isinf(v) or v < 0:
            return cls(error="invalid", timestamp=timestamp, detail="negative" if v < 0 else "infinite")
        return cls(value=v, timestamp=timestamp)

    @classmethod
    def failure(cls, kind: MetricErrorKind, detail: str = "", *, unreachable: bool = False) -> Sample:
        return cls(error=kind, detail=detail, unreachable=unreachable)

    def checked(self, now: float, stale_after: float) -> Sample:
        """Re-classify at decision time: an old sample is stale; a hand-built bad value is caught too."""
        if self.error is not None:
            return self
        if self.value is None:
            return Sample(error="missing", timestamp=self.timestamp)
        fresh = Sample.of(self.value, self.timestamp)
        if fresh.error is not None:
            return fresh
        if self.timestamp is not None and now - self.timestamp > stale_after:
            return Sample(error="stale", timestamp=self.timestamp, detail=f"{now - self.timestamp:.0f}s old")
        return self
