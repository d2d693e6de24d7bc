#!/usr/bin/env bash
# Build the shim as it ships: release profile, statically linked (glibc, static-pie).
# The runtime's own CLI (tent-runtime-run, used for the benchmark floor) is built
# the same way, so the floor measures the runtime code the shim runs.
#
#   hack/build-shim.sh        prints the directory holding containerd-shim-tent-v1
#                             (and tent-runtime-run)
#
# Static linking keeps every shim process (one per container or pod) from mapping
# libc/libm/libgcc_s/ld.so: about 1 MiB less RSS per shim (hack/bench.sh measures it).
# `--target` keeps RUSTFLAGS off the host build of proc-macros and build scripts.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRIPLE=x86_64-unknown-linux-gnu
cd "$REPO"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p tent-shim -p tent-runtime --bins \
  --target "$TRIPLE" >&2
echo "$REPO/target/$TRIPLE/release"
