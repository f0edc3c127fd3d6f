#!/usr/bin/env bash
# Build prometheus-adapter from its official Go module and print the path of the binary (the only line on stdout).
#
# prometheus-adapter serves the custom.metrics.k8s.io API the `hpa` engine's HorizontalPodAutoscaler reads
# (docs/hpa-engine.md). It is in neither Debian nor PyPI; the Go module proxy has it. The version is pinned in
# e2e/tools/adapter/go.mod (a `tool sigs.k8s.io/prometheus-adapter/cmd/adapter` directive, go.sum committed:
# upstream's own main, built with upstream's own k8s.io pins), and the binary is cached at
# ${XDG_CACHE_HOME:-$HOME/.cache}/aifleet/bin/prometheus-adapter-<version>-<hash>/adapter, keyed by the pinned
# go.mod/go.sum, this script, lib.sh and the Go version: when it is there, nothing is built. A cold build (download plus
# compile of the adapter's k8s.io v0.30 libraries) takes several minutes on 2 cores.
#
# Environment: AIFLEET_PROMETHEUS_ADAPTER (use this binary instead; it is only checked and printed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOL=build-adapter
source "$here/lib.sh"
use_override AIFLEET_PROMETHEUS_ADAPTER
require_go

mod="$here/adapter"
version="$(awk '$1 == "sigs.k8s.io/prometheus-adapter" && $2 ~ /^v/ { print $2; exit }' "$mod/go.mod")"
[[ -n $version ]] || { log "cannot read the pinned version from $mod/go.mod"; exit 1; }
hash="$(
  {
    go version
    cat "$mod/go.mod" "$mod/go.sum" "$here/build-adapter.sh" "$here/lib.sh"
  } | sha256sum | cut -c1-12
)"

build() {
  log "building prometheus-adapter $version from sigs.k8s.io/prometheus-adapter/cmd/adapter (cold builds take minutes)"
  (
    cd "$mod"
    CGO_ENABLED=0 GOFLAGS=-mod=readonly nice -n 10 go build -trimpath -buildvcs=false -ldflags="-s -w" \
      -o "$1/adapter" sigs.k8s.io/prometheus-adapter/cmd/adapter
  )
  # The binary must at least start and know its flags (--help exits non-zero: upstream treats it as a parse error).
  local help
  help="$("$1/adapter" --help 2>&1 || true)"
  [[ $help == *--prometheus-url* ]] || { log "the built adapter does not run: ${help:0:500}"; exit 1; }
  printf 'prometheus-adapter %s\n%s\n' "$version" "$(go version)" >"$1/VERSION"
}

cached_build "$cache_root/prometheus-adapter-$version-$hash" adapter build
