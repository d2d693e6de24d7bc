#!/usr/bin/env bash
# Run a command in a throw-away VM whose kernel has ONLY cgroup v2 (cgroup_no_v1=all).
#
#   hack/vm-cgroupv2.sh [options] -- <command> [args...]
#
# Options:
#   --timeout SECS   kill the VM after SECS of wall time (default 900; exit status 124)
#   --mem MIB        guest memory (default 4096)
#   --smp N          guest vCPUs (default 2)
#   --cwd DIR        working directory of the command (default: the repo root)
#   --env NAME=VAL   set a variable for the command (repeatable). Also passed through from the
#                    caller's environment: every TENT_*, RUST_* and CONTAINERD_* variable.
#   --keep           keep the run folder (.cache/vm/runs/run.*) even on success
#   --verbose        full kernel messages on the serial console (default: quiet)
#   --heartbeat SECS while the command prints nothing, say every SECS what the VM is doing
#                    (booting, or running with its last output line) on stderr (default
#                    $TENT_VM_HEARTBEAT or 30; 0 = never)
#   --setup-only     install what is missing and build the initramfs, then exit
#   --systemd v2|v1  boot with systemd as PID 1 (the guest init hands over to
#                    /lib/systemd/systemd, whose boot target tent-vm.target runs the command as
#                    one service, then the VM powers off): v2 = pure cgroup v2, v1 = systemd's
#                    legacy/hybrid layout (systemd.unified_cgroup_hierarchy=0)
#
# What it does:
#   * installs what is missing (qemu-system-x86 from bookworm-backports to match qemu-utils,
#     linux-image-amd64, busybox-static, apparmor; the README's "What they install system-wide" lists
#     the side effects); the host's running kernel and initramfs config are untouched
#   * builds .cache/vm/initramfs-<kver>.cpio.gz (busybox + 9p/virtio/overlay modules + the
#     /init in hack/vm/initramfs-init.sh), rebuilt only when its inputs change, and extracts
#     .cache/vm/vmlinux-<kver> from the bzImage (PVH boot skips ~6 s of xz under TCG)
#   * boots Debian's kernel under `qemu-system-x86_64 -accel tcg` (KVM hangs on this host)
#     with the host's root shared READ-ONLY over virtio-9p under a tmpfs overlay, so the repo,
#     prebuilt binaries and installed packages are at the same paths inside; writes stay in
#     the guest
#   * mounts cgroup2 at /sys/fs/cgroup and enables every controller in the root's
#     cgroup.subtree_control (hack/vm/guest-init.sh), runs the command as root with stdin
#     /dev/null, and powers off
#   * the result folder .cache/vm/runs/run.XXXXXX is shared read-write; it receives the
#     command's output, exit status and boot times, and console.log (the serial console)
#   * prints the command's output on stdout AS IT RUNS (whole lines, through a second serial
#     port; the rest from the result folder at the end: the same bytes as before, once) and
#     exits with the command's exit status; 124 on timeout, 125 if the VM failed before the
#     command finished (the console log's tail is shown)
# Software emulation: expect everything to be 50-100x slower than on the host; boot ~20 s.
# Inside, put daemon state under /tmp, /run or /var/lib/containerd (tmpfs); the rest of the
# root is an overlay, on which overlayfs snapshots cannot be stacked.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Without symlinks: the result folder is mounted in the guest at the same path, and a symlinked
# .cache (e.g. a git worktree sharing another checkout's cache) would not resolve there.
CACHE="$(realpath -m "$REPO/.cache/vm")"
log() { echo "vm-cgroupv2: $*" >&2; }
die() { log "ERROR: $*"; exit 125; }

TIMEOUT=900 MEM=4096 SMP=2 CWD="$REPO" KEEP=0 VERBOSE=0 SETUP_ONLY=0 HEARTBEAT="${TENT_VM_HEARTBEAT:-30}" SYSTEMD=""
ENVS=()
while (($#)); do
  case "$1" in
    --timeout) TIMEOUT="${2:?--timeout needs SECS}"; shift 2 ;;
    --mem) MEM="${2:?--mem needs MIB}"; shift 2 ;;
    --smp) SMP="${2:?--smp needs N}"; shift 2 ;;
    --cwd) CWD="${2:?--cwd needs DIR}"; shift 2 ;;
    --env) [[ "${2:-}" == *=* ]] || die "--env needs NAME=VALUE"; ENVS+=("$2"); shift 2 ;;
    --keep) KEEP=1; shift ;;
    --verbose) VERBOSE=1; shift ;;
    --heartbeat) HEARTBEAT="${2:?--heartbeat needs SECS}"; shift 2 ;;
    --setup-only) SETUP_ONLY=1; shift ;;
    --systemd) SYSTEMD="${2:?--systemd needs v1 or v2}"; [[ "$SYSTEMD" == v[12] ]] || die "--systemd takes v1 or v2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 0 ;;
    --) shift; break ;;
    *) die "unknown argument '$1' (usage: $0 [--timeout SECS] -- <command...>)" ;;
  esac
