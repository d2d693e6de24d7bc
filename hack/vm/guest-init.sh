#!/bin/bash
# PID 1 of the cgroup v2 VM (hack/vm-cgroupv2.sh), run by the host's bash after switch_root;
# in --systemd mode, systemd's PID 1 and then a service run by it (see below).
# The initramfs has set up: overlay root (host root read-only + tmpfs), tmpfs on /tmp /run
# /var/tmp /var/lib/containerd /var/lib/cni, /proc /sys /dev, and the result folder at
# $tent_results (shared read-write with the host).
#
# Here: the remaining pseudo file systems, cgroup2 at /sys/fs/cgroup with every controller
# enabled in the root's cgroup.subtree_control, then $tent_results/cmd.sh (written by the
# host) with its output in $tent_results/output and its status in $tent_results/exit, then
# power off. Nothing here may leave the VM running: every path ends in poweroff.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
R="${tent_results:?}"

# --systemd mode (tent_systemd=v1|v2 on the kernel command line): as PID 1, hand over to
# systemd with a boot target whose one service runs this script again (TENT_VM_UNDER_SYSTEMD=1),
# which then runs the command as below; systemd mounts the cgroup file systems itself.
if [[ -n "${tent_systemd:-}" && $$ == 1 ]]; then
  self="$(realpath "$0")"
  mkdir -p /etc/systemd/system
  cat >/etc/systemd/system/tent-vm.target <<EOF
[Unit]
Description=tent VM: the test command under systemd
Requires=tent-vm.service
After=tent-vm.service
AllowIsolate=yes
EOF
  cat >/etc/systemd/system/tent-vm.service <<EOF
[Unit]
Description=tent VM test command
DefaultDependencies=no
[Service]
Type=oneshot
Environment=tent_results=$R TENT_VM_UNDER_SYSTEMD=1
ExecStart=/bin/bash $self
StandardInput=null
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/console
TimeoutStartSec=infinity
EOF
  # The host root may be a container's (/.dockerenv): systemd would then think it runs in a
  # container and read its options from its own argv instead of the kernel command line.
  rm -f /.dockerenv /run/.containerenv
  echo "tent-vm: handing over to systemd ($tent_systemd)" >/dev/console
  unset tent_results tent_init tent_systemd
  exec /lib/systemd/systemd --unit=tent-vm.target
fi
unset tent_results tent_init tent_systemd
UNDER_SYSTEMD="${TENT_VM_UNDER_SYSTEMD:-}"
unset TENT_VM_UNDER_SYSTEMD

console() { echo "tent-vm: $*" >/dev/console; }
# shellcheck disable=SC2317 # called through the EXIT trap
poweroff_now() {
  sync
  echo o >/proc/sysrq-trigger
  sleep 30
}
trap poweroff_now EXIT

setup() {
  mkdir -p /dev/pts /dev/shm /dev/mqueue
  if [[ -n "$UNDER_SYSTEMD" ]]; then
    # systemd has mounted /dev/pts, /dev/shm and the cgroup file systems.
    mountpoint -q /dev/mqueue || mount -t mqueue mqueue /dev/mqueue || return 1
    console "under systemd $(systemctl --version | head -n1); cgroup: $(stat -f -c %T /sys/fs/cgroup)"
    return 0
  fi
  mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts || return 1
  mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm || return 1
  mount -t mqueue mqueue /dev/mqueue || return 1
  [[ -e /dev/ptmx ]] || ln -s pts/ptmx /dev/ptmx
  ln -sfn /proc/self/fd /dev/fd; ln -sfn /proc/self/fd/0 /dev/stdin
  ln -sfn /proc/self/fd/1 /dev/stdout; ln -sfn /proc/self/fd/2 /dev/stderr
  mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
  mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null

  # cgroup v2 only: the kernel runs with cgroup_no_v1=all.
  mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup || return 1
  local c ctrls
  ctrls="$(cat /sys/fs/cgroup/cgroup.controllers)"
  for c in $ctrls; do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || { console "cannot enable controller $c"; return 1; }
  done
  console "cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"

  # No modprobe here (each costs ~1 s under TCG): the host's /lib/modules and /sbin/modprobe
  # are visible, so the kernel autoloads veth, bridge, etc. when they are first used.
  return 0
}

read -r up _ </proc/uptime
echo "$up" >"$R/boot-seconds"
console "init started at ${up}s of guest uptime"
if ! setup; then
  console "guest setup failed"
  echo 125 >"$R/exit"
  exit 1
fi

# Output goes to tmpfs first (9p writes are slow), is streamed to the serial console (so the
# host's console log shows progress even if the VM is killed) and, byte for byte, to the second
# serial port, whose host side (a file) hack/vm-cgroupv2.sh prints as it grows; then it is
# copied to the result folder.
# No pipe from the command: a daemon it leaves running must not keep us waiting for EOF.
stream() { # <pid> <file> : follow the file until the process is gone
  local follow=(tail -n +1 -s 0.5 -f --pid="$1" "$2")
  # ttyS1 raw (no \r added to \n, no echo), so the host's copy equals the output file.
  if { exec 3>/dev/ttyS1 && stty raw -echo <&3; } 2>/dev/null; then
    "${follow[@]}" 2>/dev/null | tee /dev/fd/3 >/dev/console 2>&1
  else
    console "no second serial port (/dev/ttyS1): output only on the console"
    "${follow[@]}" >/dev/console 2>&1
  fi
}
cd /
set +e
out=/run/tent-vm/output
: >"$out"
bash "$R/cmd.sh" </dev/null >"$out" 2>&1 &
pid=$!
stream "$pid" "$out" &
spid=$!
wait "$pid"
rc=$?
# The follower's last read comes within 0.5 s; closing ttyS1 waits until the UART has sent it.
for ((i = 0; i < 100; i++)); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
cp "$out" "$R/output"
read -r up _ </proc/uptime
echo "$up" >"$R/end-seconds"
console "command exited with status $rc at ${up}s of guest uptime"
echo "$rc" >"$R/exit"
exit 0
