#!/usr/bin/env bash
# Build the local e2e cluster's binaries from the Go modules in kube/ and
# kwok/, and print the directory that holds them (the only line on stdout).
#
#   aifleet-kube   multi-call: etcd, kube-apiserver, kube-controller-manager,
#                  kube-scheduler, kubelet, kube-proxy (symlinks with those
#                  names point at it)
#   aifleet-kwok   the KWOK controller (symlink: kwok)
#   aifleet-coredns  CoreDNS with the plugins cluster DNS needs (symlink: coredns)
#
# Binaries are cached in ${AIFLEET_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aifleet/bin}/<key>/
# where <key> names the pinned versions plus a hash of everything that goes
# into the build (go.mod, go.sum, main.go of both modules, this script, the Go
# version). A key whose binaries exist is not rebuilt, so calling this from
# up.sh costs nothing after the first time. A cold build compiles most of
# Kubernetes and takes many minutes on 2 cores; a build with a warm GOCACHE
# (Go's default cache, shared with other projects) takes far less.
#
# Needs only Go (see kube/go.mod for the minimum) and the Go module proxy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[build] %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go not found on PATH"; exit 1; }

# The pinned versions, read from the go.mod files so there is one source of truth.
modver() { # modver DIR MODULE -> version required in DIR/go.mod
  awk -v m="$2" '($1 == m || $2 == m) && $NF ~ /^v[0-9]/ { print $NF; exit }' "$here/$1/go.mod"
}
k8s_version="$(modver kube k8s.io/kubernetes)"
kwok_version="$(modver kwok sigs.k8s.io/kwok)"
coredns_version="$(modver coredns github.com/coredns/coredns)"
[[ -n $k8s_version && -n $kwok_version && -n $coredns_version ]] || { log "cannot read pinned versions from go.mod"; exit 1; }

# Everything that changes the output goes into the key.
inputs=(kube/go.mod kube/go.sum kube/main.go kwok/go.mod kwok/go.sum kwok/main.go
        coredns/go.mod coredns/go.sum coredns/main.go build.sh)
hash="$(
  {
    go version
    for f in "${inputs[@]}"; do printf '== %s\n' "$f"; cat "$here/$f"; done
  } | sha256sum | cut -c1-16
)"
key="k8s-${k8s_version}_kwok-${kwok_version}_coredns-${coredns_version}_${hash}"
cache_root="${AIFLEET_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aifleet/bin}"
out="$cache_root/$key"

binaries=(aifleet-kube aifleet-kwok aifleet-coredns)
built() { local b; for b in "${binaries[@]}"; do [[ -x $out/$b ]] || return 1; done; }
if built; then
  log "up to date: $out"
  echo "$out"
  exit 0
fi

mkdir -p "$cache_root"
# Two callers (say, a developer and a test) must not build the same key at once.
exec 9>"$cache_root/.lock"
flock 9
if built; then
  log "built meanwhile by another process: $out"
  echo "$out"
  exit 0
fi

# Build into a scratch dir and rename it into place at the end, so an
# interrupted build never leaves a half-filled key dir that looks finished.
tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

# CGO off: static binaries like upstream's release builds, no C toolchain needed.
export CGO_ENABLED=0
# The versions the binaries report (/version, kubectl version), set the way
# Kubernetes' own hack/lib/version.sh does it.
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
kver_flags=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  kver_flags+=" -X ${pkg}.gitVersion=${k8s_version} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
done
build_flags=(-trimpath -buildvcs=false -mod=readonly)

start=$SECONDS
log "building aifleet-kube (Kubernetes ${k8s_version}) -- a cold build takes a long time"
(cd "$here/kube" && go build "${build_flags[@]}" -ldflags="-s -w${kver_flags}" -o "$tmp/aifleet-kube" .)
log "aifleet-kube built in $((SECONDS - start))s"

start2=$SECONDS
log "building aifleet-kwok (KWOK ${kwok_version})"
(cd "$here/kwok" && go build "${build_flags[@]}" \
  -ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v}" -o "$tmp/aifleet-kwok" .)
log "aifleet-kwok built in $((SECONDS - start2))s"

start3=$SECONDS
log "building aifleet-coredns (CoreDNS ${coredns_version})"
(cd "$here/coredns" && go build "${build_flags[@]}" \
  -ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=${coredns_version}" -o "$tmp/aifleet-coredns" .)
log "aifleet-coredns built in $((SECONDS - start3))s"

for c in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  ln -s aifleet-kube "$tmp/$c"
done
ln -s aifleet-kwok "$tmp/kwok"
ln -s aifleet-coredns "$tmp/coredns"
printf 'kubernetes %s\nkwok %s\ncoredns %s\nkey %s\n%s\n' "$k8s_version" "$kwok_version" "$coredns_version" "$key" "$(go version)" >"$tmp/VERSION"

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
log "done in $((SECONDS - start))s: $out"
echo "$out"
