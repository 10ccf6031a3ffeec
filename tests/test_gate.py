#!/usr/bin/env python3
"""Tests for bench/gate on synthetic Google Benchmark JSON (standard library only).

    python3 tests/test_gate.py        # or: ctest --test-dir build -R test_gate
"""

import json
import os
import stat
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
GATE = os.path.join(ROOT, "bench", "gate")

# options/s of a plausible run: {case: items_per_second}
RATES = {}
for _layout, _scale in (("batch", 1.0), ("chain", 1.2)):
    for _mask, _m in (("price", 1.3), ("all", 1.0)):
        for _n in (1024, 65536):
            def _put(impl, ips, layout=_layout, mask=_mask, n=_n):
                RATES[f"{layout}/{impl}/{mask}/{n}"] = ips
            _put("bsm/scalar", 13e6 * _scale * _m)
            _put("bsm/avx2", 28e6 * _scale * _m)
            _put("bsm/avx512", 87e6 * _scale * _m)
            _put("naive_o2", 14e6 * _scale * _m)
            _put("naive_fastmath", 88e6 * _scale * _m)

AVX512_ALL = "batch/bsm/avx512/all/65536"
FIG_O2 = f"{AVX512_ALL} / batch/naive_o2/all/65536"
FIG_FM = f"{AVX512_ALL} / batch/naive_fastmath/all/65536"


def single_run(rates, suffix=""):
    """Google Benchmark JSON with one run per case (no repetitions)."""
    benchmarks = []
    for name, ips in rates.items():
        benchmarks.append({"name": name + suffix, "run_name": name + suffix,
                           "run_type": "iteration", "repetitions": 1, "repetition_index": 0,
                           "threads": 1, "iterations": 100, "real_time": 1e6 / ips,
                           "cpu_time": 1e6 / ips, "time_unit": "us", "items_per_second": ips})
    return benchmarks


def repeated_run(rates, medians=None, means=None):
    """Google Benchmark JSON with 3 repetitions per case and mean/median/stddev
    aggregates. medians/means override the aggregates of chosen cases."""
    medians, means = medians or {}, means or {}
    benchmarks = []
    for name, ips in rates.items():
        for i, f in enumerate((0.9, 1.0, 1.1)):
            benchmarks.append({"name": name, "run_name": name, "run_type": "iteration",
                               "repetitions": 3, "repetition_index": i, "threads": 1,
                               "iterations": 100, "time_unit": "us",
                               "items_per_second": ips * f})
        for agg, value in (("mean", means.get(name, ips)), ("median", medians.get(name, ips)),
                           ("stddev", 0.1 * ips)):
            benchmarks.append({"name": f"{name}_{agg}", "run_name": name,
                               "run_type": "aggregate", "repetitions": 3, "threads": 1,
                               "aggregate_name": agg, "iterations": 3, "time_unit": "us",
                               "items_per_second": value})
    return benchmarks


SUMMARIZE = os.path.join(ROOT, "bench", "summarize.py")
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.dont_write_bytecode = True
import summarize  # noqa: E402
NOT_VECTORIZED = "naive_bsm_all_fastmath: vector none, scalar only log erfc exp"


def doc(benchmarks, vectorized="true", isas="scalar,avx2,avx512", fastmath_flags="-O3 -march=native -ffast-math",
        extra=None):
    """vectorized: the context's fastmath_baseline_vectorized (None: absent);
    extra: more context keys (cpu_isas, greeks_dispatch, cpu_model...)."""
    ctx = {"date": "2026-01-01T00:00:00+00:00", "host_name": "testhost",
           "num_cpus": 2, "mhz_per_cpu": 2600, "greeks_isas": isas,
           "executable": "greeks_bench",
           "naive_fastmath_flags": fastmath_flags}
    ctx.update(extra or {})
    if vectorized is not None:
        ctx["fastmath_baseline_vectorized"] = vectorized
        ctx["fastmath_baseline_vector_calls"] = (
            NOT_VECTORIZED if vectorized != "true" else "naive_bsm_all_fastmath: vector "
            "_ZGVeN8v_log _ZGVeN8v_erfc _ZGVeN8v_exp, scalar only none")
    return {"context": ctx, "benchmarks": benchmarks}


def scaled(rates, case, factor):
    out = dict(rates)
    out[case] = rates[case] * factor
    return out


class GateTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="test-gate-")
        self.dir = self._tmp.name
        self.baseline = self.path("baseline.json")
        self.assertEqual(self.write_baseline(single_run(RATES)).returncode, 0)

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def save(self, name, benchmarks, vectorized="true", **context):
        p = self.path(name)
        with open(p, "w", encoding="utf-8") as f:
            json.dump(doc(benchmarks, vectorized, **context), f)
        return p

    def gate(self, *args):
        return subprocess.run([sys.executable, GATE] + list(args), capture_output=True,
                              text=True, timeout=60, check=False)

    def write_baseline(self, benchmarks, *extra):
        return self.gate("--run", self.save("base_run.json", benchmarks),
                         "--write-baseline", self.baseline, *extra)

    def check(self, benchmarks, *extra, vectorized="true", **context):
        return self.gate("--run", self.save("run.json", benchmarks, vectorized, **context),
                         "--baseline", self.baseline, *extra)

    def summarize(self, benchmarks, vectorized):
        return subprocess.run([sys.executable, SUMMARIZE,
                               self.save("sum.json", benchmarks, vectorized)],
                              capture_output=True, text=True, timeout=60, check=False)

    def row(self, out, figure):
        rows = [line for line in out.splitlines() if line.startswith(f"| {figure} |")]
        self.assertEqual(len(rows), 1, f"no single row for {figure} in:\n{out}")
        return rows[0]

    def load_baseline(self):
        with open(self.baseline, encoding="utf-8") as f:
            return json.load(f)

    # ---- the baseline file ----

    def test_baseline_holds_65536_figures_and_metadata(self):
        b = self.load_baseline()
        self.assertTrue(b["figures"])
        for name, value in b["figures"].items():
            case, reference = name.split(" / ")
            self.assertTrue(case.endswith("/65536"), name)
            self.assertIn("/bsm/", case)
            self.assertRegex(reference, r"/naive_(o2|fastmath)/")
            self.assertGreater(value, 0)
        # 2 layouts x 3 ISAs x 2 masks x 2 references
        self.assertEqual(len(b["figures"]), 24)
        self.assertAlmostEqual(b["figures"][FIG_O2], 87 / 14, places=3)
        meta = b["metadata"]
        self.assertEqual(meta["host"], "testhost")
        self.assertEqual(meta["isas"], "scalar,avx2,avx512")
        self.assertEqual(meta["mhz_per_cpu"], 2600)
        self.assertIn("date", meta)
        self.assertIn("command", meta)
        self.assertGreater(b["tolerance"], 0)
        self.assertGreater(b["short_tolerance"], b["tolerance"])

    def test_only_is_not_anchored_when_a_references_flags_moved(self):
        """The flags' exclusion once wrapped --only in a lookahead anchored at
        the name's start: '--only avx512' selected nothing (exit 2) and
        'avx512|iv/' nothing of avx512, so a real -30% passed (found in
        review). Now the user's regex searches as written and the fast-math
        figures alone are left out, said so."""
        moved = "-O3 -march=x86-64-v3 -ffast-math"
        r = self.check(single_run(scaled(RATES, AVX512_ALL, 0.7)), "--only", "avx512", fastmath_flags=moved)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("REGRESSION", self.row(r.stdout, FIG_O2))
        self.assertNotIn(FIG_FM, r.stdout)
        self.assertIn("left out the figures against naive_fastmath", r.stdout)
        r = self.check(single_run(RATES), "--only", "avx512|nothing", fastmath_flags=moved)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("| ok |", self.row(r.stdout, FIG_O2))
        # every selected figure left out: nothing compared, a failure (1), not bad input
        r = self.check(single_run(RATES), "--only", "naive_fastmath", fastmath_flags=moved)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        # left out for its flags, an unvectorized fast-math loop is no refusal
        r = self.check(single_run(RATES), vectorized="false", fastmath_flags=moved)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_a_baseline_keeps_every_figure_it_gates(self):
        """A refresh from a run with an errored case wrote the baseline without
        its figure, exit 0, and the case was never gated again (found in
        review); so did a filter that left cases out."""
        rows = single_run(RATES)
        for b in rows:
            if b["name"] == AVX512_ALL:
                b["error_occurred"], b["error_message"] = True, "could not allocate"
        r = self.write_baseline(rows)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("errored benchmark rows", r.stderr)
        fewer = {k: v for k, v in RATES.items() if k != AVX512_ALL}
        r = self.write_baseline(single_run(fewer))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("2 figures of %s are not in this run" % self.baseline, r.stderr)
        self.assertIn(FIG_FM, self.load_baseline()["figures"])  # not rewritten
        r = self.write_baseline(single_run(fewer), "--drop-figures")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn(FIG_FM, self.load_baseline()["figures"])
        # a refresh of some figures (--only) keeps the file's others
        self.assertEqual(self.write_baseline(single_run(RATES)).returncode, 0)
        before = self.load_baseline()["figures"]
        r = self.write_baseline(single_run(scaled(RATES, AVX512_ALL, 0.5)), "--only", "avx512")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        after = self.load_baseline()["figures"]
        self.assertEqual(set(after), set(before))
        self.assertAlmostEqual(after[FIG_O2], before[FIG_O2] / 2, places=3)  # refreshed
        other = FIG_O2.replace("avx512", "avx2")
        self.assertEqual(after[other], before[other])  # kept

    def test_a_new_baseline_has_the_implied_vol_figures(self):
        """The iv rules lived only in the committed baseline: a new machine
        type's file stopped gating implied vol (found in review)."""
        rates = dict(RATES, **{"iv/bsm/avx512/65536": 9e6, "iv/quantlib/65536": 1e6,
                               "iv/normal/avx512/65536": 30e6, "iv/normal/scalar/65536": 5e6})
        os.remove(self.baseline)
        self.assertEqual(self.write_baseline(single_run(rates)).returncode, 0)
        figures = self.load_baseline()["figures"]
        self.assertAlmostEqual(figures["iv/bsm/avx512/65536 / iv/quantlib/65536"], 9.0, places=3)
        self.assertAlmostEqual(figures["iv/normal/avx512/65536 / iv/normal/scalar/65536"], 6.0, places=3)

    def test_a_malformed_or_unvectorized_baseline_is_refused(self):
        b = self.load_baseline()
        b["select"] = 5
        with open(self.baseline, "w", encoding="utf-8") as f:
            json.dump(b, f)
        r = self.check(single_run(RATES))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn('"select" must be a regex string', r.stderr)
        del b["select"]
        b["metadata"]["fastmath_baseline_vectorized"] = "false"
        with open(self.baseline, "w", encoding="utf-8") as f:
            json.dump(b, f)
        r = self.check(single_run(RATES))
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("not vectorized", r.stderr)

    def test_summarize_refuses_what_is_not_a_run_and_shows_a_zero_rate(self):
        """A list, a list context or a non-object entry gave a traceback; a
        zero rate a ZeroDivisionError (found in review)."""
        for bad in ([], {"context": [], "benchmarks": []}, {"context": {}, "benchmarks": [5]}):
            path = self.path("bad.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(bad, f)
            r = subprocess.run([sys.executable, SUMMARIZE, path], capture_output=True, text=True,
                               timeout=60, check=False)
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertIn("summarize.py: ", r.stderr)
            self.assertNotIn("Traceback", r.stderr)
        rows = single_run(RATES)
        for b in rows:
            if b["name"] == AVX512_ALL:
                b["items_per_second"] = 0.0
        r = self.summarize(rows, "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("| batch/bsm/avx512/all/65536 | 0 | - |", r.stdout)

    def test_baseline_is_stable_and_sorted(self):
        with open(self.baseline, encoding="utf-8") as f:
            first = f.read()
        self.assertEqual(self.write_baseline(single_run(RATES)).returncode, 0)
        with open(self.baseline, encoding="utf-8") as f:
            second = f.read()
        self.assertEqual(first, second)
        self.assertTrue(first.endswith("}\n"))
        self.assertEqual(first, json.dumps(json.loads(first), indent=2, sort_keys=True) + "\n")

    def test_write_records_command(self):
        r = self.write_baseline(single_run(RATES), "--command", "greeks_bench --x")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.load_baseline()["metadata"]["command"], "greeks_bench --x")

    def test_explicit_pair_definition_survives_refresh(self):
        b = self.load_baseline()
        b["definitions"].append({"case": "engine/chain/1000", "reference": "engine/naive/1000"})
        with open(self.baseline, "w", encoding="utf-8") as f:
            json.dump(b, f)
        rates = dict(RATES, **{"engine/chain/1000": 30e6, "engine/naive/1000": 10e6})
        self.assertEqual(self.write_baseline(single_run(rates)).returncode, 0)
        b = self.load_baseline()
        self.assertIn({"case": "engine/chain/1000", "reference": "engine/naive/1000"},
                      b["definitions"])
        # select (n = 65536) applies to rules and pairs alike: widen it for this pair
        self.assertNotIn("engine/chain/1000 / engine/naive/1000", b["figures"])
        b["select"] = "/(65536|1000)$"
        with open(self.baseline, "w", encoding="utf-8") as f:
            json.dump(b, f)
        self.assertEqual(self.write_baseline(single_run(rates)).returncode, 0)
        fig = "engine/chain/1000 / engine/naive/1000"
        self.assertAlmostEqual(self.load_baseline()["figures"][fig], 3.0)
        r = self.check(single_run(scaled(rates, "engine/chain/1000", 0.5)))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("REGRESSION", self.row(r.stdout, fig))

    def test_several_runs_give_each_figure_its_median(self):
        runs = []
        for i, f in enumerate((1.0, 0.5, 1.02)):
            runs += ["--run", self.save(f"r{i}.json", single_run(scaled(RATES, AVX512_ALL, f)))]
        r = self.gate(*runs, "--write-baseline", self.baseline)
        self.assertEqual(r.returncode, 0, r.stderr)
        b = self.load_baseline()
        self.assertAlmostEqual(b["figures"][FIG_O2], 87 / 14, places=3)
        self.assertEqual(b["metadata"]["runs"], 3)
        # one disturbed run of three does not fail the gate; two do
        r = self.gate(*runs, "--baseline", self.baseline)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.save("r2.json", single_run(scaled(RATES, AVX512_ALL, 0.5)))  # r1, r2 at 50%
        r = self.gate(*runs, "--baseline", self.baseline)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

    # ---- compare ----

    def test_identical_run_passes(self):
        r = self.check(single_run(RATES))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("REGRESSION", r.stdout)
        self.assertIn("| figure | baseline | run | change | verdict |", r.stdout)
        self.assertIn("| ok |", self.row(r.stdout, FIG_O2))
        self.assertIn("PASS", r.stdout)

    def test_gb_suffixes_are_ignored(self):
        r = self.check(single_run(RATES, suffix="/min_time:0.100"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("| missing |", r.stdout)

    def test_30_percent_drop_fails_and_is_named(self):
        r = self.check(single_run(scaled(RATES, AVX512_ALL, 0.7)))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        for fig in (FIG_O2, FIG_FM):
            row = self.row(r.stdout, fig)
            self.assertIn("REGRESSION", row)
            self.assertIn("-30.0%", row)
        self.assertEqual(r.stdout.count("REGRESSION"), 2)
        self.assertIn("FAIL", r.stdout)

    def test_drop_within_tolerance_passes(self):
        r = self.check(single_run(scaled(RATES, AVX512_ALL, 0.9)))
        self.assertEqual(r.returncode, 0, r.stdout)
        r = self.check(single_run(scaled(RATES, AVX512_ALL, 0.7)), "--tolerance", "0.35")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("tolerance 35%", r.stdout)

    def test_reference_slowing_down_is_an_improvement(self):
        # the figure is a ratio: a slower baseline implementation raises it
        r = self.check(single_run(scaled(RATES, "batch/naive_o2/all/65536", 0.5)))
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("improved", self.row(r.stdout, FIG_O2))

    def test_improvement_passes(self):
        r = self.check(single_run(scaled(RATES, AVX512_ALL, 1.3)))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("improved", self.row(r.stdout, FIG_O2))
        self.assertIn("+30.0%", self.row(r.stdout, FIG_O2))

    def test_a_figure_missing_for_a_reason_the_run_states_passes_unless_strict(self):
        """avx512 cases absent from a run whose ISAs lack avx512: "absent",
        passes; the same run claiming avx512 (a renamed case, a wrong filter):
        "missing", fails (missing figures always passed before)."""
        rates = {k: v for k, v in RATES.items() if "/avx512/" not in k}
        # a CPU without avx512 is another machine type than the baseline's,
        # even under the same (masked) model name: refused unless allowed
        r = self.check(single_run(rates), isas="scalar,avx2")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("is from a CPU with the ISAs scalar,avx2, the baseline's with scalar,avx2,avx512",
                      r.stderr)
        r = self.check(single_run(rates), "--allow-other-cpu", isas="scalar,avx2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("absent", self.row(r.stdout, FIG_O2))
        self.assertIn("| ok |", self.row(r.stdout, FIG_O2.replace("avx512", "avx2")))
        r = self.check(single_run(rates), "--strict", "--allow-other-cpu", isas="scalar,avx2")
        self.assertEqual(r.returncode, 1, r.stdout)
        r = self.check(single_run(rates))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("| missing |", self.row(r.stdout, FIG_O2))

    def test_an_isa_the_cpu_reports_but_greeks_lost_fails(self):
        """A detection that dropped AVX-512 on an AVX-512 machine removed the
        avx512 cases, and the gate read them as a machine without it: PASS."""
        rates = {k: v for k, v in RATES.items() if "/avx512/" not in k}
        lost = {"cpu_isas": "scalar,avx2,avx512", "greeks_dispatch": "avx2", "greeks_isa_forced": ""}
        r = self.check(single_run(rates), isas="scalar,avx2", extra=lost)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("| missing |", self.row(r.stdout, FIG_O2))
        self.assertIn("the CPU reports avx512 but greeks offered only scalar,avx2", r.stdout)
        # a CPU that really lacks it: absent, as before
        r = self.check(single_run(rates), "--allow-other-cpu", isas="scalar,avx2",
                       extra={"cpu_isas": "scalar,avx2", "greeks_dispatch": "avx2", "greeks_isa_forced": ""})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("absent", self.row(r.stdout, FIG_O2))

    def test_dispatch_below_the_widest_isa_fails_unless_forced(self):
        """Every gated case pins its ISA, so a dispatcher that picked AVX2 on
        an AVX-512 machine moved no figure."""
        fell = {"cpu_isas": "scalar,avx2,avx512", "greeks_dispatch": "avx2", "greeks_isa_forced": ""}
        r = self.check(single_run(RATES), extra=fell)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("dispatch chose avx2, not the widest ISA offered (avx512)", r.stdout)
        r = self.check(single_run(RATES), extra=dict(fell, greeks_isa_forced="avx2"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.check(single_run(RATES), extra=dict(fell, greeks_dispatch="avx512"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_a_figure_one_of_several_runs_lacks_is_not_filled_in_by_the_others(self):
        """With --run a --run b, a case errored (or missing) in b passed on a's value."""
        good = self.save("good.json", single_run(RATES))
        errored = single_run(RATES)
        for b in errored:
            if b["name"] == AVX512_ALL:
                b["error_occurred"], b["error_message"] = True, "engine: cannot start 2 threads"
                del b["items_per_second"]
        r = self.gate("--run", good, "--run", self.save("bad.json", errored), "--baseline", self.baseline)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("| ERROR |", self.row(r.stdout, FIG_O2))
        rates = {k: v for k, v in RATES.items() if k != AVX512_ALL}
        r = self.gate("--run", good, "--run", self.save("short.json", single_run(rates)),
                      "--baseline", self.baseline)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("| missing |", self.row(r.stdout, FIG_O2))
        r = self.gate("--run", good, "--run", self.save("good2.json", single_run(RATES)),
                      "--baseline", self.baseline)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_a_baseline_of_several_runs_needs_each_figure_in_each(self):
        """--write-baseline with --run a --run b filled a figure b lacked with
        a's value, labelled a median of 2 runs (found in review)."""
        rates = {k: v for k, v in RATES.items() if k != AVX512_ALL}
        r = self.gate("--run", self.save("a.json", single_run(RATES)), "--run", self.save("b.json", single_run(rates)),
                      "--write-baseline", self.path("two.json"))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"figure {AVX512_ALL} / ", r.stderr)
        self.assertIn(" is in 1 of 2 runs (not in ", r.stderr)
        self.assertFalse(os.path.exists(self.path("two.json")))
        r = self.gate("--run", self.save("a.json", single_run(RATES)), "--run", self.save("c.json", single_run(RATES)),
                      "--write-baseline", self.path("two.json"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_quantlib_figures_a_filter_left_out_are_missing_when_the_build_has_quantlib(self):
        """A run filtered to leave out QuantLib's case passed with its figures
        "absent", as if the build had no QuantLib (found in review): the build
        now says so in greeks_quantlib."""
        iv = {"iv/bsm/avx512/65536": 9e6, "iv/quantlib/65536": 1e6}
        os.remove(self.baseline)
        self.assertEqual(self.write_baseline(single_run(dict(RATES, **iv))).returncode, 0)
        figure = "iv/bsm/avx512/65536 / iv/quantlib/65536"
        filtered = single_run(dict(RATES, **{"iv/bsm/avx512/65536": 9e6}))
        r = self.check(filtered, extra={"greeks_quantlib": "true"})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("| missing |", self.row(r.stdout, figure))
        r = self.check(filtered, extra={"greeks_quantlib": "false"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("| absent |", self.row(r.stdout, figure))

    def test_a_zero_throughput_is_an_error_not_a_traceback(self):
        benchmarks = repeated_run(RATES)
        for b in benchmarks:
            if b["run_name"] == AVX512_ALL:
                b["items_per_second"] = 0.0
        r = self.check(benchmarks)
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("| missing |", self.row(r.stdout, FIG_O2))

    def test_a_run_from_another_cpu_model_is_refused(self):
        """Ratios move between CPU models: a run on another model was compared
        silently, hiding up to a 30% loss or inventing one."""
        p = self.save("amd.json", single_run(RATES), extra={"cpu_model": "AMD EPYC"})
        self.assertEqual(self.gate("--run", p, "--write-baseline", self.baseline).returncode, 0)
        self.assertEqual(self.load_baseline()["metadata"]["cpu_model"], "AMD EPYC")
        intel = {"cpu_model": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"}
        r = self.check(single_run(RATES), extra=intel)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("the baseline on 'AMD EPYC'", r.stderr)
        self.assertIn("--allow-other-cpu", r.stderr)
        r = self.check(single_run(RATES), "--allow-other-cpu", extra=intel)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("compared anyway", r.stdout)
        r = self.check(single_run(RATES), extra={"cpu_model": "AMD EPYC"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_missing_reference_is_missing_and_fails(self):
        rates = {k: v for k, v in RATES.items() if k != "batch/naive_o2/all/65536"}
        r = self.check(single_run(rates))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("missing", self.row(r.stdout, FIG_O2))
        self.assertIn("| ok |", self.row(r.stdout, FIG_FM))

    def test_an_errored_case_fails(self):
        """Google Benchmark exits 0 after SkipWithError: a run whose cases all
        errored passed the gate ("29 missing -> PASS")."""
        benchmarks = single_run(RATES)
        for b in benchmarks:
            if b["name"] == AVX512_ALL:
                b["error_occurred"], b["error_message"] = True, "could not allocate"
                del b["items_per_second"]
        r = self.check(benchmarks)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("| ERROR |", self.row(r.stdout, FIG_O2))

    def test_a_run_that_compares_nothing_fails(self):
        rates = {k: v for k, v in RATES.items() if "naive" not in k}
        r = self.check(single_run(rates), isas="")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("nothing compared", r.stdout)

    def test_figures_against_a_reference_built_otherwise_are_left_out(self):
        """The build's naive_fastmath flags changed (-march=native to x86-64-v4)
        and every figure against it read +48% to +103%: a 25% loss of the
        kernel passed. Such figures are left out, said so; the others gate."""
        r = self.check(single_run(scaled(RATES, AVX512_ALL, 0.5)), fastmath_flags="-O3 -march=x86-64-v4 -ffast-math")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("left out the figures against naive_fastmath", r.stdout)
        self.assertNotIn(f"| {FIG_FM} |", r.stdout)
        self.assertIn("REGRESSION", self.row(r.stdout, FIG_O2))

    def test_thread_counts_name_different_cases(self):
        self.assertEqual(summarize.clean("engine/batch/threads:2/1048576/real_time"), "engine/batch/threads:2/1048576")
        self.assertEqual(summarize.clean("batch/bsm/avx2/all/65536/min_time:0.100/repeats:3"), "batch/bsm/avx2/all/65536")

    def test_only_selects_figures(self):
        r = self.check(single_run(scaled(RATES, AVX512_ALL, 0.5)), "--only", "^chain/")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertNotIn("batch/", r.stdout.split("| figure |", 1)[1])
        self.assertIn("chain/bsm/avx512/all/65536", r.stdout)

    def test_median_is_used_not_mean(self):
        # median as in the baseline, mean 40% lower: the gate must pass
        r = self.check(repeated_run(RATES, means={AVX512_ALL: 0.6 * RATES[AVX512_ALL]}))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("| ok |", self.row(r.stdout, FIG_O2))
        self.assertIn("medians of repetitions", r.stdout)
        # median 40% lower, mean as in the baseline: the gate must fail
        r = self.check(repeated_run(RATES, medians={AVX512_ALL: 0.6 * RATES[AVX512_ALL]}))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("REGRESSION", self.row(r.stdout, FIG_O2))
        self.assertIn("-40.0%", self.row(r.stdout, FIG_O2))

    def test_only_matching_nothing_exits_2(self):
        r = self.check(single_run(RATES), "--only", "^no-such-case/")
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("no baseline figure selected", r.stderr)

    # ---- a fast-math baseline that was not vectorized ----

    def test_fastmath_ratio_against_unvectorized_baseline_is_refused(self):
        for vectorized in ("false", None):  # said so, or not said at all
            r = self.check(single_run(RATES), vectorized=vectorized)
            self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
            self.assertIn("refusing to gate 12 figures against naive_fastmath", r.stderr)
            self.assertNotIn(FIG_FM, r.stdout)
            self.assertNotIn("Traceback", r.stderr)
        self.assertIn("not vectorized", self.check(single_run(RATES),
                                                   vectorized="false").stderr)

    def test_vectorized_baseline_ratio_is_gated(self):
        r = self.check(single_run(scaled(RATES, AVX512_ALL, 0.7)), vectorized="true")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("REGRESSION", self.row(r.stdout, FIG_FM))

    def test_unvectorized_baseline_still_gates_the_o2_figures(self):
        only = "^(?!.*naive_fastmath)"
        r = self.check(single_run(RATES), "--only", only, vectorized="false")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("| ok |", self.row(r.stdout, FIG_O2))
        self.assertNotIn(FIG_FM, r.stdout)
        r = self.check(single_run(scaled(RATES, AVX512_ALL, 0.7)), "--only", only,
                       vectorized="false")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

    def test_write_baseline_leaves_out_unvectorized_fastmath_figures(self):
        r = self.gate("--run", self.save("base_run.json", single_run(RATES), "false"),
                      "--write-baseline", self.baseline)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("left out 12 figures against naive_fastmath", r.stdout)
        b = self.load_baseline()
        self.assertIn(FIG_O2, b["figures"])
        self.assertNotIn(FIG_FM, b["figures"])
        self.assertEqual(b["metadata"]["fastmath_baseline_vectorized"], "false")

    def test_short_refuses_an_unvectorized_baseline(self):
        r = self.gate("short", "--bench", self.fake_bench(vectorized="false"),
                      "--baseline", self.baseline)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("refusing to gate", r.stderr)
        self.assertEqual(len(self.calls()), 1)

    def test_summarize_refuses_the_fastmath_ratio(self):
        r = self.summarize(single_run(RATES), "false")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("vs naive_fastmath: refused: the fast-math baseline", r.stdout)
        self.assertIn(NOT_VECTORIZED, r.stdout)
        row = self.row(r.stdout, AVX512_ALL)
        self.assertTrue(row.endswith("| refused |"), row)
        self.assertIn(f"{87 / 14:.2f}x", row)  # vs naive_o2 still shown
        self.assertIn("vs fastmath refused", r.stdout)
        self.assertNotIn(f"{87 / 88:.2f}x vs fastmath", r.stdout)

    def test_summarize_reports_the_ratio_of_a_vectorized_baseline(self):
        r = self.summarize(single_run(RATES), "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("refused", r.stdout)
        self.assertTrue(self.row(r.stdout, AVX512_ALL).endswith(f"| {87 / 88:.2f}x |"))
        self.assertIn(f"{87 / 88:.2f}x vs fastmath", r.stdout)

    # ---- bad input ----

    def test_unreadable_run_exits_2(self):
        r = self.gate("--run", self.path("nonexistent.json"), "--baseline", self.baseline)
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read run", r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    def test_invalid_json_exits_2(self):
        p = self.path("broken.json")
        with open(p, "w", encoding="utf-8") as f:
            f.write('{"benchmarks": [')
        r = self.gate("--run", p, "--baseline", self.baseline)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not valid JSON", r.stderr)

    def test_not_benchmark_json_exits_2(self):
        p = self.path("list.json")
        with open(p, "w", encoding="utf-8") as f:
            json.dump([1, 2, 3], f)
        r = self.gate("--run", p, "--baseline", self.baseline)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not Google Benchmark JSON", r.stderr)

    def test_unreadable_baseline_exits_2(self):
        run = self.save("run.json", single_run(RATES))
        r = self.gate("--run", run, "--baseline", self.path("nope.json"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read baseline", r.stderr)
        p = self.path("bad_baseline.json")
        with open(p, "w", encoding="utf-8") as f:
            json.dump({"figures": {"no separator": 1.0}}, f)
        r = self.gate("--run", run, "--baseline", p)
        self.assertEqual(r.returncode, 2)
        self.assertNotIn("Traceback", r.stderr)

    # ---- short ----

    def fake_bench(self, factor=1.0, fail=False, per_call=None, vectorized="true"):
        """An executable standing in for greeks_bench: writes RATES (avx512 all
        scaled by factor) as --benchmark_out JSON and records its arguments.
        per_call {call number (1-based): {case: factor}} disturbs single calls."""
        per_call = {str(k): v for k, v in (per_call or {}).items()}
        p = self.path("fake_bench")
        with open(p, "w", encoding="utf-8") as f:
            f.write(f"""#!{sys.executable}
import json, re, sys
args = sys.argv[1:]
with open({self.path('fake_args.json')!r}, 'a') as f:
    f.write(json.dumps(args) + '\\n')
with open({self.path('fake_args.json')!r}) as f:
    call = len(f.readlines())
if {fail!r}:
    sys.exit(1)
opt = dict(a[2:].split('=', 1) for a in args if '=' in a)
rx = re.compile(opt['benchmark_filter'])
rates = {json.dumps(RATES)}
rates[{AVX512_ALL!r}] *= {factor!r}
for case, f in {json.dumps(per_call)}.get(str(call), {{}}).items():
    rates[case] *= f
doc = {json.dumps(doc([], vectorized))}
for name, ips in rates.items():
    if rx.search(name):
        doc['benchmarks'].append({{'name': name, 'run_name': name, 'run_type': 'iteration',
                                  'items_per_second': ips}})
        doc['benchmarks'].append({{'name': name + '_median', 'run_name': name,
                                  'run_type': 'aggregate', 'aggregate_name': 'median',
                                  'items_per_second': ips}})
with open(opt['benchmark_out'], 'w') as f:
    json.dump(doc, f)
""")
        os.chmod(p, os.stat(p).st_mode | stat.S_IXUSR)
        return p

    def calls(self):
        with open(self.path("fake_args.json"), encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def test_short_passes_and_runs_the_small_filter(self):
        r = self.gate("short", "--bench", self.fake_bench(), "--baseline", self.baseline)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        (args,) = self.calls()
        self.assertIn("--benchmark_repetitions=3", args)
        self.assertIn("--benchmark_min_time=0.05", args)
        self.assertIn("--benchmark_out_format=json", args)
        # only the `all` figures at 65536 are gated; price ones are not even listed
        self.assertIn("| ok |", self.row(r.stdout, FIG_O2))
        self.assertNotIn("/price/", r.stdout)
        self.assertNotIn("| missing |", r.stdout)
        self.assertIn("12 figures", r.stdout)

    def test_short_fails_on_regression_after_retry(self):
        r = self.gate("short", "--bench", self.fake_bench(0.5), "--baseline", self.baseline)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(len(self.calls()), 2)  # measured again before failing
        self.assertIn("REGRESSION", self.row(r.stdout, FIG_O2))

    def test_short_retry_is_not_fooled_by_a_slow_reference(self):
        # avx512 regressed on both attempts; on the second, the reference was
        # disturbed too, which alone would lift the figure back above the
        # baseline. Each case's best throughput over the attempts still fails.
        bench = self.fake_bench(0.5, per_call={2: {"batch/naive_o2/all/65536": 0.4}})
        r = self.gate("short", "--bench", bench, "--baseline", self.baseline)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(len(self.calls()), 2)
        self.assertIn("REGRESSION", self.row(r.stdout, FIG_O2))
        self.assertIn("-50.0%", self.row(r.stdout, FIG_O2))

    def test_short_retry_recovers_from_noise(self):
        # avx512 disturbed on the first attempt only: measured again, passes
        bench = self.fake_bench(per_call={1: {AVX512_ALL: 0.5}})
        r = self.gate("short", "--bench", bench, "--baseline", self.baseline)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.calls()), 2)
        self.assertIn("2 attempts", r.stdout)
        self.assertIn("| ok |", self.row(r.stdout, FIG_O2))
        # no regression: no second attempt
        os.remove(self.path("fake_args.json"))
        r = self.gate("short", "--bench", self.fake_bench(), "--baseline", self.baseline)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.calls()), 1)

    def test_short_uses_the_looser_tolerance(self):
        # -30% fails the 15% tolerance but not the short gate's
        r = self.gate("short", "--bench", self.fake_bench(0.7), "--baseline", self.baseline)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.gate("short", "--bench", self.fake_bench(0.7), "--baseline", self.baseline,
                      "--tolerance", "0.15", "--retries", "0")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

    def test_short_bench_failure_exits_2(self):
        r = self.gate("short", "--bench", self.fake_bench(fail=True), "--baseline",
                      self.baseline)
        self.assertEqual(r.returncode, 2)
        self.assertIn("exited with status 1", r.stderr)
        r = self.gate("short", "--bench", self.path("no_such_bench"), "--baseline",
                      self.baseline)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not found", r.stderr)


if __name__ == "__main__":
    unittest.main()