done
((SETUP_ONLY)) || (($#)) || die "no command given (usage: $0 [--timeout SECS] -- <command...>)"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be whole seconds"
[[ "$HEARTBEAT" =~ ^[0-9]+$ ]] || die "--heartbeat must be whole seconds"
[[ "$(id -u)" == 0 ]] || die "must run as root (qemu reads the whole root file system)"

# ---------------------------------------------------------------------------------- installs
APT_OPTS=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
apt_updated=0
apt_update() {
  ((apt_updated)) && return 0
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  apt_updated=1
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

BACKPORTS_LIST=/etc/apt/sources.list.d/tent-vm-bookworm-backports.sources
ensure_qemu() {
  command -v qemu-system-x86_64 >/dev/null && return 0
  # qemu-system-x86 must have the same version as the installed qemu-utils, which comes from
  # bookworm-backports on these machines; bookworm's own 7.2 would conflict with it.
  local want="" target=()
  if installed qemu-utils; then want="$(dpkg-query -W -f='${Version}' qemu-utils)"; fi
  if [[ "$want" == *bpo12* ]]; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      log "adding the bookworm-backports apt source ($BACKPORTS_LIST; backports are pinned at 100, so nothing else is upgraded from it)"
      cat >"$BACKPORTS_LIST" <<'EOF'
# Added by tent's hack/vm-cgroupv2.sh: qemu-system-x86 must match qemu-utils from backports.
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
      apt_updated=0
    fi
    apt_update
    target=(-t bookworm-backports)
    log "installing qemu-system-x86 $want (bookworm-backports, matching qemu-utils)"
    DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" "${target[@]}" \
      "qemu-system-x86=$want" >&2
  else
    apt_update
    log "installing qemu-system-x86"
    DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" qemu-system-x86 >&2
  fi
  command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 still missing"
}

pick_kernel() { # newest Debian -amd64 kernel in /boot with its modules
  local v best=""
  for v in /boot/vmlinuz-*-amd64; do
    [[ -e "$v" ]] || continue
    v="${v#/boot/vmlinuz-}"
    [[ -f "/lib/modules/$v/modules.dep" ]] || continue
    if [[ -z "$best" ]] || dpkg --compare-versions "$v" gt "$best"; then best="$v"; fi
  done
  echo "$best"
}

ensure_kernel() {
  KVER="$(pick_kernel)"
  if [[ -z "$KVER" ]]; then
    apt_update
    # Installs to /boot and /lib/modules (plus initramfs-tools, udev, ... as dependencies); the
    # host keeps running its own kernel, but a GRUB host's boot menu gets the new one.
    log "installing linux-image-amd64 (guest kernel)"
    DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" linux-image-amd64 >&2
    KVER="$(pick_kernel)"
  fi
  [[ -n "$KVER" ]] || die "no /boot/vmlinuz-*-amd64 with /lib/modules/<kver>/modules.dep"
}

# apparmor_parser loads the test profiles the guest's AppArmor (on in Debian's kernel) enforces.
ensure_apparmor() {
  if command -v apparmor_parser >/dev/null; then return 0; fi
  apt_update
  log "installing apparmor (apparmor_parser, for the AppArmor confinement tests in the guest)"
  DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" apparmor >&2
}

ensure_busybox() {
  if [[ -x /bin/busybox ]]; then return 0; fi
  apt_update
  log "installing busybox-static"
  DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" busybox-static >&2
}

# --------------------------------------------------------------------------------- initramfs
INIT_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

mod_path() { # <name> : path relative to /lib/modules/$KVER, from modules.dep
  awk -F: -v n="$1" '{ p = $1; b = p; sub(/.*\//, "", b); sub(/\.ko(\.[a-z]+)?$/, "", b)
      gsub(/-/, "_", b); if (b == n) { print p; exit } }' "/lib/modules/$KVER/modules.dep"
}
mod_deps() { # <relpath> : its direct dependencies
  awk -F: -v p="$1" '$1 == p { print $2; exit }' "/lib/modules/$KVER/modules.dep"
}
declare -A SEEN=()
LOAD_ORDER=()
mod_resolve() { # <relpath> : depth-first, dependencies before the module
  local rel="$1" d
  [[ -n "${SEEN[$rel]:-}" ]] && return 0
  SEEN[$rel]=1
  for d in $(mod_deps "$rel"); do mod_resolve "$d"; done
  LOAD_ORDER+=("$rel")
}

build_initramfs() {
  local m rel key stamp out work f
  LOAD_ORDER=(); SEEN=()
  for m in "${INIT_MODULES[@]}"; do
    rel="$(mod_path "$m")"
    if [[ -z "$rel" ]]; then
      # Built into this kernel: nothing to load.
      grep -qE "/$m\.ko" "/lib/modules/$KVER/modules.builtin" 2>/dev/null \
        || die "module $m not found for $KVER"
      continue
    fi
    mod_resolve "$rel"
  done
  out="$CACHE/initramfs-$KVER.cpio.gz"
  stamp="$out.key"
  # Content only (not paths): the script may be called by different relative paths.
  key="$( { echo "$KVER ${LOAD_ORDER[*]}"; declare -f build_initramfs;
            for f in /bin/busybox "$REPO/hack/vm/initramfs-init.sh" \
                     "${LOAD_ORDER[@]/#//lib/modules/$KVER/}"; do sha256sum <"$f"; done; } \
          | sha256sum | cut -d' ' -f1)"
  INITRD="$out"
  if [[ -f "$out" && "$(cat "$stamp" 2>/dev/null)" == "$key" ]]; then return 0; fi

  log "building $out (modules: $(printf '%s ' "${LOAD_ORDER[@]##*/}"))"
  mkdir -p "$CACHE"
  work="$(mktemp -d "$CACHE/initramfs.XXXXXX")"
  mkdir -p "$work"/{bin,modules,proc,sys,dev,mnt}
  install -m 0755 /bin/busybox "$work/bin/busybox"
  if ldd /bin/busybox >/dev/null 2>&1; then
    # A dynamic busybox (package "busybox") needs its libraries and loader.
    for f in $(ldd /bin/busybox | grep -oE '/[^ ]+'); do
      mkdir -p "$work$(dirname "$f")"; cp -L "$f" "$work$f"
    done
  fi
  for f in $(/bin/busybox --list); do
    [[ -e "$work/bin/$f" ]] || ln -s busybox "$work/bin/$f"
  done
  : >"$work/modules.load"
  for rel in "${LOAD_ORDER[@]}"; do
    case "$rel" in
      *.ko) cp "/lib/modules/$KVER/$rel" "$work/modules/" ;;
      *.ko.xz) xz -dc "/lib/modules/$KVER/$rel" >"$work/modules/$(basename "$rel" .xz)"; rel="${rel%.xz}" ;;
      *.ko.zst) zstd -qdc "/lib/modules/$KVER/$rel" >"$work/modules/$(basename "$rel" .zst)"; rel="${rel%.zst}" ;;
      *) die "unsupported module file $rel" ;;
    esac
    basename "$rel" >>"$work/modules.load"
  done
  install -m 0755 "$REPO/hack/vm/initramfs-init.sh" "$work/init"
  (cd "$work" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort \
      | cpio --quiet -o -H newc -R 0:0) | gzip -1 >"$work.cpio.gz"
  mv -f "$work.cpio.gz" "$out"
  echo "$key" >"$stamp"
  rm -rf "$work"
}

