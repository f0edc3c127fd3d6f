#!/usr/bin/env bash
# The local cluster's real node: a kubelet (from the same k8s.io/kubernetes
# build as the control plane) over CRI to containerd and runc, the CNI bridge
# for pod networking, kube-proxy in iptables mode for Services, CoreDNS for
# cluster DNS, and a relay that lets pods reach the API server. Its pods run
# real containers from images built locally (e2e/images/build.sh).
#
#   e2e/cluster/node.sh up     start it (idempotent); up.sh calls this
#   e2e/cluster/node.sh down   stop it and remove every process, pod network,
#                              mount, cgroup, route and iptables rule it made,
#                              and restore the kernel settings it changed
#
# Network safety: pods and the node address live on the bridge NODE_BRIDGE
# only. Nothing is masqueraded off the machine and nothing is routed off it:
# forwarding that would leave the bridge is dropped, the Service range is
# routed to the bridge, and KWOK's fake pod range is routed nowhere.
#
# Needs root, Debian's containerd, runc and containernetworking-plugins, and
# iptables (installed here when missing).
set -euo pipefail

LOG_TAG=node
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

NODE_SRC="$cluster_src/node"
NODE_DIR="$CLUSTER_DIR/node"
CONTAINERD_SOCK="$RUN_DIR/containerd/containerd.sock"
CRI_ENDPOINT="unix://$CONTAINERD_SOCK"
# Kernel settings the kubelet, kube-proxy or the CNI bridge change; down
# puts back what up found.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory vm.panic_on_oom
  kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
SYSCTL_SAVE="$CLUSTER_DIR/node-sysctls.saved"
# The nftables tables that existed before (iptables-nft creates the ones it touches).
NFT_TABLES_SAVE="$CLUSTER_DIR/node-nft-tables.saved"
# Present when /run/netns was not a mount point before the node started.
NETNS_MOUNT_OURS="$CLUSTER_DIR/node-netns-mount-ours"
TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.08-py3
TRITON_NEXT_IMAGE=nvcr.io/nvidia/tritonserver:24.09-py3
# Our own iptables chain, jumped to from FORWARD.
ISOLATION_CHAIN=AIFLEET-NODE-ISOLATION


# --------------------------------------------------------------- helpers ---

stop() { # stop NAME
  local pid
  if pid="$(pid_of "$1")"; then stop_pid "$1" "$pid" || log "could not stop $1 (pid $pid)"; fi
  rm -f "$PID_DIR/$1.pid"
}

# render TEMPLATE OUT: copy a template from node/, replacing @NAME@ with the
# value of the shell variable NAME.
render() {
  local text var
  text="$(<"$NODE_SRC/$1")"
  for var in CLUSTER_DIR RUN_DIR NODE_DIR NODE_NAME NODE_IP NODE_BRIDGE NODE_POD_CIDR SERVICE_CIDR \
    CLUSTER_DNS PKI KCFG_DIR LOG_DIR CRI_ENDPOINT CONTAINERD_SOCK RUNC_WRAPPER CNI_BIN_DIR PAUSE_IMAGE; do
    text="${text//@$var@/${!var:-}}"
  done
  printf '%s\n' "$text" >"$2"
}

ensure_packages() {
  local missing=() p
  for p in containerd runc containernetworking-plugins iptables nftables socat; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  # No init system runs here: keep the packages' scripts from starting a system containerd.
  local policy=/usr/sbin/policy-rc.d created=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ((created == 1)) && rm -f "$policy"
  return 0
}

save_sysctls() {
  [[ -s $SYSCTL_SAVE ]] && return 0 # a node that was not taken down: keep the first values
  local s
  for s in "${SYSCTLS[@]}"; do printf '%s=%s\n' "$s" "$(sysctl -n "$s")"; done >"$SYSCTL_SAVE.tmp"
  mv "$SYSCTL_SAVE.tmp" "$SYSCTL_SAVE"
  nft list tables >"$NFT_TABLES_SAVE" 2>/dev/null || true
  # containerd makes /run/netns a mount point of its own for pod network namespaces.
  if ! findmnt -rn /run/netns >/dev/null; then touch "$NETNS_MOUNT_OURS"; fi
}

