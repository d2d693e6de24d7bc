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


if __name__ == "__main__":
    unittest.main(verbosity=1)
