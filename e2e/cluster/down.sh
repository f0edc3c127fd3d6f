#!/usr/bin/env bash
# Stop everything up.sh started for this state dir and make sure nothing is
# left running. Keeps the state (PKI, etcd data, logs) for the next up.sh
# unless --purge is given, which also deletes the state dir.
#
#   e2e/cluster/down.sh [--purge]
#
# Only processes recorded in the state dir's pid files (or, as a safety net,
# component processes whose command line points into this state dir) are
# signalled, each by its pid.
set -euo pipefail

LOG_TAG=down
purge=false
case "${1:-}" in
  "") ;;
  --purge) purge=true ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

failed=0
# The real node first: its pods and network go while the API server still runs.
"$cluster_src/node.sh" down || { log "the real node did not stop cleanly"; failed=1; }

# Reverse start order: clients first, etcd last, so nothing logs a storm of
# connection errors on the way down and etcd closes its data dir cleanly.
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  c="${COMPONENTS[i]}"
  if pid="$(pid_of "$c")"; then
    stop_pid "$c" "$pid" || { log "could not stop $c (pid $pid)"; failed=1; }
  fi
  rm -f "$PID_DIR/$c.pid"
done

# Safety net: component processes of this state dir that lost their pid file.
for pid in $(stray_pids); do
  log "found stray process $pid of this cluster: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)"
  stop_pid stray "$pid" || { log "could not stop pid $pid"; failed=1; }
done

left="$(stray_pids)"
if [[ -n $left ]]; then
  die "still running: $left"
fi
((failed == 0)) || die "some processes could not be stopped"

if $purge; then
  rm -rf "$CLUSTER_DIR"
  log "cluster stopped; state dir $CLUSTER_DIR removed"
else
  log "cluster stopped (state kept in $CLUSTER_DIR; --purge to remove)"
fi
