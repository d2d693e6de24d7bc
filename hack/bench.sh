#!/usr/bin/env bash
# tent's benchmark: tent (io.containerd.tent.v1) vs runc (io.containerd.runc.v2) on ONE private
# containerd, interleaved A B A B after a warm-up. One command, not a timed test.
#
#   hack/bench.sh [--quick] [--runs N] [--containers N] [options]
#
#   1. `ctr run --rm IMAGE ID /bin/true` end to end             (--runs, default 30); tent also
#      with `[audit] summary = false` in the same loop (row 1b: the summary's cost at start)
#   2. `ctr task exec /bin/true` into a running container        (--runs)
#   3. shim RSS/PSS (smaps_rollup) with N `sleep 3600` containers (--containers, default 50)
#   4. pods through the CRI (tent-cri bench, a Rust CRI client): pod start (RunPodSandbox +
#      CreateContainer + StartContainer) and teardown (StopPodSandbox + RemovePodSandbox),
#      handlers tent-pauseless (no pause process), tent (with pause) and runc interleaved
#      (--runs); shim + pause RSS/PSS per pod with N pods running (--pods, default 20).
#      Row 4 always runs on a private containerd 2.1, all three handlers on that one daemon:
#      tent-pauseless needs 2.x (`sandboxer = "shim"`), and the three columns are only
#      comparable when one daemon serves them interleaved. With --containerd 2.1 it is the
#      daemon of the other rows; otherwise a second private 2.1 daemon is started beside it
#      (idle during rows 1-3) and stopped at the end. The results say which version row 4 ran.
#   5. throughput: N containers `run --rm` P at a time, wall time (--tput N, --parallel P,
#      --rounds R; default 50, 8, 3)
#   6. the floor, no containerd: tent's runtime CLI vs `runc run` on the same bundle (--runs)
#   crun is probed and reported "skipped (why)" when it does not work on this host.
#
# Options:
#   --quick               smoke check: 5 runs, 1 warm-up, 10 containers, 10 × 1 round throughput
#   --runs N              samples per runtime for 1, 2, 6 (default 30)
#   --warmup N            warm-up runs per runtime (default 3)
#   --containers N        long-running containers for the memory figure (default 50)
#   --pods N              running pods for row 4's memory figure (default 20)
#   --tput N  --parallel P  --rounds R   throughput figure (default 50, 8, 3)
#   --only LIST           subset of run,exec,mem,pod,tput,floor (default all)
#   --containerd VER      1.6 | 1.7 | 2.1 (default 1.6: Debian's; see hack/containerd.sh)
#   --no-build            do not run cargo build (use target/release as it is)
#   --tent-profile P      tent's profile for every tent container: tent (the default rules:
#                         default seccomp filter, no_new_privileges, nosuid,nodev rootfs) or
#                         compat (the spec as runc runs it: the same work as runc)
#   --tent-cli 'CMD'      tent's runtime-only CLI for the floor; {bundle} and {id} are replaced
#                         (default: the bin target of crate tent-runtime: '<bin> {bundle} {id}')
#   --phases N            afterwards, N more runs of each runtime traced with perf (exec/exit
#                         tracepoints + containerd events): per-phase medians appended to the
#                         report (hack/bench/phases.py; needs `perf`)
#   --debug               containerd log level debug (for profiling; slows containerd a bit);
#                         row 4 then gets a per-phase table (hack/bench/pod_phases.py)
#   --keep                leave the daemon running at the end (prints how to stop it)
#   --out DIR             results directory (default: bench-results/ for a full run,
#                         .cache/bench/ for a quick or custom one)
# Output: OUT/latest.{md,png,json} and OUT/<UTC timestamp>.{md,json}. Only a full run (default
# --runs, --warmup, --containers, --tput, --parallel, --rounds and --only) writes to the
# tracked bench-results/ by default; --quick and custom runs go to .cache/bench/ (gitignored),
# so a smoke run leaves the tree clean. Record a custom run with --out bench-results.
# Needs root, cargo, Debian python3 (+ python3-matplotlib, apt-installed if missing), runc,
# containerd (hack/containerd.sh installs it), busybox-static, umoci (for the image).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=/usr/bin/python3   # Debian's, so python3-matplotlib from apt is importable (not pyenv's)
RUNS=30 WARMUP=3 CONTAINERS=50 PODS=20 TPUT=50 PARALLEL=8 ROUNDS=3 ONLY=run,exec,mem,pod,tput,floor
CTD_VER=1.6 BUILD=1 TENT_CLI="" TENT_PROFILE_NAME=tent DEBUG=0 KEEP=0 PHASES=0 OUT="" MODE=full
ARGS_ORIG="$*"
log() { echo "bench.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_int() { [[ "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]] || die "$1 needs a positive integer, got '$2'"; }