# The bzImage is xz-compressed: decompressing it under TCG costs ~6 s per boot. QEMU boots an
# uncompressed vmlinux directly through its PVH entry point (CONFIG_PVH), so extract it once.
extract_vmlinux() {
  local img="/boot/vmlinuz-$KVER" out="$CACHE/vmlinux-$KVER" off magic tool tmp
  KERNEL="$img"
  if [[ -f "$out" && "$out" -nt "$img" ]]; then KERNEL="$out"; return 0; fi
  command -v readelf >/dev/null || { log "no readelf: booting the compressed $img"; return 0; }
  for magic in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08'; do
    tool="${magic%%:*}"
    off="$(LC_ALL=C grep -obUaP "${magic#*:}" "$img" 2>/dev/null | head -n1 | cut -d: -f1)" || true
    [[ -n "$off" ]] && command -v "$tool" >/dev/null && break
    off=""
  done
  [[ -n "$off" ]] || { log "cannot find the compressed payload of $img: booting it as is"; return 0; }
  mkdir -p "$CACHE"
  tmp="$(mktemp "$CACHE/vmlinux.XXXXXX")"
  tail -c "+$((off + 1))" "$img" | "$tool" -dc >"$tmp" 2>/dev/null || true
  # PVH entry = Xen ELF note type 18 (XEN_ELFNOTE_PHYS32_ENTRY).
  if readelf -n "$tmp" 2>/dev/null | grep -q 'type: (0x00000012)'; then
    mv -f "$tmp" "$out"; KERNEL="$out"
    log "extracted $out (PVH boot)"
  else
    rm -f "$tmp"; log "$img has no PVH entry: booting it compressed (slower)"
  fi
}

ensure_qemu
ensure_kernel
ensure_busybox
ensure_apparmor
command -v cpio >/dev/null || { apt_update; DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" cpio >&2; }
mkdir -p "$CACHE/runs"
# Failed or kept runs are left for inspection; forget them after a day.
find "$CACHE/runs" -mindepth 1 -maxdepth 1 -name 'run.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
build_initramfs
extract_vmlinux
((SETUP_ONLY)) && { log "ready: kernel $KERNEL ($KVER), initramfs $INITRD"; exit 0; }

# ------------------------------------------------------------------------------------- run
RUN="$(mktemp -d "$CACHE/runs/run.XXXXXX")"
chmod 755 "$RUN"
for p in "$RUN" "$REPO/hack/vm/guest-init.sh"; do
  [[ "$p" =~ ^[A-Za-z0-9_./+-]+$ ]] || die "path '$p' has characters the kernel command line cannot carry"
done

{
  echo '#!/bin/bash'
  echo "# written by hack/vm-cgroupv2.sh on the host"
  while IFS= read -r v; do printf 'export %q\n' "$v"; done < <(env | grep -E '^(TENT|RUST|CONTAINERD)_[A-Za-z0-9_]*=' || true)
  for v in "${ENVS[@]}"; do printf 'export %q\n' "$v"; done
  printf 'cd %q || exit 126\n' "$CWD"
  printf 'exec'; printf ' %q' "$@"; printf '\n'
} >"$RUN/cmd.sh"

QUIET="quiet loglevel=3"
((VERBOSE)) && QUIET="loglevel=7"
CGROUP_ARGS="cgroup_no_v1=all"
case "$SYSTEMD" in
  v2) CGROUP_ARGS="cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 tent_systemd=v2" ;;
  v1) CGROUP_ARGS="systemd.unified_cgroup_hierarchy=0 tent_systemd=v1" ;;
