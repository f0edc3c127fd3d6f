#!/usr/bin/env bash
# Smoke test for a running e2e cluster (start it with up.sh first): checks
# that it behaves like a real cluster in the ways aifleet relies on.
#
#   1. a 3-replica Deployment tolerating the GPU taint and asking for
#      nvidia.com/gpu: 1 becomes 3/3 available on the GPU nodes, pods get IPs
#   2. a pod without the toleration lands on a CPU node
#   3. deleting the Deployment garbage-collects its ReplicaSet and pods
#   4. TokenRequest: `kubectl create token` returns a token that authenticates
#      as the ServiceAccount, which RBAC does not allow to list pods
#   5. PodSecurity admission: a namespace enforcing `restricted` rejects a
#      privileged pod
#   6. an autoscaling/v2 HPA is accepted and the HPA controller writes its
#      conditions
#   7. the audit log records the requests (write counts per user shown)
#
# Prints "N passed, N failed" at the end; exit status 1 if anything failed.
set -euo pipefail

LOG_TAG=smoke
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
export KUBECONFIG="${KUBECONFIG:-$CLUSTER_DIR/kubeconfig}"
KUBECTL="${KUBECTL:-kubectl}"
k() { "$KUBECTL" "$@"; }
NS=aifleet-smoke
PSA_NS=aifleet-smoke-restricted

passed=0 failed=0
ok() { log "PASS: $*"; passed=$((passed + 1)); }
bad() { log "FAIL: $*"; failed=$((failed + 1)); }

# poll SECONDS CMD...: retry CMD every 0.5s until it succeeds or time runs out.
poll() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