while (($#)); do
  case "$1" in
    --quick) MODE=quick RUNS=5 WARMUP=1 CONTAINERS=10 PODS=5 TPUT=10 ROUNDS=1; shift ;;
    --runs) need_int "$1" "${2:-}"; RUNS="$2"; shift 2 ;;
    --warmup) [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--warmup needs an integer"; WARMUP="$2"; shift 2 ;;
    --containers) need_int "$1" "${2:-}"; CONTAINERS="$2"; shift 2 ;;
    --pods) need_int "$1" "${2:-}"; PODS="$2"; shift 2 ;;
    --tput) need_int "$1" "${2:-}"; TPUT="$2"; shift 2 ;;
    --parallel) need_int "$1" "${2:-}"; PARALLEL="$2"; shift 2 ;;
    --rounds) need_int "$1" "${2:-}"; ROUNDS="$2"; shift 2 ;;
    --only) ONLY="${2:?--only needs a list}"; shift 2 ;;
    --containerd) CTD_VER="${2:?--containerd needs 1.6, 1.7 or 2.1}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --tent-cli) TENT_CLI="${2:?--tent-cli needs a command}"; shift 2 ;;
    --tent-profile)
      case "${2:-}" in tent|compat) TENT_PROFILE_NAME="$2" ;; *) die "--tent-profile needs tent or compat" ;; esac
      shift 2 ;;
    --phases) [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--phases needs an integer"; PHASES="$2"; shift 2 ;;
    --debug) DEBUG=1; shift ;;
    --keep) KEEP=1; shift ;;
    --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see $0 --help)" ;;
  esac
done
if [[ "$MODE" != quick ]] && [[ "$RUNS $WARMUP $CONTAINERS $PODS $TPUT $PARALLEL $ROUNDS $ONLY $TENT_PROFILE_NAME" != "30 3 50 20 50 8 3 run,exec,mem,pod,tput,floor tent" ]]; then
  MODE=custom
fi
if [[ "$TENT_PROFILE_NAME" == compat ]]; then
  # ctr passes the path as runtimeoptions.v1.Options (the shim reads the profile from it);
  # the floor CLI takes the profile from TENT_PROFILE.
  export TENT_BENCH_CTR_FLAGS="--runtime-config-path=$REPO/config/tent-compat.toml"
  export TENT_PROFILE=compat
  CRI_HANDLER=tent-compat
else
  CRI_HANDLER=tent
fi
if [[ -z "$OUT" ]]; then
  if [[ "$MODE" == full ]]; then
    OUT="$REPO/bench-results"
  else
    OUT="$REPO/.cache/bench"
    log "$MODE run: results go to $OUT (bench-results/ is only for full runs; --out bench-results to record this one)"
  fi
fi

# ---- prerequisites -----------------------------------------------------------------------
[[ "$(id -u)" == 0 ]] || die "must run as root (containers, cgroups, mounts)"
[[ -x "$PY" ]] || die "$PY missing (apt-get install python3)"
for t in runc timeout setsid; do command -v "$t" >/dev/null || die "'$t' missing: run hack/install-deps.sh"; done
[[ -x "$REPO/hack/containerd.sh" ]] || die "hack/containerd.sh missing (it starts the private containerd)"
[[ -x /bin/busybox ]] || die "/bin/busybox missing: apt-get install busybox-static"
if ! "$PY" -c 'import matplotlib' 2>/dev/null; then
  log "installing python3-matplotlib (Debian) for the chart"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-matplotlib >&2 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-matplotlib >&2; } \
    || log "WARNING: python3-matplotlib could not be installed: no PNG chart"
fi

cd "$REPO"
SHIM_BIN="$REPO/target/x86_64-unknown-linux-gnu/release/containerd-shim-tent-v1"
if ((BUILD)); then
  command -v cargo >/dev/null || die "cargo missing (Rust toolchain)"
  log "hack/build-shim.sh (static release shim)"
  "$REPO/hack/build-shim.sh" >/dev/null || die "hack/build-shim.sh failed (tent shim does not build; fix it or use --no-build with an existing binary)"
