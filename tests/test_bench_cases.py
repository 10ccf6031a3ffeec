#!/usr/bin/env python3
"""The strategy cases of greeks_book_bench run and do real work (a case whose
create() fails, say a chain the use case refuses, is reported by Google
Benchmark as an error with exit status 0, and would read as a fast case).

    python3 tests/test_bench_cases.py build/bench/greeks_book_bench

Runs the cheap ones once each (~2 s): generate with European, bs2002 and alo
fast prices, and the three hedges. alo and the tree take 0.4 s and 5 s a call:
`make bench` runs them.
"""

import json
import subprocess
import sys
import unittest

BENCH = sys.argv.pop(1) if len(sys.argv) > 1 else "build/bench/greeks_book_bench"
CASES = [
    "strategy/generate/european/quotes:512",
    "strategy/generate/bs2002/quotes:512",
    "strategy/generate/alo_fast/quotes:512",
    "strategy/hedge/delta/quotes:512",
    "strategy/hedge/delta_gamma/quotes:512",
    "strategy/hedge/delta_vega/quotes:512",
]


class StrategyCases(unittest.TestCase):
    def test_every_case_runs_without_error(self):
        pattern = "^(" + "|".join(CASES) + ")/"
        run = subprocess.run(
            [BENCH, "--benchmark_filter=" + pattern, "--benchmark_min_time=0.01",
             "--benchmark_format=json"],
            capture_output=True, text=True, timeout=120, check=True)
        report = json.loads(run.stdout)
        ran = {}
        for b in report["benchmarks"]:
            ran[b["run_name"].removesuffix("/real_time")] = b
        for case in CASES:
            self.assertIn(case, ran, f"{case} did not run: {sorted(ran)}")
            b = ran[case]
            self.assertFalse(b.get("error_occurred"), f"{case}: {b.get('error_message')}")
            self.assertGreater(b["iterations"], 0, case)
            self.assertGreater(b["items_per_second"], 0, case)


if __name__ == "__main__":
    unittest.main()
