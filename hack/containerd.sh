#!/usr/bin/env bash
# Run a PRIVATE containerd for tent's tests (never the system one).
#
#   hack/containerd.sh up <1.6|1.7|2.1> <DIR>   start a daemon whose root, state, config,
#                                               sockets, log and CNI config all live in DIR
#   hack/containerd.sh down <DIR>               stop it, kill its containers and shims,
#                                               unmount everything under DIR, remove DIR
#
# Files in DIR:  containerd.sock (gRPC), containerd.sock.ttrpc, containerd.log, containerd.pid,
#                config.toml, root/, state/, cni/net.d/, bin/ctr (the version's ctr), env
#                (CONTAINERD_ADDRESS, TENT_CTR, TENT_CONTAINERD_VERSION, TENT_CONTAINERD_BIN).
# Environment:   TENT_SHIM_DIR    directory holding containerd-shim-tent-v1 (default
#                                 <repo>/target/x86_64-unknown-linux-gnu/release, as
#                                 hack/build-shim.sh builds it), first on the daemon's PATH
#                TENT_IMAGE       image archive to import (default .cache/images/tent-test.tar,
#                                 with tent-test:latest and CRI's sandbox image tent-test:pause;
#                                 built with hack/build-image.sh first if missing; a TENT_IMAGE
#                                 that names a missing file is skipped with a warning)
#                TENT_CONTAINERD_LOG_LEVEL   daemon log level (default info)
# Several daemons can run at once: every path and the CNI network name are unique
# to DIR. Shim sockets live in /run/containerd/s (hashed by address, so no clashes).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "containerd.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { die "usage: $0 up <1.6|1.7|2.1> <DIR> | $0 down <DIR>"; }

ctr_at() { # <dir> args... : the daemon's own ctr, bounded in time
  local d="$1"; shift
  timeout 30 "$d/bin/ctr" --address "$d/containerd.sock" "$@"
}

bridge_name() { # unique per DIR, <= 15 chars
  printf 'tent%08x' "$(printf '%s' "$1" | cksum | cut -d' ' -f1)"
}

write_cni() { # <dir>
  # Pods get their own network namespace with loopback only: tests never put traffic on any
  # address but loopback (no bridge, no private-range subnet, nothing in the host's netns).
  # CRI's RunPodSandbox still needs an `eth0` with an address in the CNI result ("failed to
  # find network info for sandbox"), so the chain ends with tent-podif (written below): a veth
  # pair whose two ends both stay inside the pod's namespace, eth0 holding 127.0.0.2/32.
  local d="$1" br
  br="$(bridge_name "$d")"
  mkdir -p "$d/cni/net.d" "$d/cni/bin"
  ln -sfn /usr/lib/cni/loopback "$d/cni/bin/loopback"
  cat >"$d/cni/bin/tent-podif" <<'SH'
#!/bin/sh
# CNI plugin of tent's test daemons: ADD puts a veth pair into $CNI_NETNS (both ends there,
# none in the host's namespace) with 127.0.0.2/32 on $CNI_IFNAME; DEL removes it.
cat >/dev/null
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
case "$CNI_COMMAND" in
  ADD)
    nsenter --net="$CNI_NETNS" sh -ec "
      ip link add '$CNI_IFNAME' type veth peer name '${CNI_IFNAME}p'
      ip addr add 127.0.0.2/32 dev '$CNI_IFNAME'
      ip link set '$CNI_IFNAME' up" >&2 || {
      printf '{"cniVersion":"1.0.0","code":11,"msg":"tent-podif: cannot add %s in %s"}\n' "$CNI_IFNAME" "$CNI_NETNS"
      exit 1
    }
    printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"address":"127.0.0.2/32","interface":0}]}\n' "$CNI_IFNAME" "$CNI_NETNS" ;;
  DEL)
    [ -e "$CNI_NETNS" ] && nsenter --net="$CNI_NETNS" ip link del "$CNI_IFNAME" 2>/dev/null
    exit 0 ;;
  CHECK) exit 0 ;;
  VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
  *) printf '{"cniVersion":"1.0.0","code":4,"msg":"tent-podif: unknown CNI_COMMAND %s"}\n' "$CNI_COMMAND"; exit 1 ;;