fi
[[ -x "$SHIM_BIN" ]] || die "$SHIM_BIN missing: run hack/build-shim.sh (or drop --no-build)"
CRI_BIN="$REPO/target/release/tent-cri"
if [[ ",$ONLY," == *,pod,* ]] && ((BUILD)); then
  log "cargo build --release -p tent-integration --bin tent-cri (the CRI client of row 4)"
  cargo build --quiet --release -p tent-integration --bin tent-cri >&2 || die "building tent-cri failed"
fi

# tent's runtime-only CLI (floor): the bin target of crate tent-runtime, unless --tent-cli.
TENT_CLI_MISSING=""
if [[ -z "$TENT_CLI" ]]; then
  RT_BINS="$(cargo metadata --no-deps --format-version 1 2>/dev/null | "$PY" -c '
import json, sys
m = json.load(sys.stdin)
for p in m["packages"]:
    if p["name"] == "tent-runtime":
        for t in p["targets"]:
            if "bin" in t["kind"]:
                print(t["name"])' || true)"
  RT_BIN="$(echo "$RT_BINS" | head -n1)"
  if [[ -n "$RT_BIN" ]]; then
    # Built static with the shim by hack/build-shim.sh (above), like the shim it stands for.
    RT_PATH="$(dirname "$SHIM_BIN")/$RT_BIN"
    if [[ -x "$RT_PATH" ]]; then
      TENT_CLI="$RT_PATH {bundle} {id}"
    else
      TENT_CLI_MISSING="tent runtime CLI $RT_PATH not built (run hack/build-shim.sh)"
    fi
  else
    TENT_CLI_MISSING="tent runtime CLI not written yet (no bin target in crate tent-runtime)"
  fi
fi
[[ -n "$TENT_CLI_MISSING" ]] && log "floor: $TENT_CLI_MISSING; tent's floor is reported as missing"

IMAGE_TAR="${TENT_IMAGE:-$REPO/.cache/images/tent-test.tar}"
if [[ ! -f "$IMAGE_TAR" ]]; then
  log "test image missing: hack/build-image.sh"
  "$REPO/hack/build-image.sh" >/dev/null || die "hack/build-image.sh failed"
fi

