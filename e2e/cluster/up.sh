#!/usr/bin/env bash
# Start aifleet's local e2e Kubernetes cluster: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and a KWOK controller playing the
# kubelets of fake GPU and CPU nodes -- all real upstream code, all on
# 127.0.0.1 -- and one real node (node.sh: kubelet, containerd, kube-proxy,
# cluster DNS) whose pods run real containers. Prints `export KUBECONFIG=...` on stdout when the
# API server is ready and every node is Ready.
#
# Idempotent: if the cluster of this state dir is already up, says so and
# exits 0. State (PKI, etcd data) survives down.sh; `down.sh --purge` wipes it.
#
# Environment (all optional):
#   AIFLEET_CLUSTER_DIR     state dir (default: e2e/.cluster in this checkout)
#   AIFLEET_APISERVER_PORT  kube-apiserver secure port (default 6443)
#   AIFLEET_ETCD_PORT       etcd client port (default 2379; peer port = +1,
#                           or AIFLEET_ETCD_PEER_PORT)
#   AIFLEET_KCM_PORT        kube-controller-manager secure port (default 10257)
#   AIFLEET_SCHEDULER_PORT  kube-scheduler secure port (default 10259)
#   AIFLEET_NODES           fake GPU nodes (default 4)
#   AIFLEET_CPU_NODES       fake CPU-only nodes (default 2)
#   AIFLEET_SERVICE_CIDR    Service ClusterIP range (default 10.96.0.0/16)
#   AIFLEET_POD_CIDR        range KWOK hands pod IPs out of (default 10.244.0.0/16)
#   AIFLEET_REAL_NODE       1 (default): also start a real kubelet node (node.sh)
#   AIFLEET_NODE_POD_CIDR   the real node's pod range (default 10.88.0.0/24)
#   AIFLEET_BIN_DIR         use binaries from here instead of running build.sh
#   AIFLEET_UP_TIMEOUT      seconds to wait for each readiness step (default 180)
#   AIFLEET_KWOK_LOG_LEVEL  KWOK's log level: DEBUG, INFO (default; logs every
#                           lease renewal), WARN, ERROR
#   KUBECTL                 kubectl to use (default: kubectl on PATH)
set -euo pipefail

LOG_TAG=up
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

GPU_NODES="${AIFLEET_NODES:-4}"
CPU_NODES="${AIFLEET_CPU_NODES:-2}"

API_URL="https://127.0.0.1:$APISERVER_PORT"

command -v openssl >/dev/null || die "openssl is required"
command -v curl >/dev/null || die "curl is required"
command -v "$KUBECTL" >/dev/null || die "kubectl is required (set KUBECTL=...)"
[[ $GPU_NODES =~ ^[0-9]+$ && $CPU_NODES =~ ^[0-9]+$ ]] || die "AIFLEET_NODES / AIFLEET_CPU_NODES must be numbers"

t0=$SECONDS

# ---------------------------------------------------------------- helpers ---

