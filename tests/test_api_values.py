"""Values the API carries as text: quantities and timestamps."""

from decimal import Decimal

import pytest

from aifleet.api.quantity import parse_quantity


@pytest.mark.parametrize(
    "text, value",
    [
        ("500m", Decimal("0.5")),
        ("4", Decimal(4)),
        ("16Gi", Decimal(16 * 2**30)),
        ("1.5k", Decimal(1500)),
        ("1e3", Decimal(1000)),
        ("+2Mi", Decimal(2 * 2**20)),
        ("100n", Decimal("1E-7")),
    ],
)
def test_quantities_read_as_the_api_server_reads_them(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "1Xi", "1ki", "abc", "1.2.3"])
def test_what_is_not_a_quantity_is_none(text):
    assert parse_quantity(text) is None


def test_canonical_forms_compare_equal():
    assert parse_quantity("1000m") == parse_quantity("1")
    assert parse_quantity("1024Mi") == parse_quantity("1Gi")


def test_timestamps_round_trip_at_second_precision():
    from aifleet.api.timestamps import format_timestamp, parse_timestamp

    assert format_timestamp(1_700_000_000.7) == "2023-11-14T22:13:20Z"
    assert parse_timestamp("2023-11-14T22:13:20Z") == 1_700_000_000
    with pytest.raises(ValueError):
        parse_timestamp("2023-11-14T22:13:20")  # no zone: not a Kubernetes timestamp
