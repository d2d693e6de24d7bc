#!/usr/bin/env bash
# End-to-end on a kind cluster through the chart: tent installed by its own installer.
#
#   hack/kind-e2e.sh            build, cluster, helm install, pods on tent, tent-compat and tent-pauseless,
#                               helm uninstall, the node's config checked byte for byte
#   hack/kind-e2e.sh --check    only check this script (bash -n, shellcheck) and the tools
#
# Env: TENT_KIND_CLUSTER (default tent-e2e), KEEP_CLUSTER=1 keeps it, TENT_KIND_NODE_IMAGE
# (a kindest/node image; default kind's own).
# Needs a Docker engine, kind, kubectl and helm; prints "SKIP: ..." naming what is missing and
# exits 0 otherwise (the project's dev/CI machines have no Docker engine).
#
# Steps: build the static shim and CLI; an installer image FROM scratch from them, tent's
# profiles and this machine's (static) kubectl, the layout of the repository's Dockerfile,
# built without network; a kind cluster; the image and the test image
# (hack/build-image.sh: busybox applets, httpd included) loaded into it; `helm install` of
# charts/tent (its verification pod runs the node's pause image); wait for the node label runtime.tent.dev/ready=true; a Deployment (busybox
# httpd) on runtimeClassName tent behind a Service, requested from a pod on tent-compat;
# `kubectl logs`, `kubectl exec`, `kubectl top` where metrics-server answers; the container
# checked to run on io.containerd.tent.v1; delete; `helm uninstall`; the label gone, the
# node's /etc/containerd/config.toml byte-identical to before, /opt/tent gone, node Ready.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${TENT_KIND_CLUSTER:-tent-e2e}"
TRIPLE=x86_64-unknown-linux-gnu
LABEL=runtime.tent.dev/ready
PLABEL=runtime.tent.dev/pauseless
NS=tent-system
IMAGE=tent-installer:e2e
TEST_IMAGE=docker.io/library/tent-test:latest
log() { echo "kind-e2e: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

missing() { # prints what is missing to run, nothing when all is there
  local t
  for t in docker kind kubectl helm; do
    command -v "$t" >/dev/null 2>&1 || { echo "$t not installed"; return; }
  done
  docker info >/dev/null 2>&1 || echo "no Docker engine (docker info failed)"
}

if [[ "${1:-}" == --check ]]; then
  bash -n "$0" || die "bash -n failed"
  if command -v shellcheck >/dev/null 2>&1; then
    shellcheck "$0" || die "shellcheck failed"
    log "bash -n and shellcheck clean"
  else
    log "bash -n clean (shellcheck not installed)"
  fi
  m="$(missing)"
  log "tools: ${m:-all present}"
  exit 0
fi
[[ $# == 0 ]] || die "usage: $0 [--check]"

m="$(missing)"
if [[ -n "$m" ]]; then
  echo "SKIP: kind e2e needs a Docker engine, kind, kubectl and helm: $m"
  exit 0
fi

cd "$REPO"
log "building the shim and the CLI (static)"
SHIM_DIR="$(bash hack/build-shim.sh | tail -n1)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p tent-cli --target "$TRIPLE"
KUBECTL="$(command -v kubectl)"
if ldd "$KUBECTL" >/dev/null 2>&1; then
  die "$KUBECTL is dynamically linked: the FROM scratch image needs a static kubectl"
fi
bash hack/build-image.sh --out "$REPO/.cache/images/tent-kind.tar" >/dev/null

STAGE="$(mktemp -d)"
cleanup() {
  rm -rf "$STAGE"
  if [[ "${KEEP_CLUSTER:-0}" == 1 ]]; then log "keeping cluster $CLUSTER"; return; fi
  kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "building the installer image $IMAGE (the Dockerfile's layout, from local binaries)"
mkdir -p "$STAGE/bin/profiles"
cp "$SHIM_DIR/containerd-shim-tent-v1" "$REPO/target/$TRIPLE/release/tent" "$KUBECTL" "$STAGE/bin/"
cp config/tent.toml config/tent-compat.toml "$STAGE/bin/profiles/"
cat >"$STAGE/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY bin/ /bin/
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENTRYPOINT ["/bin/tent"]
DOCKERFILE
docker build -q -t "$IMAGE" "$STAGE" >/dev/null

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then kind delete cluster --name "$CLUSTER"; fi
log "creating kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --wait 180s ${TENT_KIND_NODE_IMAGE:+--image "$TENT_KIND_NODE_IMAGE"}
NODE="$CLUSTER-control-plane"
k() { kubectl --context "kind-$CLUSTER" "$@"; }
node_sum() { docker exec "$NODE" sha256sum /etc/containerd/config.toml | cut -d' ' -f1; }

kind load docker-image --name "$CLUSTER" "$IMAGE"
kind load image-archive --name "$CLUSTER" .cache/images/tent-kind.tar
BEFORE="$(node_sum)"
docker exec "$NODE" containerd --version

log "helm install charts/tent"
helm --kube-context "kind-$CLUSTER" install tent charts/tent --namespace "$NS" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE#*:}" --set image.pullPolicy=Never \
  --wait --timeout 5m
if ! k wait --for=jsonpath="{.metadata.labels.${LABEL//./\\.}}"=true "node/$NODE" --timeout=300s; then
  k -n "$NS" logs ds/tent --tail=100 || true
  die "node $NODE was not labelled $LABEL=true"
fi
k -n "$NS" logs ds/tent | sed 's/^/  installer: /'
k -n "$NS" exec ds/tent -- /bin/tent doctor --host-root /host --host-ns

log "a Deployment on tent, a client on tent-compat"
k apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      runtimeClassName: tent
      containers:
      - name: httpd
        image: $TEST_IMAGE
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /tmp/www && echo hello from a tent > /tmp/www/index.html && echo serving && exec httpd -f -p 8080 -h /tmp/www"]
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
YAML
if ! k rollout status deploy/web --timeout=180s; then
  k describe pods -l app=web || true
  die "deployment web on tent did not become available"
fi
POD="$(k get pods -l app=web -o jsonpath='{.items[0].metadata.name}')"
[[ "$(k get pod "$POD" -o jsonpath='{.spec.runtimeClassName}')" == tent ]] || die "$POD is not on RuntimeClass tent"
k logs "$POD" | grep -qx serving || die "kubectl logs $POD: no 'serving'"
[[ "$(k exec "$POD" -- cat /tmp/www/index.html)" == "hello from a tent" ]] || die "kubectl exec into $POD failed"
CID="$(k get pod "$POD" -o jsonpath='{.status.containerStatuses[0].containerID}')"
docker exec "$NODE" ctr -n k8s.io containers info "${CID#containerd://}" | grep -q '"io.containerd.tent.v1"' \
  || die "container ${CID} does not run on io.containerd.tent.v1"

k run client --image="$TEST_IMAGE" --image-pull-policy=Never --restart=Never \
  --overrides='{"spec":{"runtimeClassName":"tent-compat"}}' -- wget -q -T 10 -O - http://web/
if ! k wait --for=jsonpath='{.status.phase}'=Succeeded pod/client --timeout=120s; then
  k describe pod client || true
  die "client pod on tent-compat could not fetch http://web/"
fi
[[ "$(k logs client)" == "hello from a tent" ]] || die "the Service answered: $(k logs client)"

if k top pod "$POD" >/dev/null 2>&1; then
  k top pod "$POD"
else
  log "kubectl top: no metrics-server in this cluster (skipped)"
fi
k delete pod client --wait=true
k delete deploy/web svc/web --wait=true

# Pods without a pause process: kind's node runs containerd 2.x, where the installer registers
# tent-pauseless and labels the node; on a 1.x node image it says it skipped it.
if [[ "$(k get node "$NODE" -o jsonpath="{.metadata.labels.${PLABEL//./\\.}}")" == true ]]; then
  log "a pod on tent-pauseless (no pause container), and a hostNetwork one refused at admission"
  k run nopause --image="$TEST_IMAGE" --image-pull-policy=Never --restart=Never \
    --overrides='{"spec":{"runtimeClassName":"tent-pauseless"}}' -- sh -c 'hostname; sleep 3600'
  if ! k wait --for=condition=Ready pod/nopause --timeout=120s; then
    k describe pod nopause || true
    die "pod nopause on tent-pauseless did not become ready"
  fi
  [[ "$(k logs nopause)" == nopause ]] || die "pod nopause's hostname: $(k logs nopause)"
  SID="$(docker exec "$NODE" crictl pods --name nopause -q)"
  docker exec "$NODE" ctr -n k8s.io containers info "$SID" >/dev/null 2>&1 \
    && die "pod nopause has a sandbox (pause) container $SID"
  k delete pod nopause --wait=true
  if OUT="$(k run hostnet --image="$TEST_IMAGE" --image-pull-policy=Never --restart=Never \
      --overrides='{"spec":{"runtimeClassName":"tent-pauseless","hostNetwork":true}}' -- true 2>&1)"; then
    k delete pod hostnet --wait=false || true
    die "a hostNetwork pod on tent-pauseless was admitted"
  fi
  grep -q 'spec.hostNetwork' <<<"$OUT" || die "the refusal does not name spec.hostNetwork: $OUT"
else
  log "tent-pauseless: node not labelled $PLABEL (containerd 1.x node image?): skipped"
fi

log "helm uninstall"
helm --kube-context "kind-$CLUSTER" uninstall tent --namespace "$NS" --wait --timeout 5m
[[ -z "$(k get node "$NODE" -o jsonpath="{.metadata.labels.${LABEL//./\\.}}")" ]] || die "label $LABEL still on $NODE"
AFTER="$(node_sum)"
[[ "$BEFORE" == "$AFTER" ]] || die "/etc/containerd/config.toml differs after uninstall ($BEFORE -> $AFTER)"
if docker exec "$NODE" test -e /opt/tent; then die "/opt/tent left on $NODE"; fi
k wait --for=condition=Ready "node/$NODE" --timeout=120s
log "PASS: installed by the chart, pods on tent, tent-compat (and tent-pauseless where containerd is 2.x), uninstalled with the config restored"
