#!/usr/bin/env bash
# Fuzz tent's parsers of untrusted input with cargo-fuzz (libFuzzer + ASan, nightly):
#
#   hack/fuzz.sh [--sanitizer address|none] [SECONDS] [TARGET...]
#                                          default ASan, 600 s per target, every target
#
# Targets (fuzz/fuzz_targets): spec (config.json → validation, profiles, confinement, seccomp,
# mounts, cgroup path, hooks state), sync (sync-channel messages), seccomp (the seccomp
# compiler, checking the filter the kernel would get), shim_options (the shim's start stdin:
# BootstrapParams, runtime-options Any, runc options).
# Each target starts from its seeds in fuzz/corpus/<target> and grows a scratch copy (the repo's
# seeds stay small); a crasher lands in fuzz/artifacts/<target>/ and fails the run: fix the bug,
# then keep the input in fuzz/regressions/<target>/ (replayed by ordinary `cargo test`).
# hack/test.sh runs this with `--sanitizer none` (4x the execs/s, a shorter build; the fuzzed
# code is safe Rust, what it finds there is a panic, an abort, a hang or an OOM) and 18 s per
# target; the long run keeps ASan for the unsafe code in the dependencies (protobuf's decoder).
# Each sanitizer builds into fuzz/target/<sanitizer>. Installs cargo-fuzz if missing.
# Prints per target: total execs, execs/s, coverage, corpus size.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SAN=address
if [[ "${1:-}" == --sanitizer ]]; then
  SAN="$2"
  shift 2
fi
[[ $SAN == address || $SAN == none ]] || { echo "fuzz.sh: --sanitizer address|none" >&2; exit 2; }
export CARGO_TARGET_DIR="$REPO/fuzz/target/$SAN"
SECS="${1:-600}"
shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(spec sync seccomp shim_options)
CARGO_FUZZ_VERSION=0.13.2

rustup toolchain list | grep '^nightly' >/dev/null ||
  { echo "fuzz.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

cd "$REPO/fuzz"
cargo +nightly fuzz build -O -s "$SAN" >&2   # every target
SCRATCH="$(mktemp -d /tmp/tent-fuzz.XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT
rc=0
echo "sanitizer: $SAN, $SECS s per target"
printf '%-14s %12s %10s %8s %8s %s\n' target execs execs/s cov corpus result
for t in "${TARGETS[@]}"; do
  mkdir -p "$SCRATCH/$t"
  log="$SCRATCH/$t.log"
  r=ok
  cargo +nightly fuzz run -O -s "$SAN" "$t" "$SCRATCH/$t" "corpus/$t" -- \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || { r="CRASH (see $REPO/fuzz/artifacts/$t/)"; rc=1; }
  runs="$(sed -nE 's/^Done ([0-9]+) runs in .*/\1/p' "$log" | tail -1)"
  speed="$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -1)"
  cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)"
  corpus="$(find "$SCRATCH/$t" -type f | wc -l)"
  printf '%-14s %12s %10s %8s %8s %s\n' "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" "$corpus" "$r"
  if [[ $r != ok ]]; then
    tail -n 40 "$log" >&2
  fi
done
exit "$rc"
