#!/usr/bin/python3
"""Checks of hack/bench/report.py that need no benchmark run (a few milliseconds).

    python3 hack/bench/test_report.py        (hack/test.sh runs it)
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402


def agrees(cell, status, target):
    """The printed figure and the status tell the same story."""
    return (float(cell) <= target) == status.startswith("✅")


class RatioTest(unittest.TestCase):
    def test_printed_ratio_agrees_with_status(self):
        # Around every target, including values that 2 or 3 decimals would round onto it.
        for target in set(report.TARGETS.values()):
            for delta in (-0.01, -0.005, -0.0004, -1e-9, 0, 1e-9, 0.00001, 0.0004, 0.0049,
                          0.005, 0.0051, 0.01):
                q = target + delta
                cell, status = report.ratio_cells(q * 100.0, 100.0, target)
                self.assertTrue(agrees(cell, status, target),
                                f"target {target}, ratio {q!r}: printed {cell} {status}")

    def test_issue_case(self):
        # 0.4049 used to print "0.40" next to "≤ 0.4 ❌ missed".
        cell, status = report.ratio_cells(40.49, 100.0, 0.4)
        self.assertEqual(status, "❌ missed")
        self.assertEqual(cell, "0.405")
        cell, status = report.ratio_cells(40.001, 100.0, 0.4)
        self.assertEqual(status, "❌ missed")
        self.assertGreater(float(cell), 0.4)
        cell, status = report.ratio_cells(40.0, 100.0, 0.4)
        self.assertEqual((cell, status), ("0.400", "✅ met"))

    def test_missing_values(self):
        self.assertEqual(report.ratio_cells(None, 1.0, 0.5), ("—", "n/a"))
        self.assertEqual(report.ratio_cells(1.0, 0, 0.5), ("—", "n/a"))


class MarkdownTest(unittest.TestCase):
    def test_renders_committed_result(self):
        # The committed latest result still renders (report.py and bench.py agree on the format).
        path = os.path.join(os.path.dirname(__file__), "..", "..", "bench-results", "latest.json")
        if not os.path.exists(path):
            self.skipTest("no bench-results/latest.json")
        with open(path) as f:
            data = json.load(f)
        md = report.markdown(data)
        self.assertIn("| 1 |", md)
        for line in md.splitlines():
            cols = [c.strip() for c in line.split("|")]
            if len(cols) > 7 and cols[7] in ("✅ met", "❌ missed"):
                tgt = float(cols[6].lstrip("≤ "))
                self.assertTrue(agrees(cols[5], cols[7], tgt), line)


class SummaryCostTest(unittest.TestCase):
    def test_row_1b_and_the_difference(self):
        st = lambda med, lo: {"median": med, "min": lo, "max": med * 2, "n": 3}  # noqa: E731
        run = {rt: {"samples": [], "failures": 0, "error": None, "stats": s}
               for rt, s in (("tent", st(0.110, 0.100)), ("runc", st(0.200, 0.190)),
                             ("tent-nosummary", st(0.108, 0.101)))}
        data = {"meta": {}, "params": {"runs": 3, "warmup": 1}, "results": {"run": run}}
        md = report.markdown(data)
        row = [line for line in md.splitlines() if line.startswith("| 1b |")]
        self.assertEqual(len(row), 1, md)
        self.assertIn("108.0 ms", row[0])
        self.assertIn("0.540", row[0])
        self.assertIn("difference **+2.0 ms** (+1.9 %)", md)
        del run["tent-nosummary"]
        md = report.markdown(data)
        self.assertNotIn("| 1b |", md)
        self.assertNotIn("summary = false", md)


class PodTableTest(unittest.TestCase):
    def result(self, pl_start):
        st = lambda v: {"samples": [v], "failures": 0, "error": None,
                        "stats": {"median": v, "min": v, "max": v, "n": 1}}
        mem = lambda shim, pause: {"pods": 2, "shim_processes": 2, "per_pod_kb": {
            "shim_rss": shim, "shim_pss": shim / 4, "pause_rss": pause, "pause_pss": pause,
            "rss": shim + pause, "pss": shim / 4 + pause}}
        return {"meta": {}, "params": {"runs": 1, "pods": 2}, "results": {"pod": {
            "handler": "tent", "pods": 2, "containerd": "2.1",
            "start": {"pauseless": st(pl_start), "tent": st(0.4), "runc": st(1.0)},
            "teardown": {"pauseless": st(0.2), "tent": st(0.3), "runc": st(1.0)},
            "memory": {"pauseless": mem(1024, 0), "tent": mem(2048, 512),
                       "runc": mem(10240, 512)},
            "cni": {"setup": {"median": 0.1, "n": 5}, "teardown": {"median": 0.05, "n": 5}}}}}

    def test_three_columns_and_both_ratios(self):
        md = "\n".join(report.pod_table(self.result(0.3)))
        start = next(l for l in md.splitlines() if l.startswith("| pod start"))
        cols = [c.strip() for c in start.split("|")][1:-1]
        self.assertEqual(len(cols), 10, start)
        self.assertEqual(cols[4:7], ["0.300", "≤ 0.35", "✅ met"])
        self.assertEqual(cols[7:10], ["0.400", "≤ 0.45", "✅ met"])
        rss = next(l for l in md.splitlines() if l.startswith("| pod RSS"))
        self.assertIn("no pause process", rss)
        cols = [c.strip() for c in rss.split("|")][1:-1]
        self.assertEqual(cols[4:7], [f"{1024 / 10752:.3f}", "≤ 0.15", "✅ met"])
        self.assertIn("containerd 2.1", md)
        self.assertIn("pauseless too", md)

    def test_missed_target_is_said(self):
        md = "\n".join(report.pod_table(self.result(0.5)))
        start = next(l for l in md.splitlines() if l.startswith("| pod start"))
        self.assertIn("❌ missed", start.split("|")[7])


class PodPhasesTest(unittest.TestCase):
    def test_phases_per_handler(self):
        import pod_phases
        t = lambda ms: f'time="2026-12-02T05:01:31.{ms:03d}000000Z" level=info '
        pod = lambda h, base: [
            t(base) + 'msg="RunPodSandbox for &PodSandboxMetadata{Name:bench-' + h + '-3,Uid:u,Namespace:n,Attempt:0,}"',
            t(base + 2) + 'level=debug msg="begin cni setup" podsandboxid=x',
            t(base + 30) + 'level=debug msg="cni result: {}"',
            t(base + 40) + 'msg="RunPodSandbox for &PodSandboxMetadata{Name:bench-' + h + '-3,Uid:u,Namespace:n,Attempt:0,} returns sandbox id \\"x\\""',
            t(base + 45) + 'msg="CreateContainer within sandbox \\"x\\" for &ContainerMetadata{Name:app,Attempt:0,} returns container id \\"y\\""',
            t(base + 60) + 'msg="StartContainer for \\"y\\" returns successfully"']
        res = pod_phases.parse(pod("tent-pauseless", 0) + pod("runc", 100) + pod("runc", 200)[:4])
        self.assertEqual(sorted(res), ["runc", "tent-pauseless"])
        self.assertEqual(len(res["runc"]), 1, "an incomplete pod is left out")
        got = [round(x * 1000) for x in res["tent-pauseless"][0]]
        self.assertEqual(got, [2, 28, 10, 5, 15])
        self.assertIn("| total | 60.0 | 60.0 |", pod_phases.table(res))


if __name__ == "__main__":
    unittest.main(verbosity=1)
