#!/usr/bin/env bash
# The systemd cgroup driver's tests (runtime/tests/systemd.rs) in VMs booted with systemd as
# PID 1 (hack/vm-cgroupv2.sh --systemd): pure cgroup v2, then systemd's v1 (hybrid) layout.
#
#   hack/vm/run-systemd-tests.sh [v2|v1]...      (default: v2 v1)
#
# Builds the test binary on the host (cargo test --no-run), runs it in one VM per layout
# (~40-60 s each under TCG), prints its output as it runs and a summary. Exit status: 0 if every
# run passed, else the first failing run's (124 = VM timed out, 125 = VM failed).
# Then, in the same VM, hack/vm/smoke-systemd-ctr.sh: the driver through containerd 1.6's Task
# API (needs the release shim and the test image: hack/build-shim.sh, hack/build-image.sh).
# Environment: TENT_SYSTEMD_FILTER (test-name substring), TENT_SYSTEMD_TIMEOUT (per VM, default
# 300), TENT_SYSTEMD_CTR=0 skips the ctr smoke.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
log() { echo "run-systemd-tests: $*" >&2; }

if [[ "${1:-}" == --in-vm ]]; then
  # ---- inside the VM: a service of systemd (PID 1) ----
  bin="$2"
  log "PID 1: $(cat /proc/1/comm); $(systemctl --version | head -n1); /sys/fs/cgroup: $(stat -f -c %T /sys/fs/cgroup)"
  rc=0
  "$bin" ${TENT_SYSTEMD_FILTER:+"$TENT_SYSTEMD_FILTER"} || rc=$?
  if [[ "${TENT_SYSTEMD_CTR:-1}" == 1 ]]; then
    log "==> the Task API: ctr run --cgroup slice:prefix:name with tent (containerd 1.6)"
    "$REPO/hack/vm/smoke-systemd-ctr.sh" || rc=1
  fi
  left="$(systemctl list-units --all --no-legend --plain 'tent-tent-test-*' 'tent-sdctr*' 2>/dev/null || true)"
  if [[ -n "$left" ]]; then log "units left behind: $left"; rc=1; fi
  exit "$rc"
fi

layouts=("$@")
((${#layouts[@]})) || layouts=(v2 v1)
for l in "${layouts[@]}"; do
  [[ "$l" == v[12] ]] || { log "ERROR: unknown layout '$l' (v2 or v1)"; exit 125; }
done
log "building runtime/tests/systemd.rs on the host"
bin="$(cd "$REPO" && cargo test -p tent-runtime --test systemd --no-run --message-format=json \
  | jq -r 'select(.profile.test and .executable != null) | .executable')" \
  || { log "ERROR: cargo test --no-run failed"; exit 125; }
[[ -x "$bin" ]] || { log "ERROR: no test binary ($bin)"; exit 125; }

status=0 summary=()
for l in "${layouts[@]}"; do
  log "==> systemd VM, cgroup $l"
  t=$SECONDS rc=0
  "$REPO/hack/vm-cgroupv2.sh" --systemd "$l" --timeout "${TENT_SYSTEMD_TIMEOUT:-300}" -- \
    "$REPO/hack/vm/run-systemd-tests.sh" --in-vm "$bin" || rc=$?
  summary+=("$(printf '%-8s %4ss  systemd as PID 1, cgroup %s' "$([[ $rc == 0 ]] && echo ok || echo "FAIL($rc)")" "$((SECONDS - t))" "$l")")
  [[ $rc == 0 || $status != 0 ]] || status=$rc
done
log "summary:"
printf '  %s\n' "${summary[@]}" >&2
exit "$status"