esac
SH
  chmod 0755 "$d/cni/bin/tent-podif"
  cat >"$d/cni/net.d/10-tent.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "tent-$br",
  "plugins": [ { "type": "loopback" }, { "type": "tent-podif" } ]
}
JSON
  echo "$br loopback-only (pods: veth pair inside the pod, eth0 127.0.0.2/32)"
}

# Plugins a test daemon never needs; unknown names are ignored by containerd.
DISABLED='"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs",
  "io.containerd.differ.v1.erofs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing", "io.containerd.nri.v1.nri",
  "io.containerd.monitor.container.v1.restart", "io.containerd.grpc.v1.grpc-sandbox"'

# restrict_oom_score_adj: the project's machines refuse a negative oom_score_adj even to root,
# which CRI asks for pod sandboxes (docs/HOST.md).
write_config() { # <ver> <dir>
  local ver="$1" d="$2" lvl="${TENT_CONTAINERD_LOG_LEVEL:-info}"
  local common="root = \"$d/root\"
state = \"$d/state\"
disabled_plugins = [$DISABLED]

[grpc]
  address = \"$d/containerd.sock\"
[ttrpc]
  address = \"$d/containerd.sock.ttrpc\"
[debug]
  level = \"$lvl\"
[metrics]
  address = \"\""
  if [[ "$ver" == 2.* ]]; then
    cat >"$d/config.toml" <<TOML
version = 3
$common

[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "docker.io/library/tent-test:pause"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  enable_selinux = false
[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tent]
  runtime_type = "io.containerd.tent.v1"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tent.options]
  ConfigPath = "$REPO/config/tent.toml"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tent-compat]
  runtime_type = "io.containerd.tent.v1"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tent-compat.options]
  ConfigPath = "$REPO/config/tent-compat.toml"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tent-budget]
  runtime_type = "io.containerd.tent.v1"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tent-budget.options]
  ConfigPath = "$REPO/config/tent-budget.toml"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tent-budget-warn]
  runtime_type = "io.containerd.tent.v1"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tent-budget-warn.options]
  ConfigPath = "$REPO/config/tent-budget-warn.toml"
# Pods without a pause process: containerd calls the shim's Sandbox service (2.x only).
# No options table: containerd 2.1 hands a sandboxed task the shim's address inside runc's
# options type and fails on any other (so the profile is tent's default).
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tent-pauseless]
  runtime_type = "io.containerd.tent.v1"
  sandboxer = "shim"
[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["$d/cni/bin"]
  conf_dir = "$d/cni/net.d"
  max_conf_num = 1
TOML
  else
    cat >"$d/config.toml" <<TOML
version = 2
$common

[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  sandbox_image = "docker.io/library/tent-test:pause"
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tent]
  runtime_type = "io.containerd.tent.v1"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tent.options]
  ConfigPath = "$REPO/config/tent.toml"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tent-compat]
  runtime_type = "io.containerd.tent.v1"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tent-compat.options]
  ConfigPath = "$REPO/config/tent-compat.toml"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tent-budget]
  runtime_type = "io.containerd.tent.v1"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tent-budget.options]
  ConfigPath = "$REPO/config/tent-budget.toml"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tent-budget-warn]
  runtime_type = "io.containerd.tent.v1"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tent-budget-warn.options]
  ConfigPath = "$REPO/config/tent-budget-warn.toml"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "$d/cni/bin"
  conf_dir = "$d/cni/net.d"
  max_conf_num = 1
TOML
  fi
}

