#!/usr/bin/python3
"""Renders a hack/bench/bench.py JSON result as Markdown (and a PNG chart if matplotlib exists).

    report.py RESULT.json --md OUT.md [--png OUT.png]
"""
import argparse
import json
import sys

# (key, what, target tent/runc)
TARGETS = {"run": 0.5, "run_nosummary": 0.5, "exec": 0.4, "pss": 0.25, "rss": 0.33, "tput": 0.5, "floor": 0.25,
           "pod_start": 0.45, "pod_teardown": 0.5, "pod_rss": 0.25, "pod_pss": 0.25}
# Row 4's tent-pauseless column (no pause process) against runc; None: no target set.
PAUSELESS_TARGETS = {"pod_start": 0.35, "pod_teardown": None, "pod_rss": 0.15, "pod_pss": 0.15}


def ms(s):
    return f"{s * 1000:.1f} ms"


def sec(s):
    return f"{s:.2f} s"


def mib(k):
    return f"{k / 1024:.2f} MiB"


def timing_cell(res, rt, fmt, what=""):
    """'median (min–max)' or the honest reason there is no number."""
    d = (res or {}).get(rt)
    if d is None:
        return "not measured", None
    st = d.get("stats")
    if st:
        cell = f"**{fmt(st['median'])}** ({fmt(st['min'])}–{fmt(st['max'])}, n={st['n']})"
        if d.get("failures"):
            err = (d.get("error") or "").replace("|", "\\|").replace("\n", " ")[:200]
            cell += f" ⚠ {d['failures']} failed run(s)/round(s): {err}"
        return cell, st["median"]
    if d.get("not_implemented"):
        return f"{rt}: {what or 'operation'} not implemented", None
    err = (d.get("error") or "no samples").replace("|", "\\|").replace("\n", " ")
    return f"{rt}: failed — {err[:160]}", None


def fmt_ratio(q, target):
    """q with 3 decimals, more if needed so that the printed figure agrees with `q <= target`.

    The status compares the exact ratio; a ratio just above the target must not print as the
    target itself (0.4004 is "0.4004", not "0.400", next to "≤ 0.4 ❌"). A ratio at or below the
    target never rounds above it, since targets have at most 3 decimals.
    """
    for d in range(3, 10):
        txt = f"{q:.{d}f}"
        if (q <= target) == (float(txt) <= target):
            return txt
    return repr(q)


def ratio_cells(t, b, target):
    if t is None or b is None or not b:
        return "—", "n/a"
    q = t / b
    return fmt_ratio(q, target), ("✅ met" if q <= target else "❌ missed")


