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

PID_DIR="$CLUSTER_DIR/pids"
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

# is_ours PID: the process exists and its command line references CLUSTER_DIR.
is_ours() {
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
  [[ $cmdline == *"$CLUSTER_DIR/"* ]]
}

# stray_pids: processes started for this state dir that have no pid file
# (e.g. pid files deleted by hand). Matches the component binaries only.
stray_pids() {
  local p exe
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [[ $p == "$$" ]] && continue
    exe="$(readlink "/proc/$p/exe" 2>/dev/null)" || continue
    [[ $exe == */aifleet-kube || $exe == */aifleet-kwok ]] || continue
    is_ours "$p" && echo "$p"
  done
  return 0
}
