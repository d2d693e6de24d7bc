#!/usr/bin/python3
"""Where does the time of one `ctr run --rm … /bin/true` go? (profiling helper, not the benchmark)

    phases.py --address SOCK --ctr CTR [--runs N] [--runtimes tent,runc] [--trace]

For each run it records, relative to the moment ctr was started:
  - containerd events (`ctr events`): /containers/create, /snapshot/prepare, /tasks/create,
    /tasks/start, /tasks/exit, /tasks/delete, /snapshot/remove, /containers/delete
  - with --trace: every exec and process exit system-wide (perf, sched:sched_process_exec/exit
    tracepoints, CLOCK_MONOTONIC): shim `start`, shim server, shim `delete`, runc
    create/start/delete, the container init, /bin/true. Only processes descending from the daemon
    count (fork tracepoint), attributed by order inside each run's time window.
and prints the median of each phase per runtime. Tracepoint overhead is small and
hits both runtimes alike.
"""
import argparse
import datetime as dt
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

IMAGE = "docker.io/library/tent-test:latest"
TYPES = {"tent": "io.containerd.tent.v1", "runc": "io.containerd.runc.v2"}


def parse_ts(s):
    # 2026-11-27 08:30:01.123456789 +0000 UTC
    m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d+))? ([+-]\d{4})", s)
    if not m:
        return None
    base = dt.datetime.strptime(m.group(1) + " " + m.group(3), "%Y-%m-%d %H:%M:%S %z")
    frac = float("0." + (m.group(2) or "0"))
    return base.timestamp() + frac


class Events(threading.Thread):
    def __init__(self, ctr, address):
        super().__init__(daemon=True)
        self.p = subprocess.Popen([ctr, "--address", address, "events"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        self.lines = []

    def run(self):
        for line in self.p.stdout:
            self.lines.append((time.time(), line.rstrip()))

    def stop(self):
        self.p.terminate()


def perf_start(out):
    """System-wide exec/exit tracepoints, CLOCK_MONOTONIC timestamps (low overhead)."""
    p = subprocess.Popen(["perf", "record", "-q", "-k", "mono", "-a", "-e", "sched:sched_process_exec",
                          "-e", "sched:sched_process_exit", "-e", "sched:sched_process_fork", "-o", out],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    return p


def perf_events(out):
    """[(mono_ts, kind, pid, tid, comm, filename)]"""
    txt = subprocess.run(["perf", "script", "-i", out, "-F", "comm,pid,tid,time,event,trace"],
                         capture_output=True, text=True).stdout
    res = []
    for line in txt.splitlines():
        m = re.match(r"\s*(.+?)\s+(\d+)/(\d+)\s+(\d+\.\d+):\s+sched:sched_process_(exec|exit|fork):\s*(.*)", line)
        if not m:
            continue
        comm, pid, tid, ts, kind, rest = m.groups()
        if kind == "fork":
            c = re.search(r"child_pid=(\d+)", rest)
            res.append((float(ts), kind, int(pid), int(c.group(1)) if c else 0, comm, ""))
            continue
        fn = re.search(r"filename=(\S+)", rest)
        res.append((float(ts), kind, int(pid), int(tid), comm, fn.group(1) if fn else ""))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--ctr", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--runtimes", default="tent,runc")
    ap.add_argument("--trace", action="store_true", help="perf sched exec/exit tracepoints")
    ap.add_argument("--ctd-pid", type=int, default=0,
                    help="containerd pid (default: containerd.pid next to the socket)")
    ap.add_argument("--trace-out", default="/tmp/tent-phases.perf.data")
    a = ap.parse_args()
    rts = a.runtimes.split(",")

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    ev = Events(a.ctr, a.address)
    ev.start()
    st = perf_start(a.trace_out) if a.trace else None
    runs = []
    try:
        for i in range(a.runs + 1):
            for rt in rts:
                cid = f"ph-{rt}-{i}-{os.getpid()}"
                t0 = time.time()
                m0 = time.monotonic()
                p = subprocess.run([a.ctr, "--address", a.address, "run", "--rm", "--runtime",
                                    TYPES[rt], IMAGE, cid, "/bin/true"], stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=60)
                t1 = time.time()
                m1 = time.monotonic()
                if p.returncode:
                    print(f"{rt}: run failed: {p.stderr.decode()[-300:]}", file=sys.stderr)
                if i > 0:  # first round is the warm-up
                    runs.append((rt, cid, t0, t1, m0, m1))
                time.sleep(0.3)
        time.sleep(0.5)
    finally:
        ev.stop()
        if st:
            st.send_signal(signal.SIGTERM)
            try:
                st.wait(timeout=30)
            except subprocess.TimeoutExpired:
                st.kill()
    # events: "<ts> <ns> <topic> <payload>"
    evs = []
    for _, line in ev.lines:
        m = re.match(r"(\S+ \S+ \S+ \S+) (\S+) (\S+) (.*)", line)
        if m:
            evs.append((parse_ts(m.group(1)), m.group(3), m.group(4)))
    pev = perf_events(a.trace_out) if st else []
    exits = {pid: ts for ts, kind, pid, tid, comm, fn in pev if kind == "exit" and pid == tid}
    # fork: (ts, "fork", parent tgid, child tid): keep only processes descending from our daemon,
    # so containers of other daemons/tests running at the same time are ignored.
    parent = {child: ptgid for ts, kind, ptgid, child, comm, fn in pev if kind == "fork"}
    ctd_pid = a.ctd_pid or int(open(os.path.join(os.path.dirname(a.address), "containerd.pid")).read())

    def ours(pid):
        for _ in range(64):
            if pid == ctd_pid:
                return True
            if pid not in parent:
                return False
            pid = parent[pid]
        return False
    phases = {rt: {} for rt in rts}
    for rt, cid, t0, t1, m0, m1 in runs:
        marks = {"ctr start": 0.0}
        for ts, topic, payload in evs:
            if ts and cid in payload and t0 - 0.1 <= ts <= t1 + 0.5:
                marks.setdefault("event " + topic, ts - t0)
        shim_n = runc_n = 0
        for ts, kind, pid, tid, comm, fn in pev:
            if kind != "exec" or not (m0 <= ts <= m1) or not ours(pid):
                continue
            base = os.path.basename(fn)
            if base.startswith("containerd-shim"):
                lb = ["shim start", "shim server", "shim delete"][min(shim_n, 2)] if rt == "tent" or True else None
                shim_n += 1
            elif base == "runc":
                lb = ["runc create", "runc start", "runc delete", "runc delete --force"][min(runc_n, 3)]
                runc_n += 1
            elif fn == "/bin/true":
                lb = "/bin/true"
            elif fn.startswith("/proc/self/"):
                lb = "container init"
            else:
                continue
            if lb + " exec" in marks:
                continue
            marks[lb + " exec"] = ts - m0
            if pid in exits and lb != "container init":
                marks[lb + " exit"] = exits[pid] - m0
        marks["ctr exit"] = t1 - t0
        for k, v in marks.items():
            phases[rt].setdefault(k, []).append(v)
    for rt in rts:
        print(f"\n{rt}: median ms since ctr start (n={sum(1 for r in runs if r[0] == rt)})")
        for k, v in sorted(phases[rt].items(), key=lambda kv: statistics.median(kv[1])):
            print(f"  {statistics.median(v) * 1000:8.1f}  {k}  (n={len(v)})")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print(f"phases.py: interrupted", file=sys.stderr)
        sys.exit(130)