def rows(data):
    R = data["results"]
    p = data["params"]
    out = []  # (num, label, tent, runc, ratio, target, status, key, tval, rval)

    def timing(num, key, label, res, fmt, what="", tent="tent"):
        tc, tv = timing_cell(res, tent, fmt, what)
        rc, rv = timing_cell(res, "runc", fmt, what)
        q, st = ratio_cells(tv, rv, TARGETS[key])
        if any(((res or {}).get(rt) or {}).get("failures") for rt in (tent, "runc")) and tv and rv:
            st = "⚠ failures: " + st
        out.append((num, label, tc, rc, q, f"≤ {TARGETS[key]}", st, key, tv, rv))

    if "run" in R:
        timing("1", "run", f"`ctr run --rm` `/bin/true` end to end (n={p['runs']})", R["run"], ms)
        if "tent-nosummary" in R["run"]:
            timing("1b", "run_nosummary", f"the same, tent with `[audit] summary = false` (no audit "
                   f"walk at Create; same loop, n={p['runs']})", R["run"], ms, tent="tent-nosummary")
    if "exec" in R:
        timing("2", "exec", f"`ctr task exec` `/bin/true` into a running container (n={p['runs']})",
               R["exec"], ms, "exec")
    if "mem" in R:
        M = R["mem"]
        for key, field, name in (("rss", "rss", "RSS"), ("pss", "pss", "PSS")):
            cells, vals = [], []
            for rt in ("tent", "runc"):
                d = M.get(rt) or {}
                if d.get("error") or d.get(f"{field}_per_container_kb") is None:
                    cells.append(f"{rt}: failed — {(d.get('error') or 'not measured')[:160]}")
                    vals.append(None)
                    continue
                per = d[f"{field}_per_container_kb"]
                ps = d[f"{field}_per_shim"]
                cells.append(f"**{mib(per)}**/container (per shim {mib(ps['min'])}–{mib(ps['max'])}; "
                             f"total {mib(d[f'{field}_total_kb'])}, {d['shims']} shims, "
                             f"{d['containers']} containers)")
                vals.append(per)
            q, st = ratio_cells(vals[0], vals[1], TARGETS[key])
            out.append(("3", f"shim {name} per container ({p['containers']} × `sleep 3600`)",
                        cells[0], cells[1], q, f"≤ {TARGETS[key]}", st, key, vals[0], vals[1]))
    if "pod" in R:
        P = R["pod"]
        if P.get("error"):
            out.append(("4", "pods through the CRI", f"failed — {P['error'][:160]}", "—", "—", "—",
                        "n/a", "cri", None, None))
        else:
            h = P.get("handler", "tent")
            timing("4", "pod_start", f"pod start through the CRI: RunPodSandbox + CreateContainer + "
                   f"StartContainer (handler `{h}` vs `runc`, n={p['runs']})", P["start"], ms)
            timing("4", "pod_teardown", f"pod teardown: StopPodSandbox + RemovePodSandbox "
                   f"(n={p['runs']})", P["teardown"], ms)
            for key, field, name in (("pod_rss", "rss", "RSS"), ("pod_pss", "pss", "PSS")):
                cells, vals = [], []
                for rt in ("tent", "runc"):
                    d = (P.get("memory") or {}).get(rt) or {}
                    per = (d.get("per_pod_kb") or {})
                    if d.get("error") or field not in per:
                        cells.append(f"{rt}: failed — {(d.get('error') or 'not measured')[:160]}")
                        vals.append(None)
                        continue
                    cells.append(f"**{mib(per[field])}**/pod (shim {mib(per['shim_' + field])} + "
                                 f"pause {mib(per['pause_' + field])}; {d['shim_processes']} shims, "
                                 f"{d['pods']} pods)")
                    vals.append(per[field])
                q, st = ratio_cells(vals[0], vals[1], TARGETS[key])
                out.append(("4", f"pod {name}: shim + pause per pod ({P['pods']} pods running)",
                            cells[0], cells[1], q, f"≤ {TARGETS[key]}", st, key, vals[0], vals[1]))
    if "tput" in R:
        timing("5", "tput", f"throughput: {p['tput_total']} × `ctr run --rm /bin/true`, "
               f"{p['tput_parallel']} at a time, wall time (rounds={p['tput_rounds']})",
               R["tput"], sec)
    if "floor" in R:
        timing("6", "floor", f"floor, no containerd: create+start+wait+delete `/bin/true` on a "
               f"bundle (tent CLI vs `runc run`, n={p['runs']})", R["floor"], ms)
    return out


def summary_cost(run):
    """Row 1 against row 1b: what the audit summary at Create costs `ctr run --rm`."""
    on = ((run or {}).get("tent") or {}).get("stats")
    off = ((run or {}).get("tent-nosummary") or {}).get("stats")
    if not on or not off:
        return ""
    d = on["median"] - off["median"]
    return (f"The audit summary at Create (rows 1 and 1b, interleaved in one loop): tent's default "
            f"{ms(on['median'])} vs `summary = false` {ms(off['median'])}, difference "
            f"**{d * 1000:+.1f} ms** ({d / off['median'] * 100:+.1f} %) of the median; minimum "
            f"{ms(on['min'])} vs {ms(off['min'])} ({(on['min'] - off['min']) * 1000:+.1f} ms).")