restore_sysctls() {
  [[ -s $SYSCTL_SAVE ]] || return 0
  local line
  while IFS= read -r line; do
    sysctl -q -w "$line" >/dev/null || log "could not restore $line"
  done <"$SYSCTL_SAVE"
  rm -f "$SYSCTL_SAVE"
}

# ------------------------------------------------------------- network ---

network_up() {
  modprobe br_netfilter 2>/dev/null || true
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
  fi
  ip addr replace "$NODE_IP/${NODE_POD_CIDR#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # Service traffic that no kube-proxy rule catches dies on the bridge
  # instead of taking the default route; fake KWOK pods are unreachable.
  ip route replace "$SERVICE_CIDR" dev "$NODE_BRIDGE" src "$NODE_IP"
  ip route replace blackhole "$POD_CIDR"
  # Bridged pod traffic must pass iptables for Services to work.
  sysctl -q -w net.bridge.bridge-nf-call-iptables=1
  # The CNI bridge plugin turns IP forwarding on; nothing may be forwarded
  # between the bridge and any other interface.
  iptables -w -N "$ISOLATION_CHAIN" 2>/dev/null || iptables -w -F "$ISOLATION_CHAIN"
  iptables -w -A "$ISOLATION_CHAIN" -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -j DROP
  iptables -w -A "$ISOLATION_CHAIN" -o "$NODE_BRIDGE" ! -i "$NODE_BRIDGE" -j DROP
  iptables -w -C FORWARD -j "$ISOLATION_CHAIN" 2>/dev/null || iptables -w -I FORWARD 1 -j "$ISOLATION_CHAIN"
}

