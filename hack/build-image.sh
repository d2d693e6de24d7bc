#!/usr/bin/env bash
# Build tent's test image offline.
#
#   hack/build-image.sh [--add SRC:DEST]... [--pause FILE] [--out FILE]
#
# Output: .cache/images/tent-test.tar (OCI image layout archive), image name
# docker.io/library/tent-test:latest (set as io.containerd.image.name and
# org.opencontainers.image.ref.name annotations, so `ctr images import` on containerd 1.6, 1.7
# and 2.x names it without --base-name), and the CRI pod sandbox image
# docker.io/library/tent-test:pause: one file, tent's static `/pause` (pause/, built here with
# cargo unless --pause names it; 1.5 KB, 8 kB RSS), entrypoint `/pause`, user 65535 as Kubernetes' pause image;
# the first manifest stays `latest`.
# Content: Debian busybox-static's /bin/busybox with a symlink per applet in /bin, /etc/passwd
# and /etc/group (root 0, tent 1000, nobody 65534), /tmp (1777), empty /proc /sys /dev, cmd /bin/sh.
# --add copies an extra (static) file into the image, e.g. the tests' helper:
#   --add target/x86_64-unknown-linux-gnu/release/tent-testbin:/bin/tent-testbin
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/.cache/images/tent-test.tar"
NAME="docker.io/library/tent-test:latest"
PAUSE_NAME="docker.io/library/tent-test:pause"
ADDS=()
TRIPLE=x86_64-unknown-linux-gnu
PAUSE_BIN=""
log() { echo "build-image: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

while (($#)); do
  case "$1" in
    --add) [[ $# -ge 2 ]] || die "--add needs SRC:DEST"; ADDS+=("$2"); shift 2 ;;
    --add=*) ADDS+=("${1#--add=}"); shift ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a path"; OUT="$2"; shift 2 ;;
    --pause) [[ $# -ge 2 ]] || die "--pause needs a path"; PAUSE_BIN="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (usage: $0 [--add SRC:DEST]... [--pause FILE] [--out FILE])" ;;
  esac
done

command -v umoci >/dev/null || die "umoci missing: run hack/install-deps.sh"
BUSYBOX=/bin/busybox
[[ -x "$BUSYBOX" ]] || die "$BUSYBOX missing: run hack/install-deps.sh (busybox-static)"
file -L "$BUSYBOX" 2>/dev/null | grep -q 'dynamically linked' && die "$BUSYBOX is dynamic: install busybox-static"

if [[ -z "$PAUSE_BIN" ]]; then
  # pause/ is its own cargo workspace (no std, its own _start): non-PIE static, a few pages.
  PAUSE_BIN="$REPO/pause/target/$TRIPLE/release/tent-pause"
  log "building the pause process (cargo build --release in pause/)"
  RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --quiet --release --manifest-path "$REPO/pause/Cargo.toml" --target "$TRIPLE" >&2 \
    || die "building tent-pause failed (see above)"
fi
[[ -x "$PAUSE_BIN" ]] || die "pause binary '$PAUSE_BIN' missing or not executable"
file -L "$PAUSE_BIN" 2>/dev/null | grep -q 'dynamically linked' \
  && die "pause binary '$PAUSE_BIN' is dynamic: the pause image holds nothing else (build with +crt-static)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tent-image.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
R="$WORK/rootfs"
mkdir -p "$R"/{bin,etc,tmp,proc,sys,dev,root,home/tent,var,run,usr}
chmod 1777 "$R/tmp"; chmod 700 "$R/root"
chown 1000:1000 "$R/home/tent"
ln -s ../bin "$R/usr/bin"
ln -s bin "$R/sbin"
install -m 0755 "$BUSYBOX" "$R/bin/busybox"
for a in $("$BUSYBOX" --list); do
  [[ "$a" == busybox || -e "$R/bin/$a" ]] || ln -s busybox "$R/bin/$a"
done
cat >"$R/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
tent:x:1000:1000:tent test user:/home/tent:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat >"$R/etc/group" <<'G'
root:x:0:
tent:x:1000:
nogroup:x:65534:
nobody:x:65534:
G
echo tent-test >"$R/etc/hostname"
: >"$R/etc/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$R/etc/hosts"

for spec in "${ADDS[@]+"${ADDS[@]}"}"; do
  src="${spec%%:*}"; dest="${spec#*:}"
  [[ "$src" != "$spec" && -n "$dest" && "$dest" == /* ]] || die "--add expects SRC:/ABS/DEST, got '$spec'"
  [[ -f "$src" ]] || die "--add: source file '$src' does not exist (build it first)"
  mkdir -p "$R$(dirname "$dest")"
  install -m 0755 "$src" "$R$dest"
  log "added $src as $dest"
done

L="$WORK/layout"
umoci init --layout "$L"
umoci new --image "$L:latest"
umoci insert --image "$L:latest" "$R" / >/dev/null
umoci config --image "$L:latest" \
  --config.cmd /bin/sh \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.workingdir / \
  --architecture amd64 --os linux \
  --author tent --history.created_by "hack/build-image.sh"
# The CRI pod sandbox ("pause") image: nothing but tent-pause, which holds the pod's namespaces,
# reaps and exits 0 on SIGTERM.
P="$WORK/pause-rootfs"
mkdir -p "$P"
install -m 0755 "$PAUSE_BIN" "$P/pause"
umoci new --image "$L:pause"
umoci insert --image "$L:pause" "$P" / >/dev/null
umoci config --image "$L:pause" --config.entrypoint /pause --config.user 65535:65535 \
  --config.workingdir / --architecture amd64 --os linux \
  --author tent --history.created_by "hack/build-image.sh (pause: tent-pause)"
umoci gc --layout "$L"
# Name the manifests in index.json so every containerd version imports them as $NAME and
# $PAUSE_NAME.
jq --arg n "$NAME" --arg p "$PAUSE_NAME" '.manifests |= (map(
    (.annotations["org.opencontainers.image.ref.name"]) as $ref
    | .annotations = ((.annotations // {}) + {
        "io.containerd.image.name": (if $ref == "pause" then $p else $n end)}))
  | sort_by(.annotations["io.containerd.image.name"] != $n))' "$L/index.json" >"$WORK/index.json"
mv "$WORK/index.json" "$L/index.json"
[[ "$(jq '.manifests | length' "$L/index.json")" == 2 ]] || die "expected two manifests (latest, pause) in index.json"

mkdir -p "$(dirname "$OUT")"
# A private temp name, then an atomic rename: concurrent builds of the same OUT cannot mix.
TMP_OUT="$(mktemp "$OUT.XXXXXX.tmp")"
trap 'rm -rf "$WORK" "$TMP_OUT"' EXIT
tar -C "$L" --owner=0 --group=0 -cf "$TMP_OUT" oci-layout index.json blobs
chmod 0644 "$TMP_OUT"
mv "$TMP_OUT" "$OUT"
log "wrote $OUT ($(du -h "$OUT" | cut -f1)) as $NAME"
echo "$OUT"
