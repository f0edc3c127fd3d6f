"""Every import in operator/aifleet points down the layers (or stays inside its own package)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "operator" / "aifleet"

# Bottom first. A unit may import its own modules and any unit of a lower layer: nothing above, nothing beside.
LAYERS: list[list[str]] = [
    ["aifleet", "aifleet.logs", "aifleet.compact"],  # the version; logging setup; compacting kept objects
    ["aifleet.api"],  # the contract: types, names, labels, ports, values
    ["aifleet.clients"],  # the edges: Kubernetes and Kafka
    ["aifleet.autoscaler", "aifleet.topics", "aifleet.observability"],  # decisions, topic plans, the operator's health
    ["aifleet.renderer"],  # the components and their manifests
    ["aifleet.reconciler"],  # the passes and the kopf handlers
    ["aifleet.offline", "aifleet.manager"],  # `aifleet render`, `aifleet run`
    ["aifleet.cli"],
]
LAYER_OF = {unit: index for index, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """The layered unit a module belongs to: `aifleet.api.children` -> `aifleet.api`."""
    parts = module.split(".")
    for length in (2, 1):
        candidate = ".".join(parts[:length])
        if candidate in LAYER_OF:
            return candidate
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _imports(path: Path) -> list[tuple[int, str]]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("aifleet")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("aifleet"):
                found.append((node.lineno, target))
    return found


def test_every_module_is_in_a_layer():
    for path in PACKAGE.rglob("*.py"):
        _unit(_module_name(path))


def test_imports_point_down():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _unit(_module_name(path))
        for line, target in _imports(path):
            there = _unit(target)
            if there != here and LAYER_OF[there] >= LAYER_OF[here]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {here} imports {target}")
    assert not wrong, "imports that do not point down:\n" + "\n".join(wrong)
