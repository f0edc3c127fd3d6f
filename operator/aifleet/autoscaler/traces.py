"""Traffic traces from the files users have: an rps series, or a request log binned into one.

Pure: CSV text in, a series out; opening files is the caller's business. Two shapes are read:

* an rps series, a CSV with a header naming a time column (`time_seconds`, `time` or `timestamp`) and `rps`;
* a request log, one request per row: one timestamp per line, or a CSV whose timestamp column is given by
  name or 0-based position, or found by its header (`timestamp`, `time`, ...). Its arrivals are counted
  per bin of `bin_seconds` and divided by the bin's length.

Times are epoch seconds (any number) or ISO 8601 (`2023-11-16 18:15:46.6805900`, `...T...Z`, `...+01:00`;
without a zone, UTC). Only differences matter: every series starts at 0.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

RPS_COLUMN = "rps"
TIME_COLUMNS = ("time_seconds", "time", "timestamp")  # for an rps series, in order of preference
LOG_TIME_COLUMNS = (*TIME_COLUMNS, "ts", "datetime", "date")  # a request log's timestamp column, when not given
FORMAT_HINT = (
    "expected an rps series (header time_seconds,rps or time,rps or timestamp,rps) or a request log "
    "(one timestamp per line, or a CSV with a timestamp column: name it with --column)"
)


@dataclass(frozen=True)
class Series:
    times: tuple[float, ...]  # seconds from the first point, increasing
    rps: tuple[float, ...]
    requests: int | None = None  # how many requests a request log held; None for an rps series
    bin_seconds: float | None = None  # the bin a request log was counted in


def parse_timestamp(text: str) -> float:
    """Epoch seconds, or an ISO 8601 date-time (UTC when it names no zone), as float seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a timestamp: {text!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"not a finite time: {text!r}")
    return value


def _is_timestamp(text: str) -> bool:
    try:
        parse_timestamp(text)
    except ValueError:
        return False
    return True


def _rows(lines: Iterable[str]) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every row that is not blank."""
    reader = csv.reader(lines)
    return [(reader.line_num, [f.strip() for f in row]) for row in reader if any(f.strip() for f in row)]


def parse_rps_series(rows: Sequence[tuple[int, Sequence[str]]]) -> Series:
    """An rps series: the header row first, then time and rps per row."""
    header = [h.lower() for h in rows[0][1]]
    t_col = header.index(next(c for c in TIME_COLUMNS if c in header))
    r_col = header.index(RPS_COLUMN)
    times: list[float] = []
    rps: list[float] = []
    for lineno, row in rows[1:]:
        try:
            t, r = parse_timestamp(row[t_col]), float(row[r_col])
        except (IndexError, ValueError):
            raise ValueError(f"line {lineno}: not a time and a number") from None
        if not math.isfinite(r) or r < 0:
            raise ValueError(f"line {lineno}: rps must be finite and >= 0")
        if times and t <= times[-1]:
            raise ValueError(f"line {lineno}: time must increase")
        times.append(t)
        rps.append(r)
    if len(times) < 2:
        raise ValueError("a trace needs at least two rows")
    return Series(tuple(t - times[0] for t in times), tuple(rps))


def _log_column(rows: Sequence[tuple[int, Sequence[str]]], column: str | None) -> tuple[int, bool]:
    """(the timestamp column's index, whether the first row is a header) of a request log."""
    first = rows[0][1]
    lowered = [f.lower() for f in first]
    if column is None:
        if len(first) == 1:
            return 0, not _is_timestamp(first[0])
        named = next((c for c in LOG_TIME_COLUMNS if c in lowered), None)
        if named is None:
            raise ValueError(FORMAT_HINT)
        return lowered.index(named), True
    if column.isdigit():
        index = int(column)
        if index >= len(first):
            raise ValueError(f"column {index} does not exist: the first row has {len(first)} (counted from 0)")
        return index, not _is_timestamp(first[index])
    if column.lower() not in lowered:
        raise ValueError(f"no column {column!r} in the header {','.join(first)}")
    return lowered.index(column.lower()), True


def parse_request_log(rows: Sequence[tuple[int, Sequence[str]]], column: str | None = None) -> list[float]:
    """The arrival times of a request log, sorted (access logs are not always in order)."""
    index, header = _log_column(rows, column)
    out: list[float] = []
    for lineno, row in rows[1:] if header else rows:
        try:
            out.append(parse_timestamp(row[index]))
        except IndexError:
            raise ValueError(f"line {lineno}: no column {index}") from None
        except ValueError as exc:
            raise ValueError(f"line {lineno}: {exc}") from None
    return sorted(out)


def bin_requests(arrivals: Sequence[float], bin_seconds: float) -> Series:
    """Requests per second, counted in bins of `bin_seconds` from the first arrival (the last bin may be partial)."""
    if not (math.isfinite(bin_seconds) and bin_seconds > 0):
        raise ValueError("the bin must be a positive number of seconds")
    if not arrivals:
        raise ValueError("the request log holds no request")
    start = min(arrivals)
    counts = [0] * (int((max(arrivals) - start) // bin_seconds) + 1)
    if len(counts) < 2:
        raise ValueError(f"the requests span less than two bins of {bin_seconds:g} s")
    for t in arrivals:
        counts[int((t - start) // bin_seconds)] += 1
    return Series(
        tuple(i * bin_seconds for i in range(len(counts))),
        tuple(c / bin_seconds for c in counts),
        requests=len(arrivals),
        bin_seconds=bin_seconds,
    )


def parse_trace(lines: Iterable[str], *, column: str | None = None, bin_seconds: float = 1.0) -> Series:
    """An rps series or a request log, told apart by the header unless `column` says it is a request log."""
    rows = _rows(lines)
    if not rows:
        raise ValueError("empty file")
    header = {h.lower() for h in rows[0][1]}
    if column is None and RPS_COLUMN in header and header & set(TIME_COLUMNS):
        return parse_rps_series(rows)
    return bin_requests(parse_request_log(rows, column), bin_seconds)
