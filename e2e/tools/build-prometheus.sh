#!/usr/bin/env bash
# Build Prometheus from its official Go module and print the path of the binary (the only line on stdout).
#
# Debian's Prometheus (used for everything on loopback) is built without Kubernetes service discovery; the real
# node's pods are found through the API server (kubernetes_sd_configs), as a cluster's Prometheus finds them, so
# that Prometheus comes from the Go module proxy. The version is pinned in e2e/tools/prometheus/go.mod (module
# versions v0.X.Y are Prometheus 2.X.Y) and the binary is cached at
# ${XDG_CACHE_HOME:-$HOME/.cache}/aifleet/bin/prometheus-<version>/prometheus. It serves the HTTP API; the web
# UI's assets are not part of the module.
#
# Environment: AIFLEET_PROMETHEUS (use this binary instead; it is only checked and printed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOL=build-prometheus
source "$here/lib.sh"
use_override AIFLEET_PROMETHEUS
require_go

mod="$here/prometheus"
module_version="$(awk '$1 == "github.com/prometheus/prometheus" && $2 ~ /^v0\./ { print $2; exit }' "$mod/go.mod")"
[[ -n $module_version ]] || { log "cannot read the pinned version from $mod/go.mod"; exit 1; }
version="2.${module_version#v0.}"

build() {
  local ldflags="-s -w"
  ldflags+=" -X github.com/prometheus/common/version.Version=$version"
  ldflags+=" -X github.com/prometheus/common/version.Branch=release"
  log "building prometheus $version from github.com/prometheus/prometheus (cold builds take minutes)"
  (
    cd "$mod"
    CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false -ldflags="$ldflags" \
      -o "$1/prometheus" github.com/prometheus/prometheus/cmd/prometheus
  )
  "$1/prometheus" --version 2>&1 | head -1 >&2
}

cached_build "$cache_root/prometheus-$version" prometheus build
