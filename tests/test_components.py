"""The component registry: every part of the stack behind one interface, in the order the status lists them."""

from __future__ import annotations

from aifleet.api import AIService
from aifleet.reconciler.sync import component_states, endpoints
from aifleet.renderer import render_all
from aifleet.renderer.component import Observed
from aifleet.renderer.components import COMPONENTS
from conftest import example_documents


def test_each_component_has_its_own_names():
    assert [c.status_key for c in COMPONENTS] == ["inference", "pooler", "cache", "topics"]
    assert len({c.name for c in COMPONENTS}) == len(COMPONENTS)


def test_unwanted_components_are_disabled_and_have_no_endpoints():
    ais = AIService.model_validate(
        {"metadata": {"name": "solo", "namespace": "ml"}, "spec": {"inference": {"modelRepository": {"uri": "s3://m"}}}}
    )
    states = component_states(ais, lambda kind, ns, name: None, render_all(ais), None)
    assert {key: s.state for key, s in states.items()} == {
        "inference": "Pending", "pooler": "Disabled", "cache": "Disabled", "topics": "Disabled",
    }
    assert set(endpoints(ais, Observed(lambda kind, ns, name: None))) == {"http", "grpc", "metrics", "adminSecret"}


def test_every_wanted_component_renders_its_part():
    for _, doc in example_documents():
        ais = AIService.model_validate(doc)
        rendered = render_all(ais)
        assert set(rendered.parts) == {c.name for c in COMPONENTS if c.wanted(ais)}
        assert not rendered.problems
