#!/usr/bin/env bash
# Install the Debian packages tent's build, image and tests need. Idempotent: packages that
# are already installed are skipped, and `apt-get update` runs at most once (only if something
# is missing). Also makes sure the Rust toolchain has rustfmt and clippy.
#
#   hack/install-deps.sh
set -euo pipefail

log() { echo "install-deps: $*" >&2; }

PKGS=(
  containerd                    # 1.6.20, also provides ctr (system-wide baseline)
  runc                          # runc 1.1.5: containerd's runc shim needs it (baseline runtime)
  containernetworking-plugins   # CNI plugins in /usr/lib/cni (bridge, host-local, loopback, portmap)
  busybox-static                # /bin/busybox of the test image
  umoci                         # builds the OCI test image offline
  jq                            # JSON in scripts
  iproute2                      # ip (bridge clean-up)
  util-linux                    # mount/umount/findmnt/nsenter
  procps                        # ps/pgrep for diagnostics
  psmisc                        # fuser
  ca-certificates curl          # (only for apt over https mirrors)
  build-essential pkg-config    # cc/ld for cargo (build scripts, static linking of tent-testbin)
  protobuf-compiler             # protoc, in case a dependency's build script wants it
  git
  cpio xz-utils binutils        # hack/vm-cgroupv2.sh: initramfs, modules, readelf (vmlinux
                                # extraction); it installs qemu, the guest kernel and busybox
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  [[ "$(id -u)" == 0 ]] || { log "ERROR: need root to install: ${missing[*]}"; exit 1; }
  log "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "all Debian packages present"
fi

# The Debian containerd package may start a system containerd; tent's scripts never use it and
# always run private daemons with their own sockets, so it is left alone.

if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
      log "adding rustup component $c"
      rustup component add "$c" || log "WARNING: could not add $c"
    fi
  done
elif ! command -v cargo >/dev/null 2>&1; then
  log "cargo not found: installing Debian's rust toolchain (cargo, rustc, rustfmt, clippy)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cargo rustc rustfmt rust-clippy
fi
log "done"
