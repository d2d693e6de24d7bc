#!/usr/bin/python3
"""tent benchmark driver (called by hack/bench.sh; needs a running private containerd).

Measures tent (io.containerd.tent.v1) against runc (io.containerd.runc.v2) on ONE containerd,
interleaved A B A B after a warm-up, and writes every sample to a JSON file that
hack/bench/report.py turns into Markdown + PNG. A runtime that fails is reported with its
error text, never with a number.
"""
import argparse
import concurrent.futures as cf
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

IMAGE = "docker.io/library/tent-test:latest"
RUNTIMES = [("tent", "io.containerd.tent.v1"), ("runc", "io.containerd.runc.v2")]
# Extra `ctr run` flags for tent (hack/bench.sh --tent-profile: the profile's config path).
TENT_CTR_FLAGS = os.environ.get("TENT_BENCH_CTR_FLAGS", "").split()


def runtime_args(typ):
    """`--runtime TYPE`, plus tent's profile flags for tent."""
    return ["--runtime", typ] + (TENT_CTR_FLAGS if typ == "io.containerd.tent.v1" else [])
SHIM_BIN = {"tent": "containerd-shim-tent-v1", "runc": "containerd-shim-runc-v2"}
PREFIX = "tb"  # every container id the benchmark creates starts with this


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Runner:
    def __init__(self, args):
        self.a = args
        self.ctr_base = [args.ctr, "--address", args.address, "--namespace", args.namespace]
        self.created = set()  # container ids to clean up at the end
        self.lock = threading.Lock()

    # ---- process helpers -------------------------------------------------------------
    def sh(self, argv, timeout=None):
        """Runs argv; returns (ok, seconds, tail of stderr/stdout)."""
        t0 = time.perf_counter()
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout or self.a.timeout)
        except subprocess.TimeoutExpired:
            return False, time.perf_counter() - t0, f"timed out after {timeout or self.a.timeout}s"
        dt = time.perf_counter() - t0
        msg = (p.stderr.decode(errors="replace") + p.stdout.decode(errors="replace")).strip()
        if p.returncode != 0:
            return False, dt, f"exit {p.returncode}: {msg[-400:]}"
        return True, dt, msg[-400:]

    def ctr(self, *args, timeout=None):
        return self.sh(self.ctr_base + list(args), timeout)

    def track(self, cid):
        with self.lock:
            self.created.add(cid)

    def remove(self, cid):
        """Kill + delete task and container; quiet, bounded."""
        self.ctr("tasks", "kill", "-s", "SIGKILL", cid, timeout=15)
        for _ in range(20):
            ok, _, msg = self.ctr("tasks", "delete", "-f", cid, timeout=15)
            if ok or "not found" in msg or "no such" in msg.lower():
                break
            time.sleep(0.2)
        self.ctr("containers", "delete", cid, timeout=30)
        with self.lock:
            self.created.discard(cid)

    def remove_all(self, ids, parallel=8):
        ids = list(ids)
        if not ids:
            return
        with cf.ThreadPoolExecutor(parallel) as ex:
            list(ex.map(self.remove, ids))

    def cleanup_everything(self):
        """Removes every container of ours still known to containerd (also after crashes)."""
        ok, _, out = self.ctr("containers", "ls", "-q", timeout=30)
        ids = set(self.created)
        if ok:
            ids |= {l.strip() for l in out.splitlines() if l.strip().startswith(PREFIX + "-")}
        if ids:
            log(f"cleaning up {len(ids)} container(s)")
            self.remove_all(ids)

    def task_pids(self):
        ok, _, out = self.ctr("tasks", "ls", timeout=30)
        pids = {}
        if ok:
            for line in out.splitlines()[1:]:
                f = line.split()
                if len(f) >= 3 and f[1].isdigit():
                    pids[f[0]] = int(f[1])
        return pids


# ---- statistics / system probes ----------------------------------------------------------
def summary(samples):
    if not samples:
        return None
    return {"n": len(samples), "median": statistics.median(samples), "min": min(samples),
            "max": max(samples), "mean": statistics.fmean(samples)}


