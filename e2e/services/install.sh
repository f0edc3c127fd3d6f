#!/usr/bin/env bash
# Installs the REAL servers the e2e suite runs against (no mocks, no Docker):
#   - Debian packages: postgresql 15, pgbouncer 1.18, redis-server 7.0, prometheus 2.42
#   - Kafka broker (KRaft) jars from Maven Central into the aifleet cache
#   - a PyTriton venv (Triton Inference Server + tritonclient) built from Debian's python3
# Idempotent: every step checks whether it is already done and skips it, so a warm run
# takes about a second. Nothing is started here; e2e/services/harness/ runs the binaries.
#
# Env:
#   AIFLEET_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/aifleet)
#   AIFLEET_SKIP    space-separated steps to skip: apt kafka pytriton
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${AIFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aifleet}"
SKIP=" ${AIFLEET_SKIP:-} "

KAFKA_POM="$HERE/kafka/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")"
KAFKA_LIBS="$CACHE/kafka/$KAFKA_VERSION/libs"

TRITON_REQS="$HERE/triton/requirements.txt"
PYTRITON_VENV="$CACHE/venvs/pytriton"
# pip's HTTP cache stays empty here (the registry's responses are not cacheable), so the
# wheels are kept in our own wheelhouse: rebuilding the venv then needs no network.
PYTRITON_WHEELS="$CACHE/wheels/pytriton"
# PyTriton's Python backend stub breaks under pyenv's CPython
# ('_thread.RLock' object has no attribute '_recursion_count'), so the venv is built
# from Debian's interpreter, whose build matches the bundled stub.
DEBIAN_PY=/usr/bin/python3

log() { printf '[install] %s\n' "$*"; }

# Run as root directly, or through sudo when a developer runs us unprivileged.
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# Hash of the files that define a step's result; stored in a marker so that editing
# the pom or requirements re-runs the step, and an unchanged one is skipped.
fingerprint() { cat "$@" | sha256sum | cut -c1-16; }
marker_matches() { [[ -f $1 && "$(cat "$1")" == "$2" ]]; }  # marker file, fingerprint

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# --- 1. Debian packages -------------------------------------------------------------
install_apt() {
  local wanted=(postgresql pgbouncer redis-server prometheus python3 python3-venv
                openjdk-17-jre-headless maven)
  local missing=()
  local p
  for p in "${wanted[@]}"; do
    # A JDK/Maven installed some other way (e.g. the image's own) is fine too.
    case "$p" in
      openjdk-17-jre-headless) command -v java >/dev/null && continue ;;
      maven) command -v mvn >/dev/null && continue ;;
    esac
    pkg_installed "$p" || missing+=("$p")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "apt: all present (${wanted[*]})"
    return
  fi
  log "apt: installing ${missing[*]}"
  # There is no systemd here, so the packages' maintainer scripts would fall back to
  # their SysV init scripts and start redis/pgbouncer/prometheus on their default
  # ports. A policy-rc.d that answers 101 ("action forbidden") stops that; we only
  # remove it if we created it.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    created_policy=1
    trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT  # also if apt-get is interrupted
  fi
  # Package lists may be absent or stale on a fresh machine: update once, only now.
  as_root apt-get update -qq
  local rc=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || rc=$?
  if [[ $created_policy -eq 1 ]]; then as_root rm -f "$policy"; trap - EXIT; fi
  [[ $rc -eq 0 ]] || { log "apt-get install failed ($rc)"; exit "$rc"; }
  log "apt: installed ${missing[*]}"
}

# --- 2. Kafka jars --------------------------------------------------------------------
install_kafka() {
  local marker="$KAFKA_LIBS/.complete" want
  want="$(fingerprint "$KAFKA_POM")"
  if marker_matches "$marker" "$want"; then
    log "kafka $KAFKA_VERSION: cached in $KAFKA_LIBS"
    return
  fi
  log "kafka $KAFKA_VERSION: fetching jars from Maven Central (~/.m2 is reused)"
  # Copy into a fresh temp dir and swap it in, so an interrupted run never leaves a
  # half-filled libs dir that a later run would mistake for complete.
  local tmp="$KAFKA_LIBS.tmp.$$"
  rm -rf "$KAFKA_LIBS".tmp.*  # leftovers of interrupted runs
  mkdir -p "$tmp"
  # Debian's mvn prints stray ANSI resets even with -q -B; strip them (pipefail keeps mvn's status).
  mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
  echo "$want" > "$tmp/.complete"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  log "kafka $KAFKA_VERSION: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
}

# --- 3. PyTriton venv -----------------------------------------------------------------
install_pytriton() {
  local marker="$PYTRITON_VENV/.aifleet-complete" want
  want="$(fingerprint "$TRITON_REQS")"
  if marker_matches "$marker" "$want"; then
    log "pytriton: venv ready at $PYTRITON_VENV"
    return
  fi
  log "pytriton: building venv at $PYTRITON_VENV from $DEBIAN_PY"
  rm -rf "$PYTRITON_VENV"
  mkdir -p "$(dirname "$PYTRITON_VENV")"
  "$DEBIAN_PY" -m venv "$PYTRITON_VENV"
  local pip=("$PYTRITON_VENV/bin/pip" --disable-pip-version-check -q)
  local wheels_marker="$PYTRITON_WHEELS/.complete"
  if ! marker_matches "$wheels_marker" "$want"; then
    log "pytriton: downloading wheels into $PYTRITON_WHEELS"
    rm -rf "$PYTRITON_WHEELS"
    mkdir -p "$PYTRITON_WHEELS"
    "${pip[@]}" download -d "$PYTRITON_WHEELS" -r "$TRITON_REQS"
    echo "$want" > "$wheels_marker"
  fi
  "${pip[@]}" install --no-index --find-links "$PYTRITON_WHEELS" -r "$TRITON_REQS"
  "$PYTRITON_VENV/bin/python" -c 'import pytriton.triton, tritonclient.http, numpy'
  echo "$want" > "$marker"
  log "pytriton: installed $("$PYTRITON_VENV/bin/pip" freeze | grep -iE '^(nvidia-pytriton|tritonclient|numpy)=' | tr '\n' ' ')"
}

# One line of versions, so a log shows what the e2e run actually used.
print_versions() {
  local pg
  pg="$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -1)"
  log "versions: $("$pg" --version | awk '{print "postgres " $3}'), \
$(/usr/sbin/pgbouncer --version | awk 'NR == 1 {print "pgbouncer " $2}'), \
$(redis-server --version | awk '{print "redis " substr($3, 3)}'), \
$(prometheus --version 2>&1 | head -1 | awk '{print "prometheus " $3}'), \
kafka $KAFKA_VERSION, java $(java -version 2>&1 | awk -F'"' '/version/{print $2}')"
}

main() {
  local t0=$SECONDS
  mkdir -p "$CACHE"
  # Two callers at once (a test run and a developer's shell) would rebuild the same venv under each other.
  exec 8>"$CACHE/.install.lock"
  if ! flock -n 8; then
    log "waiting for another install.sh to finish"
    flock 8
  fi
  [[ $SKIP == *" apt "* ]] || install_apt
  [[ $SKIP == *" kafka "* ]] || install_kafka
  [[ $SKIP == *" pytriton "* ]] || install_pytriton
  [[ $SKIP == *" apt "* ]] || print_versions
  log "done in $((SECONDS - t0))s (cache: $CACHE)"
}

main "$@"
