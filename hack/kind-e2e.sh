#!/usr/bin/env bash
# End-to-end on a kind cluster: a Kubernetes pod with runtimeClassName: tent.
#
#   hack/kind-e2e.sh        (env: TENT_KIND_CLUSTER=tent-e2e, KEEP_CLUSTER=1 to keep it)
#
# Needs a Docker engine, kind and kubectl; prints SKIP and exits 0 when they are missing (as on
# the project's dev/CI machines, which have no Docker engine).
# Steps: build the shim statically (no glibc mismatch with the node image) and the test image;
# create a cluster; copy the shim into the node as /usr/local/bin/containerd-shim-tent-v1;
# add runtime `tent` (runtime_type io.containerd.tent.v1) to the node's containerd config
# (config version 2 or 3, detected) and restart containerd; load the test image; create
# RuntimeClass `tent`; run a pod with it; check its logs; delete the cluster.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
CLUSTER="${TENT_KIND_CLUSTER:-tent-e2e}"
TRIPLE=x86_64-unknown-linux-gnu
log() { echo "kind-e2e: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "SKIP: kind e2e needs a Docker engine and kind (docker info failed: no Docker engine here)"
  exit 0
fi
for t in kind kubectl; do
  command -v "$t" >/dev/null 2>&1 || { echo "SKIP: kind e2e needs a Docker engine and kind ($t not installed)"; exit 0; }
done

log "building the shim (static) and the test image"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p tent-shim --target "$TRIPLE"
SHIM="$REPO/target/$TRIPLE/release/containerd-shim-tent-v1"
[[ -x "$SHIM" ]] || die "no $SHIM"
bash hack/build-image.sh --out "$REPO/.cache/images/tent-kind.tar" >/dev/null

cleanup() {
  if [[ "${KEEP_CLUSTER:-0}" == 1 ]]; then log "keeping cluster $CLUSTER"; return; fi
  kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
}
trap cleanup EXIT

kind get clusters 2>/dev/null | grep -qx "$CLUSTER" && kind delete cluster --name "$CLUSTER"
log "creating kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --wait 180s
NODE="$CLUSTER-control-plane"
KCTX="kind-$CLUSTER"
k() { kubectl --context "$KCTX" "$@"; }

log "installing the shim into $NODE"
docker cp "$SHIM" "$NODE:/usr/local/bin/containerd-shim-tent-v1"
docker exec "$NODE" chmod 0755 /usr/local/bin/containerd-shim-tent-v1
docker exec "$NODE" containerd --version

log "configuring runtime tent in the node's containerd"
docker exec -i "$NODE" bash -euo pipefail <<'NODE_SCRIPT'
cfg=/etc/containerd/config.toml
if grep -q 'runtimes.tent\]' "$cfg"; then exit 0; fi
if grep -Eq '^version *= *3' "$cfg"; then
  sect='plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tent'
else
  sect='plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tent'
fi
printf '\n[%s]\n  runtime_type = "io.containerd.tent.v1"\n' "$sect" >>"$cfg"
systemctl restart containerd
for i in $(seq 1 60); do ctr version >/dev/null 2>&1 && exit 0; sleep 1; done
echo "containerd did not come back" >&2; exit 1
NODE_SCRIPT

log "loading the test image"
kind load image-archive --name "$CLUSTER" .cache/images/tent-kind.tar

k wait --for=condition=Ready node --all --timeout=180s
log "creating RuntimeClass tent and a pod"
k apply -f - <<'YAML'
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: tent
handler: tent
---
apiVersion: v1
kind: Pod
metadata:
  name: tent-e2e
spec:
  runtimeClassName: tent
  restartPolicy: Never
  containers:
  - name: hello
    image: docker.io/library/tent-test:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo hello from a tent pod; id -u"]
YAML

if ! k wait --for=jsonpath='{.status.phase}'=Succeeded pod/tent-e2e --timeout=120s; then
  k describe pod tent-e2e || true
  docker exec "$NODE" journalctl -u containerd --no-pager -n 50 || true
  die "pod tent-e2e did not succeed"
fi
logs="$(k logs tent-e2e)"
echo "$logs"
grep -qx 'hello from a tent pod' <<<"$logs" || die "unexpected pod logs: $logs"
# The pod's container really ran under tent: its shim is containerd-shim-tent-v1.
docker exec "$NODE" ctr -n k8s.io containers ls | grep -q 'io.containerd.tent.v1' \
  || die "no container with runtime io.containerd.tent.v1 in the node"
log "PASS: pod with runtimeClassName tent ran and logged as expected"
