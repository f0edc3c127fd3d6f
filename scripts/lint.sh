#!/usr/bin/env bash
# Static checks: ruff (lint and import order) over operator/ and tests/, mypy over the aifleet package (the core
# strictly; see [tool.mypy] in pyproject.toml). Any finding fails the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
.venv/bin/ruff check --no-fix operator tests
.venv/bin/mypy
