#!/usr/bin/env bash
# The long soak (issue #11): integration/tests/soak.rs with the issue's full counts, one test
# at a time, each on its own private containerd. Not part of hack/test.sh (which runs the same
# tests with small counts in its integration step).
#
#   hack/soak.sh [--out FILE] [--containerd VER] [--no-build]
#
#   500 Task API cycles (create, start, exec, kill, delete), then 4 workers x 125 in parallel
#   100 CRI pod cycles (RunPodSandbox, container, ExecSync, Stop/Remove)
#   200 container cycles in one long-lived pod, its shim's VmRSS every 10 cycles
# Afterwards mounts, cgroup dirs, processes, containerd's fds, shim sockets and state dirs must
# be back where they started (the tests assert it).
#
# Counts can be overridden: TENT_SOAK_CYCLES, TENT_SOAK_PARALLEL, TENT_SOAK_PARALLEL_CYCLES,
# TENT_SOAK_POD_CYCLES, TENT_SOAK_RSS_CYCLES, TENT_SOAK_RSS_EVERY.
# Output: FILE (default bench-results/soak-<UTC date>.md) with the figures and the RSS curve,
# and FILE's name with -rss.csv for the curve. Progress goes to stderr.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TRIPLE=x86_64-unknown-linux-gnu
OUT="bench-results/soak-$(date -u +%Y%m%dT%H%M%SZ).md"
VER=1.6
BUILD=1
while (($#)); do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --containerd) VER="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

export TENT_SOAK_CYCLES="${TENT_SOAK_CYCLES:-500}"
export TENT_SOAK_PARALLEL="${TENT_SOAK_PARALLEL:-4}"
export TENT_SOAK_PARALLEL_CYCLES="${TENT_SOAK_PARALLEL_CYCLES:-125}"
export TENT_SOAK_POD_CYCLES="${TENT_SOAK_POD_CYCLES:-100}"
export TENT_SOAK_RSS_CYCLES="${TENT_SOAK_RSS_CYCLES:-200}"
export TENT_SOAK_RSS_EVERY="${TENT_SOAK_RSS_EVERY:-10}"
export TENT_CONTAINERD_VERSION="$VER"
export TENT_TEST_RUNTIME="${TENT_TEST_RUNTIME:-io.containerd.tent.v1}"

if ((BUILD)); then
  bash hack/build-shim.sh >/dev/null
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release -p tent-integration --bin tent-testbin --target "$TRIPLE"
  # The test image (shared cache) is built by hack/containerd.sh when missing.
  [[ -f .cache/images/tent-test.tar ]] ||
    bash hack/build-image.sh --add "target/$TRIPLE/release/tent-testbin:/bin/tent-testbin"
fi
cargo test -p tent-integration --test soak --no-run

mkdir -p "$(dirname "$OUT")"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
export TENT_SOAK_REPORT="$OUT"
export TENT_SOAK_CURVE="${OUT%.md}-rss.csv"
TENT_IT_ROOT="$(mktemp -d /tmp/tent-soak.XXXXXX)"
export TENT_IT_ROOT
cleanup() {
  local d
  for d in "$TENT_IT_ROOT"/*/; do
    [[ -f "$d/config.toml" ]] && bash hack/containerd.sh down "$d" >/dev/null 2>&1 || true
  done
  rm -rf "$TENT_IT_ROOT"
}
trap cleanup EXIT

{
  echo "# Soak $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "containerd $VER, runtime $TENT_TEST_RUNTIME, commit $(git rev-parse --short HEAD), host $(nproc) cores."
  echo "Counts: $TENT_SOAK_CYCLES cycles, $TENT_SOAK_PARALLEL x $TENT_SOAK_PARALLEL_CYCLES parallel," \
    "$TENT_SOAK_POD_CYCLES pods, $TENT_SOAK_RSS_CYCLES cycles in one pod (RSS every $TENT_SOAK_RSS_EVERY)."
  echo
} >"$OUT"
T0=$SECONDS
rc=0
cargo test -p tent-integration --test soak -- --test-threads 1 --nocapture || rc=$?
{
  echo
  echo "Total wall time: $((SECONDS - T0)) s; result: $([[ $rc == 0 ]] && echo pass || echo "FAIL (exit $rc)")."
} >>"$OUT"
echo "soak.sh: report in $OUT, RSS curve in $TENT_SOAK_CURVE" >&2
exit "$rc"
