#!/usr/bin/env bash
# Print the path of the Gateway API's HTTPRoute CRD (standard channel), the only line on stdout. It comes from the
# sigs.k8s.io/gateway-api Go module, fetched through the Go module proxy into Go's module cache once and read
# from there afterwards; the YAML is not kept in this repository.
#
# Environment: AIFLEET_GATEWAY_API_VERSION (default v1.2.1).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOL=gateway-api-crd
source "$here/lib.sh"
require_go

version="${AIFLEET_GATEWAY_API_VERSION:-v1.2.1}"
# From outside any module: `go mod download` of an explicit version needs no go.mod.
dir="$(cd / && go mod download -json "sigs.k8s.io/gateway-api@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
crd="$dir/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"
[[ -f $crd ]] || { log "no HTTPRoute CRD in sigs.k8s.io/gateway-api@$version (looked for $crd)"; exit 1; }
echo "$crd"