def pod_table(data):
    """Row 4 as its own table: tent-pauseless, tent (with pause) and runc side by side, each
    tent column's ratio to runc against its target. Results from before tent-pauseless was
    benchmarked render with that column "not measured"."""
    P = (data["results"].get("pod")) or {}
    p = data["params"]
    if not P:
        return []
    ver = P.get("containerd") or (data["meta"].get("pod_containerd") or data["meta"].get("containerd", "?"))
    lines = ["", f"### 4. pods through the CRI (containerd {ver}, handlers interleaved on one daemon; "
             f"tent: `{P.get('handler', 'tent')}`; tent-pauseless runs tent's default profile: "
             f"its runtime has no options table)", ""]
    if P.get("error"):
        return lines + [f"Row 4 failed — {P['error'][:300]}"]
    lines += ["| benchmark | tent-pauseless (no pause process) | tent (with pause) | runc | "
              "pauseless/runc | target | status | tent/runc | target | status |",
              "|---|---|---|---|---|---|---|---|---|---|"]

    def ratio3(v, b, tgt):
        if tgt is None:
            return ("—" if v is None or not b else f"{v / b:.3f}"), "none set", "—"
        q, st = ratio_cells(v, b, tgt)
        return q, f"≤ {tgt}", st

    def line(label, key, cells, vals):
        pq, pt, ps = ratio3(vals["pauseless"], vals["runc"], PAUSELESS_TARGETS[key])
        tq, tt, ts = ratio3(vals["tent"], vals["runc"], TARGETS[key])
        lines.append(f"| {label} | {cells['pauseless']} | {cells['tent']} | {cells['runc']} | "
                     f"{pq} | {pt} | {ps} | {tq} | {tt} | {ts} |")

    for key, res, label in (("pod_start", P.get("start"), f"pod start: RunPodSandbox + "
                             f"CreateContainer + StartContainer (n={p['runs']})"),
                            ("pod_teardown", P.get("teardown"), f"pod teardown: StopPodSandbox + "
                             f"RemovePodSandbox (n={p['runs']})")):
        cells, vals = {}, {}
        for rt in ("pauseless", "tent", "runc"):
            cells[rt], vals[rt] = timing_cell(res, rt, ms)
        line(label, key, cells, vals)
    for key, field, name in (("pod_rss", "rss", "RSS"), ("pod_pss", "pss", "PSS")):
        cells, vals = {}, {}
        for rt in ("pauseless", "tent", "runc"):
            d = (P.get("memory") or {}).get(rt) or {}
            per = d.get("per_pod_kb") or {}
            if d.get("error") or field not in per:
                cells[rt] = f"{rt}: {'failed — ' if d.get('error') else ''}{(d.get('error') or 'not measured')[:160]}"
                vals[rt] = None
                continue
            pause = (f"pause {mib(per['pause_' + field])}" if rt != "pauseless" or per["pause_" + field]
                     else "no pause process")
            cells[rt] = (f"**{mib(per[field])}**/pod (shim {mib(per['shim_' + field])} + {pause}; "
                         f"{d['shim_processes']} shims, {d['pods']} pods)")
            vals[rt] = per[field]
        line(f"pod {name}: shim + pause per pod ({P.get('pods', p.get('pods', '?'))} pods running)",
             key, cells, vals)
    C = P.get("cni") or {}
    if C.get("setup"):
        lines += ["", f"The fixed cost outside tent, in every column (pauseless too: the CRI creates "
                  f"the pod's network namespace and runs CNI before it calls the sandbox, whichever "
                  f"it is): a pod network namespace plus the daemon's CNI chain (loopback, "
                  f"tent-podif) takes {ms(C['setup']['median'])} to set up and "
                  f"{ms(C['teardown']['median'])} to tear down (median, n={C['setup']['n']}; "
                  f"`ip netns` + the plugins run by hand, as containerd runs them)."]
        st = ((P.get("start") or {}).get("runc") or {}).get("stats")
        if st:
            lines.append(f"Of runc's pod start ({ms(st['median'])}) that is "
                         f"{C['setup']['median'] / st['median']:.0%}; a column's ratio can not go below "
                         f"{C['setup']['median'] / st['median']:.3f} while the network costs that.")
    elif C.get("error"):
        lines += ["", f"CNI cost not measured: {C['error'][:200]}"]
    return lines