def read_kv(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k.strip()] = v.strip()
    except OSError:
        pass
    return out


def kb(v):
    try:
        return int(v.split()[0])
    except (ValueError, IndexError, AttributeError):
        return None


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def find_shims(rt, address):
    """Shim processes of runtime rt serving this daemon (matched by cmdline)."""
    res = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        argv = cmdline(d)
        if not argv or not os.path.basename(argv[0]).startswith(SHIM_BIN[rt]):
            continue
        if address in " ".join(argv):
            res.append(int(d))
    return sorted(res)


def memfd_kb(pid):
    """Size of the memfds a process holds open (e.g. a sealed copy of its binary): memory
    that is in neither its RSS nor its PSS unless mapped."""
    seen, total = set(), 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:"):
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                if st.st_ino not in seen:
                    seen.add(st.st_ino)
                    total += st.st_size
        except OSError:
            pass
    return total // 1024


def shim_mem(pid):
    r = read_kv(f"/proc/{pid}/smaps_rollup")
    s = read_kv(f"/proc/{pid}/status")
    return {"pid": pid, "rss_kb": kb(r.get("Rss")), "pss_kb": kb(r.get("Pss")),
            "threads": int(s.get("Threads", "0") or 0), "vm_hwm_kb": kb(s.get("VmHWM")),
            "memfd_kb": memfd_kb(pid)}


def shmem_kb():
    return kb(read_kv("/proc/meminfo").get("Shmem"))


class LoadSampler(threading.Thread):
    """Samples load average and busy background processes (builds) once a second."""
    BUSY = ("rustc", "cargo", "cc1", "ld", "qemu-system-x86", "clippy-driver", "rust-lld")

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                load1 = float(open("/proc/loadavg").read().split()[0])
            except OSError:
                load1 = None
            busy = set()
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        comm = open(f"/proc/{d}/comm").read().strip()
                    except OSError:
                        continue
                    if comm in self.BUSY or comm.startswith("qemu-system"):
                        busy.add(comm)
            self.samples.append({"t": time.time(), "load1": load1, "busy": sorted(busy)})
            self.stop.wait(1.0)

    def report(self):
        n = len(self.samples)
        loads = [s["load1"] for s in self.samples if s["load1"] is not None]
        busy = [s for s in self.samples if s["busy"]]
        names = sorted({b for s in busy for b in s["busy"]})
        return {"samples": n, "load1_min": min(loads) if loads else None,
                "load1_max": max(loads) if loads else None,
                "busy_samples": len(busy), "busy_names": names}


# ---- benchmarks ----------------------------------------------------------------------------
def interleave(r, name, fn, runtimes, runs, warmup, max_fail=3):
    """Calls fn(rt, runtime_type, tag) alternately for each runtime: warmup, then runs.
    fn returns (ok, seconds, msg). A runtime failing all warm-ups or max_fail measured runs is
    dropped with its last error."""
    res = {rt: {"samples": [], "failures": 0, "error": None} for rt, _ in runtimes}
    active = list(runtimes)
    for i in range(warmup):
        for rt, typ in list(active):
            ok, dt, msg = fn(rt, typ, f"w{i}")
            if not ok:
                res[rt]["failures"] += 1
                res[rt]["error"] = msg
                if res[rt]["failures"] >= max(1, min(warmup, max_fail)):
                    log(f"{name}: {rt} failed during warm-up, dropped: {msg}")
                    active.remove((rt, typ))
            else:
                res[rt]["error"] = None
                res[rt]["failures"] = 0
    for i in range(runs):
        for rt, typ in list(active):
            ok, dt, msg = fn(rt, typ, str(i))
            if ok:
                res[rt]["samples"].append(dt)
            else:
                res[rt]["failures"] += 1
                res[rt]["error"] = msg
                log(f"{name}: {rt} run {i} failed: {msg}")
                if res[rt]["failures"] >= max_fail:
                    log(f"{name}: {rt} dropped after {max_fail} failures")
                    active.remove((rt, typ))
        if (i + 1) % 10 == 0:
            log(f"{name}: {i + 1}/{runs}")
    for rt in res:
        res[rt]["stats"] = summary(res[rt]["samples"])
    return res