DEFAULT_IMAGE="$REPO/.cache/images/tent-test.tar"
# The default test image is built when missing (e.g. after hack/demo.sh alone, which builds its
# own tent-demo.tar), so `up` followed by `ctr run ... tent-test:latest` works on a fresh clone.
# A lock keeps concurrent `up`s (test binaries, several engineers) from building it twice.
ensure_default_image() {
  [[ -f "$DEFAULT_IMAGE" ]] && return 0
  mkdir -p "$(dirname "$DEFAULT_IMAGE")"
  (
    flock -w 600 9 || die "timed out waiting for $DEFAULT_IMAGE.lock (another build of the test image?)"
    [[ -f "$DEFAULT_IMAGE" ]] && exit 0
    log "test image $DEFAULT_IMAGE missing: building it (hack/build-image.sh, a few seconds)"
    bash "$REPO/hack/build-image.sh" --out "$DEFAULT_IMAGE" >/dev/null \
      || die "hack/build-image.sh failed (see above); fix it, or set TENT_IMAGE to an existing image archive"
  ) 9>"$DEFAULT_IMAGE.lock"
}

alive() { [[ -f "$1/containerd.pid" ]] && kill -0 "$(cat "$1/containerd.pid")" 2>/dev/null; }

cmd_up() {
  local ver="$1" d="$2" bindir shimdir image pid i
  [[ "$d" == /* ]] || d="$(pwd)/$d"
  d="${d%/}"
  (( ${#d} <= 80 )) || die "DIR too long for unix sockets: $d"
  if alive "$d" && ctr_at "$d" version >/dev/null 2>&1; then
    log "containerd already running in $d (pid $(cat "$d/containerd.pid"))"
    cat "$d/env"; return 0
  fi
  bindir="$(bash "$REPO/hack/install-containerd.sh" "$ver" | tail -n1)"
  [[ -x "$bindir/containerd" ]] || die "no containerd in '$bindir'"
  shimdir="${TENT_SHIM_DIR:-$REPO/target/x86_64-unknown-linux-gnu/release}"
  [[ -x "$shimdir/containerd-shim-tent-v1" ]] || log "WARNING: $shimdir/containerd-shim-tent-v1 not built yet (hack/build-shim.sh); runtime tent will fail"
  image="${TENT_IMAGE:-$DEFAULT_IMAGE}"
  [[ -n "${TENT_IMAGE:-}" ]] || ensure_default_image

  mkdir -p "$d"/{root,state,opt,bin}
  ln -sfn "$bindir/ctr" "$d/bin/ctr"
  local net; net="$(write_cni "$d")"
  write_config "$ver" "$d"
  cat >"$d/env" <<ENV
export CONTAINERD_ADDRESS=$d/containerd.sock
export TENT_CTR=$d/bin/ctr
export TENT_CONTAINERD_VERSION=$ver
export TENT_CONTAINERD_BIN=$bindir
# tent's profiles for ctr: --runtime io.containerd.tent.v1 --runtime-config-path \$TENT_COMPAT_CONFIG
export TENT_CONFIG=$REPO/config/tent.toml
export TENT_COMPAT_CONFIG=$REPO/config/tent-compat.toml
ENV

  log "starting containerd $ver ($bindir) in $d (CNI: $net)"
  # Detached: own session, no inherited fds, so callers waiting on our stdout are not held.
  PATH="$shimdir:$bindir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    setsid "$bindir/containerd" --config "$d/config.toml" \
    </dev/null >>"$d/containerd.log" 2>&1 &
  pid=$!
  echo "$pid" >"$d/containerd.pid"
  for ((i = 0; i < 150; i++)); do
    if ctr_at "$d" version >/dev/null 2>&1; then break; fi
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$d/containerd.log" >&2; die "containerd exited during start-up (log: $d/containerd.log)"; }
    sleep 0.2
  done
  ctr_at "$d" version >/dev/null 2>&1 || { tail -n 30 "$d/containerd.log" >&2; die "containerd did not answer within 30s (log: $d/containerd.log)"; }
  log "containerd $ver up: pid $pid, socket $d/containerd.sock"

  if [[ -f "$image" ]]; then
    for ns in default k8s.io; do
      ctr_at "$d" -n "$ns" images import "$image" >/dev/null 2>"$d/import.err" \
        || { cat "$d/import.err" >&2; die "ctr -n $ns images import $image failed"; }
    done
    log "imported $(basename "$image") into namespaces default and k8s.io"
    ctr_at "$d" -n k8s.io images ls -q 2>/dev/null | grep -qx 'docker.io/library/tent-test:pause' \
      || log "WARNING: $image has no docker.io/library/tent-test:pause (CRI's pod sandbox image): it predates it; rebuild it with hack/build-image.sh, or CRI pods will not start"
  else
    log "WARNING: TENT_IMAGE=$image missing (build it with hack/build-image.sh --out $image); no image imported"
  fi
  echo "# hints:" >&2
  sed 's/^/#   /' "$d/env" >&2
  echo "#   \$TENT_CTR --address \$CONTAINERD_ADDRESS images ls" >&2
  cat "$d/env"
}

shim_pids() { # <dir> : shims whose cmdline names this daemon's address
  local d="$1" p c
  for p in /proc/[0-9]*; do
    c="$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)" || continue
    case "$c" in
      *containerd-shim*"$d/containerd.sock"*) echo "${p#/proc/}" ;;
    esac
  done
}

cmd_down() {
  local d="$1" pid ns id p i
  [[ "$d" == /* ]] || d="$(pwd)/$d"
  d="${d%/}"
  [[ -d "$d" ]] || { log "$d does not exist: nothing to stop"; return 0; }
  [[ -f "$d/config.toml" ]] || die "$d does not look like a hack/containerd.sh directory (no config.toml); refusing to remove it"
  if alive "$d" && [[ -x "$d/bin/ctr" ]]; then
    # Remove the daemon's containers through containerd so shims clean up after themselves.
    for ns in $(ctr_at "$d" namespaces ls -q 2>/dev/null || true); do
      for id in $(ctr_at "$d" -n "$ns" tasks ls -q 2>/dev/null || true); do
        ctr_at "$d" -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
      done
      for id in $(ctr_at "$d" -n "$ns" tasks ls -q 2>/dev/null || true); do
        for ((i = 0; i < 20; i++)); do
          ctr_at "$d" -n "$ns" tasks delete -f "$id" >/dev/null 2>&1 && break
          sleep 0.2
        done
      done
      for id in $(ctr_at "$d" -n "$ns" containers ls -q 2>/dev/null || true); do
        ctr_at "$d" -n "$ns" containers delete "$id" >/dev/null 2>&1 || true
      done
    done
  fi
  if alive "$d"; then
    pid="$(cat "$d/containerd.pid")"
    log "stopping containerd (pid $pid) in $d"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  for p in $(shim_pids "$d"); do
    log "killing leftover shim $p: $({ tr '\0' ' ' </proc/"$p"/cmdline; } 2>/dev/null | cut -c1-160)"
    kill -KILL "$p" 2>/dev/null || true
  done
  # Unmount everything under DIR, deepest first.
  local m
  for ((i = 0; i < 5; i++)); do
    mapfile -t mounts < <(awk -v d="$d/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
    ((${#mounts[@]})) || break
    for m in "${mounts[@]}"; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "WARNING: cannot unmount $m"
    done
  done
  local br; br="$(bridge_name "$d")"
  if ip link show "$br" >/dev/null 2>&1; then ip link del "$br" 2>/dev/null || true; fi
  rm -rf --one-file-system "$d" || die "could not remove $d"
  log "containerd in $d stopped and removed"
}

case "${1:-}" in
  up) [[ $# == 3 ]] || usage; cmd_up "$2" "$3" ;;
  down) [[ $# == 2 ]] || usage; cmd_down "$2" ;;
  *) usage ;;
esac
