#!/usr/bin/env bash
# Builds the container images that the local e2e cluster's real pods run, without any registry: each image
# is built here with buildah and written as a docker-archive that `ctr -n k8s.io images import FILE` takes
# with its name and tag. The names are the ones the operator's renderer and the chart default to, so the
# manifests they render run unchanged.
#
#   build.sh          build what is missing, then print one line per image: NAME:TAG<TAB>ARCHIVE
#   build.sh --list   print the image names only
#
# Everything lives under $AIFLEET_CACHE/images (default ${XDG_CACHE_HOME:-$HOME/.cache}/aifleet/images):
# the archives, the debootstrapped root filesystem and buildah's own storage. Each archive's name carries a
# hash of what went into it (its recipe below, its parent's hash, its input files, the pinned versions), so
# a run that finds every archive builds nothing. Logs go to stderr; stdout carries only the result.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${AIFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aifleet}"
OUT="$CACHE/images"
STORE="$OUT/store"
ARCHIVES="$OUT/archives"
WHEELS="$CACHE/wheels/pytriton"
TRITON_REQS="$REPO/e2e/services/triton/requirements.txt"

SUITE=bookworm
# bookworm's python3; the Python backend's stub is picked for this version.
PYVER=3.11
RUNTIME_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

OPERATOR_VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO/operator/aifleet/__init__.py")"
pinned() { sed -n "s/^$1==\([^ ;#]*\).*/\1/p" "$TRITON_REQS"; }  # the version requirements.txt pins

# Build order: a parent comes before its children. `base` is the shared root filesystem, kept in
# buildah's storage only (every other image but pause is FROM it, so containerd stores its layer once).
IMAGES=(pause python operator triton pgbouncer redis client)
declare -A REF=(
  [pause]=registry.k8s.io/pause:3.10
  [python]=docker.io/library/python:3.11-slim
  [operator]="docker.io/library/aifleet-operator:$OPERATOR_VERSION"
  [triton]=nvcr.io/nvidia/tritonserver:24.08-py3
  [pgbouncer]=ghcr.io/cloudnative-pg/pgbouncer:1.24.0
  [redis]=docker.io/library/redis:7.0
  [client]=aifleet.dev/e2e-client:1
)
declare -A PARENT=(
  [pause]="" [base]="" [python]=base [operator]=python [triton]=python
  [pgbouncer]=base [redis]=base [client]=python
)

# The base root filesystem: Debian's packages for every image, one shared layer.
ROOTFS_PACKAGES=(
  ca-certificates curl procps
  python3 python3-pip python3-venv libpython3.11
  pgbouncer redis-server redis-tools postgresql-client
)

LOG_PREFIX=images
# shellcheck source=lib.sh
source "$HERE/lib.sh"
hash_stdin() { sha256sum | cut -c1-16; }

# ---- the environment ------------------------------------------------------------------------------------

# gcc and libc6-dev build the static pause binary; runc runs the RUN steps (Debian's buildah only recommends it,
# so an install without recommends has no OCI runtime: "exec: no command").
ensure_tools() { apt_install_missing buildah runc debootstrap gcc libc6-dev; }

# The Debian mirror the host's own apt uses for $SUITE: deb822 sources first, then one-line ones.
debian_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    uri="$(awk -v suite="$SUITE" '
      BEGIN { RS = ""; FS = "\n" }  # one stanza per record
      {
        types = ""; uris = ""; suites = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^[ \t]*#/ || index($i, ":") == 0) continue
          key = tolower(substr($i, 1, index($i, ":") - 1))
          val = substr($i, index($i, ":") + 1); gsub(/^[ \t]+|[ \t]+$/, "", val)
          if (key == "types") types = val; else if (key == "uris") uris = val
          else if (key == "suites") suites = val; else if (key == "enabled") enabled = tolower(val)
        }
        if (enabled == "no" || (" " types " ") !~ / deb /) next
        n = split(suites, s, /[ \t]+/)
        for (j = 1; j <= n; j++) if (s[j] == suite) { split(uris, u, /[ \t]+/); print u[1]; exit }
      }' "$f")"
    [[ -n $uri ]] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    uri="$(awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }  # [ options ]
        if ($(i + 1) == suite) { print $i; exit }
      }' "$f")"
    [[ -n $uri ]] && { echo "$uri"; return; }
  done
  die "no '$SUITE' suite in the host's apt sources: debootstrap needs a Debian mirror"
}

