"""`aifleet render` never ends in a traceback: whatever the file holds, it prints manifests or one error."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifleet.offline import RenderError, render_files
from aifleet.renderer.common import TEMPLATE_LOADER, json_for_yaml
from conftest import large_example

LARGE = large_example()

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["", "0", "1Gi", "500m", "100%", "AIService", "aifleet.dev/v1alpha1", "Exists", "hpa", "chat"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


PATHS = _paths(LARGE)


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


def _render(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.yaml"
        path.write_bytes(data)
        try:
            assert isinstance(render_files([path]), str)
        except RenderError as exc:
            assert str(exc).startswith(str(path))


FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes(data):
    _render(data)


@FUZZ
@given(st.text(max_size=300))
def test_any_text(text):
    _render(text.encode())


@FUZZ
@given(values)
def test_any_yaml_structure(value):
    _render(yaml.safe_dump(value, allow_unicode=True).encode())


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=4))
def test_an_aiservice_with_any_field_replaced(edits):
    doc = copy.deepcopy(LARGE)
    for path, value in edits:
        try:
            _replace(doc, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced the parent
    _render(yaml.safe_dump(doc, allow_unicode=True).encode())


json_values = st.recursive(  # what a validated spec can hand a template: no infinities, no NaN
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


@FUZZ
@given(json_values)
def test_template_values_read_back_as_written(value):
    """What `tojson` puts in a template reads back as the same value, characters beyond the BMP included."""
    assert yaml.load(json_for_yaml(value), Loader=TEMPLATE_LOADER) == value


def test_a_node_selector_beyond_the_bmp_renders_or_is_refused():
    doc = copy.deepcopy(LARGE)
    doc["spec"]["inference"]["nodeSelector"] = {"\U00010000": "x", "a\\ud800\\udc00": "\\\U0001f600"}
    _render(yaml.safe_dump(doc, allow_unicode=True).encode())
