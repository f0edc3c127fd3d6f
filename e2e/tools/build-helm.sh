#!/usr/bin/env bash
# Build Helm from its official Go module and print the path of the binary (the only line on stdout).
#
# Helm is in neither Debian nor PyPI; the Go module proxy has it. The version is pinned in
# e2e/tools/helm/go.mod (a `tool helm.sh/helm/v3/cmd/helm` directive, go.sum committed), and the binary
# is cached at ${XDG_CACHE_HOME:-$HOME/.cache}/aifleet/bin/helm-<version>/helm: when it is there,
# nothing is built. A cold build (download plus compile) takes a few minutes on 2 cores.
#
# Environment: AIFLEET_HELM (use this binary instead; it is only checked and printed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOL=build-helm
source "$here/lib.sh"
use_override AIFLEET_HELM
require_go

mod="$here/helm"
version="$(awk '$1 == "helm.sh/helm/v3" && $2 ~ /^v3\./ { print $2; exit }' "$mod/go.mod")"
k8s_minor="$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2]; exit }' "$mod/go.mod")"
[[ -n $version && -n $k8s_minor ]] || { log "cannot read the pinned versions from $mod/go.mod"; exit 1; }

build() {
  # The same link-time settings as Helm's own Makefile, so `helm version` tells the truth and
  # `helm lint` / capabilities default to the Kubernetes minor of the client libraries.
  local ldflags="-s -w"
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=$version"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
  log "building helm $version from helm.sh/helm/v3 (cold builds take minutes)"
  (
    cd "$mod"
    CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false -ldflags="$ldflags" \
      -o "$1/helm" helm.sh/helm/v3/cmd/helm
  )
  "$1/helm" version --short >&2
}

cached_build "$cache_root/helm-$version" helm build