def bench_run(r, runtimes):
    a = r.a
    # tent with `[audit] summary = false` (no walk of the rootfs at Create), interleaved with
    # the others: its difference from tent's default is the summary's cost to start latency.
    if a.tent_nosummary_config:
        runtimes = runtimes + [("tent-nosummary", "io.containerd.tent.v1")]

    def one(rt, typ, tag):
        cid = f"{PREFIX}-run-{rt}-{tag}"
        r.track(cid)
        args = runtime_args(typ)
        if rt == "tent-nosummary":
            args = ["--runtime", typ, f"--runtime-config-path={a.tent_nosummary_config}"]
        ok, dt, msg = r.ctr("run", "--rm", *args, IMAGE, cid, "/bin/true")
        if ok:
            with r.lock:
                r.created.discard(cid)
        else:
            r.remove(cid)
        return ok, dt, msg

    return interleave(r, "run --rm", one, runtimes, a.runs, a.warmup)


def not_implemented(msg):
    m = msg.lower()
    return "not implemented" in m or "unimplemented" in m


def bench_exec(r, runtimes):
    a = r.a
    out = {}
    live = []
    for rt, typ in runtimes:
        cid = f"{PREFIX}-exec-{rt}"
        r.track(cid)
        ok, dt, msg = r.ctr("run", "-d", *runtime_args(typ), IMAGE, cid, "sleep", "3600")
        if not ok:
            out[rt] = {"samples": [], "failures": 1, "stats": None,
                       "error": f"long-running container did not start: {msg}"}
            r.remove(cid)
            continue
        live.append((rt, typ))
    time.sleep(1.0)
    # Idle shim footprint: one shim with one sleeping container, before any exec.
    idle = {}
    for rt, _ in live:
        shims = find_shims(rt, a.address)
        idle[rt] = [shim_mem(p) for p in shims]

    def one(rt, typ, tag):
        cid = f"{PREFIX}-exec-{rt}"
        return r.ctr("tasks", "exec", "--exec-id", f"e{tag}", cid, "/bin/true")

    res = interleave(r, "exec", one, live, a.runs, a.warmup)
    for rt in res:
        err = res[rt]["error"]
        if not res[rt]["samples"] and err and not_implemented(err):
            res[rt]["not_implemented"] = True
    out.update(res)
    r.remove_all([f"{PREFIX}-exec-{rt}" for rt, _ in live])
    return out, idle


