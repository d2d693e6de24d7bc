#!/usr/bin/env bash
# Run integration test binaries inside the pure cgroup v2 VM (hack/vm-cgroupv2.sh).
#
#   hack/vm/run-v2-tests.sh [--timeout SECS] [<test-binary>...] [-- <libtest args>...]
#
#   <test-binary>      executables built on the host, e.g. by
#                      `cargo test -p tent-integration --tests --no-run --message-format=json`
#                      (any path; the host's root is visible in the VM at the same paths).
#                      None given: the v2 set is built first with `cargo test --no-run`:
#                      TENT_V2_TESTS (names of integration/tests/*.rs, default "cgroups
#                      cgroupv2 resources pause update metrics oom cleanup exec profile cri_pod") and
#                      TENT_V2_RUNTIME_TESTS (the runtime's root suites, runtime/tests/*.rs,
#                      default "run lifecycle ops escapes devices_v2 seccomp pods"; they run first).
#                      The shim, tent-testbin and the test image are NOT built: run
#                      hack/test.sh once (or hack/build-shim.sh and hack/build-image.sh).
#   <libtest args>     passed to every binary after the filter (e.g. --nocapture, --exact)
# Environment:
#   TENT_V2_FILTER        test-name filter(s), whitespace-separated, passed to every binary
#                         (libtest substring match; empty = all tests)
#   TENT_V2_TEST_THREADS  --test-threads for every binary (default 2)
#   TENT_V2_TIMEOUT       overall VM time limit in seconds (default 1800; --timeout wins)
#   TENT_*, RUST_*, CONTAINERD_* of the caller are passed into the VM; TENT_CGROUP_V2=1 is set
#   there. A TENT_IT_ROOT directory is created inside the VM (on tmpfs).
# Every binary runs, in the given order, even after a failure; libtest's own output (with its
# "test result:" lines) is printed as the tests run, with a heartbeat on stderr while they are
# quiet (TENT_VM_HEARTBEAT seconds, default 30; see hack/vm-cgroupv2.sh). Exit status: 0 if every binary passed, 1 if any failed,
# 124 if the VM timed out, 125 if the VM failed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
log() { echo "run-v2-tests: $*" >&2; }

if [[ "${1:-}" == --in-vm ]]; then
  # ---- inside the VM (PID 1's child, cwd = repo root) ----
  shift
  bins=() extra=()
  while (($#)); do
    if [[ "$1" == -- ]]; then shift; extra=("$@"); break; fi
    bins+=("$1"); shift
  done
  [[ "$(stat -f -c %T /sys/fs/cgroup)" == cgroup2fs ]] || { log "not on cgroup v2"; exit 125; }
  export TENT_CGROUP_V2=1
  [[ -n "${TENT_IT_ROOT:-}" ]] && mkdir -p "$TENT_IT_ROOT"
  read -r -a filters <<<"${TENT_V2_FILTER:-}"
  status=0 summary=()
  for b in "${bins[@]}"; do
    log "==> $b ${filters[*]} --test-threads=${TENT_V2_TEST_THREADS:-2} ${extra[*]}"
    t=$SECONDS rc=0
    "$b" "${filters[@]}" --test-threads="${TENT_V2_TEST_THREADS:-2}" "${extra[@]}" || rc=$?
    summary+=("$(printf '%-6s %5ss  %s' "$([[ $rc == 0 ]] && echo ok || echo "FAIL($rc)")" "$((SECONDS - t))" "$b")")
    [[ $rc == 0 ]] || status=1
  done
  log "summary (cgroup v2 VM, kernel $(uname -r)):"
  printf '  %s\n' "${summary[@]}" >&2
  exit "$status"
fi

# ---- on the host ----
timeout_s="${TENT_V2_TIMEOUT:-1800}"
if [[ "${1:-}" == --timeout ]]; then timeout_s="${2:?--timeout needs SECS}"; shift 2; fi
args=() n=0
while (($#)); do
  if [[ "$1" == -- ]]; then args+=("$@"); break; fi
  [[ -f "$1" && -x "$1" ]] || { log "ERROR: '$1' is not an executable file (build the tests on the host first)"; exit 125; }
  args+=("$(realpath "$1")"); n=$((n + 1)); shift
done
# build_set CRATE NAMES...: builds the named test targets of CRATE, appends them to v2_bins.
build_set() {
  local crate="$1" built targs=() got
  shift
  (($#)) || return 0
  for t in "$@"; do targs+=(--test "$t"); done
  log "building the v2 set of $crate on the host: $*"
  built="$(cd "$REPO" && cargo test -p "$crate" "${targs[@]}" --no-run --message-format=json \
    | jq -r 'select(.profile.test and .executable != null) | .executable')" \
    || { log "ERROR: cargo test -p $crate --no-run failed"; exit 125; }
  mapfile -t got <<<"$built"
  [[ "${#got[@]}" == "$#" && -n "${got[0]}" ]] \
    || { log "ERROR: expected $# test binaries of $crate, cargo gave: ${got[*]}"; exit 125; }
  v2_bins+=("${got[@]}")
}
if ((n == 0)); then
  read -r -a rt_names <<<"${TENT_V2_RUNTIME_TESTS-run lifecycle ops escapes devices_v2 seccomp pods}"
  read -r -a names <<<"${TENT_V2_TESTS:-cgroups cgroupv2 resources pause update metrics oom cleanup exec profile cri_pod}"
  v2_bins=()
  build_set tent-runtime "${rt_names[@]}"
  build_set tent-integration "${names[@]}"
  args=("${v2_bins[@]}" "${args[@]}"); n=${#v2_bins[@]}
fi
log "running $n test binar$( ((n == 1)) && echo y || echo ies) in the cgroup v2 VM (filter: '${TENT_V2_FILTER:-}')"
exec "$REPO/hack/vm-cgroupv2.sh" --timeout "$timeout_s" --env TENT_CGROUP_V2=1 -- \
  "$REPO/hack/vm/run-v2-tests.sh" --in-vm "${args[@]}"