def markdown(data):
    m = data["meta"]
    p = data["params"]
    R = data["results"]
    L = data.get("load", {})
    lines = [f"# tent benchmark — {m.get('started', '?')}", ""]
    lines += [
        f"- machine: {m.get('cores', '?')} cores ({m.get('cpu', '?')}), {m.get('mem', '?')} RAM, "
        f"kernel {m.get('kernel', '?')}, cgroups: {m.get('cgroups', '?')}",
        f"- containerd: {m.get('containerd', '?')} (one private daemon, runtimes interleaved A B A B "
        f"after {p['warmup']} warm-up runs each)",
        f"- tent: commit {m.get('commit', '?')}, shim {m.get('shim_size', '?')} "
        f"(sha256 {m.get('shim_sha', '?')[:12]}), built {m.get('shim_mtime', '?')}; "
        f"profile {m.get('tent_profile', 'tent')}",
        f"- runc: {m.get('runc', '?')}; containerd-shim-runc-v2 {m.get('runc_shim_size', '?')}",
        f"- crun: {(R.get('floor') or {}).get('crun') or m.get('crun', 'not probed')}",
        f"- mode: {m.get('mode', '?')}; command: `{m.get('command', '?')}`",
    ]
    if L:
        busy = L.get("busy_samples", 0)
        lines.append(
            f"- background load: 1-min loadavg {L.get('load1_min')}–{L.get('load1_max')}; "
            f"other heavy processes ({', '.join(L.get('busy_names') or []) or 'none'}) seen in "
            f"{busy}/{L.get('samples')} one-second samples"
            + (" — **numbers measured under load from other builds**" if busy else ""))
    main = [r for r in rows(data) if r[0] != "4"]  # row 4 has its own table (three columns)
    if main:
        lines += ["", "| # | benchmark | tent: median (min–max) | runc: median (min–max) | "
                  "tent/runc | target | status |", "|---|---|---|---|---|---|---|"]
    for num, label, tc, rc, q, tgt, st, *_ in main:
        lines.append(f"| {num} | {label} | {tc} | {rc} | {q} | {tgt} | {st} |")
    cost = summary_cost(R.get("run"))
    if cost:
        lines += ["", cost]
    lines += pod_table(data)
    idle = R.get("idle_shim") or {}
    if idle:
        lines += ["", "Idle shim (one `sleep` container, before any exec): " + "; ".join(
            f"{rt}: " + (", ".join(f"RSS {mib(s['rss_kb'])} PSS {mib(s['pss_kb'])} "
                                   f"{s['threads']} threads" for s in v) or "no shim found")
            for rt, v in idle.items())]
    M = R.get("mem") or {}
    extra = []
    for rt in ("tent", "runc"):
        d = M.get(rt) or {}
        if d.get("start_seconds") is not None:
            extra.append(f"{rt}: {d['containers']} × `ctr run -d` sequential {sec(d['start_seconds'])}, "
                         f"cleanup {sec(d.get('cleanup_seconds', 0))}, threads/shim "
                         f"{d['threads_per_shim']['median'] if d.get('threads_per_shim') else '?'}"
                         + (f", {d['init_parents_not_matched']} container inits whose parent was not "
                            f"a matched shim" if d.get("init_parents_not_matched") else ""))
    hidden = []
    for rt in ("tent", "runc"):
        d = M.get(rt) or {}
        if d.get("containers"):
            hidden.append(f"{rt}: memfds held by the shims {mib(d.get('memfd_total_kb') or 0)} "
                          f"({mib((d.get('memfd_total_kb') or 0) / d['containers'])}/container), "
                          f"system Shmem grew by {mib(d['shmem_delta_kb']) if d.get('shmem_delta_kb') is not None else '?'} "
                          f"while the {d['containers']} containers started")
    if extra:
        lines += ["", "Memory phase: " + "; ".join(extra)]
    if hidden:
        lines += ["", "Memory outside RSS/PSS (a sealed memfd copy of a binary is charged as Shmem, "
                  "not to the process): " + "; ".join(hidden)]
    ph = L.get("phases") or {}
    if ph:
        lines += ["", "Phases: " + "; ".join(
            f"{k} {v['seconds']:.0f}s (busy {v['busy_samples']}/{v['samples']}"
            + (f": {', '.join(v['busy_names'])}" if v['busy_names'] else "") + ")"
            for k, v in ph.items())]
    lines += ["", "Targets are tent/runc ratios (lower is better). A runtime that failed is shown "
              "with its error instead of a number.", ""]
    return "\n".join(lines)


