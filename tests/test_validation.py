"""The bad-manifest corpus (tests/bad_inputs/), offline: `aifleet render` reaches the verdict the API server
reaches, with a message naming the same field. e2e/test_validation.py runs the same files on the API server.
"""

from __future__ import annotations

import pytest

from aifleet.api import AIService
from aifleet.offline import RenderError, load_aiservices
from bad_inputs import CASES


def test_the_corpus_is_large_and_says_what_it_expects():
    assert len([c for c in CASES if c.verdict == "refused"]) >= 60
    assert {c.verdict for c in CASES} == {"refused", "accepted"}
    assert all(c.why for c in CASES)
    assert all(c.field for c in CASES if c.verdict == "refused" and not c.id.startswith("document-"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_offline_verdict_and_field(case):
    if case.verdict == "accepted":
        assert load_aiservices(case.path)
        return
    with pytest.raises(RenderError) as info:
        load_aiservices(case.path)
    message = str(info.value)
    assert case.field in message, message
    assert "match" not in message, f"a raw pattern instead of words: {message}"


def test_minimal_example_is_valid(minimal):
    ais = AIService.model_validate(minimal)
    assert ais.spec.autoscaling.min_replicas == 1
    assert ais.spec.autoscaling.scale_down.stabilization_window_seconds == 180
