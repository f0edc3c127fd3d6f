# shellcheck shell=bash
# Shared by e2e/images/build.sh and smoke.sh. Source it after setting LOG_PREFIX.

log() { printf '[%s] %s\n' "$LOG_PREFIX" "$*" >&2; }
die() { log "error: $*"; exit 1; }

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# apt_install_missing PACKAGE...: installs those not installed yet; `apt-get update` runs only then, once.
apt_install_missing() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return
  [[ $EUID -eq 0 ]] || die "needs root to install ${missing[*]}"
  log "apt: installing ${missing[*]}"
  # No systemd here: a package's maintainer script would start its daemon through SysV init; 101 forbids
  # it. Removed right after, and by the EXIT trap if apt-get is interrupted (see remove_policy_rc_d).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    CREATED_POLICY_RC_D=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  remove_policy_rc_d
}

CREATED_POLICY_RC_D=0
remove_policy_rc_d() {
  if [[ $CREATED_POLICY_RC_D -eq 1 ]]; then rm -f /usr/sbin/policy-rc.d; CREATED_POLICY_RC_D=0; fi
}

# unmount_below DIR: lazily unmounts everything mounted below DIR, deepest first.
unmount_below() {
  local m
  findmnt -rno TARGET | awk -v p="${1%/}/" 'index($0, p) == 1' | sort -r | while IFS= read -r m; do
    umount -l "$m" || true
  done
}

# mounted_below DIR: something is still mounted below DIR (then it must not be deleted: rm -rf would follow
# a bind mount into the host's tree).
mounted_below() { findmnt -rno TARGET | awk -v p="${1%/}/" 'index($0, p) == 1 { found = 1 } END { exit !found }'; }

# run_child COMMAND...: runs COMMAND in a process group of its own and waits for it. Bash runs a trap only
# once its foreground command is over, and debootstrap (its dpkg) rides out a SIGINT; a `wait` is cut short
# by the signal instead, and kill_child (from the EXIT trap) then stops the whole group.
CHILD_PID=
run_child() {
  local rc=0
  setsid "$@" &
  CHILD_PID=$!
  wait "$CHILD_PID" || rc=$?
  CHILD_PID=
  return "$rc"
}
kill_child() {
  [[ -n $CHILD_PID ]] || return 0
  kill -TERM -- "-$CHILD_PID" 2>/dev/null || true
  wait "$CHILD_PID" 2>/dev/null || true
  CHILD_PID=
}
