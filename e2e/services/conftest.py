"""pytest wiring for the real-service harness (e2e/services/harness/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

# Make `import harness` work whatever pytest's import mode or rootdir is.
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "services: needs the real servers from e2e/services/install.sh (slow-ish, loopback only)")


@pytest.fixture(scope="session", autouse=True)
def _no_service_left_running() -> Iterator[None]:
    """Fail the session if a harness-started process outlived its test."""
    yield
    with harness._live_lock:
        leftovers = [p.argv[0] for p in harness._live if p.running]
    assert not leftovers, f"services still running after the tests: {leftovers}"