def bench_memory(r, runtimes):
    a = r.a
    out = {}
    for rt, typ in runtimes:
        ids = []
        err = None
        shmem0 = shmem_kb()
        t0 = time.perf_counter()
        for i in range(a.containers):
            cid = f"{PREFIX}-mem-{rt}-{i}"
            r.track(cid)
            ok, _, msg = r.ctr("run", "-d", *runtime_args(typ), IMAGE, cid, "sleep", "3600")
            if not ok:
                err = f"container {i} did not start: {msg}"
                r.remove(cid)
                break
            ids.append(cid)
        start_s = time.perf_counter() - t0
        if err:
            log(f"memory: {rt}: {err}")
            out[rt] = {"error": err}
            r.remove_all(ids)
            continue
        time.sleep(a.settle)
        shims = [shim_mem(p) for p in find_shims(rt, a.address)]
        shmem1 = shmem_kb()
        # Cross-check: the parent of each container init should be a shim we found.
        tp = r.task_pids()
        parents = set()
        for cid in ids:
            pid = tp.get(cid)
            if pid:
                pp = read_kv(f"/proc/{pid}/status").get("PPid")
                if pp:
                    parents.add(int(pp))
        found = {s["pid"] for s in shims}
        rss = [s["rss_kb"] for s in shims if s["rss_kb"] is not None]
        pss = [s["pss_kb"] for s in shims if s["pss_kb"] is not None]
        n = len(ids)
        out[rt] = {
            "containers": n, "shims": len(shims), "start_seconds": start_s,
            "rss_total_kb": sum(rss), "pss_total_kb": sum(pss),
            "rss_per_container_kb": sum(rss) / n if n else None,
            "pss_per_container_kb": sum(pss) / n if n else None,
            "rss_per_shim": summary(rss), "pss_per_shim": summary(pss),
            "threads_per_shim": summary([s["threads"] for s in shims]),
            "memfd_total_kb": sum(s["memfd_kb"] or 0 for s in shims),
            "shmem_delta_kb": (shmem1 - shmem0) if shmem0 is not None and shmem1 is not None else None,
            "init_parents_not_matched": len(parents - found),
            "error": None if shims else "no shim process found by cmdline",
        }
        log(f"memory: {rt}: {n} containers, {len(shims)} shims, RSS {sum(rss)/1024:.1f} MiB, "
            f"PSS {sum(pss)/1024:.1f} MiB total")
        t0 = time.perf_counter()
        r.remove_all(ids)
        out[rt]["cleanup_seconds"] = time.perf_counter() - t0
    return out


def bench_throughput(r, runtimes):
    a = r.a
    res = {rt: {"samples": [], "failures": 0, "error": None} for rt, _ in runtimes}
    active = list(runtimes)
    for rnd in range(a.tput_rounds):
        for rt, typ in list(active):
            ids = [f"{PREFIX}-tp-{rt}-{rnd}-{i}" for i in range(a.tput_total)]
            for cid in ids:
                r.track(cid)
            errs = []

            def one(cid):
                ok, _, msg = r.ctr("run", "--rm", *runtime_args(typ), IMAGE, cid, "/bin/true",
                                   timeout=max(a.timeout, 120))
                if ok:
                    with r.lock:
                        r.created.discard(cid)
                else:
                    errs.append(msg)
                return ok

            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(a.tput_parallel) as ex:
                list(ex.map(one, ids))
            dt = time.perf_counter() - t0
            if errs:
                # A round with a failed container is no throughput figure: keep going (the
                # failure rate matters too) but only clean rounds give numbers.
                res[rt]["failures"] += 1
                res[rt]["failed_containers"] = res[rt].get("failed_containers", 0) + len(errs)
                res[rt]["error"] = (f"{res[rt]['failed_containers']} of "
                                    f"{(rnd + 1) * len(ids)} containers failed so far: {errs[0]}")
                log(f"throughput: {rt} round {rnd}: {len(errs)}/{len(ids)} failed: {errs[0]}")
                r.cleanup_everything()
                if len(errs) == len(ids):
                    active.remove((rt, typ))
            else:
                res[rt]["samples"].append(dt)
                log(f"throughput: {rt} round {rnd}: {dt:.2f}s")
    for rt in res:
        res[rt]["stats"] = summary(res[rt]["samples"])
    return res


def floor_commands(a):
    """Per runtime: (name, argv builder) for the runtime alone on a bundle."""
    cmds = []
    if a.tent_cli:
        tmpl = a.tent_cli.split()
        cmds.append(("tent", lambda b, i: [x.replace("{bundle}", b).replace("{id}", i)
                                          for x in tmpl]))
    cmds.append(("runc", lambda b, i: ["runc", "--root", os.path.join(a.floor_dir, "runc-root"),
                                      "run", "--bundle", b, i]))
    return cmds


