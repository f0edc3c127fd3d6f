"""`aifleet render`: validate AIService files and print their children, exactly as the operator would."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from .api import AIService
from .api.errors import describe_validation_error
from .renderer import render


class RenderError(ValueError):
    pass


def load_aiservices(path: Path) -> list[AIService]:
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise RenderError(f"{path}: {exc}") from None
    services = []
    for doc in documents:
        if doc.get("kind") != "AIService":
            continue
        name = (doc.get("metadata") or {}).get("name", "?")
        try:
            services.append(AIService.model_validate(doc))
        except ValidationError as exc:
            raise RenderError(f"{path}: AIService {name}: {describe_validation_error(exc)}") from None
    return services


def render_files(paths: list[Path]) -> str:
    manifests = []
    for path in paths:
        for ais in load_aiservices(path):
            manifests += render(ais)
    return yaml.safe_dump_all(manifests, sort_keys=False)
