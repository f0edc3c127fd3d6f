"""The bad-input table, offline: each bad manifest is refused with a message naming the field.

The same table runs against the real API server in e2e/test_validation.py.
"""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from aifleet.api import AIService
from aifleet.api.errors import describe_validation_error
from bad_inputs import BAD_INPUTS


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.id for c in BAD_INPUTS])
def test_bad_input_is_refused_naming_the_field(case, minimal):
    doc = case.apply(copy.deepcopy(minimal))
    if case.transition_only:
        pytest.skip("needs the old object: judged by the API server only (e2e)")
    with pytest.raises(ValidationError) as info:
        AIService.model_validate(doc)
    message = describe_validation_error(info.value)
    assert case.offline_field in message, message


def test_minimal_example_is_valid(minimal):
    ais = AIService.model_validate(minimal)
    assert ais.spec.autoscaling.min_replicas == 1
    assert ais.spec.autoscaling.scale_down.stabilization_window_seconds == 300
