#!/bin/sh
# /init of the tiny initramfs built by hack/vm-cgroupv2.sh (runs under busybox sh, PID 1).
#
# 1. loads the modules listed in /modules.load (dependency order, resolved at build time)
# 2. mounts the host's root (9p tag "hostroot", read-only) under a tmpfs-backed overlay, so
#    every path is writable inside the VM while nothing reaches the host
# 3. mounts fresh tmpfs on /tmp /run /var/tmp /var/lib/containerd /var/lib/cni (no overlay
#    below them, so containerd's overlayfs snapshotter works there)
#    (and the host's copy of the repository again if it lies under one of them)
# 4. mounts the result folder (9p tag "results", read-write) at $tent_results, the same
#    absolute path as on the host
# 5. switch_root to the overlay and exec $tent_init (hack/vm/guest-init.sh, run by the
#    host's bash) as PID 1
# tent_results and tent_init come from the kernel command line (passed to init's environment).
export PATH=/bin

fail() {
  echo "tent-vm initramfs: FATAL: $*" >/dev/console
  echo "--- mounts:" >/dev/console; cat /proc/mounts >/dev/console 2>/dev/null
  echo o >/proc/sysrq-trigger
  sleep 5
  exit 1
}

mkdir -p /proc /sys /dev
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs -o mode=0755 devtmpfs /dev || fail "mount /dev"

while read -r ko; do
  [ -n "$ko" ] || continue
  insmod "/modules/$ko" || fail "insmod $ko"
done </modules.load

[ -n "$tent_results" ] || fail "tent_results= missing from the kernel command line"
[ -n "$tent_init" ] || fail "tent_init= missing from the kernel command line"

# 9p: msize 512000 (the virtio transport's maximum on 6.1), page cache on the read-only root.
P9="trans=virtio,version=9p2000.L,msize=512000"
mkdir -p /host /rw /newroot
mount -t 9p -o "$P9,ro,cache=loose" hostroot /host || fail "mount 9p hostroot"
mount -t tmpfs -o mode=0755 rootrw /rw || fail "mount tmpfs for the overlay"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
  || fail "mount overlay (lower 9p, upper tmpfs)"

for d in tmp run var/tmp var/lib/containerd var/lib/cni; do
  mkdir -p "/newroot/$d"
  mount -t tmpfs -o mode=0755 tmpfs "/newroot/$d" || fail "mount tmpfs on /$d"
done
chmod 1777 /newroot/tmp /newroot/var/tmp

# A repository under one of those (e.g. a clone in /tmp) would vanish under the fresh tmpfs:
# put the host's copy back there, again under a tmpfs overlay (writable, nothing reaches the
# host). The repository is where $tent_init lives.
repo="${tent_init%/hack/vm/guest-init.sh}"
case "$repo" in
  /tmp/*|/run/*|/var/tmp/*|/var/lib/containerd/*|/var/lib/cni/*)
    mkdir -p /rw/repo-upper /rw/repo-work "/newroot$repo"
    mount -t overlay -o "lowerdir=/host$repo,upperdir=/rw/repo-upper,workdir=/rw/repo-work" \
      overlay "/newroot$repo" || fail "mount overlay for the repository $repo"
    ;;
esac

mkdir -p "/newroot$tent_results"
mount -t 9p -o "$P9,rw,cache=none" results "/newroot$tent_results" || fail "mount 9p results"

# Keep the raw layers reachable for debugging.
mkdir -p /newroot/run/tent-vm/host /newroot/run/tent-vm/rw
mount --move /host /newroot/run/tent-vm/host || fail "move /host"
mount --move /rw /newroot/run/tent-vm/rw || fail "move /rw"

mount --move /dev /newroot/dev || fail "move /dev"
mount --move /proc /newroot/proc || fail "move /proc"
mount --move /sys /newroot/sys || fail "move /sys"

ip link set lo up 2>/dev/null
hostname tent-vm

# shellcheck disable=SC2093 # the fail below only runs if exec itself fails
exec switch_root /newroot /bin/bash "$tent_init"
fail "switch_root failed"
