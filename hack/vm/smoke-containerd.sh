#!/usr/bin/env bash
# Smoke test of the cgroup v2 VM, run INSIDE it:
#
#   hack/vm-cgroupv2.sh -- hack/vm/smoke-containerd.sh [RUNTIME...]
#
# Checks that the kernel has cgroup v2 only, starts a private containerd 1.6 with
# hack/containerd.sh (root/state on tmpfs), then per runtime (default io.containerd.runc.v2;
# add io.containerd.tent.v1 once hack/build-shim.sh has built the shim) runs
# `ctr run --rm --memory-limit 64MiB` of the test image that prints /proc/self/cgroup (a
# single v2 line) and its cgroup's memory.max, and checks both.
# Prints timings. Exit status 0 = all good.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNTIMES=("$@")
((${#RUNTIMES[@]})) || RUNTIMES=(io.containerd.runc.v2)
IMAGE=docker.io/library/tent-test:latest
LIMIT=67108864
FAIL=0
say() { echo "smoke: $*"; }
bad() { echo "smoke: FAIL: $*"; FAIL=1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

say "kernel $(uname -r), cmdline: $(cat /proc/cmdline)"
# 1. cgroup v2 only: no v1 hierarchy in use or mountable, one cgroup2 mount, one line per process.
say "controllers at /sys/fs/cgroup: $(cat /sys/fs/cgroup/cgroup.controllers)"
say "root subtree_control:          $(cat /sys/fs/cgroup/cgroup.subtree_control)"
[[ "$(stat -f -c %T /sys/fs/cgroup)" == cgroup2fs ]] || bad "/sys/fs/cgroup is not cgroup2"
[[ "$(cat /sys/fs/cgroup/cgroup.controllers)" == "$(cat /sys/fs/cgroup/cgroup.subtree_control)" ]] \
  || bad "not every controller is enabled in the root's subtree_control"
awk 'NR > 1 && $2 != 0 { exit 1 }' /proc/cgroups || bad "a v1 hierarchy is in use (/proc/cgroups)"
grep -qw 'cgroup_no_v1=all' /proc/cmdline || bad "cgroup_no_v1=all missing from the kernel command line"
if grep -qE '^[^ ]+ [^ ]+ cgroup ' /proc/mounts; then bad "a cgroup v1 file system is mounted"; fi
[[ "$(cat /proc/self/cgroup)" == 0::/* && "$(wc -l </proc/self/cgroup)" == 1 ]] \
  || bad "/proc/self/cgroup is not a single v2 line: $(cat /proc/self/cgroup)"
mkdir -p /tmp/v1probe
if mount -t cgroup -o memory none /tmp/v1probe 2>/dev/null; then
  bad "a v1 memory hierarchy could be mounted"; umount /tmp/v1probe
else
  say "mounting a v1 memory hierarchy fails, as it must"
fi

# 2. a private containerd 1.6 on tmpfs.
D=/tmp/ctd-v2
t="$(now)"
# Its log lines, stamped with the seconds since $t: "up: pid" = daemon answers, "imported" = done.
"$REPO/hack/containerd.sh" up 1.6 "$D" 2>&1 >/dev/null | grep --line-buffered '^containerd.sh' \
  | while IFS= read -r l; do echo "smoke: +$(secs "$t")s $l"; done
[[ -f "$D/env" ]] || { bad "hack/containerd.sh up failed"; exit 1; }
say "TIME containerd up (start + answer + image import into 2 namespaces): $(secs "$t")s"
# shellcheck disable=SC1091
source "$D/env"
say "containerd's own log: $(grep -o 'containerd successfully booted in [0-9.]*s' "$D/containerd.log" | tail -n1)"
ctr() { timeout 300 "$TENT_CTR" --address "$CONTAINERD_ADDRESS" "$@"; }
say "containerd: $(ctr version 2>/dev/null | awk '/Server:/ { s = 1 } s && /Version:/ { print $2; exit }')"

# 3. one container per runtime.
for rt in "${RUNTIMES[@]}"; do
  for i in 1 2; do
    t="$(now)"
    # shellcheck disable=SC2016 # expanded by the container's sh
    # ctr 1.6's default spec has no /sys/fs/cgroup mount: ask for one (as CRI does).
    out="$(ctr run --rm --runtime "$rt" --memory-limit "$LIMIT" \
      --mount type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro:nosuid:noexec:nodev \
      "$IMAGE" "smoke-$i" \
      sh -c 'cat /proc/self/cgroup; p="$(sed -n "s/^0:://p" /proc/self/cgroup)"
             echo "memory.max=$(cat "/sys/fs/cgroup${p%/}/memory.max")"' 2>&1)" \
      || { bad "$rt: ctr run failed: $out"; continue; }
    say "TIME ctr run --rm ($rt, run $i): $(secs "$t")s"
    echo "$out" | sed 's/^/    | /'
    # ctr 1.6 adds no cgroup namespace (CRI does on v2): the path is then /default/<id>.
    grep -qxE "0::/(default/smoke-$i)?" <<<"$out" \
      || bad "$rt: /proc/self/cgroup is neither 0::/ (cgroupns) nor 0::/default/smoke-$i"
    grep -qx "memory.max=$LIMIT" <<<"$out" || bad "$rt: memory.max is not $LIMIT"
  done
done

# 4. containerd's cgroups for the containers are gone after --rm.
left="$(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name 'smoke-*' 2>/dev/null || true)"
[[ -z "$left" ]] || bad "cgroups left after ctr run --rm: $left"

"$REPO/hack/containerd.sh" down "$D" >/dev/null 2>&1 || bad "containerd.sh down failed"
((FAIL)) && { say "FAILED"; exit 1; }
say "OK: cgroup v2 only; ctr run with ${RUNTIMES[*]} sees its own v2 cgroup with memory.max=$LIMIT"
