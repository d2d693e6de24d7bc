#!/usr/bin/python3
"""Where row 4's pod start goes, per handler, from a containerd 2.x debug log (bench.sh --debug).

    pod_phases.py containerd.log     prints a Markdown table of per-phase medians (ms)

Each `tent-cri bench` pod (sandbox name bench-<handler>-<n>) is followed from CRI's
RunPodSandbox line through its StartContainer reply; a phase is the time between two
consecutive log lines, so it holds containerd's own work as well as the runtime's:

  netns      RunPodSandbox received -> "begin cni setup" (the pod's network namespace)
  cni        -> "cni result" (the CNI chain: outside any runtime)
  sandbox    -> RunPodSandbox returns (shim start; CreateSandbox+StartSandbox, or the pause
             container's create+start)
  create     -> CreateContainer returns (containerd: snapshot, spec; no runtime call)
  start      -> StartContainer returns (the task's create and start in the shim)
"""
import datetime
import re
import statistics
import sys

PHASES = [("netns", r'msg="begin cni setup"'), ("cni", r'msg="cni result'),
          ("sandbox", r'msg="RunPodSandbox for .* returns'),
          ("create", r'msg="CreateContainer within .* returns'),
          ("start", r'msg="StartContainer for .* returns')]
BEGIN = re.compile(r'msg="RunPodSandbox for &PodSandboxMetadata\{Name:bench-(.+)-\d+,Uid:[^"]*\}"$')


def stamp(line):
    m = re.match(r'time="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z?', line)
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + float(m.group(2) or 0)


def parse(lines):
    """{handler: [[phase seconds...], ...]} for every pod whose five phases were all seen."""
    out = {}
    i = 0
    while i < len(lines):
        m = BEGIN.search(lines[i])
        t0 = stamp(lines[i]) if m else None
        if t0 is None:
            i += 1
            continue
        marks, j = [t0], i + 1
        # The bench runs one pod at a time: its lines follow until the next RunPodSandbox.
        while j < len(lines) and len(marks) <= len(PHASES) and not BEGIN.search(lines[j]):
            if re.search(PHASES[len(marks) - 1][1], lines[j]):
                t = stamp(lines[j])
                if t is not None:
                    marks.append(t)
            j += 1
        if len(marks) == len(PHASES) + 1:
            out.setdefault(m.group(1), []).append([b - a for a, b in zip(marks, marks[1:])])
        i = j
    return out


def table(res):
    if not res:
        return "no complete pod start found in the log (was it a --debug run?)"
    names = sorted(res)
    rows = ["| phase (median ms) | " + " | ".join(f"{h} (n={len(res[h])})" for h in names) + " |",
            "|---|" + "---|" * len(names)]
    for k, (name, _) in enumerate(PHASES):
        rows.append(f"| {name} | " + " | ".join(
            f"{statistics.median(p[k] for p in res[h]) * 1000:.1f}" for h in names) + " |")
    rows.append("| total | " + " | ".join(
        f"{statistics.median(sum(p) for p in res[h]) * 1000:.1f}" for h in names) + " |")
    return "\n".join(rows)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], errors="replace") as f:
        print(table(parse(f.read().splitlines())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
