#!/usr/bin/env bash
# The whole test suite: unit tests, then the e2e suite on a real local control plane with real services.
# Starts what it needs and stops it all again, whatever happens.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

scripts/setup.sh
scripts/lint.sh
# The real servers first: the unit tests run the alerts' `promtool test rules` (promtool is Debian's prometheus).
bash e2e/services/install.sh
AIFLEET_REQUIRE_PROMTOOL=1 scripts/pytest.sh tests -q

bash e2e/cluster/build.sh >/dev/null
bash e2e/tools/build-helm.sh >/dev/null
bash e2e/tools/build-adapter.sh >/dev/null
bash e2e/tools/build-prometheus.sh >/dev/null
bash e2e/images/build.sh >/dev/null

# Enough GPU nodes for examples/large.yaml (20 pods of 8 CPUs and 1 GPU at its minimum).
export AIFLEET_NODES="${AIFLEET_NODES:-8}"

artifacts="${AIFLEET_E2E_ARTIFACTS:-$ROOT/e2e/.state/artifacts}"
mkdir -p "$artifacts"
export AIFLEET_E2E_ARTIFACTS="$artifacts"

started_cluster=0
cleanup() {
  if [[ $started_cluster == 1 ]]; then
    bash e2e/cluster/down.sh >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

if [[ -z ${KUBECONFIG:-} ]]; then
  # Before up.sh: a cluster that failed half-way up is taken down too.
  started_cluster=1
  bash e2e/cluster/up.sh >/dev/null
  export KUBECONFIG="$ROOT/e2e/.cluster/kubeconfig"
fi

scripts/pytest.sh e2e -q -p no:cacheprovider "$@"
