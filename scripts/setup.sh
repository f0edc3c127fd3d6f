#!/usr/bin/env bash
# Create .venv with aifleet, its test dependencies and the linters. Idempotent; reuses pip's cache, so a warm run is quick.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# Reinstall only when the dependency list changed.
stamp=".venv/.aifleet-deps-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f $stamp ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test,dev]'
  rm -f .venv/.aifleet-deps-* && touch "$stamp"
fi
echo "aifleet $(.venv/bin/aifleet --version | cut -d' ' -f2) in .venv" >&2