esac
APPEND="console=ttyS0 panic=-1 oops=panic $CGROUP_ARGS $QUIET tsc=reliable no_timer_check"
APPEND+=" random.trust_cpu=on mitigations=off tent_results=$RUN tent_init=$REPO/hack/vm/guest-init.sh"

CONSOLE="$RUN/console.log"
LIVE="$RUN/live"   # the guest's /dev/ttyS1: the command's output, raw, as it is written
# shellcheck disable=SC2054 # the commas are qemu option syntax
QEMU=(qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$SMP" -m "$MEM"
  -machine q35 -nodefaults -no-user-config -display none -no-reboot
  -chardev "file,id=con,path=$CONSOLE" -serial chardev:con
  -chardev "file,id=live,path=$LIVE" -serial chardev:live -monitor none
  -nic none
  -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND"
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
  -virtfs "local,path=$RUN,mount_tag=results,security_model=none,multidevs=remap")

log "booting $KVER (tcg, ${SMP} vCPU, ${MEM} MiB, timeout ${TIMEOUT}s); run folder $RUN"
T0="$(date +%s.%N)"
qrc=0
# In the background so that an interrupt of this script stops the VM too (timeout forwards
# SIGTERM to qemu; -k kills it if it lingers).
timeout -k 10 "$TIMEOUT" "${QEMU[@]}" </dev/null >"$RUN/qemu.log" 2>&1 &
QPID=$!
trap 'log "interrupted: stopping the VM"; kill -TERM "$QPID" 2>/dev/null; wait "$QPID" 2>/dev/null; exit 130' INT TERM HUP

