#!/usr/bin/env bash
# The "main job" demo: run a container with tent through a real (private) containerd.
#
#   hack/demo.sh            (containerd 1.6 by default; TENT_CONTAINERD=1.7|2.1 for another)
#
# Installs what is missing (Debian packages, the containerd version), builds tent
# (cargo build --release), builds the test image, starts a private containerd in a temp dir,
# then
#   1. a tent container through the Task API: `ctr run --runtime io.containerd.tent.v1 --rm
#      docker.io/library/tent-test:latest tent-demo echo hello from a tent`;
#   2. a tent pod through the CRI, as kubelet drives it (`tent-cri demo`, runtime handler
#      `tent`): RunPodSandbox, two containers sharing the pod's namespaces, an ExecSync, the
#      containers' CRI log files, teardown checked to leave nothing behind;
# prints what they print, and stops the daemon again (also on failure).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VER="${TENT_CONTAINERD:-1.6}"
say() { printf '\n==> %s\n' "$*"; }

say "installing dependencies"
bash hack/install-deps.sh
bash hack/install-containerd.sh "$VER" >/dev/null

say "building tent (hack/build-shim.sh: static release shim) and the CRI client tent-cri"
bash hack/build-shim.sh >/dev/null
cargo build --quiet --release -p tent-integration --bin tent-cri

say "building the test image"
bash hack/build-image.sh --out "$REPO/.cache/images/tent-demo.tar" >/dev/null

DIR="$(mktemp -d /tmp/tent-demo.XXXXXX)"
cleanup() { bash hack/containerd.sh down "$DIR" || true; }
trap cleanup EXIT

say "starting a private containerd $VER in $DIR"
TENT_IMAGE="$REPO/.cache/images/tent-demo.tar" bash hack/containerd.sh up "$VER" "$DIR" >/dev/null
# shellcheck disable=SC1091
. "$DIR/env"

say "ctr run --runtime io.containerd.tent.v1 --rm docker.io/library/tent-test:latest tent-demo echo hello from a tent"
set +e
out="$("$TENT_CTR" --address "$CONTAINERD_ADDRESS" run --runtime io.containerd.tent.v1 --rm \
  docker.io/library/tent-test:latest tent-demo echo hello from a tent 2>&1)"
rc=$?
set -e
printf '%s\n' "$out"
if [[ $rc != 0 ]]; then
  echo "demo: ctr run failed with exit code $rc; last lines of $DIR/containerd.log:" >&2
  tail -n 20 "$DIR/containerd.log" >&2 || true
  exit "$rc"
fi

say "a tent pod through the CRI (runtime handler tent; sandbox image docker.io/library/tent-test:pause)"
if ! "$REPO/target/release/tent-cri" demo "$DIR" tent; then
  echo "demo: the tent pod failed; last lines of $DIR/containerd.log:" >&2
  tail -n 20 "$DIR/containerd.log" >&2 || true
  exit 1
fi

say "done (containerd $VER, runtime io.containerd.tent.v1)"
