#!/usr/bin/env bash
# The one-command demo: a real local control plane (built from the official Kubernetes Go modules) with one real
# kubelet node, the aifleet operator installed by its Helm chart from its locally built image, and an AIService
# whose real Triton pods scale up and back down under real traffic, with the latency the clients see.
#
#   AIFLEET_DEMO_KEEP=1 scripts/demo.sh   leaves everything running (stop with `make cluster-down`)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing aifleet into .venv"
scripts/setup.sh

say "Installing the services and building the cluster, its images and tools (cached after the first run)"
bash e2e/services/install.sh >/dev/null
bash e2e/cluster/build.sh >/dev/null
bash e2e/images/build.sh >/dev/null
helm="$(bash e2e/tools/build-helm.sh)"
bash e2e/tools/build-prometheus.sh >/dev/null

cleanup() {
  if [[ ${AIFLEET_DEMO_KEEP:-0} != 1 ]]; then
    "$helm" uninstall aifleet -n aifleet-system --wait --timeout 60s >/dev/null 2>&1 || true
    bash e2e/cluster/down.sh >/dev/null 2>&1 || true
  fi
}
# Set before up.sh: a cluster that failed half-way up is taken down too.
trap cleanup EXIT

say "Starting the local cluster: control plane, KWOK GPU nodes, one real node"
bash e2e/cluster/up.sh >/dev/null
export KUBECONFIG="$ROOT/e2e/.cluster/kubeconfig"
kubectl get nodes -L aifleet.dev/node,nvidia.com/gpu.present

say "helm install aifleet charts/aifleet-operator (image aifleet-operator:$(.venv/bin/aifleet --version | cut -d' ' -f2), built here)"
# The operator's namespace enforces the restricted Pod Security Standard and is pinned to the real node.
.venv/bin/python - <<'EOF' | kubectl apply -f - >/dev/null
import json, sys
sys.path.insert(0, "e2e")
from realnode import pinned_namespace
print(json.dumps(pinned_namespace("aifleet-system", {"pod-security.kubernetes.io/enforce": "restricted"})))
EOF
"$helm" upgrade --install aifleet charts/aifleet-operator -n aifleet-system --wait --timeout 180s
kubectl get pods -n aifleet-system -o wide

say "Real traffic against real Triton pods; the fleet follows the load"
.venv/bin/python scripts/demo_traffic.py

say "The operator's log, last lines"
kubectl logs -n aifleet-system -l app.kubernetes.io/instance=aifleet --tail=15