# ---- work dir, pinned binaries, daemon, cleanup ------------------------------------------
WORK="$(mktemp -d /tmp/tent-bench.XXXXXX)"
CTD="$WORK/ctd"
POD_CTD=""   # row 4's containerd 2.1 daemon (= CTD with --containerd 2.1)
FLOOR="$WORK/floor"
cleanup() {
  local rc=$?
  set +e
  if ((KEEP)) && [[ -d "$CTD" ]]; then
    log "--keep: daemon left running: source $CTD/env; stop with: hack/containerd.sh down $CTD && rm -rf $WORK"
    [[ -n "$POD_CTD" && "$POD_CTD" != "$CTD" ]] && log "--keep: row 4's 2.1 daemon too: hack/containerd.sh down $POD_CTD"
    return $rc
  fi
  if [[ -d "$FLOOR/runc-root" ]]; then
    for id in $(runc --root "$FLOOR/runc-root" list -q 2>/dev/null); do
      runc --root "$FLOOR/runc-root" delete -f "$id" >/dev/null 2>&1
    done
  fi
  [[ -f "$CTD/config.toml" ]] && "$REPO/hack/containerd.sh" down "$CTD" >/dev/null 2>&1
  [[ -n "$POD_CTD" && "$POD_CTD" != "$CTD" && -f "$POD_CTD/config.toml" ]] \
    && "$REPO/hack/containerd.sh" down "$POD_CTD" >/dev/null 2>&1
  # Anything still mounted under WORK (e.g. a floor rootfs), deepest first.
  awk -v d="$WORK/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  rm -rf --one-file-system "$WORK"
  return $rc
}
trap cleanup EXIT
# Python drivers run in the background + wait, so a signal to this script is handled at once:
# it is passed on (the driver removes its containers), then the EXIT trap tears down the rest.
CHILD=""
run_child() {
  local rc=0
  "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}
on_signal() {
  log "interrupted: cleaning up"
  if [[ -n "$CHILD" ]]; then
    kill -TERM "$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
  exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# Pin the shim for the whole run: other engineers rebuild target/release concurrently.
mkdir -p "$WORK/shim"
if [[ -x "$CRI_BIN" ]]; then cp "$CRI_BIN" "$WORK/tent-cri"; CRI_BIN="$WORK/tent-cri"; fi
cp "$SHIM_BIN" "$WORK/shim/containerd-shim-tent-v1"
if [[ -n "$TENT_CLI" ]]; then
  first="${TENT_CLI%% *}"
  if [[ -x "$first" && "$first" == "$REPO"/target/* ]]; then
    cp "$first" "$WORK/shim/$(basename "$first")"
    TENT_CLI="$WORK/shim/$(basename "$first")${TENT_CLI#"$first"}"
  fi
fi

log "starting private containerd $CTD_VER in $CTD"
((DEBUG)) && export TENT_CONTAINERD_LOG_LEVEL=debug
TENT_SHIM_DIR="$WORK/shim" TENT_IMAGE="$IMAGE_TAR" "$REPO/hack/containerd.sh" up "$CTD_VER" "$CTD" >"$WORK/ctd-up.out" 2>"$WORK/ctd-up.err" \
  || { cat "$WORK/ctd-up.err" >&2; die "hack/containerd.sh up $CTD_VER $CTD failed"; }
# shellcheck disable=SC1091
source "$CTD/env"
# shellcheck disable=SC2153 # TENT_CTR comes from $CTD/env
"$TENT_CTR" --address "$CONTAINERD_ADDRESS" images ls -q | grep -qx docker.io/library/tent-test:latest \
  || die "image docker.io/library/tent-test:latest not in the daemon (import of $IMAGE_TAR failed?)"
POD_VER="" POD_ERROR=""
if [[ ",$ONLY," == *,pod,* ]]; then
  if [[ "$CTD_VER" == 2.* ]]; then
    POD_CTD="$CTD" POD_VER="$CTD_VER"
  else
    POD_CTD="$WORK/ctd-pod" POD_VER=2.1
    log "row 4: starting a second private containerd 2.1 in $POD_CTD (tent-pauseless needs 2.x)"
    TENT_SHIM_DIR="$WORK/shim" TENT_IMAGE="$IMAGE_TAR" "$REPO/hack/containerd.sh" up 2.1 "$POD_CTD" \
      >"$WORK/ctd-pod-up.out" 2>"$WORK/ctd-pod-up.err" || {
      POD_ERROR="containerd 2.1 for row 4 did not start (hack/install-containerd.sh 2.1?): $(tail -n 3 "$WORK/ctd-pod-up.err" | tr '\n' ' ')"
      log "WARNING: $POD_ERROR"
    }
  fi
fi

# The floor bundle: `runc spec` config (terminal off, /bin/true) + busybox-static rootfs.
mkdir -p "$FLOOR/bundle/rootfs"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$FLOOR/bundle/rootfs/bin/busybox"
for a in true sh sleep; do ln -s busybox "$FLOOR/bundle/rootfs/bin/$a"; done
runc spec --bundle "$FLOOR/bundle"
"$PY" - "$FLOOR/bundle/config.json" <<'PYEOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["readonly"] = True
# `runc spec` lists ambient caps without inheritable ones; runc ignores the failing raise, tent
# refuses it. containerd's CRI never sets ambient caps (its default set, 14 capabilities, is
# bounding/permitted/effective only), so the floor bundle has none.
c["process"]["capabilities"].pop("ambient", None)
json.dump(c, open(p, "w"), indent=1)
PYEOF

# Row 1b: tent's profile with the audit summary at Create off (the same rules otherwise).
NOSUMMARY="$WORK/tent-nosummary.toml"
printf 'mode = "%s"\n\n[audit]\nsummary = false\n' "$TENT_PROFILE_NAME" >"$NOSUMMARY"

# ---- metadata, run, report ---------------------------------------------------------------
meta_json() {
  BM_CORES="$(nproc)" BM_CPU="$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" \
  BM_MEM="$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" \
  BM_KERNEL="$(uname -r)" \
  BM_CGROUPS="$(if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then echo "v2 unified"; elif mountpoint -q /sys/fs/cgroup/unified; then echo "v1 + controller-less v2 (hybrid)"; else echo v1; fi)" \
  BM_CONTAINERD="$("$TENT_CONTAINERD_BIN/containerd" --version | awk '{ print $3 }')" \
  BM_POD_CONTAINERD="$(if [[ -n "$POD_CTD" && -z "$POD_ERROR" ]]; then (source "$POD_CTD/env"; "$TENT_CONTAINERD_BIN/containerd" --version | awk '{ print $3 }'); fi)" \
  BM_COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo '+uncommitted changes')" \
  BM_SHIM_SIZE="$(stat -c %s "$WORK/shim/containerd-shim-tent-v1" | awk '{ printf "%.2f MiB", $1 / 1048576 }')" \
  BM_SHIM_SHA="$(sha256sum "$WORK/shim/containerd-shim-tent-v1" | cut -c1-64)" \
  BM_SHIM_MTIME="$(date -u -r "$SHIM_BIN" +%Y-%m-%dT%H:%M:%SZ)" \
  BM_RUNC="$(runc --version | head -n1)" \
  BM_RUNC_SHIM_SIZE="$(stat -c %s "$(PATH="$TENT_CONTAINERD_BIN:$PATH" command -v containerd-shim-runc-v2)" | awk '{ printf "%.2f MiB", $1 / 1048576 }')" \
  BM_MODE="$MODE" BM_COMMAND="hack/bench.sh $ARGS_ORIG" BM_TENT_CLI="$TENT_CLI" BM_TENT_PROFILE="$TENT_PROFILE_NAME" \
  "$PY" -c 'import json, os; print(json.dumps({k[3:].lower(): v for k, v in os.environ.items() if k.startswith("BM_")}))'
}
META="$(meta_json)"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
RESULT="$WORK/result.json"
log "benchmarking ($MODE: runs=$RUNS warmup=$WARMUP containers=$CONTAINERS pods=$PODS throughput=${TPUT}x${PARALLEL}x$ROUNDS only=$ONLY)"
run_child "$PY" "$REPO/hack/bench/bench.py" --address "$CONTAINERD_ADDRESS" --ctr "$TENT_CTR" \
  --runs "$RUNS" --warmup "$WARMUP" --containers "$CONTAINERS" --tput-total "$TPUT" \
  --tput-parallel "$PARALLEL" --tput-rounds "$ROUNDS" --only "$ONLY" --floor-dir "$FLOOR" \
  --cri-bin "$CRI_BIN" --ctd-dir "${POD_CTD:-$CTD}" --pod-containerd "$POD_VER" --pod-error "$POD_ERROR" \
  --tent-handler "$CRI_HANDLER" --pods "$PODS" \
  --tent-cli "$TENT_CLI" --tent-cli-missing "$TENT_CLI_MISSING" --meta "$META" --out "$RESULT" \
  --tent-nosummary-config "$NOSUMMARY" \
  || die "bench.py failed (partial results, if any: $RESULT)"

if ((PHASES)); then
  if command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
    log "phases: $PHASES traced runs per runtime (perf sched tracepoints)"
    run_child "$PY" "$REPO/hack/bench/phases.py" --address "$CONTAINERD_ADDRESS" --ctr "$TENT_CTR" \
      --runs "$PHASES" --trace --trace-out "$WORK/phases.perf.data" >"$WORK/phases.txt" 2>"$WORK/phases.err" \
      || { cat "$WORK/phases.err" >&2; log "WARNING: phases.py failed"; }
  else
    log "WARNING: --phases needs a working perf (apt-get install linux-perf); skipped"
  fi
fi
# Row 4 per phase, from the 2.x daemon's debug log (before the EXIT trap removes it).
if ((DEBUG)) && [[ ",$ONLY," == *,pod,* && -n "$POD_CTD" && -f "$POD_CTD/containerd.log" ]]; then
  "$PY" "$REPO/hack/bench/pod_phases.py" "$POD_CTD/containerd.log" >"$WORK/pod-phases.md" 2>&1 \
    || log "WARNING: pod_phases.py failed"
fi
cp "$RESULT" "$OUT/$STAMP.json"
cp "$RESULT" "$OUT/latest.json"
"$PY" "$REPO/hack/bench/report.py" "$RESULT" --md "$OUT/$STAMP.md" --png "$OUT/latest.png" \
  || log "WARNING: report incomplete (see above)"
if [[ -s "$WORK/phases.txt" ]]; then
  { echo; echo "## Where the time goes (one \`ctr run --rm /bin/true\`, perf exec/exit tracepoints + containerd events)"
    echo; echo '```'; cat "$WORK/phases.txt"; echo '```'; } >>"$OUT/$STAMP.md"
fi
if [[ -s "$WORK/pod-phases.md" ]]; then
  { echo; echo "## Row 4: where a pod start goes (containerd debug log, hack/bench/pod_phases.py)"
    echo; echo "Phases between CRI log lines, so each holds containerd's work too: netns and cni are outside"
    echo "any runtime; sandbox is shim start + CreateSandbox/StartSandbox (pauseless) or the pause"
    echo "container (others); create is containerd alone; start is the task's create + start."
    echo; cat "$WORK/pod-phases.md"; } >>"$OUT/$STAMP.md"
fi
cp "$OUT/$STAMP.md" "$OUT/latest.md"
log "wrote $OUT/latest.md, $OUT/latest.png, $OUT/$STAMP.md ($OUT/$STAMP.json: raw samples)"
