#!/usr/bin/env bash
# Inside a VM with systemd as PID 1 (hack/vm-cgroupv2.sh --systemd v2|v1): the systemd cgroup
# driver through containerd's Task API. A private containerd 1.6 runs the test image with tent
# and a systemd-form cgroupsPath (`ctr run --cgroup slice:prefix:name`, what kubelet's systemd
# driver makes containerd send); the container must run in the transient scope
# `tent-<id>.scope` with its memory limit as the unit's property, and delete must remove the unit.
# Needs the release shim (hack/build-shim.sh) and the test image (hack/build-image.sh).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FAIL=0
say() { echo "smoke-systemd: $*"; }
bad() { echo "smoke-systemd: FAIL: $*"; FAIL=1; }
[[ -d /run/systemd/system ]] || { bad "systemd is not PID 1"; exit 1; }
V2=0; [[ -f /sys/fs/cgroup/cgroup.controllers ]] && V2=1
D=/tmp/ctd-sd
"$REPO/hack/containerd.sh" up 1.6 "$D" >/dev/null 2>&1 || { bad "hack/containerd.sh up failed"; tail -n 20 "$D/containerd.log" 2>/dev/null; exit 1; }
# shellcheck disable=SC1091
source "$D/env"
ctr() { timeout 300 "$TENT_CTR" --address "$CONTAINERD_ADDRESS" "$@"; }
trap '"$REPO/hack/containerd.sh" down "$D" >/dev/null 2>&1 || true' EXIT

id=sdctr1 unit=tent-sdctr1.scope slice=tentctr-pod1.slice limit=67108864
ctr run -d --runtime io.containerd.tent.v1 --memory-limit "$limit" --cgroup "$slice:tent:$id" \
  docker.io/library/tent-test:latest "$id" sleep 1000 || { bad "ctr run failed"; exit 1; }
pid="$(ctr task ls | awk -v id="$id" '$1 == id { print $2 }')"
say "task $id pid $pid: $(grep -E '^0::|name=systemd' "/proc/$pid/cgroup" | tr '\n' ' ')"
[[ "$(systemctl show --value -p ActiveState "$unit")" == active ]] || bad "$unit is not active"
[[ "$(systemctl show --value -p Slice "$unit")" == "$slice" ]] || bad "$unit is not in $slice"
grep -q "/tentctr.slice/$slice/$unit\$" "/proc/$pid/cgroup" || bad "pid $pid is not in $unit"
mem=MemoryLimit; ((V2)) && mem=MemoryMax
[[ "$(systemctl show --value -p "$mem" "$unit")" == "$limit" ]] || bad "$unit: $mem is not $limit"
systemctl daemon-reload
grep -q "/tentctr.slice/$slice/$unit\$" "/proc/$pid/cgroup" || bad "pid $pid left $unit after daemon-reload"
ctr task kill -s SIGKILL "$id"
for _ in $(seq 100); do [[ "$(ctr task ls | awk -v id="$id" '$1 == id { print $3 }')" == STOPPED ]] && break; sleep 0.2; done
ctr task delete "$id" >/dev/null
ctr container delete "$id"
[[ "$(systemctl show --value -p LoadState "$unit")" == not-found ]] || bad "$unit still loaded after delete"
((FAIL)) || say "ok: $unit held the container, had its limit, and is gone after delete"
exit "$FAIL"