def chart(data, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [r for r in rows(data) if r[7] != "cri"]
    m = data["meta"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    # 1. ratios vs targets
    ax = axes[0]
    labels = [r[7] for r in rs]
    ratios = [(r[8] / r[9]) if r[8] is not None and r[9] else None for r in rs]
    for i, (q, r) in enumerate(zip(ratios, rs)):
        tgt = TARGETS[r[7]]
        if q is None:
            ax.text(i, 0.05, "n/a", ha="center", rotation=90, fontsize=9, color="gray")
        else:
            ax.bar(i, q, color="tab:green" if q <= tgt else "tab:red", width=0.6)
            ax.text(i, q, fmt_ratio(q, tgt), ha="center", va="bottom", fontsize=8)
        ax.hlines(tgt, i - 0.4, i + 0.4, colors="black", linestyles="dashed")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("tent / runc (dashed: target)")
    ax.set_title("ratio to runc (lower is better)")
    # 2. times (ms)
    R = data["results"]
    ax = axes[1]
    names = [("run", "run --rm"), ("exec", "exec"), ("floor", "floor")]
    rts = ["tent", "runc"] + (["crun"] if (R.get("floor") or {}).get("crun") == "works" else [])
    w = 0.8 / len(rts)
    for j, rt in enumerate(rts):
        for i, (k, _) in enumerate(names):
            st = ((R.get(k) or {}).get(rt) or {}).get("stats")
            if not st:
                ax.text(i + (j - (len(rts) - 1) / 2) * w, 1, "n/a", ha="center", fontsize=7,
                        rotation=90, color="gray")
                continue
            x = i + (j - (len(rts) - 1) / 2) * w
            ax.bar(x, st["median"] * 1000, w, color=f"C{j}", label=rt if i == 0 or not
                   ax.get_legend_handles_labels()[1].count(rt) else None)
            ax.errorbar(x, st["median"] * 1000, yerr=[[st["median"] * 1000 - st["min"] * 1000],
                        [st["max"] * 1000 - st["median"] * 1000]], color="black", capsize=3)
    ax.set_xticks(range(len(names)), [n for _, n in names])
    ax.set_ylabel("ms (median, whiskers min–max)")
    ax.set_title("latency")
    h, l = ax.get_legend_handles_labels()
    seen = {}
    for hh, ll in zip(h, l):
        seen.setdefault(ll, hh)
    ax.legend(seen.values(), seen.keys())
    # 3. memory per container
    ax = axes[2]
    M = R.get("mem") or {}
    for j, rt in enumerate(["tent", "runc"]):
        d = M.get(rt) or {}
        for i, f in enumerate(("rss", "pss")):
            v = d.get(f"{f}_per_container_kb")
            x = i + (j - 0.5) * 0.4
            if v is None:
                ax.text(x, 0.1, "n/a", ha="center", rotation=90, fontsize=7, color="gray")
            else:
                ax.bar(x, v / 1024, 0.4, color=f"C{j}", label=rt if i == 0 else None)
                ax.text(x, v / 1024, f"{v / 1024:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks([0, 1], ["RSS", "PSS"])
    ax.set_ylabel("MiB per container (shim only)")
    ax.set_title(f"shim memory, {data['params']['containers']} containers")
    ax.legend()
    busy = (data.get("load") or {}).get("busy_samples")
    fig.suptitle(f"tent vs runc — {m.get('started', '?')} — {m.get('cores', '?')} cores, kernel "
                 f"{m.get('kernel', '?')}, containerd {m.get('containerd', '?')}, tent "
                 f"{m.get('commit', '?')}" + (" — under background build load" if busy else ""),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("result")
    ap.add_argument("--md", required=True)
    ap.add_argument("--png")
    a = ap.parse_args()
    data = json.load(open(a.result))
    md = markdown(data)
    with open(a.md, "w") as f:
        f.write(md)
    print(md)
    if a.png:
        try:
            chart(data, a.png)
        except ImportError as e:
            print(f"report: no chart ({e}); install python3-matplotlib", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