def bench_floor(r):
    a = r.a
    out = {"crun": None}
    bundles = {}
    for rt in ("tent", "runc", "crun"):
        b = os.path.join(a.floor_dir, f"bundle-{rt}")
        if not os.path.isdir(b):
            shutil.copytree(os.path.join(a.floor_dir, "bundle"), b, symlinks=True)
        bundles[rt] = b
    # crun: only if it works on this host (Debian's 1.8.1 refuses the hybrid cgroup layout).
    crun = shutil.which("crun")
    crun_root = os.path.join(a.floor_dir, "crun-root")
    if not crun:
        out["crun"] = "skipped (crun not installed)"
    else:
        ok, _, msg = r.sh([crun, "--root", crun_root, "run", "--bundle", bundles["crun"],
                           f"{PREFIX}-crun-probe"], timeout=30)
        if not ok:
            first = msg.split(": ", 1)[-1].splitlines()[0] if msg else "failed"
            out["crun"] = f"skipped ({crun} failed on this host: {first})"
        else:
            out["crun"] = "works"
    cmds = floor_commands(a)
    if out["crun"] == "works":
        cmds.append(("crun", lambda b, i: [crun, "--root", crun_root, "run", "--bundle", b, i]))
    if not a.tent_cli:
        out["tent_error"] = a.tent_cli_missing or "no tent runtime CLI found"
    builders = dict(cmds)

    def one(rt, _typ, tag):
        return r.sh(builders[rt](bundles[rt], f"{PREFIX}-floor-{rt}-{tag}-{os.getpid()}"),
                    timeout=30)

    res = interleave(r, "floor", one, [(n, None) for n, _ in cmds], a.runs, a.warmup)
    out.update(res)
    if not a.tent_cli:
        out["tent"] = {"samples": [], "stats": None, "failures": 0, "error": out["tent_error"]}
    return out


