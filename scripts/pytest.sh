#!/usr/bin/env bash
# Run pytest and refuse a run that collected nothing: exit code 5 is a failure here, never a pass.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
.venv/bin/python -m pytest "$@"
code=$?
if [[ $code -eq 5 ]]; then
  echo "pytest collected no tests for: $*" >&2
  exit 1
fi
exit $code
