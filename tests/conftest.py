from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def example_documents() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "AIService":
                out.append((f"{path.name}:{doc['metadata']['name']}", doc))
    return out


def large_example() -> dict:
    """The AIService of examples/large.yaml: every component."""
    return copy.deepcopy(next(doc for name, doc in example_documents() if name.startswith("large.yaml:")))


@pytest.fixture
def minimal() -> dict:
    return copy.deepcopy(yaml.safe_load((EXAMPLES / "minimal.yaml").read_text()))