def cni_cost(ctd_dir, runs):
    """What the pod network costs outside any runtime: a network namespace created and pinned
    (`ip netns add`, as containerd does before RunPodSandbox's CNI call) plus the daemon's CNI
    chain ADD (loopback, tent-podif); then the chain's DEL and the namespace's removal. Both
    handlers pay it alike."""
    conf = json.load(open(os.path.join(ctd_dir, "cni/net.d/10-tent.conflist")))
    bindir = os.path.join(ctd_dir, "cni/bin")
    up, down = [], []
    for i in range(runs):
        ns = f"tb-cni-{os.getpid()}-{i}"
        env = dict(os.environ, CNI_CONTAINERID=ns, CNI_NETNS=f"/run/netns/{ns}",
                   CNI_IFNAME="eth0", CNI_PATH=bindir)

        def chain(cmd, plugins):
            for pl in plugins:
                cfg = dict(pl, cniVersion=conf["cniVersion"], name=conf["name"])
                subprocess.run([os.path.join(bindir, pl["type"])], input=json.dumps(cfg).encode(),
                               env=dict(env, CNI_COMMAND=cmd), check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        t = time.perf_counter()
        subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
        chain("ADD", conf["plugins"])
        up.append(time.perf_counter() - t)
        t = time.perf_counter()
        chain("DEL", list(reversed(conf["plugins"])))
        subprocess.run(["ip", "netns", "del", ns], check=True, timeout=30)
        down.append(time.perf_counter() - t)
    return {"setup": summary(up), "teardown": summary(down)}


PAUSELESS = "tent-pauseless"


def bench_pods(r):
    """Row 4: pods through the CRI, by `tent-cri bench` (a Rust CRI client: Python has none
    here), on a containerd 2.x daemon (--ctd-dir; bench.sh starts one): tent's handler (tent or
    tent-compat, reported as "tent"), tent-pauseless (containerd's shim sandboxer: no pause
    process, reported as "pauseless") and runc, interleaved."""
    a = r.a
    if not a.cri_bin or not os.path.exists(a.cri_bin):
        return {"error": f"CRI client {a.cri_bin or '(none)'} not built"}
    if a.pod_error:
        return {"error": a.pod_error}
    out = os.path.join(os.path.dirname(os.path.abspath(a.out)), "pods.json")
    handlers = [a.tent_handler, PAUSELESS, "runc"]
    argv = [a.cri_bin, "bench", a.ctd_dir, out, "--handlers", ",".join(handlers),
            "--runs", str(a.runs), "--warmup", str(a.warmup), "--pods", str(a.pods)]
    log(" ".join(argv))
    rc = subprocess.run(argv, timeout=2700).returncode
    if rc != 0 or not os.path.exists(out):
        return {"error": f"tent-cri bench exited {rc}"}
    raw = json.load(open(out))
    name = {a.tent_handler: "tent", PAUSELESS: "pauseless", "runc": "runc"}
    res = {"handler": a.tent_handler, "pods": a.pods, "containerd": a.pod_containerd}
    for key in ("start_s", "teardown_s"):
        res[key[:-2]] = {name[h]: {"samples": raw[key].get(h, []), "failures": 0,
                                   "error": raw["errors"].get(h),
                                   "stats": summary(raw[key].get(h, []))} for h in handlers}
    res["memory"] = {name[h]: raw["memory"].get(h) or {"error": raw["errors"].get(h) or "not measured"}
                     for h in handlers}
    try:
        res["cni"] = cni_cost(a.ctd_dir, max(5, a.runs // 2))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        res["cni"] = {"error": str(e)}
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--ctr", required=True)
    p.add_argument("--namespace", default="default")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--containers", type=int, default=50)
    p.add_argument("--tput-total", type=int, default=50)
    p.add_argument("--tput-parallel", type=int, default=8)
    p.add_argument("--tput-rounds", type=int, default=3)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--floor-dir", required=True)
    p.add_argument("--tent-cli", default="")
    p.add_argument("--tent-cli-missing", default="")
    p.add_argument("--only", default="run,exec,mem,pod,tput,floor")
    p.add_argument("--cri-bin", default="", help="tent-cri (row 4)")
    p.add_argument("--ctd-dir", default="", help="row 4's containerd 2.x daemon (hack/containerd.sh dir)")
    p.add_argument("--pod-containerd", default="", help="row 4's containerd version")
    p.add_argument("--pod-error", default="", help="why row 4 has no 2.x daemon, if it has none")
    p.add_argument("--tent-handler", default="tent", help="tent's CRI handler (row 4)")
    p.add_argument("--pods", type=int, default=20, help="running pods for row 4's memory")
    p.add_argument("--tent-nosummary-config", default="",
                   help="tent profile with [audit] summary = false (row 1's variant)")
    p.add_argument("--meta", default="{}", help="JSON object merged into the output")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    only = set(a.only.split(","))

    r = Runner(a)
    sampler = LoadSampler()
    sampler.start()
    result = {"meta": json.loads(a.meta), "params": vars(a).copy(), "results": {}}
    result["meta"]["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    phase_load = {}
    try:
        r.cleanup_everything()
        for key, fn in (("run", lambda: bench_run(r, RUNTIMES)),
                        ("exec", lambda: bench_exec(r, RUNTIMES)),
                        ("mem", lambda: bench_memory(r, RUNTIMES)),
                        ("pod", lambda: bench_pods(r)),
                        ("tput", lambda: bench_throughput(r, RUNTIMES)),
                        ("floor", lambda: bench_floor(r))):
            if key not in only:
                continue
            log(f"--- {key} ---")
            s0 = len(sampler.samples)
            t0 = time.perf_counter()
            v = fn()
            if key == "exec":
                result["results"]["exec"], result["results"]["idle_shim"] = v
            else:
                result["results"][key] = v
            busy = [s for s in sampler.samples[s0:] if s["busy"]]
            phase_load[key] = {"seconds": time.perf_counter() - t0,
                               "busy_samples": len(busy),
                               "samples": len(sampler.samples) - s0,
                               "busy_names": sorted({b for s in busy for b in s["busy"]})}
    finally:
        r.cleanup_everything()
        sampler.stop.set()
        result["meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        result["load"] = sampler.report()
        result["load"]["phases"] = phase_load
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
        log(f"wrote {a.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print(f"bench.py: interrupted", file=sys.stderr)
        sys.exit(130)