# remove_chains FAMILY: delete every rule that jumps to a KUBE-* or our chain
# from the built-in chains, then flush and delete those chains (what
# kube-proxy and the kubelet leave behind).
remove_chains() {
  local save=$1-save cmd=$1 table line chain
  command -v "$save" >/dev/null || return 0
  for table in filter nat mangle raw; do
    "$save" -t "$table" >/dev/null 2>&1 || continue
    # Rules in built-in chains that jump to one of ours.
    while IFS= read -r line; do
      # shellcheck disable=SC2086  # the rule's own words
      "$cmd" -w -t "$table" ${line/-A /-D } 2>/dev/null || true
    done < <("$save" -t "$table" | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j (KUBE-|AIFLEET-)')
    for chain in $("$save" -t "$table" | sed -n 's/^:\(\(KUBE\|AIFLEET\)-[^ ]*\) .*/\1/p'); do
      "$cmd" -w -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$save" -t "$table" | sed -n 's/^:\(\(KUBE\|AIFLEET\)-[^ ]*\) .*/\1/p'); do
      "$cmd" -w -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

network_down() {
  # kube-proxy's own cleanup first (iptables, ipvs and nftables modes), then
  # whatever chain is left.
  if [[ -x ${BIN:-}/kube-proxy ]]; then
    "$BIN/kube-proxy" --cleanup >>"$LOG_DIR/kube-proxy.log" 2>&1 || true
  fi
  remove_chains iptables
  remove_chains ip6tables
  ip route del blackhole "$POD_CIDR" 2>/dev/null || true
  ip route del "$SERVICE_CIDR" dev "$NODE_BRIDGE" 2>/dev/null || true
  # Veths of pods whose sandbox could not be stopped cleanly.
  local link
  for link in $(ip -o link show master "$NODE_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
  # Tables that iptables created for us and that hold no rule and no chain of their own again.
  if [[ -f $NFT_TABLES_SAVE ]]; then
    local family save table
    for family in ip ip6; do
      if [[ $family == ip ]]; then save=iptables-save; else save=ip6tables-save; fi
      for table in filter nat mangle raw; do
        grep -qx "table $family $table" "$NFT_TABLES_SAVE" && continue
        "$save" -t "$table" 2>/dev/null | grep -vE '^(#|\*|COMMIT|:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) )' >/dev/null &&
          continue
        nft delete table "$family" "$table" 2>/dev/null || true
      done
    done
    rm -f "$NFT_TABLES_SAVE"
  fi
}

# ---------------------------------------------------------------- mounts ---

# Everything mounted below our state and runtime dirs (pod volumes, network
# namespaces, overlay snapshots, sandbox /dev/shm), deepest first.
unmount_all() {
  local target
  for target in $(findmnt -rn -o TARGET | grep -E "^($CLUSTER_DIR|$RUN_DIR)/" | sort -r); do
    umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || log "could not unmount $target"
  done
  # containerd's network namespaces are bind mounts under /run/netns.
  for target in $(findmnt -rn -o TARGET | grep -E '^/run/netns/cni-' | sort -r); do
    if [[ -f $NODE_DIR/netns-owned ]] && grep -qx "${target##*/}" "$NODE_DIR/netns-owned" 2>/dev/null; then
      umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
      rm -f "$target" 2>/dev/null || true
    fi
  done
  return 0
}

# The kubelet's pod cgroups (cgroupfs driver, cgroup v1): remove every
# kubepods directory, deepest first, in every hierarchy.
remove_cgroups() {
  local dir
  for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [[ -d $dir ]] || continue
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ -d $dir ]] && log "could not remove cgroup $dir"
  done
  return 0
}

# --------------------------------------------------------------------- up ---

node_components_running() {
  local c
  for c in "${NODE_COMPONENTS[@]}"; do pid_of "$c" >/dev/null || return 1; done
}

# node_ready [SINCE]: the node is Ready, by a heartbeat of this kubelet's (a node object kept from an earlier
# run says Ready until its status goes stale).
# shellcheck disable=SC2120  # SINCE is optional
node_ready() {
  local ready
  ready="$(k get node "$NODE_NAME" -o jsonpath='{range .status.conditions[?(@.type=="Ready")]}{.status} {.lastHeartbeatTime}{end}' 2>/dev/null)"
  [[ ${ready%% *} == True && ${ready#* } > ${1:-} ]]
}

import_images() {
  local images name archive want
  if [[ -n ${AIFLEET_IMAGES:-} ]]; then
    images="$(<"$AIFLEET_IMAGES")" # NAME<TAB>ARCHIVE lines, instead of building them
  else
    images="$(bash "$cluster_src/../images/build.sh")"
  fi
  while IFS=$'\t' read -r name archive; do
    [[ -n $name ]] || continue
    # The archive's name says its content; an image imported from it before is skipped.
    want="$(basename "$archive")"
    if grep -qx "$name $want" "$NODE_DIR/images.imported" 2>/dev/null &&
      ctr --address "$CONTAINERD_SOCK" -n k8s.io images ls -q | grep -Fx "$name" >/dev/null; then
      continue
    fi
    log "importing $name"
    local gave
    gave="$(ctr --address "$CONTAINERD_SOCK" -n k8s.io images import --all-platforms "$archive")"
    ctr --address "$CONTAINERD_SOCK" -n k8s.io images ls -q | grep -Fx "$name" >/dev/null ||
      die "importing $archive did not give the image $name (it gave: ${gave//$'\n'/ }); delete the archive to rebuild it"
    { grep -v "^$name " "$NODE_DIR/images.imported" 2>/dev/null || true; echo "$name $want"; } >"$NODE_DIR/images.imported.tmp"
    mv "$NODE_DIR/images.imported.tmp" "$NODE_DIR/images.imported"
  done <<<"$images"
  # The Triton image also stands for the next Triton release, so tests can roll a fleet to a new version.
  ctr --address "$CONTAINERD_SOCK" -n k8s.io images tag --force "$TRITON_IMAGE" "$TRITON_NEXT_IMAGE" >/dev/null
}

node_up() {
  [[ $EUID -eq 0 ]] || die "the real node needs root (set AIFLEET_REAL_NODE=0 for KWOK nodes only)"
  [[ -n ${BIN:-} ]] || BIN="$("$cluster_src/build.sh")"
  if node_components_running && node_ready; then
    log "real node $NODE_NAME is already up"
    return 0
  fi
  if node_components_running; then :; else
    # Partly up: start clean.
    node_down
  fi
  local t0=$SECONDS
  ensure_packages
  mkdir -p "$NODE_DIR" "$RUN_DIR/containerd" "$RUN_DIR/volumes" "$PID_DIR" "$LOG_DIR" "$NODE_DIR/cni/net.d" \
    "$NODE_DIR/cni/ipam"
  # Pods' users may reach the hostPath volumes (test model repositories) below volumes/, nothing else here.
  chmod 711 "$RUN_DIR" && chmod 755 "$RUN_DIR/volumes" && chmod 700 "$RUN_DIR/containerd"
  save_sysctls

  # shellcheck disable=SC2034  # read by render through ${!var}
  CLUSTER_DNS="$NODE_IP" RUNC_WRAPPER="$NODE_SRC/runc-oom-clamp" CNI_BIN_DIR=/usr/lib/cni
  # shellcheck disable=SC2034
  PAUSE_IMAGE="registry.k8s.io/pause:3.10"
  render containerd.toml "$NODE_DIR/containerd.toml"
  render cni.conflist "$NODE_DIR/cni/net.d/10-aifleet.conflist"
  render kubelet.yaml "$NODE_DIR/kubelet.yaml"
  render kube-proxy.yaml "$NODE_DIR/kube-proxy.yaml"
  render Corefile "$NODE_DIR/Corefile"
  # Pods with dnsPolicy Default get this file: cluster DNS only, never the host's resolvers.
  printf 'nameserver %s\nsearch cluster.local\noptions ndots:5\n' "$NODE_IP" >"$NODE_DIR/resolv.conf"

  network_up
  # Pod network namespaces are bind mounts under /run/netns, which must be a shared mount point of its own
  # before the first one is made (as `ip netns` sets it up); otherwise a namespace mounted on the parent
  # filesystem and seen through a later bind cannot be removed ("device or resource busy").
  mkdir -p /run/netns
  if ! findmnt -rn /run/netns >/dev/null; then
    mount --bind /run/netns /run/netns
  fi
  mount --make-shared /run/netns

  start containerd containerd --config "$NODE_DIR/containerd.toml"
  containerd_ready() { ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; }
  wait_for containerd containerd_ready
  log "containerd ready ($((SECONDS - t0))s)"
  import_images
  log "images imported ($((SECONDS - t0))s)"

  # Pods reach the API server through the `kubernetes` Service: its endpoint is
  # this relay on the node's bridge address, which forwards to the API server
  # on loopback.
  start apiserver-relay socat -lf "$LOG_DIR/apiserver-relay.socat.log" \
    "TCP4-LISTEN:${APISERVER_PORT},bind=${NODE_IP},reuseaddr,fork" "TCP4:127.0.0.1:${APISERVER_PORT}"
  k apply --server-side --force-conflicts -f - >/dev/null <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes
  namespace: default
  labels:
    kubernetes.io/service-name: kubernetes
    endpointslice.kubernetes.io/managed-by: aifleet.dev-e2e-node
addressType: IPv4
endpoints:
- addresses: ["$NODE_IP"]
  conditions: {ready: true}
ports:
- {name: https, port: $APISERVER_PORT, protocol: TCP}
EOF
  k apply --server-side --force-conflicts -f "$NODE_SRC/rbac.yaml" >/dev/null

  start coredns "$BIN/coredns" -conf "$NODE_DIR/Corefile" -pidfile "$NODE_DIR/coredns.pid"
  start kube-proxy "$BIN/kube-proxy" --config="$NODE_DIR/kube-proxy.yaml"
  local kubelet_started
  kubelet_started="$(date -u +%FT%TZ)"
  start kubelet "$BIN/kubelet" \
    --config="$NODE_DIR/kubelet.yaml" \
    --kubeconfig="$KCFG_DIR/kubelet.kubeconfig" \
    --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" \
    --root-dir="$NODE_DIR/kubelet" \
    --cert-dir="$NODE_DIR/kubelet/pki" \
    --node-labels="aifleet.dev/node=real,nvidia.com/gpu.present=true,node.kubernetes.io/instance-type=cpu-as-gpu" \
    --v=1

  wait_for "node $NODE_NAME Ready" node_ready "$kubelet_started"
  # Extended resources are advertised by patching the node's status, as
  # Kubernetes documents: the scheduler then places GPU pods here, which run
  # on the CPU (the test model's service time stands in for the GPU).
  k patch node "$NODE_NAME" --subresource=status --type=json -p \
    '[{"op":"add","path":"/status/capacity/nvidia.com~1gpu","value":"8"}]' >/dev/null
  gpu_advertised() {
    [[ "$(k get node "$NODE_NAME" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}')" == 8 ]]
  }
  wait_for "nvidia.com/gpu on $NODE_NAME" gpu_advertised
  dns_ready() { curl -fsS --max-time 2 "http://$NODE_IP:8181/ready" >/dev/null 2>&1; }
  wait_for "cluster DNS" dns_ready
  log "real node $NODE_NAME Ready at $NODE_IP ($((SECONDS - t0))s)"
}

# ------------------------------------------------------------------- down ---

node_down() {
  # A cluster that never had a real node (AIFLEET_REAL_NODE=0) owns no bridge, rule or mount: the ones on this
  # machine belong to another cluster's node, which may be running.
  [[ -d $NODE_DIR ]] || return 0
  [[ -n ${BIN:-} ]] || BIN="$(sed -n 's/^AIFLEET_BIN_DIR=//p' "$CLUSTER_DIR/cluster.env" 2>/dev/null || true)"
  # The kubelet first, so it recreates nothing; then every pod sandbox through
  # CRI, which releases each pod's network; then the rest.
  stop kubelet
  if pid_of containerd >/dev/null && [[ -x ${BIN:-}/aifleet-kube ]]; then
    # Network namespaces of our pods, for the unmount below should CNI DEL fail.
    findmnt -rn -o TARGET | sed -n 's|^/run/netns/\(cni-.*\)|\1|p' >"$NODE_DIR/netns-owned" 2>/dev/null || true
    "$BIN/aifleet-kube" cri-cleanup --endpoint="$CRI_ENDPOINT" --timeout=90s >>"$LOG_DIR/cri-cleanup.log" 2>&1 ||
      log "some pod sandboxes could not be removed (see $LOG_DIR/cri-cleanup.log)"
  fi
  stop kube-proxy
  stop coredns
  stop apiserver-relay
  stop containerd
  # Shims of containers that outlived containerd.
  local pid
  for pid in $(stray_pids); do
    case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
      */containerd-shim-runc-v2) kill -KILL "$pid" 2>/dev/null || true ;;
    esac
  done
  # Every step runs even when one before it failed, so one stuck mount leaves no rule or route behind.
  local step failed=0
  for step in unmount_all remove_cgroups network_down restore_sysctls; do
    "$step" || { log "cleanup step $step failed"; failed=1; }
  done
  # /run/netns, if it was not a mount point before and no namespace is left in it.
  if [[ -f $NETNS_MOUNT_OURS ]] && findmnt -rn /run/netns >/dev/null && [[ -z "$(ls -A /run/netns 2>/dev/null)" ]]; then
    umount /run/netns 2>/dev/null && rmdir /run/netns 2>/dev/null || true
  fi
  rm -f "$NETNS_MOUNT_OURS"
  rm -rf "$RUN_DIR"
  rm -f "$NODE_DIR/netns-owned"
  # containerd writes its shim sockets under /run/containerd/s whatever its
  # state dir; the directories go when nothing else uses them.
  rmdir /run/containerd/s /run/containerd 2>/dev/null || true
  return "$failed"
}

case "${1:-}" in
  up) node_up ;;
  down) node_down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
