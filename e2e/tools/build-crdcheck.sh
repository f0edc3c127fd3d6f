#!/usr/bin/env bash
# Build crdcheck (e2e/cluster/kube/crdcheck: the API server's validation of custom resources, run with no server)
# and print the path of the binary (the only line on stdout).
#
# It is built in the control plane's module (e2e/cluster/kube/go.mod), from the same k8s.io modules as the
# e2e cluster's kube-apiserver, and cached at ${XDG_CACHE_HOME:-$HOME/.cache}/aifleet/bin/crdcheck-<hash>/crdcheck,
# keyed by that module's go.mod/go.sum, its source, this script, lib.sh and the Go version. Once the control
# plane is built its packages are in Go's build cache, and this takes a minute or two; cold, several minutes.
#
# Environment: AIFLEET_CRDCHECK (use this binary instead; it is only checked and printed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOL=build-crdcheck
source "$here/lib.sh"
use_override AIFLEET_CRDCHECK
require_go

mod="$here/../cluster/kube"
hash="$(
  {
    go version
    cat "$mod/go.mod" "$mod/go.sum" "$mod/crdcheck/main.go" "$here/build-crdcheck.sh" "$here/lib.sh"
  } | sha256sum | cut -c1-12
)"

build() {
  log "building crdcheck from k8s.io/apiextensions-apiserver (the control plane's pins)"
  (
    cd "$mod"
    CGO_ENABLED=0 GOFLAGS=-mod=readonly nice -n 10 go build -trimpath -buildvcs=false -ldflags="-s -w" \
      -o "$1/crdcheck" ./crdcheck
  )
}

cached_build "$cache_root/crdcheck-$hash" crdcheck build