k get --raw /readyz >/dev/null || die "cluster not reachable with KUBECONFIG=$KUBECONFIG (run up.sh)"
log "server $(k get --raw /version | grep -o '"gitVersion": *"[^"]*"')"

cleanup() { k delete namespace "$NS" "$PSA_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
poll 60 bash -c "! $KUBECTL get namespace $NS $PSA_NS 2>/dev/null | grep . >/dev/null" || die "old smoke namespaces did not go away"
k create namespace "$NS" >/dev/null
poll 30 k -n "$NS" get serviceaccount default || die "no default ServiceAccount in $NS"

# --- 1. GPU Deployment --------------------------------------------------------
k -n "$NS" apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: gpu-smoke
spec:
  replicas: 3
  selector:
    matchLabels: {app: gpu-smoke}
  template:
    metadata:
      labels: {app: gpu-smoke}
    spec:
      tolerations:
      - key: nvidia.com/gpu
        operator: Exists
        effect: NoSchedule
      containers:
      - name: server
        image: registry.k8s.io/pause:3.10
        resources:
          requests: {cpu: "1", memory: 1Gi, nvidia.com/gpu: "1"}
          limits: {nvidia.com/gpu: "1"}
EOF
if k -n "$NS" wait deployment/gpu-smoke --for=condition=Available --timeout=90s >/dev/null &&
  [[ "$(k -n "$NS" get deployment gpu-smoke -o jsonpath='{.status.availableReplicas}')" == 3 ]]; then
  ok "Deployment gpu-smoke is 3/3 available"
else
  bad "Deployment gpu-smoke did not become 3/3 available"
fi
k -n "$NS" get pods -l app=gpu-smoke -o wide >&2 || true
on_gpu="$(k -n "$NS" get pods -l app=gpu-smoke -o jsonpath='{range .items[*]}{.spec.nodeName}{" "}{.status.podIP}{"\n"}{end}' |
  awk '$1 ~ /^kwok-gpu-/ && $2 != ""' | wc -l)"
if [[ $on_gpu == 3 ]]; then ok "all 3 pods run on GPU nodes and have pod IPs"; else bad "only $on_gpu/3 pods on GPU nodes with an IP"; fi

# --- 2. untolerating pod goes to a CPU node -----------------------------------
k -n "$NS" run cpu-smoke --image=registry.k8s.io/pause:3.10 --restart=Never >/dev/null
if k -n "$NS" wait pod/cpu-smoke --for=condition=Ready --timeout=60s >/dev/null &&
  [[ "$(k -n "$NS" get pod cpu-smoke -o jsonpath='{.spec.nodeName}')" == kwok-cpu-* ]]; then
  ok "pod without GPU toleration is Ready on $(k -n "$NS" get pod cpu-smoke -o jsonpath='{.spec.nodeName}')"
else
  bad "pod without GPU toleration did not become Ready on a CPU node"
fi

# --- 3. garbage collection ----------------------------------------------------
k -n "$NS" delete deployment gpu-smoke --wait=true >/dev/null
gone() {
  [[ -z "$(k -n "$NS" get replicasets,pods -l app=gpu-smoke -o name 2>/dev/null)" ]]
}
if poll 60 gone; then ok "deleting the Deployment garbage-collected its ReplicaSet and pods"; else bad "ReplicaSet/pods of gpu-smoke still exist"; fi

# --- 4. TokenRequest + RBAC ---------------------------------------------------
k -n "$NS" create serviceaccount x >/dev/null
token="$(k -n "$NS" create token x)"
# Token only: with the admin kubeconfig, kubectl would also present the admin
# client certificate, and the API server authenticates the certificate first.
server="$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
as_sa() { "$KUBECTL" --kubeconfig=/dev/null --server="$server" --certificate-authority="$CLUSTER_DIR/pki/ca.crt" --token="$token" "$@"; }
who="$(as_sa auth whoami -o jsonpath='{.status.userInfo.username}' 2>/dev/null || true)"
if [[ $who == "system:serviceaccount:$NS:x" ]]; then ok "token authenticates as $who"; else bad "token authenticated as '$who'"; fi
can="$(as_sa -n "$NS" auth can-i list pods 2>/dev/null || true)"
if [[ $can == no ]]; then ok "ServiceAccount x: can-i list pods -> no"; else bad "ServiceAccount x: can-i list pods -> '$can'"; fi

# --- 5. PodSecurity admission -------------------------------------------------
k create namespace "$PSA_NS" >/dev/null
k label namespace "$PSA_NS" pod-security.kubernetes.io/enforce=restricted >/dev/null
poll 30 k -n "$PSA_NS" get serviceaccount default || true
if out="$(k -n "$PSA_NS" run priv --image=registry.k8s.io/pause:3.10 --restart=Never \
  --overrides='{"spec":{"containers":[{"name":"priv","image":"registry.k8s.io/pause:3.10","securityContext":{"privileged":true}}]}}' 2>&1)"; then
  bad "privileged pod was admitted into a restricted namespace"
elif [[ $out == *'violates PodSecurity "restricted:latest"'* ]]; then
  ok "privileged pod rejected: ${out:0:110}..."
else
  bad "privileged pod rejected, but not by PodSecurity: $out"
fi

# --- 6. HPA -------------------------------------------------------------------
k -n "$NS" create deployment hpa-target --image=registry.k8s.io/pause:3.10 >/dev/null
k -n "$NS" set resources deployment hpa-target --requests=cpu=100m >/dev/null
k -n "$NS" apply -f - >/dev/null <<'EOF'
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: hpa-target
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: hpa-target}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 60}
EOF
hpa_conditions() { [[ -n "$(k -n "$NS" get hpa hpa-target -o jsonpath='{.status.conditions}')" ]]; }
if poll 90 hpa_conditions; then
  ok "HPA accepted; controller wrote conditions: $(k -n "$NS" get hpa hpa-target \
    -o jsonpath='{range .status.conditions[*]}{.type}={.status}({.reason}) {end}')"
else
  bad "HPA controller wrote no conditions within 90s"
fi

# --- 7. audit log -------------------------------------------------------------
audit="$CLUSTER_DIR/audit.log"
if [[ -s $audit ]] && grep -q "\"namespace\":\"$NS\"" "$audit"; then
  ok "audit log has $(wc -l <"$audit") entries, including this test's"
  log "write requests per user in the audit log (top 10):"
  grep -E '"verb":"(create|update|patch|delete|deletecollection)"' "$audit" |
    grep -o '"user":{"username":"[^"]*"' | cut -d'"' -f6 | sort | uniq -c | sort -rn | head -10 >&2
else
  bad "audit log $audit is missing or has no entries for $NS"
fi

echo "smoke: $passed passed, $failed failed"
((failed == 0))
