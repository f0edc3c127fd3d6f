# Shared settings and helpers for up.sh / down.sh. Sourced, not executed.
# shellcheck shell=bash
# shellcheck disable=SC2034  # the settings are used by the scripts that source this

cluster_src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# State dir: PKI, kubeconfigs, etcd data, logs, pids. Defaults to e2e/.cluster
# in this checkout (gitignored) so two checkouts never share a cluster.
CLUSTER_DIR="$(realpath -m "${AIFLEET_CLUSTER_DIR:-$cluster_src/../.cluster}")"

# Loopback ports. Override to run two clusters side by side (each needs its
# own AIFLEET_CLUSTER_DIR too).
APISERVER_PORT="${AIFLEET_APISERVER_PORT:-6443}"
ETCD_PORT="${AIFLEET_ETCD_PORT:-2379}"
ETCD_PEER_PORT="${AIFLEET_ETCD_PEER_PORT:-$((ETCD_PORT + 1))}"
KCM_PORT="${AIFLEET_KCM_PORT:-10257}"
SCHEDULER_PORT="${AIFLEET_SCHEDULER_PORT:-10259}"

# Start order; down.sh stops in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

# The real node (node.sh): one kubelet over containerd and runc, kube-proxy,
# cluster DNS, and a relay that lets pods reach the API server. Set
# AIFLEET_REAL_NODE=0 for a control plane with KWOK nodes only.
REAL_NODE="${AIFLEET_REAL_NODE:-1}"
NODE_COMPONENTS=(containerd apiserver-relay coredns kube-proxy kubelet)
NODE_NAME="${AIFLEET_NODE_NAME:-aifleet-node-0}"
# The node's pods live on a bridge of this machine's own, and the node's
# address is the bridge's: pod, node and Service traffic never needs a route
# off the machine (node.sh drops any forwarding that would leave the bridge).
NODE_BRIDGE="${AIFLEET_NODE_BRIDGE:-aifleet0}"
NODE_POD_CIDR="${AIFLEET_NODE_POD_CIDR:-10.88.0.0/24}"
NODE_IP="${NODE_POD_CIDR%.*/*}.1"
SERVICE_CIDR="${AIFLEET_SERVICE_CIDR:-10.96.0.0/16}"
# The range KWOK hands fake pod IPs out of: no host has them, so node.sh
# routes the range nowhere (a blackhole), and nothing aimed at a fake pod
# leaves the machine.
POD_CIDR="${AIFLEET_POD_CIDR:-10.244.0.0/16}"
# Sockets have short path limits, so runtime sockets live under /run in a
# directory named after the state dir.
RUN_DIR="/run/aifleet-$(printf '%s' "$CLUSTER_DIR" | sha256sum | cut -c1-8)"

PID_DIR="$CLUSTER_DIR/pids"
PKI="$CLUSTER_DIR/pki"
KCFG_DIR="$CLUSTER_DIR/kubeconfigs"
ADMIN_KUBECONFIG="$CLUSTER_DIR/kubeconfig"
TIMEOUT="${AIFLEET_UP_TIMEOUT:-180}" # seconds per readiness wait
KUBECTL="${KUBECTL:-kubectl}"
LOG_DIR="$CLUSTER_DIR/logs"

log() { printf '[%s] %s\n' "${LOG_TAG:-cluster}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# pid_of NAME: print the pid of our running component NAME, or fail. A pid
# only counts if that process still exists AND its command line mentions our
# state dir (every component is started with a flag pointing into it), so a
# stale pid file whose number was reused by an unrelated process is never
# mistaken for ours -- and never killed.
pid_of() {
  local f="$PID_DIR/$1.pid" pid
  [[ -s $f ]] || return 1
  pid="$(<"$f")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  is_ours "$pid" || return 1
  echo "$pid"
}

# is_ours PID: the process exists and its command line references CLUSTER_DIR
# (or RUN_DIR, where containerd's shims are told their address).
is_ours() {
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
  [[ $cmdline == *"$CLUSTER_DIR/"* || $cmdline == *"$RUN_DIR/"* ]]
}

# stray_pids: processes started for this state dir that have no pid file
# (e.g. pid files deleted by hand). Matches the component binaries only.
stray_pids() {
  local p exe
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [[ $p == "$$" ]] && continue
    exe="$(readlink "/proc/$p/exe" 2>/dev/null)" || continue
    case "$exe" in
      */aifleet-kube | */aifleet-kwok | */aifleet-coredns | */containerd | */containerd-shim-runc-v2 | */socat) ;;
      *) continue ;;
    esac
    is_ours "$p" && echo "$p"
  done
  return 0
}

k() { "$KUBECTL" --kubeconfig="$ADMIN_KUBECONFIG" "$@"; }

# wait_for DESC CMD...: poll CMD until it succeeds, or give up after TIMEOUT seconds.
wait_for() {
  local desc=$1 deadline=$((SECONDS + TIMEOUT)); shift
  until "$@"; do
    if ((SECONDS >= deadline)); then
      die "timed out after ${TIMEOUT}s waiting for $desc (logs: $LOG_DIR/; stop with down.sh)"
    fi
    check_alive
    sleep 0.5
  done
}

# check_alive: fail fast, with the log tail, if a component we started died.
check_alive() {
  local c
  for c in "${started[@]}"; do
    if ! pid_of "$c" >/dev/null; then
      log "$c exited; last lines of $LOG_DIR/$c.log:"
      tail -n 30 "$LOG_DIR/$c.log" >&2 || true
      die "$c is not running (stop the rest with down.sh)"
    fi
  done
}

# start NAME BINARY ARGS...: run a component detached (own session, so it
# survives this script and a terminal's Ctrl-C), log to logs/NAME.log, pid to
# pids/NAME.pid. The pid is written by the process itself right before it
# execs the component, so it is exactly the component's pid.
started=()
start() {
  local name=$1; shift
  rm -f "$PID_DIR/$name.pid"
  {
    printf '\n===== %s: starting %s\n' "$(date -u +%FT%TZ)" "$name"
    printf '%q ' "$@"; printf '\n'
  } >>"$LOG_DIR/$name.log"
  # shellcheck disable=SC2016  # $$ and $0 are for the inner bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_DIR/$name.pid" "$@" \
    </dev/null >>"$LOG_DIR/$name.log" 2>&1 &
  started+=("$name")
  # Give bash -c a moment to write the pid file.
  local i
  for i in $(seq 50); do [[ -s $PID_DIR/$name.pid ]] && break; sleep 0.05; done
}

# stop_pid NAME PID: SIGTERM, wait up to 20s for a clean exit, then SIGKILL.
stop_pid() {
  local name=$1 pid=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do
    is_ours "$pid" || { log "stopped $name (pid $pid)"; return 0; }
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIGTERM for 20s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    is_ours "$pid" || return 0
    sleep 0.1
  done
  return 1
}