# api_ready: the API server answers /readyz (all post-start hooks done,
# etcd reachable) for our admin client cert.
api_ready() {
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "$API_URL/readyz" >/dev/null 2>&1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --------------------------------------------------------- already up? ---

running=()
for c in "${COMPONENTS[@]}"; do
  pid_of "$c" >/dev/null && running+=("$c")
done
if ((${#running[@]} == ${#COMPONENTS[@]})) && [[ -s $ADMIN_KUBECONFIG ]] && api_ready; then
  log "cluster in $CLUSTER_DIR is already up ($API_URL)"
  if [[ $REAL_NODE == 1 ]]; then "$cluster_src/node.sh" up; fi
  echo "export KUBECONFIG=$ADMIN_KUBECONFIG"
  exit 0
fi
if ((${#running[@]} > 0)); then
  log "cluster in $CLUSTER_DIR is partly up (${running[*]}); restarting it"
  "$cluster_src/down.sh"
fi
if pids="$(stray_pids)" && [[ -n $pids ]]; then
  die "processes of this state dir are running without pid files: $pids (run down.sh)"
fi

for p in "$APISERVER_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "$KCM_PORT" "$SCHEDULER_PORT"; do
  port_free "$p" || die "127.0.0.1:$p is already in use (another cluster? set AIFLEET_*_PORT and AIFLEET_CLUSTER_DIR)"
done

# ------------------------------------------------------------- binaries ---

if [[ -n ${AIFLEET_BIN_DIR:-} ]]; then
  BIN="$AIFLEET_BIN_DIR"
else
  BIN="$("$cluster_src/build.sh")"
fi
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
  [[ -x $BIN/$b ]] || die "$BIN/$b missing (rerun build.sh)"
done

mkdir -p "$PID_DIR" "$LOG_DIR" "$KCFG_DIR"
chmod 700 "$CLUSTER_DIR"

# ------------------------------------------------------------------ PKI ---
# Generated once per state dir (in a scratch dir, moved into place when
# complete), so kubeconfigs and service-account tokens stay valid across
# down/up. RSA 2048, 10 years: this is a throwaway local cluster.

gen_pki() {
  local d=$1
  cat >"$d/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
EOF
  key() { openssl genrsa -out "$d/$1.key" 2048 2>/dev/null; chmod 600 "$d/$1.key"; }
  ca() { # ca NAME CN
    key "$1"
    openssl req -x509 -new -key "$d/$1.key" -config "$d/openssl.cnf" -extensions v3_ca \
      -subj "/CN=$2" -days 3650 -sha256 -out "$d/$1.crt"
  }
  cert() { # cert NAME CA SUBJECT EXTKEYUSAGE [SUBJECTALTNAME]
    local name=$1 ca=$2 subj=$3 eku=$4 san=${5:-}
    key "$name"
    {
      echo "basicConstraints = critical,CA:FALSE"
      echo "keyUsage = critical,digitalSignature,keyEncipherment"
      echo "extendedKeyUsage = $eku"
      echo "authorityKeyIdentifier = keyid"
      if [[ -n $san ]]; then echo "subjectAltName = $san"; fi
    } >"$d/$name.ext"
    openssl req -new -key "$d/$name.key" -config "$d/openssl.cnf" -subj "$subj" -out "$d/$name.csr"
    openssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
      -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
    rm -f "$d/$name.csr" "$d/$name.ext"
  }

  ca ca aifleet-e2e-ca
  # First IP of the service range: the `kubernetes` Service's ClusterIP.
  local o1 o2 o3 o4
  IFS=. read -r o1 o2 o3 o4 <<<"${SERVICE_CIDR%/*}"
  local svc_ip="$o1.$o2.$o3.$((o4 + 1))"
  cert apiserver ca "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:$svc_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # Client identities. Admin and KWOK are cluster admins via system:masters;
  # the controller manager and scheduler get their usual RBAC users, whose
  # roles the API server bootstraps itself.
  cert admin ca "/O=system:masters/CN=aifleet-admin" clientAuth
  cert kwok ca "/O=system:masters/CN=kwok-controller" clientAuth
  cert kube-controller-manager ca "/CN=system:kube-controller-manager" clientAuth
  cert kube-scheduler ca "/CN=system:kube-scheduler" clientAuth
  # The real node: the kubelet as a member of system:nodes (Node authorizer,
  # NodeRestriction), its serving cert, kube-proxy, cluster DNS, Prometheus'
  # pod discovery, and the API server's identity towards kubelets.
  cert kubelet ca "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  cert kubelet-serving ca "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
  cert kube-proxy ca "/CN=system:kube-proxy" clientAuth
  cert coredns ca "/CN=system:aifleet-coredns" clientAuth
  cert prometheus ca "/CN=system:aifleet-prometheus" clientAuth
  cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  # Front proxy (aggregation layer), so APIServices such as a metrics adapter
  # can be registered later like on a real cluster.
  ca front-proxy-ca aifleet-e2e-front-proxy-ca
  cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
  # Service-account token signing key pair (TokenRequest API, bound tokens).
  key sa
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  rm -f "$d/openssl.cnf"
}

# The marker names what the PKI holds; a state dir from before the real node
# gets a new one (kubeconfigs are rewritten below on every start anyway).
PKI_VERSION="2 node=$NODE_NAME ip=$NODE_IP"
if [[ "$(cat "$PKI/.complete" 2>/dev/null)" != "$PKI_VERSION" ]]; then
  log "generating PKI in $PKI"
  rm -rf "$PKI" "$PKI.tmp"
  mkdir -p "$PKI.tmp"
  gen_pki "$PKI.tmp"
  echo "$PKI_VERSION" >"$PKI.tmp/.complete"
  mv "$PKI.tmp" "$PKI"
fi

# ----------------------------------------------------------- kubeconfigs ---
# Rewritten on every start (cheap) so a changed port takes effect. Certs are
# embedded, so a kubeconfig can be copied elsewhere.

b64() { base64 -w0 <"$1"; }
kubeconfig() { # kubeconfig FILE CERTNAME USER
  local tmp="$1.tmp"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: aifleet-e2e
  cluster:
    server: $API_URL
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $(b64 "$PKI/$2.crt")
    client-key-data: $(b64 "$PKI/$2.key")
contexts:
- name: $3@aifleet-e2e
  context:
    cluster: aifleet-e2e
    user: $3
current-context: $3@aifleet-e2e
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$1"
}
kubeconfig "$ADMIN_KUBECONFIG" admin aifleet-admin
kubeconfig "$KCFG_DIR/kube-controller-manager.kubeconfig" kube-controller-manager system:kube-controller-manager
kubeconfig "$KCFG_DIR/kube-scheduler.kubeconfig" kube-scheduler system:kube-scheduler
kubeconfig "$KCFG_DIR/kwok.kubeconfig" kwok kwok-controller
kubeconfig "$KCFG_DIR/kubelet.kubeconfig" kubelet "system:node:$NODE_NAME"
kubeconfig "$KCFG_DIR/kube-proxy.kubeconfig" kube-proxy system:kube-proxy
kubeconfig "$KCFG_DIR/coredns.kubeconfig" coredns system:aifleet-coredns
kubeconfig "$KCFG_DIR/prometheus.kubeconfig" prometheus system:aifleet-prometheus

# Handy for scripts: the resolved settings of this cluster.
cat >"$CLUSTER_DIR/cluster.env" <<EOF
AIFLEET_CLUSTER_DIR=$CLUSTER_DIR
KUBECONFIG=$ADMIN_KUBECONFIG
AIFLEET_APISERVER_URL=$API_URL
AIFLEET_AUDIT_LOG=$CLUSTER_DIR/audit.log
AIFLEET_ETCD_URL=http://127.0.0.1:$ETCD_PORT
AIFLEET_BIN_DIR=$BIN
AIFLEET_SERVICE_CIDR=$SERVICE_CIDR
AIFLEET_NODE_NAME=$NODE_NAME
AIFLEET_NODE_IP=$NODE_IP
AIFLEET_NODE_POD_CIDR=$NODE_POD_CIDR
AIFLEET_NODE_VOLUMES=$RUN_DIR/volumes
EOF

# ------------------------------------------------------------------ etcd ---
# Single member, plain HTTP on loopback only (nothing else can reach it).
# unsafe-no-fsync: a crash may lose this throwaway cluster's last writes, in
# exchange for not being bottlenecked on fsync latency of a shared disk.

cat >"$CLUSTER_DIR/etcd.yaml" <<EOF
name: aifleet-e2e
data-dir: $CLUSTER_DIR/etcd
listen-client-urls: http://127.0.0.1:$ETCD_PORT
advertise-client-urls: http://127.0.0.1:$ETCD_PORT
listen-peer-urls: http://127.0.0.1:$ETCD_PEER_PORT
initial-advertise-peer-urls: http://127.0.0.1:$ETCD_PEER_PORT
initial-cluster: aifleet-e2e=http://127.0.0.1:$ETCD_PEER_PORT
initial-cluster-state: new
quota-backend-bytes: 8589934592
unsafe-no-fsync: true
log-level: warn
EOF
start etcd "$BIN/etcd" --config-file="$CLUSTER_DIR/etcd.yaml"
etcd_ready() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'; }
wait_for "etcd" etcd_ready
log "etcd ready ($((SECONDS - t0))s)"

# --------------------------------------------------------- kube-apiserver ---

# PodNodeSelector and PodTolerationRestriction let a namespace put all its pods
# on the real node (annotations), as platform teams pin namespaces to pools.
#
# --endpoint-reconciler-type=none: the API server would publish its advertise
# address as the `kubernetes` Service's endpoint, but Endpoints validation
# rejects loopback addresses. node.sh publishes the relay on the node's bridge
# address instead, which is how pods reach the API server.
#
# Aggregation layer: the --requestheader-*/--proxy-client-* flags (front-proxy
# PKI above) let an APIService such as a custom-metrics adapter be served.
# --enable-aggregator-routing must stay off (the default): an adapter on
# loopback is reached through an ExternalName Service for `localhost`, which
# the aggregator resolves only without it (e2e/test_hpa_adapter.py).
start kube-apiserver "$BIN/kube-apiserver" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --endpoint-reconciler-type=none \
  --secure-port="$APISERVER_PORT" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --tls-cert-file="$PKI/apiserver.crt" \
  --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --authorization-mode=Node,RBAC \
  --enable-admission-plugins=NodeRestriction,PodNodeSelector,PodTolerationRestriction \
  --allow-privileged=true \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
  --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" \
  --kubelet-preferred-address-types=InternalIP \
  --audit-policy-file="$cluster_src/manifests/audit-policy.yaml" \
  --audit-log-path="$CLUSTER_DIR/audit.log" \
  --audit-log-format=json \
  --audit-log-maxbackup=0 \
  --audit-log-maxsize=0
wait_for "kube-apiserver /readyz" api_ready
log "kube-apiserver ready at $API_URL ($((SECONDS - t0))s)"

# ---------------------------------- controller manager, scheduler, KWOK ---
# Leader election off: there is exactly one of each, and it saves a stream of
# Lease writes.

# Client QPS above the 20/s default: a test or benchmark that creates hundreds of Deployments at once should
# measure the operator, not the controller manager's rate limiter. Production clusters raise these too.
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$KCFG_DIR/kube-controller-manager.kubeconfig" \
  --kube-api-qps=200 --kube-api-burst=400 \
  --concurrent-deployment-syncs=10 --concurrent-replicaset-syncs=10 \
  --authentication-kubeconfig="$KCFG_DIR/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig="$KCFG_DIR/kube-controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="$KCM_PORT" \
  --leader-elect=false \
  --controllers='*' \
  --use-service-account-credentials=true \
  --root-ca-file="$PKI/ca.crt" \
  --service-account-private-key-file="$PKI/sa.key" \
  --cluster-signing-cert-file="$PKI/ca.crt" \
  --cluster-signing-key-file="$PKI/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --cluster-name=aifleet-e2e

start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$KCFG_DIR/kube-scheduler.kubeconfig" \
  --kube-api-qps=200 --kube-api-burst=400 \
  --authentication-kubeconfig="$KCFG_DIR/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$KCFG_DIR/kube-scheduler.kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="$SCHEDULER_PORT" \
  --leader-elect=false

# KWOK: nodes annotated kwok.x-k8s.io/node=fake are its "kubelets". Stages
# come only from our manifests/kwok-stages (HOME is pointed at the state dir
# so a ~/.kwok/kwok.yaml of the user's cannot sneak more in). No
# --node-ip/--server-address: fake nodes get no address, so the API server
# never tries to dial a kubelet (kubectl logs/exec fail instead).
mkdir -p "$CLUSTER_DIR/kwok-home"
stage_args=()
for f in "$cluster_src"/manifests/kwok-stages/*.yaml; do stage_args+=("--config=$f"); done
HOME="$CLUSTER_DIR/kwok-home" start kwok "$BIN/kwok" \
  --kubeconfig="$KCFG_DIR/kwok.kubeconfig" \
  "${stage_args[@]}" \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr="$POD_CIDR" \
  --node-lease-duration-seconds=40 \
  -v="${AIFLEET_KWOK_LOG_LEVEL:-INFO}"

component_healthy() { curl -fsSk --max-time 2 "https://127.0.0.1:$1/healthz" >/dev/null 2>&1; }
wait_for "kube-controller-manager /healthz" component_healthy "$KCM_PORT"
wait_for "kube-scheduler /healthz" component_healthy "$SCHEDULER_PORT"
log "controller manager and scheduler healthy ($((SECONDS - t0))s)"

# ------------------------------------------------------------------ nodes ---
# Created from the templates in manifests/nodes (NODE_NAME substituted).
# Nodes from an earlier run with more nodes are removed so the pool matches.

want=()
nodes_yaml=""
for ((i = 0; i < GPU_NODES; i++)); do
  want+=("kwok-gpu-$i")
  nodes_yaml+="$(sed "s/NODE_NAME/kwok-gpu-$i/g" "$cluster_src/manifests/nodes/gpu-node.yaml")"$'\n---\n'
done
for ((i = 0; i < CPU_NODES; i++)); do
  want+=("kwok-cpu-$i")
  nodes_yaml+="$(sed "s/NODE_NAME/kwok-cpu-$i/g" "$cluster_src/manifests/nodes/cpu-node.yaml")"$'\n---\n'
done
if ((${#want[@]} > 0)); then
  printf '%s' "$nodes_yaml" | k apply -f - >/dev/null
fi
for n in $(k get nodes -l type=kwok -o name); do
  n="${n#node/}"
  [[ " ${want[*]} " == *" $n "* ]] || k delete node "$n" --wait=false >/dev/null
done

nodes_ready() {
  local total ready
  total="$(k get nodes -l type=kwok --no-headers 2>/dev/null | wc -l)"
  ready="$(k get nodes -l type=kwok --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)"
  ((total == ${#want[@]} && ready == total))
}
wait_for "${#want[@]} Ready nodes" nodes_ready
# Pods can only be created once the `default` ServiceAccount exists.
default_sa() { k -n default get serviceaccount default >/dev/null 2>&1; }
wait_for "the default ServiceAccount" default_sa

if [[ $REAL_NODE == 1 ]]; then
  BIN="$BIN" "$cluster_src/node.sh" up
fi

log "cluster up in $((SECONDS - t0))s: $GPU_NODES GPU + $CPU_NODES CPU nodes$([[ $REAL_NODE == 1 ]] && echo " + real node $NODE_NAME"), logs in $LOG_DIR"
echo "export KUBECONFIG=$ADMIN_KUBECONFIG"
