#!/usr/bin/env bash
# The one-command demo: a real local control plane (built from the official Kubernetes Go modules, KWOK
# for GPU nodes), the aifleet operator, an example AIService that comes up Ready, then real traffic against
# a real Triton server and the fleet scaling up and back down with it.
#
#   AIFLEET_DEMO_KEEP=1 scripts/demo.sh   leaves everything running (stop with `make cluster-down`)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
STATE="$ROOT/e2e/.state/demo"
mkdir -p "$STATE"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing aifleet into .venv"
scripts/setup.sh

say "Building the control plane (cached after the first run)"
bash e2e/cluster/build.sh >/dev/null

say "Starting the local cluster"
bash e2e/cluster/up.sh >/dev/null
export KUBECONFIG="$ROOT/e2e/.cluster/kubeconfig"
kubectl get nodes -L nvidia.com/gpu.present

operator_pid=""
cleanup() {
  [[ -n $operator_pid ]] && kill "$operator_pid" 2>/dev/null && wait "$operator_pid" 2>/dev/null
  if [[ ${AIFLEET_DEMO_KEEP:-0} != 1 ]]; then
    bash e2e/cluster/down.sh >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

say "Installing the AIService CRD"
kubectl apply --server-side --force-conflicts -f crds/aifleet.dev_aiservices.yaml
kubectl wait --for=condition=Established crd/aiservices.aifleet.dev --timeout=60s

say "Starting the operator (logs: $STATE/operator.log)"
.venv/bin/aifleet run --health-port 0 >"$STATE/operator.log" 2>&1 &
operator_pid=$!

say "Applying examples/minimal.yaml"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -
sed 's/namespace: default/namespace: demo/' examples/minimal.yaml | kubectl apply -f -
kubectl wait --for=condition=Ready aiservice/sentiment -n demo --timeout=180s

say "kubectl get aiservices -n demo"
kubectl get aiservices -n demo
say "kubectl get all -n demo"
kubectl get all -n demo
say "kubectl describe aiservice sentiment -n demo (conditions and events)"
kubectl describe aiservice sentiment -n demo | sed -n '/Conditions:/,$p'

say "Real traffic: PyTriton + Prometheus on loopback, the fleet follows the load"
bash e2e/services/install.sh >/dev/null
.venv/bin/python scripts/demo_traffic.py
