#!/usr/bin/env bash
# Prepare a kind cluster (KUBECONFIG) for the e2e suite: KWOK in the cluster and the same fake GPU and CPU
# nodes the local control plane has, so the suite runs unchanged. For CI runners with network access.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
nodes="$here/../cluster/manifests/nodes"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
GPU_NODES="${AIFLEET_NODES:-8}"  # enough for examples/large.yaml
CPU_NODES="${AIFLEET_CPU_NODES:-2}"

release="https://github.com/kubernetes-sigs/kwok/releases/download/$KWOK_VERSION"
kubectl apply -f "$release/kwok.yaml"
kubectl apply -f "$release/stage-fast.yaml"
kubectl -n kube-system rollout status deployment/kwok-controller --timeout=180s

for ((i = 0; i < GPU_NODES; i++)); do sed "s/NODE_NAME/kwok-gpu-$i/g" "$nodes/gpu-node.yaml"; echo "---"; done | kubectl apply -f -
for ((i = 0; i < CPU_NODES; i++)); do sed "s/NODE_NAME/kwok-cpu-$i/g" "$nodes/cpu-node.yaml"; echo "---"; done | kubectl apply -f -
kubectl wait --for=condition=Ready node -l type=kwok --timeout=180s