# While the VM runs: print the command's output as it arrives in $LIVE (whole lines only, so
# stderr lines never split one), and a heartbeat on stderr when it has been quiet for a while.
SHOWN=0   # bytes of $LIVE printed so far
CHUNK="$RUN/live.chunk"
show_live() { # [all] : print what arrived since the last call (complete lines, or everything)
  local size n bytes
  size="$(stat -c %s "$LIVE" 2>/dev/null)" || return 0
  ((size > SHOWN)) || return 0
  # The new bytes into a file first: no pipe whose reader stops early (pipefail, set -e).
  dd if="$LIVE" of="$CHUNK" iflag=skip_bytes,count_bytes skip="$SHOWN" count="$((size - SHOWN))" \
    bs=64K status=none
  bytes="$(stat -c %s "$CHUNK")"
  if [[ "${1:-}" != all ]]; then
    n="$(wc -l <"$CHUNK")"
    ((n > 0)) || return 0
    bytes="$(head -n "$n" "$CHUNK" | wc -c)"
  fi
  head -c "$bytes" "$CHUNK"
  SHOWN=$((SHOWN + bytes))
  QUIET_SINCE=$SECONDS
}
heartbeat() {
  local what last up
  if ((SHOWN > 0)); then
    last="$(tail -c 2000 "$LIVE" | tr -d '\r' | grep -v '^[[:space:]]*$' | tail -n 1 | cut -c1-120 || true)"
    what="running, no output for $((SECONDS - QUIET_SINCE))s; last line: $last"
  elif up="$(grep -ao 'init started at [0-9.]*s' "$CONSOLE" 2>/dev/null | tail -n 1)" && [[ -n "$up" ]]; then
    what="guest up (its init ${up#init } of guest uptime), command running, no output yet"
  else
    what="booting the guest kernel (TCG: ~10-25 s)"
  fi
  log "[+$((SECONDS - START))s of ${TIMEOUT}s] ${CMD_SHORT}: $what"
}
START=$SECONDS QUIET_SINCE=$SECONDS
CMD_SHORT="$(printf '%s ' "${@##*/}" | cut -c1-60)"; CMD_SHORT="${CMD_SHORT% }"
beat=$SECONDS
vm_running() { # qemu's `timeout` neither reaped nor a zombie
  local st
  st="$(cut -d' ' -f3 "/proc/$QPID/stat" 2>/dev/null)" && [[ -n "$st" && "$st" != Z ]]
}
while vm_running; do
  show_live
  if ((HEARTBEAT > 0 && SECONDS - QUIET_SINCE >= HEARTBEAT && SECONDS - beat >= HEARTBEAT)); then
    heartbeat; beat=$SECONDS
  fi
  sleep 1
done
wait "$QPID" || qrc=$?
trap - INT TERM HUP
T1="$(date +%s.%N)"
WALL="$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }')"

# The rest: from the result folder (the live copy may lack the last bytes if the VM stopped
# before the UART sent them), else whatever the live copy has.
show_live
if [[ -f "$RUN/output" ]]; then
  if ((SHOWN == 0)) || cmp -s -n "$SHOWN" "$LIVE" "$RUN/output"; then
    tail -c "+$((SHOWN + 1))" "$RUN/output"
  else
    log "WARNING: the streamed output differs from $RUN/output; the whole file follows"
    cat "$RUN/output"
  fi
else
  show_live all
fi
show_console() {
  log "---- qemu:"; tail -n 20 "$RUN/qemu.log" >&2 || true
  log "---- serial console (last 60 lines of $CONSOLE):"; tail -n 60 "$CONSOLE" >&2 || true
}
if [[ -f "$RUN/exit" ]]; then
  rc="$(cat "$RUN/exit")"
  log "status $rc; wall ${WALL}s; guest uptime at init $(cat "$RUN/boot-seconds" 2>/dev/null)s, at end $(cat "$RUN/end-seconds" 2>/dev/null)s"
  if [[ "$rc" != 0 ]]; then
    log "run folder kept: $RUN"
    [[ "$rc" == 125 ]] && show_console
  elif ((!KEEP)); then
    rm -rf "$RUN"
  else
    log "run folder kept: $RUN"
  fi
  exit "$rc"
fi
if [[ "$qrc" == 124 || "$qrc" == 137 ]]; then
  log "TIMEOUT after ${TIMEOUT}s: VM killed (run folder kept: $RUN)"
  show_console
  exit 124
fi
log "the VM stopped without a result (qemu status $qrc; run folder kept: $RUN)"
show_console
exit 125