# buildah, on storage of our own (see setup_storage). `bh` sends its chatter (digests, progress) to stderr;
# `bhq` is for the calls whose stdout we read.
bh() { buildah "$@" >&2; }
bhq() { buildah "$@"; }
setup_storage() {
  mkdir -p "$STORE/root" "$STORE/run" "$OUT/tmp"
  cat > "$STORE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$STORE/root"
runroot = "$STORE/run"
EOF
  export CONTAINERS_STORAGE_CONF="$STORE/storage.conf"
  # Blobs in transit (commit, push) go here rather than to /var/tmp.
  export TMPDIR="$OUT/tmp"
}

ROOTFS_WORK=
STORAGE_READY=0
cleanup() {
  local rc=$?
  set +e
  kill_child
  remove_policy_rc_d
  if [[ $STORAGE_READY -eq 1 ]]; then
    # Our storage is ours alone and we hold the lock: every container in it is a leftover of this run.
    bh rm --all >/dev/null 2>&1
  fi
  # Whatever is still mounted below our directory (an interrupted debootstrap's /proc, an overlay).
  unmount_below "$OUT"
  if mounted_below "$OUT"; then
    log "still mounted below $OUT, left in place: $(findmnt -rno TARGET | grep -F "$OUT/" | tr '\n' ' ')"
  else
    if [[ -n $ROOTFS_WORK ]]; then rm -rf "$ROOTFS_WORK"; fi
    # Half-written results (we hold the lock: nobody else is writing them).
    rm -rf "$OUT/tmp" "$OUT"/rootfs-*.tar.tmp "$ARCHIVES"/*.tar.tmp
  fi
  exit "$rc"
}

# ---- keys -------------------------------------------------------------------------------------------------

# Files that the repository's Dockerfile copies, as the build context holds them (tracked or not, not ignored).
operator_inputs() {
  local f
  (
    cd "$REPO"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
      git ls-files --cached --others --exclude-standard -z -- operator | tr '\0' '\n'
    else
      find operator -type f ! -path '*/__pycache__/*' ! -name '*.pyc'
    fi | LC_ALL=C sort | while IFS= read -r f; do
      [[ -f $f ]] && printf '%s  %s\n' "$(sha256sum < "$f" | cut -c1-64)" "$f"
    done
    sha256sum Dockerfile .dockerignore pyproject.toml README.md
  )
}

# The pytriton wheelhouse that e2e/services/install.sh downloads; its marker holds the hash of the
# requirements it was filled from.
ensure_wheels() {
  local want
  want="$(sha256sum < "$TRITON_REQS" | cut -c1-16)"
  [[ -f $WHEELS/.complete && "$(cat "$WHEELS/.complete")" == "$want" ]] && return
  log "the pytriton wheelhouse is missing or stale: running e2e/services/install.sh"
  AIFLEET_SKIP="kafka" bash "$REPO/e2e/services/install.sh" >&2
}

pytriton_wheel() {
  local w
  w="$(ls "$WHEELS"/nvidia_pytriton-"$(pinned nvidia-pytriton)"-*.whl 2>/dev/null | head -1)"
  [[ -n $w ]] || die "no nvidia-pytriton wheel in $WHEELS: run e2e/services/install.sh"
  echo "$w"
}

# What an image is made of, besides its parent: printed, then hashed into its key.
inputs() {
  case $1 in
    pause) cat "$HERE/pause/pause.c"; { gcc --version 2>/dev/null || true; } | head -1 ;;
    rootfs) echo "$SUITE minbase ${ROOTFS_PACKAGES[*]}" ;;
    operator) operator_inputs ;;
    triton) cat "$HERE/triton/tritonserver" "$TRITON_REQS"; ls "$WHEELS" ;;
    client) cat "$TRITON_REQS"; ls "$WHEELS" ;;
  esac
}

declare -A KEY=()
key_of() {  # sets KEY[$1]
  local id=$1 parent=${PARENT[$1]:-} fn
  [[ -n ${KEY[$id]:-} ]] && return
  case $id in
    rootfs) fn=build_rootfs ;;
    *) fn=recipe_$id ;;
  esac
  local parent_key=""
  if [[ $id == base ]]; then key_of rootfs; parent_key=${KEY[rootfs]}; fi
  if [[ -n $parent ]]; then key_of "$parent"; parent_key=${KEY[$parent]}; fi
  local helpers=(commit_image set_command)
  [[ $id == rootfs ]] && helpers=()
  KEY[$id]="$({ echo "$id ${REF[$id]:-} $parent_key"; declare -f "$fn" "${helpers[@]}"; inputs "$id"; } \
    | hash_stdin)"
}

archive_of() { echo "$ARCHIVES/$1-${KEY[$1]}.tar"; }
# The name an image has in the build storage: its reference (the base has none of its own). An archive
# carries every name its image has, so each image has exactly one; its key is in a label.
name_of() { echo "${REF[$1]:-localhost/aifleet/$1}"; }
KEY_LABEL=dev.aifleet.image.key
in_store() {
  local got
  got="$(bhq inspect --type image --format "{{index .OCIv1.Config.Labels \"$KEY_LABEL\"}}" "$(name_of "$1")" \
    2>/dev/null)" || return 1
  [[ $got == "${KEY[$1]}" ]]
}

# ---- recipes ------------------------------------------------------------------------------------------------
# Each recipe_ID builds image ID into the storage under `name_of ID`, from its parent's image.
# Its text is part of its key: editing a recipe rebuilds that image and its children only.

# debootstrap + the packages, cleaned of what no container needs, as one tarball.
build_rootfs() {
  local out=$1 mirror
  mirror="$(debian_mirror)"
  ROOTFS_WORK="$(mktemp -d "$OUT/rootfs.XXXXXX")"
  local root="$ROOTFS_WORK/root"
  log "rootfs: debootstrap --variant=minbase $SUITE with ${ROOTFS_PACKAGES[*]}"
  if ! run_child debootstrap --variant=minbase --components=main \
      --include="$(IFS=,; echo "${ROOTFS_PACKAGES[*]}")" \
      "$SUITE" "$root" "$mirror" > "$ROOTFS_WORK/debootstrap.log" 2>&1; then
    tail -n 40 "$ROOTFS_WORK/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  chroot "$root" /bin/sh -eu <<'EOF'
# The numeric IDs of the upstream images' users, which the operator's manifests run as.
renumber() {  # NAME UID GID: move a Debian system user (and its files) to fixed IDs
  old_uid=$(id -u "$1"); old_gid=$(id -g "$1")
  groupmod -g "$3" "$1"
  usermod -u "$2" -g "$3" "$1"
  find / -xdev -uid "$old_uid" -exec chown -h "$2" {} +
  find / -xdev -gid "$old_gid" -exec chgrp -h "$3" {} +
}
renumber redis 999 999
groupadd --system -g 996 pgbouncer
useradd --system -u 998 -g 996 -d /nonexistent -M -s /usr/sbin/nologin pgbouncer

# Nothing a container needs: package lists and caches, docs but their copyright files, man pages, logs,
# locales, the snakeoil key ssl-cert generated, the mirror, and the build host's name and resolver.
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old \
  /usr/share/man/* /usr/share/info/* /usr/share/lintian /usr/share/linda /tmp/* /var/tmp/* \
  /etc/ssl/private/ssl-cert-snakeoil.key /etc/ssl/certs/ssl-cert-snakeoil.pem \
  /etc/apt/sources.list /etc/hostname /etc/resolv.conf /etc/machine-id
find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
find /var/log -type f -delete
# The container runtime provides /dev.
find /dev -mindepth 1 -delete
EOF
  ! mounted_below "$root" || die "debootstrap left mounts below $root"
  tar --numeric-owner -C "$root" -cf "$out.tmp" .
  mv "$out.tmp" "$out"
  rm -rf "$ROOTFS_WORK"
  ROOTFS_WORK=
}

# commit_image ID CONTAINER: the working container becomes image ID. An older build of ID loses the name
# (its layers stay while a child still uses them) and is pruned at the end.
commit_image() {
  local id=$1 ctr=$2
  bh config --label "$KEY_LABEL=${KEY[$id]}" "$ctr"
  bh commit -q --rm "$ctr" "$(name_of "$id")"
}

# set_command CONTAINER ENTRYPOINT CMD (JSON arrays): the parent's Cmd goes first, or buildah warns that it
# would be passed to the new entrypoint.
set_command() {
  bh config --cmd '' "$1"
  bh config --entrypoint "$2" "$1"
  bh config --cmd "$3" "$1"
}

# from_parent ID: a working container on ID's parent, named for the image it builds.
from_parent() { bhq from --pull-never --name "aifleet-build-$1" "$(name_of "${PARENT[$1]}")"; }

recipe_base() {
  local rootfs="$OUT/rootfs-${KEY[rootfs]}.tar" ctr
  if [[ ! -f $rootfs ]]; then
    rm -f "$OUT"/rootfs-*.tar
    build_rootfs "$rootfs"
  fi
  ctr="$(bhq from --name aifleet-build-base scratch)"
  bh add "$ctr" "$rootfs" /
  bh config --env "PATH=$RUNTIME_PATH" --env LANG=C.UTF-8 --cmd '["/bin/bash"]' "$ctr"
  commit_image base "$ctr"
}

# The pod sandbox: our own static pause, FROM scratch, as the kubelet's own image runs it.
recipe_pause() {
  local bin="$OUT/tmp/pause" ctr
  gcc -Os -static -s -Wall -Wextra -Werror -o "$bin" "$HERE/pause/pause.c"
  ctr="$(bhq from --name aifleet-build-pause scratch)"
  bh copy --chmod 0755 "$ctr" "$bin" /pause
  set_command "$ctr" '["/pause"]' '[]'
  bh config --user 65535:65535 --workingdir / "$ctr"
  commit_image pause "$ctr"
}

# Debian's Python 3.11 and pip as `python:3.11-slim`, for the repository's Dockerfile. Like the upstream
# image it runs as root: it is a build base (`pip install` into the system), never a pod.
recipe_python() {
  local ctr
  ctr="$(from_parent python)"
  bh run --network none "$ctr" -- sh -eu -c '
    # pip installs into this interpreter, as in the upstream image (PEP 668 would refuse it).
    rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED
    ln -sf /usr/bin/python3 /usr/local/bin/python
    [ -e /usr/bin/pip ] || ln -sf /usr/bin/pip3 /usr/local/bin/pip
    python --version; pip --version'
  bh config --env "PATH=$RUNTIME_PATH" --env LANG=C.UTF-8 --cmd '["python3"]' --workingdir / "$ctr"
  commit_image python "$ctr"
}

# The operator, built by buildah from the repository's own Dockerfile and .dockerignore.
recipe_operator() {
  local args=(--pull=never --network host --layers=false --force-rm -f "$REPO/Dockerfile"
              --label "$KEY_LABEL=${KEY[operator]}" -t "${REF[operator]}")
  # The RUN steps download from PyPI: they trust what this host trusts (a TLS-inspecting proxy's CA, say).
  # A bind mount is not committed, so the image keeps its own bundle.
  local ca=/etc/ssl/certs/ca-certificates.crt
  [[ -f $ca ]] && args+=(-v "$ca:$ca:ro")
  run_child buildah bud "${args[@]}" "$REPO" >&2
  # The chart runs it as 65532 (the image's user).
  local ctr
  ctr="$(bhq from --pull-never --name aifleet-build-operator-check "${REF[operator]}")"
  bh run --network none "$ctr" -- sh -c 'echo "aifleet $(aifleet --version) as uid $(id -u)"'
  bh rm "$ctr"
}

# Triton Inference Server 2.51 (server, Python backend, local cache) out of the pinned nvidia-pytriton wheel,
# laid out as in NVIDIA's image under /opt/tritonserver, with the stub for this image's Python and numpy.
recipe_triton() {
  local wheel prep="$OUT/tmp/triton" ctr
  wheel="$(pytriton_wheel)"
  rm -rf "$prep"
  python3 - "$wheel" "$prep/tritonserver" "$PYVER" <<'EOF'
import os
import stat
import sys
import zipfile

wheel, dest, pyver = sys.argv[1:]
dist = "pytriton/tritonserver/"
stub = f"{dist}python_backend_stubs/{pyver}/triton_python_backend_stub"
found_stub = False
with zipfile.ZipFile(wheel) as zf:
    for info in zf.infolist():
        name = info.filename
        if info.is_dir() or "/__pycache__/" in name:
            continue
        if name == stub:
            target = "backends/python/triton_python_backend_stub"
            found_stub = True
        elif name.startswith(dist) and not name.startswith(dist + "python_backend_stubs/"):
            target = name[len(dist):]
        elif name.startswith("nvidia_pytriton.libs/"):
            target = "lib/" + name[len("nvidia_pytriton.libs/"):]
        else:
            continue
        path = os.path.join(dest, target)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with zf.open(info) as src, open(path, "wb") as out:
            out.write(src.read())
        mode = (info.external_attr >> 16) & 0o777
        os.chmod(path, 0o755 if mode & stat.S_IXUSR or target.startswith("bin/") else 0o644)
if not found_stub:
    sys.exit(f"{wheel} has no Python backend stub for Python {pyver}")
EOF
  chmod 0755 "$prep/tritonserver/backends/python/triton_python_backend_stub"
  ctr="$(from_parent triton)"
  bh copy "$ctr" "$prep/tritonserver" /opt/tritonserver
  bh copy --chmod 0755 "$ctr" "$HERE/triton/tritonserver" /usr/local/bin/tritonserver
  bh run --network none -v "$WHEELS:/wheels:ro" "$ctr" -- sh -eu -c "
    # The Python backend's utilities import numpy, in the stub's (this image's) interpreter.
    pip install -q --no-cache-dir --no-index --find-links /wheels --root-user-action=ignore \
      numpy==$(pinned numpy)
    groupadd -g 1000 triton-server
    useradd -u 1000 -g 1000 -m -d /home/triton-server -s /bin/bash triton-server
    mkdir -p /models
    # Every shared object the server, its backend and the stub need resolves.
    missing=\$(LD_LIBRARY_PATH=/opt/tritonserver/lib ldd /opt/tritonserver/bin/tritonserver \
      /opt/tritonserver/backends/python/*.so /opt/tritonserver/backends/python/triton_python_backend_stub \
      /opt/tritonserver/caches/local/*.so | grep 'not found' || true)
    [ -z \"\$missing\" ] || { echo \"unresolved: \$missing\" >&2; exit 1; }"
  rm -rf "$prep"
  bh config --user 1000:1000 --workingdir /opt/tritonserver \
    --env "PATH=$RUNTIME_PATH" --env PYTHONDONTWRITEBYTECODE=1 \
    --port 8000 --port 8001 --port 8002 "$ctr"
  set_command "$ctr" '["tritonserver"]' '["--model-repository=/models"]'
  commit_image triton "$ctr"
}

# Debian's PgBouncer as the uid/gid the renderer runs it as; the config comes from a mounted Secret.
recipe_pgbouncer() {
  local ctr
  ctr="$(from_parent pgbouncer)"
  bh config --user 998:996 --workingdir / --port 6432 "$ctr"
  set_command "$ctr" '["pgbouncer"]' '["/etc/pgbouncer/pgbouncer.ini"]'
  commit_image pgbouncer "$ctr"
}

# Debian's Redis 7.0 as the official image's redis user (999), data in /data.
recipe_redis() {
  local ctr
  ctr="$(from_parent redis)"
  bh run --network none "$ctr" -- install -d -o 999 -g 999 -m 0755 /data
  bh config --user 999:999 --workingdir /data --port 6379 "$ctr"
  set_command "$ctr" '[]' '["redis-server"]'
  commit_image redis "$ctr"
}

# What test pods run: psql, redis-cli, curl, python3 with tritonclient[http] and numpy.
recipe_client() {
  local ctr
  ctr="$(from_parent client)"
  bh run --network none -v "$WHEELS:/wheels:ro" "$ctr" -- sh -eu -c "
    pip install -q --no-cache-dir --no-index --find-links /wheels --root-user-action=ignore \
      'tritonclient[http]==$(pinned 'tritonclient\[http\]')' numpy==$(pinned numpy)
    groupadd -g 1000 client
    useradd -u 1000 -g 1000 -m -d /home/client -s /bin/bash client
    python3 -c 'import numpy, tritonclient.http'"
  bh config --user 1000:1000 --workingdir /home/client --env HOME=/home/client "$ctr"
  set_command "$ctr" '[]' '["sleep", "infinity"]'
  commit_image client "$ctr"
}

# ---- driver -----------------------------------------------------------------------------------------------

# ensure_stored ID: ID is in the storage (its name, its key's label), loaded from its archive or built.
ensure_stored() {
  local id=$1 t0
  in_store "$id" && return
  [[ -n ${PARENT[$id]} ]] && ensure_stored "${PARENT[$id]}"
  if [[ $id != base && -f "$(archive_of "$id")" ]]; then
    log "$id: loading $(archive_of "$id") into the build storage"
    bh pull -q "docker-archive:$(archive_of "$id")"
    return
  fi
  t0=$SECONDS
  log "$id: building ${REF[$id]:-the shared base} (key ${KEY[$id]})"
  "recipe_$id"
  log "$id: built in $((SECONDS - t0))s"
}

ensure_archive() {
  local id=$1 archive t0
  archive="$(archive_of "$id")"
  [[ -f $archive ]] && return
  ensure_stored "$id"
  t0=$SECONDS
  rm -f "$archive.tmp"
  # docker-archive: containerd's importer names the image after its RepoTags entry (an OCI archive's
  # ref.name is kept only with --base-name), and its layers are plain tars, which import without gunzip.
  bh push -q "${REF[$id]}" "docker-archive:$archive.tmp:${REF[$id]}"
  mv "$archive.tmp" "$archive"
  find "$ARCHIVES" -maxdepth 1 -name "$id-*.tar" ! -name "$(basename "$archive")" -delete
  log "$id: wrote $archive ($(du -m "$archive" | cut -f1) MiB) in $((SECONDS - t0))s"
}

main() {
  if [[ ${1:-} == --list ]]; then
    local id
    for id in "${IMAGES[@]}"; do echo "${REF[$id]}"; done
    return
  fi
  [[ $# -eq 0 ]] || die "usage: build.sh [--list]"
  [[ -n $OPERATOR_VERSION ]] || die "no __version__ in operator/aifleet/__init__.py"

  local id missing=() t0=$SECONDS
  mkdir -p "$ARCHIVES"
  ensure_wheels
  for id in "${IMAGES[@]}"; do
    key_of "$id"
    [[ -f "$(archive_of "$id")" ]] || missing+=("$id")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    exec 9>"$OUT/.lock"
    if ! flock -n 9; then
      log "waiting for another build.sh to finish"
      flock 9
    fi
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    ensure_tools
    setup_storage
    STORAGE_READY=1
    bh rm --all >/dev/null 2>&1 || true
    for id in "${missing[@]}"; do ensure_archive "$id"; done
    # Untagged leftovers: older builds, and the Dockerfile's build stage.
    bh rmi --prune || true
    log "done in $((SECONDS - t0))s (built: ${missing[*]})"
  fi
  for id in "${IMAGES[@]}"; do printf '%s\t%s\n' "${REF[$id]}" "$(archive_of "$id")"; done
}

main "$@"; exit  # on one line: an edit of this file during a run is never read
