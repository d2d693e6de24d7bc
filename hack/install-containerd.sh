#!/usr/bin/env bash
# Install a containerd version for tent's tests.
#
#   hack/install-containerd.sh <1.6|1.7|2.1>
#
# 1.6: Debian bookworm's containerd (1.6.20) + runc, installed system-wide with apt.
# 1.7: Debian trixie's containerd (1.7.x), 2.1: Debian sid's containerd (2.1.x):
#      NOT installed system-wide. The .deb is fetched with a private apt configuration
#      (own source list, state and cache dirs under .cache/apt/<suite>) and unpacked with
#      `dpkg -x` into .cache/containerd/<ver>/ in the repo (gitignored).
#
# Signing keys: the private source is verified with /usr/share/keyrings/debian-archive-keyring.gpg
# first. If that keyring is too old for the suite (a newer Debian release key signs sid),
# the script falls back to `[trusted=yes]` for that private, download-only source and says so.
# Nothing from it is installed system-wide; apt still checks every .deb against the hashes in
# the (then unauthenticated) Packages index.
#
# Prints the directory holding `containerd` and `ctr` as the last line of stdout.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VER="${1:-}"
log() { echo "install-containerd: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case "$VER" in
  1.6) SUITE=bookworm ;;
  1.7) SUITE=trixie ;;
  2.1) SUITE=sid ;;
  *) die "usage: $0 <1.6|1.7|2.1> (got '${VER}')" ;;
esac

check_version() { # <dir> : containerd --version must report $VER.x
  local out
  out="$("$1/containerd" --version 2>/dev/null)" || die "$1/containerd --version failed"
  log "$out"
  case "$out" in
    *" v${VER}."*|*" ${VER}."*) ;;
    *) die "expected containerd ${VER}.x in $1, found: $out" ;;
  esac
}

if [[ "$VER" == 1.6 ]]; then
  missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  if ((${#missing[@]})); then
    [[ "$(id -u)" == 0 ]] || die "need root to apt-get install ${missing[*]}"
    log "installing ${missing[*]} from bookworm (system-wide)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
  # The Debian package enables a system containerd service; tent's tests never use it.
  DIR="$(dirname "$(command -v containerd)")"
  check_version "$DIR"
  echo "$DIR"
  exit 0
fi

DEST="$REPO/.cache/containerd/$VER"
if [[ -x "$DEST/usr/bin/containerd" && -x "$DEST/usr/bin/ctr" ]]; then
  check_version "$DEST/usr/bin"
  log "already present in $DEST"
  echo "$DEST/usr/bin"
  exit 0
fi

APTDIR="$REPO/.cache/apt/$SUITE"
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/dl"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
MIRROR="${TENT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

apt_private() {
  apt-get -q \
    -o Dir::Etc::SourceList="$APTDIR/sources.list" \
    -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$APTDIR/lists" \
    -o Dir::State::Status=/dev/null \
    -o Dir::Cache="$APTDIR/cache" \
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
    -o APT::Sandbox::User=root \
    "$@"
}

echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" >"$APTDIR/sources.list"
log "updating private apt lists for $SUITE (signed-by $KEYRING)"
if ! apt_private update >"$APTDIR/update.log" 2>&1 || grep -qE 'NO_PUBKEY|not signed|EXPKEYSIG|is not signed' "$APTDIR/update.log"; then
  sed 's/^/  /' "$APTDIR/update.log" >&2
  log "WARNING: $SUITE's Release file cannot be verified with $KEYRING (keyring older than the suite's key)."
  log "WARNING: falling back to [trusted=yes] for this private download-only source."
  echo "deb [trusted=yes] $MIRROR $SUITE main" >"$APTDIR/sources.list"
  rm -rf "$APTDIR/lists"; mkdir -p "$APTDIR/lists/partial"
  apt_private update >"$APTDIR/update.log" 2>&1 || { cat "$APTDIR/update.log" >&2; die "apt-get update for $SUITE failed"; }
fi

log "downloading containerd from $SUITE"
rm -f "$APTDIR/dl"/*.deb
(cd "$APTDIR/dl" && apt_private download containerd >&2) || die "apt-get download containerd ($SUITE) failed"
DEB="$(ls "$APTDIR/dl"/containerd_*.deb | head -n1)"
log "unpacking $(basename "$DEB") into $DEST"
rm -rf "$DEST.tmp"; mkdir -p "$DEST.tmp"
dpkg -x "$DEB" "$DEST.tmp"
[[ -x "$DEST.tmp/usr/bin/containerd" && -x "$DEST.tmp/usr/bin/ctr" ]] || die "$DEB has no usr/bin/containerd or usr/bin/ctr"
rm -rf "$DEST"; mv "$DEST.tmp" "$DEST"
check_version "$DEST/usr/bin"
ls "$DEST/usr/bin" >&2
echo "$DEST/usr/bin"
