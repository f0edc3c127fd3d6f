"""Traces from the files users have (`aifleet.autoscaler.traces`): rps series and request logs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aifleet.autoscaler.traces import bin_requests, parse_timestamp, parse_trace


def lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1700000000", 1_700_000_000.0),
        ("1700000000.25", 1_700_000_000.25),
        ("2023-11-16 18:15:46.6805900", datetime(2023, 11, 16, 18, 15, 46, 680590, tzinfo=UTC).timestamp()),
        ("2023-11-16T18:15:46Z", datetime(2023, 11, 16, 18, 15, 46, tzinfo=UTC).timestamp()),
        ("2023-11-16T19:15:46+01:00", datetime(2023, 11, 16, 18, 15, 46, tzinfo=UTC).timestamp()),
    ],
)
def test_timestamps_are_epoch_seconds_or_iso_8601(text, expected):
    assert parse_timestamp(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["yesterday", "nan", "inf", ""])
def test_what_is_not_a_timestamp_is_refused(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


@pytest.mark.parametrize("time_column", ["time", "timestamp", "time_seconds", "Time"])
def test_rps_series_under_any_common_header(time_column):
    s = parse_trace(lines(f"{time_column},rps\n100,5\n110,7.5\n130,0\n"))
    assert s.times == (0, 10, 30) and s.rps == (5, 7.5, 0) and s.requests is None


def test_rps_series_with_iso_times():
    s = parse_trace(lines("timestamp,rps\n2023-11-16 18:00:00,3\n2023-11-16 18:01:00,4\n"))
    assert s.times == (0, 60) and s.rps == (3, 4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("time,rps\n0,1\n0,2\n", "line 3: time must increase"),
        ("time,rps\n0,1\n5,-2\n", "line 3: rps must be finite"),
        ("time,rps\n0,1\n5,nan\n", "line 3: rps must be finite"),
        ("time,rps\n0,1\n5,x\n", "line 3: not a time and a number"),
        ("time,rps\n0,1\n", "at least two rows"),
        ("t,value\n0,1\n1,2\n", "expected an rps series"),
        ("", "empty file"),
    ],
)
def test_bad_rps_series_say_where(text, message):
    with pytest.raises(ValueError, match=message):
        parse_trace(lines(text))


# A small request log: 3 requests in the first second, none in the second, 1 in the third, 2 in the fourth.
ARRIVALS = [0.0, 0.2, 0.9, 2.5, 3.0, 3.99]
T0 = datetime(2023, 11, 16, 18, 15, 46, 680590, tzinfo=UTC)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(T0.timestamp() + seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "0"


def test_binning_counts_arrivals_per_bin():
    s = bin_requests([1000 + t for t in ARRIVALS], 1.0)
    assert s.times == (0, 1, 2, 3) and s.rps == (3, 0, 1, 2) and s.requests == 6
    s = bin_requests([1000 + t for t in ARRIVALS], 2.0)
    assert s.times == (0, 2) and s.rps == (1.5, 1.5)


def test_binning_needs_two_bins_and_a_positive_bin():
    with pytest.raises(ValueError, match="two bins"):
        bin_requests([1.0, 1.5], 1.0)
    with pytest.raises(ValueError, match="no request"):
        bin_requests([], 1.0)
    with pytest.raises(ValueError, match="positive"):
        bin_requests([1.0, 5.0], 0)


def test_one_timestamp_per_line_with_or_without_a_header():
    plain = "".join(f"{1_700_000_000 + t}\n" for t in ARRIVALS)
    assert parse_trace(lines(plain)).rps == (3, 0, 1, 2)
    assert parse_trace(lines("timestamp\n" + plain)).rps == (3, 0, 1, 2)


def test_a_log_out_of_order_is_sorted():
    shuffled = "".join(f"{1_700_000_000 + t}\n" for t in reversed(ARRIVALS))
    assert parse_trace(lines(shuffled)).rps == (3, 0, 1, 2)


def test_an_azure_style_request_log_finds_its_timestamp_column():
    """TIMESTAMP,ContextTokens,GeneratedTokens with 7-digit fractions, as the Azure LLM inference trace."""
    text = "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(f"{iso(t)},100,10\n" for t in ARRIVALS)
    s = parse_trace(lines(text))
    assert s.rps == (3, 0, 1, 2) and s.requests == 6
    assert parse_trace(lines(text), column="timestamp").rps == (3, 0, 1, 2)
    assert parse_trace(lines(text), column="0", bin_seconds=2).rps == (1.5, 1.5)


def test_a_column_by_position_without_a_header():
    text = "".join(f"GET,/v1/infer,{1_700_000_000 + t}\n" for t in ARRIVALS)
    assert parse_trace(lines(text), column="2").rps == (3, 0, 1, 2)


def test_a_column_makes_even_an_rps_header_a_request_log():
    text = "time,rps\n" + "".join(f"{1_700_000_000 + t},1\n" for t in ARRIVALS)
    assert parse_trace(lines(text), column="time").requests == 6


@pytest.mark.parametrize(
    "text, column, message",
    [
        ("a,b\n1,2\n3,4\n", "c", "no column 'c'"),
        ("1,2\n3,4\n", "5", "column 5 does not exist"),
        ("ts\n1\nsoon\n", None, "line 3: not a timestamp"),
        ("ts,x\n1,a\n2\n", "1", "line 2: not a timestamp"),
        ("a,b\n1,2\n", None, "name it with --column"),
    ],
)
def test_bad_request_logs_say_what_is_wrong(text, column, message):
    with pytest.raises(ValueError, match=message):
        parse_trace(lines(text), column=column)
