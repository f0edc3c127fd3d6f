# Shared by e2e/tools/build-*.sh: a Go binary built once per pinned version into the user's cache, under a
# lock, and printed as the only line on stdout. Source it after setting TOOL (the log prefix).

log() { printf '[%s] %s\n' "$TOOL" "$*" >&2; }

# use_override VAR: when the environment variable VAR names a binary, check it, print it and exit.
use_override() {
  local var=$1
  [[ -n ${!var:-} ]] || return 0
  [[ -x ${!var} ]] || { log "$var=${!var} is not executable"; exit 1; }
  echo "${!var}"
  exit 0
}

require_go() { command -v go >/dev/null || { log "go not found on PATH"; exit 1; }; }

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/aifleet/bin"

# cached_build OUT BIN BUILD_FN: print OUT/BIN, building it first with `BUILD_FN TMPDIR` (which must leave BIN in
# TMPDIR) when it is not there. A test session and a developer may both ask at once: the build runs once.
cached_build() {
  local out=$1 bin=$2 build=$3 name
  name="$(basename "$out")"
  if [[ -x $out/$bin ]]; then echo "$out/$bin"; return; fi
  mkdir -p "$cache_root"
  exec 9>"$cache_root/.$TOOL.lock"
  flock 9
  if [[ -x $out/$bin ]]; then echo "$out/$bin"; return; fi
  build_tmp="$(mktemp -d "$cache_root/.$name-build.XXXXXX")"
  trap 'rm -rf "$build_tmp"' EXIT
  local start=$SECONDS
  "$build" "$build_tmp"
  mv "$build_tmp" "$out"
  chmod 755 "$out"
  trap - EXIT
  log "built in $((SECONDS - start))s: $out/$bin"
  echo "$out/$bin"
}
