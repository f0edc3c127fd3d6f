#!/usr/bin/env bash
# Checks every image build.sh makes by running it the way its pod runs it: imported with
# `ctr images import` into a containerd of this script's own (root, state, sockets and runc root in a
# temporary directory; no CRI plugin, so it never meets the cluster's), in a network namespace of its
# own (nothing listens on the host's ports), with a read-only root filesystem, the image's own user, no
# capabilities, no new privileges and the runtime's default seccomp profile.
#
#   smoke.sh      builds what is missing (build.sh), then checks; exits non-zero on the first failure
#
# It leaves nothing behind: containers, mounts, cgroups, the namespace and containerd go at exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_PREFIX=images-smoke
# shellcheck source=lib.sh
source "$HERE/lib.sh"

SERVICE_MS=200  # the echo model's service time: long enough to tell parallel from queued requests

WORK=
CONTAINERD_PID=
NETNS="aifleet-images-smoke-$$"
CGROUP="aifleet-images-smoke-$$"

cleanup() {
  local rc=$? id
  set +e
  remove_policy_rc_d
  if [[ -n $CONTAINERD_PID ]]; then
    for id in $(ctrc containers ls -q 2>/dev/null); do
      ctrc task kill -s SIGKILL "$id" >/dev/null 2>&1
      ctrc task delete -f "$id" >/dev/null 2>&1
      ctrc containers delete "$id" >/dev/null 2>&1
    done
    kill "$CONTAINERD_PID" 2>/dev/null
    wait "$CONTAINERD_PID" 2>/dev/null
  fi
  ip netns delete "$NETNS" 2>/dev/null
  # runc removes each container's cgroups; their common parent is ours to remove.
  rmdir /sys/fs/cgroup/*/"$CGROUP" 2>/dev/null
  if [[ -n $WORK ]]; then
    unmount_below "$WORK"
    rm -rf "$WORK"
  fi
  if [[ $rc -eq 0 ]]; then log "all images passed"; else log "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ctrc() { ctr --address "$WORK/containerd.sock" --namespace k8s.io "$@"; }
in_netns() { ip netns exec "$NETNS" "$@"; }

# The capabilities containerd grants by default, all dropped (as `capabilities: {drop: [ALL]}`).
DROP_CAPS=()
for cap in CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE \
    SYS_CHROOT KILL AUDIT_WRITE; do
  DROP_CAPS+=(--cap-drop "CAP_$cap")
done

# pod_run ID IMAGE [ctr run flags...] -- [COMMAND...]: starts a container as its pod would, detached.
pod_run() {
  local id=$1 image=$2 flags=()
  shift 2
  while [[ $# -gt 0 && $1 != -- ]]; do flags+=("$1"); shift; done
  [[ ${1:-} == -- ]] && shift
  ctrc run -d --read-only --seccomp "${DROP_CAPS[@]}" --runc-root "$WORK/runc" --fifo-dir "$WORK/fifo" \
    --cgroup "/$CGROUP/$id" --with-ns "network:/var/run/netns/$NETNS" \
    --mount "type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:mode=1777:size=64m" \
    --log-uri "file://$WORK/logs/$id.log" "${flags[@]}" "$image" "$id" "$@"
}

# one_shot ID IMAGE [flags...] -- COMMAND...: runs a command to its end in the pod's conditions.
one_shot() {
  local id=$1 image=$2 flags=()
  shift 2
  while [[ $# -gt 0 && $1 != -- ]]; do flags+=("$1"); shift; done
  shift
  ctrc run --rm --read-only --seccomp "${DROP_CAPS[@]}" --runc-root "$WORK/runc" --fifo-dir "$WORK/fifo" \
    --cgroup "/$CGROUP/$id" --with-ns "network:/var/run/netns/$NETNS" \
    --mount "type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:mode=1777:size=64m" \
    "${flags[@]}" "$image" "$id" "$@"
}

task_status() { ctrc task ls | awk -v id="$1" '$1 == id { print $3 }'; }
task_is() { [[ "$(task_status "$1")" == "$2" ]]; }  # ID STATUS

# stop ID: SIGTERM, as the kubelet sends it; fails if the process has not exited within 20 s.
stop() {
  local id=$1 _
  ctrc task kill -s SIGTERM "$id"
  for _ in $(seq 1 40); do
    [[ "$(task_status "$id")" == STOPPED ]] && break
    sleep 0.5
  done
  [[ "$(task_status "$id")" == STOPPED ]] || die "$id did not stop on SIGTERM"
  ctrc task delete "$id" >/dev/null
  ctrc containers delete "$id"
}

# wait_for DESCRIPTION SECONDS COMMAND...: retries COMMAND every half second.
wait_for() {
  local what=$1 secs=$2 _
  shift 2
  for _ in $(seq 1 $((secs * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "timed out after ${secs}s waiting for $what"
}

http_code() { in_netns curl -s -o /dev/null -w '%{http_code}' "$1" || true; }
ready_200() { [[ "$(http_code http://127.0.0.1:8000/v2/health/ready)" == 200 ]]; }
uid_of() { ps -o uid=,gid= -p "$(ctrc task ls | awk -v id="$1" '$1 == id { print $2 }')" | awk '{print $1 ":" $2}'; }

main() {
  apt_install_missing containerd runc iproute2 curl
  local lines
  lines="$(bash "$HERE/build.sh")"
  declare -A archive=()
  local name file
  while IFS=$'\t' read -r name file; do archive[$name]=$file; done <<< "$lines"

  WORK="$(mktemp -d -t aifleet-images-smoke.XXXXXX)"
  mkdir -p "$WORK/logs" "$WORK/runc" "$WORK/fifo"
  cat > "$WORK/containerd.toml" <<EOF
version = 2
root = "$WORK/root"
state = "$WORK/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/containerd.sock"
[ttrpc]
  address = "$WORK/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$WORK/opt"
EOF
  containerd --config "$WORK/containerd.toml" > "$WORK/logs/containerd.log" 2>&1 &
  CONTAINERD_PID=$!
  wait_for containerd 20 ctrc version
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up

  # --- import: every archive, under its own name -----------------------------------------------------
  local t0=$SECONDS
  for name in "${!archive[@]}"; do ctrc images import "${archive[$name]}" >/dev/null; done
  log "imported ${#archive[@]} archives in $((SECONDS - t0))s"
  local have
  have="$(ctrc images ls -q)"
  for name in "${!archive[@]}"; do
    grep -qxF "$name" <<< "$have" || die "import lost the name $name (have: $have)"
  done
  log "names kept: $(tr '\n' ' ' <<< "$have")"

  # --- pause --------------------------------------------------------------------------------------------
  pod_run pause registry.k8s.io/pause:3.10
  wait_for "pause to run" 10 task_is pause RUNNING
  [[ "$(uid_of pause)" == 65535:65535 ]] || die "pause runs as $(uid_of pause)"
  stop pause
  log "pause: runs as 65535:65535, exits on SIGTERM"

  # --- python:3.11-slim ------------------------------------------------------------------------------------
  one_shot python docker.io/library/python:3.11-slim -- sh -euc '
    python --version; pip --version
    python3 -c "import sys, sysconfig, os, venv
assert sys.version_info[:2] == (3, 11)
assert not os.path.exists(os.path.join(sysconfig.get_path(\"stdlib\"), \"EXTERNALLY-MANAGED\"))"' >&2
  log "python: python/python3/pip on PATH, no EXTERNALLY-MANAGED"

  # --- the operator ----------------------------------------------------------------------------------------
  local out
  out="$(one_shot operator docker.io/library/aifleet-operator:0.1.0 -- sh -c 'echo "$(id -u):$(id -g) $(aifleet --version)"')"
  [[ $out == "65532:65532 "* ]] || die "operator: $out"
  log "operator: aifleet --version as 65532 -> ${out#* }"

  # --- redis: the renderer's pod, its readiness probe -----------------------------------------------------
  local password
  password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
  mkdir -p "$WORK/redis"
  cat > "$WORK/redis/redis.conf" <<EOF
bind 0.0.0.0 -::*
port 6379
protected-mode yes
requirepass "$password"
dir /data
daemonize no
logfile ""
save ""
appendonly no
EOF
  chgrp 999 "$WORK/redis/redis.conf"; chmod 0440 "$WORK/redis/redis.conf"  # a Secret volume, fsGroup 999
  pod_run redis docker.io/library/redis:7.0 --env "REDISCLI_AUTH=$password" \
    --mount "type=bind,src=$WORK/redis,dst=/etc/redis,options=rbind:ro" \
    --mount "type=tmpfs,src=tmpfs,dst=/data,options=nosuid:nodev:uid=999:gid=999:mode=0750" \
    -- redis-server /etc/redis/redis.conf
  wait_for "redis' readiness probe" 20 ctrc task exec --fifo-dir "$WORK/fifo" --exec-id probe redis \
    sh -c "redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG"
  [[ "$(uid_of redis)" == 999:999 ]] || die "redis runs as $(uid_of redis)"
  out="$(one_shot redis-client aifleet.dev/e2e-client:1 --env "REDISCLI_AUTH=$password" -- \
    sh -c 'redis-cli -h 127.0.0.1 set k v >/dev/null && redis-cli -h 127.0.0.1 get k')"
  [[ $out == v ]] || die "redis: SET/GET from the client gave '$out'"
  stop redis
  log "redis: as 999:999, readiness probe passes, SET/GET from the client image"

  # --- pgbouncer ---------------------------------------------------------------------------------------------
  mkdir -p "$WORK/pgbouncer"
  cat > "$WORK/pgbouncer/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=5432 dbname=app
[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
unix_socket_dir = /tmp
auth_type = md5
auth_file = /etc/pgbouncer/userlist.txt
admin_users = app
logfile =
pidfile =
syslog = 0
EOF
  printf '"app" "%s"\n' "$password" > "$WORK/pgbouncer/userlist.txt"
  chgrp 996 "$WORK/pgbouncer"/*; chmod 0440 "$WORK/pgbouncer"/*
  pod_run pgbouncer ghcr.io/cloudnative-pg/pgbouncer:1.24.0 \
    --mount "type=bind,src=$WORK/pgbouncer,dst=/etc/pgbouncer,options=rbind:ro" \
    -- pgbouncer /etc/pgbouncer/pgbouncer.ini
  # The renderer's probe is a TCP check of the port.
  wait_for "pgbouncer's port" 20 in_netns bash -c 'echo > /dev/tcp/127.0.0.1/6432'
  out="$(one_shot psql aifleet.dev/e2e-client:1 --env "PGPASSWORD=$password" -- \
    psql -h 127.0.0.1 -p 6432 -U app -Atc 'SHOW VERSION' pgbouncer)"
  [[ "$(uid_of pgbouncer)" == 998:996 ]] || die "pgbouncer runs as $(uid_of pgbouncer)"
  stop pgbouncer
  log "pgbouncer: as 998:996, admin console from the client image's psql: $out"

  # --- triton: the renderer's exact arguments, the echo model --------------------------------------------
  python3 "$HERE/models.py" "$WORK/models" --service-time-ms "$SERVICE_MS" --instances 2 >/dev/null
  python3 "$HERE/models.py" "$WORK/models" --name flaky --service-time-ms 0 --instances 1 --fail-every 3 \
    --no-broken >/dev/null
  local triton_args=(--model-repository=/models --http-port=8000 --grpc-port=8001 --metrics-port=8002
                     --allow-metrics=true --allow-gpu-metrics=false --strict-readiness=true --exit-on-error=true)
  local triton_mounts=(--env HOME=/tmp --mount "type=bind,src=$WORK/models,dst=/models,options=rbind:ro")
  t0=$SECONDS
  pod_run triton nvcr.io/nvidia/tritonserver:24.08-py3 "${triton_mounts[@]}" -- tritonserver "${triton_args[@]}" \
    --model-control-mode=explicit --load-model=echo --load-model=flaky
  wait_for "triton's /v2/health/ready" 120 ready_200
  log "triton: /v2/health/ready 200 after $((SECONDS - t0))s, as $(uid_of triton)"
  [[ "$(uid_of triton)" == 1000:1000 ]] || die "triton runs as $(uid_of triton)"
  cat > "$WORK/check_triton.py" <<'EOF'
"""Latency of the echo model alone and three at once; the flaky model's every 3rd request."""
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

service_s = float(sys.argv[1]) / 1000


def infer(model: str = "echo") -> float:
    client = httpclient.InferenceServerClient("127.0.0.1:8000")
    data = np.arange(8, dtype=np.float32)
    tensor = httpclient.InferInput("INPUT0", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    start = time.monotonic()
    result = client.infer(model, [tensor])
    took = time.monotonic() - start
    assert (result.as_numpy("OUTPUT0") == data).all()
    return took


# The node's other work may slow any one request; the sleep inside the model is the floor, and the best of
# a few requests shows it. Queueing shows as structure: two at once take one service time, a third one more.
alone = min(infer() for _ in range(5))
print(f"echo alone (best of 5): {alone * 1000:.0f} ms (service time {service_s * 1000:.0f} ms)")
assert service_s <= alone < 1.5 * service_s, alone
with ThreadPoolExecutor(3) as pool:
    took = sorted(pool.map(lambda _: infer(), range(3)))
print("echo, 3 at once on 2 instances:", ", ".join(f"{t * 1000:.0f} ms" for t in took))
assert took[1] < 1.9 * service_s, took  # the first two side by side, not one after the other
assert took[2] >= 1.9 * service_s and took[2] - took[1] >= 0.8 * service_s, took  # the third waited
outcomes = []
for _ in range(6):
    try:
        infer("flaky")
        outcomes.append("ok")
    except InferenceServerException as exc:
        outcomes.append("error")
        message = str(exc)
print("flaky (fail_every=3):", " ".join(outcomes), "|", message)
assert outcomes == ["ok", "ok", "error"] * 2, outcomes
assert "fails on purpose" in message
EOF
  one_shot triton-client aifleet.dev/e2e-client:1 \
    --mount "type=bind,src=$WORK/check_triton.py,dst=/check_triton.py,options=rbind:ro" -- \
    python3 /check_triton.py "$SERVICE_MS" >&2
  in_netns curl -sf http://127.0.0.1:8002/metrics | grep '^nv_inference_request_success{model="echo"' >/dev/null \
    || die "triton: no nv_inference_request_success for echo on :8002"
  stop triton
  log "triton: echo answers in its service time, 2 instances in parallel, the 3rd queued; metrics served"

  # --- triton: a model that fails to load ------------------------------------------------------------------
  pod_run triton-broken nvcr.io/nvidia/tritonserver:24.08-py3 "${triton_mounts[@]}" -- \
    tritonserver "${triton_args[@]}" --model-control-mode=explicit --load-model=broken
  wait_for "triton to exit on the broken model" 120 task_is triton-broken STOPPED
  ! ready_200 || die "triton-broken: ready"
  grep -q 'broken: this model fails to load on purpose' "$WORK/logs/triton-broken.log" \
    || die "triton-broken: the log lacks initialize's message"
  ctrc task delete triton-broken >/dev/null 2>&1 || true
  ctrc containers delete triton-broken
  log "triton: the broken model never turns ready, the server exits (--exit-on-error), the log names the error"

  # --- the client ----------------------------------------------------------------------------------------
  out="$(one_shot client aifleet.dev/e2e-client:1 -- sh -c \
    'echo "$(id -u):$(id -g)"; psql --version; redis-cli --version; curl --version | head -1
     python3 -c "import numpy, tritonclient.http; print(\"numpy\", numpy.__version__)"')"
  [[ $out == "1000:1000"* ]] || die "client runs as ${out%%$'\n'*}"
  log "client: $(tr '\n' ';' <<< "$out")"
}

main "$@"; exit  # on one line: an edit of this file during a run is never read
