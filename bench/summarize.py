#!/usr/bin/env python3
"""Summarize a greeks_bench JSON file (Google Benchmark --benchmark_out) as Markdown.

    python3 bench/summarize.py build/bench.json

One row per case: median options/s, ns/option, and the ratio of its throughput
to naive_o2 and to naive_fastmath with the same output mask and batch size,
taken from the same run. With --benchmark_repetitions=N the `median` aggregates
are used (and the spread of the repetitions is shown); otherwise the single runs.

The "vs naive_fastmath" ratios are printed only when the run's context says
fastmath_baseline_vectorized = "true" (the build found libmvec calls in every
loop of the fast-math baseline, bench/naive/check_vectorized.cmake). Otherwise
that column reads "refused" and the reason is printed: against a scalar loop the
ratio overstates the library several times over. Standard library only.
"""

import json
import statistics
import sys
from collections import OrderedDict

TARGET = ("avx512", "all", 65536)
TARGET_VS_FASTMATH = 2.0
TARGET_VS_O2 = 10.0


FASTMATH = "naive_fastmath"
FASTMATH_KEY = "fastmath_baseline_vectorized"


def fastmath_refusal(doc):
    """None if the run's fast-math baseline was vectorized, else why a ratio
    against it must not be reported."""
    ctx = doc.get("context") if isinstance(doc.get("context"), dict) else {}
    flags = ctx.get("naive_fastmath_flags", "?")
    value = ctx.get(FASTMATH_KEY)
    if value == "true":
        return None
    if value is None:
        return (f"the run does not say whether the fast-math baseline (`{flags}`) was "
                f"vectorized (no \"{FASTMATH_KEY}\" in its context: a greeks_bench "
                "older than that check)")
    calls = ctx.get("fastmath_baseline_vector_calls", "?")
    return (f"the fast-math baseline (`{flags}`) was not vectorized on the machine that "
            f"built it ({FASTMATH_KEY} = {value!r}; {calls}): against a scalar loop the "
            "ratio overstates the library")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def throughputs(doc):
    """Returns (OrderedDict name -> median items/s, dict name -> spread, errors)."""
    runs = OrderedDict()  # run_name -> list of items_per_second of single runs
    medians = {}
    errors = []
    for b in doc.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        if b.get("error_occurred"):
            errors.append(f"{name}: {b.get('error_message', 'error')}")
            continue
        ips = b.get("items_per_second")
        if ips is None:
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = ips
                runs.setdefault(name, [])
        else:
            runs.setdefault(name, []).append(ips)
    result = OrderedDict()
    spread = {}
    for name, values in runs.items():
        if name in medians:
            result[name] = medians[name]
        elif values:
            result[name] = statistics.median(values)
        else:
            continue
        if len(values) > 1 and result[name] > 0:  # a zero median has no relative spread
            spread[name] = (max(values) - min(values)) / result[name]
    return result, spread, errors


GB_SUFFIXES = ("min_time:", "min_warmup_time:", "repeats:", "iterations:")


def clean(name):
    """The case name without suffixes Google Benchmark may append. threads:N
    stays: it names a different case (threads:1 and threads:2 once collapsed
    into one name, whichever was read last)."""
    return "/".join(p for p in name.split("/")
                    if not p.startswith(GB_SUFFIXES) and p not in ("real_time", "process_time", "manual_time"))


LAYOUTS = ("batch", "chain")


def parse(name):
    """(layout, 'bsm', isa, mask, n) or (layout, impl, None, mask, n); None if not
    ours. Suffixes Google Benchmark may append ("/min_time:0.2", "/real_time") are
    ignored."""
    parts = clean(name).split("/")
    if not parts or parts[0] not in LAYOUTS:
        return None
    layout, parts = parts[0], parts[1:]
    try:
        if parts[0] == "bsm" and len(parts) == 4:
            return (layout, "bsm", parts[1], parts[2], int(parts[3]))
        if len(parts) == 3:
            return (layout, parts[0], None, parts[1], int(parts[2]))
    except ValueError:
        pass
    return None


def fmt_rate(x):
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.1f}{suffix}"
    return f"{x:.0f}"


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}x"


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        doc = load(argv[1])
    except (OSError, ValueError) as e:
        print(f"summarize.py: cannot read {argv[1]}: {e}", file=sys.stderr)
        return 2
    # the gate's own checks (bench/gate load_run): a traceback was the answer
    # to a list, a list context or a non-object entry (found in review)
    if (not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list)
            or not isinstance(doc.get("context", {}), dict)):
        print(f"summarize.py: {argv[1]} is not Google Benchmark JSON (an object with a "
              "\"benchmarks\" list and a \"context\" object)", file=sys.stderr)
        return 2
    try:
        rates, spread, errors = throughputs(doc)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        print(f"summarize.py: {argv[1]}: malformed benchmark entry ({type(e).__name__}: {e})",
              file=sys.stderr)
        return 2
    by_key = {}  # parse(name) -> items/s
    baseline = {}  # (impl, mask, n) -> items/s
    for name, ips in rates.items():
        key = parse(name)
        if key:
            by_key[key] = ips
            if key[1] in ("naive_o2", "naive_fastmath"):
                baseline[(key[0], key[1], key[3], key[4])] = ips

    ctx = doc.get("context", {})
    print(f"greeks_bench, {ctx.get('date', '?')}, {ctx.get('host_name', '?')}: "
          f"{ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz, "
          f"ISAs {ctx.get('greeks_isas', '?')}")
    print(f"naive_o2: `{ctx.get('naive_o2_flags', '?')}`, "
          f"naive_fastmath: `{ctx.get('naive_fastmath_flags', '?')}`")
    refusal = fastmath_refusal(doc)
    if refusal:
        print(f"vs naive_fastmath: refused: {refusal}")
    reps = any(b.get("run_type") == "aggregate" for b in doc.get("benchmarks", []))
    print("values: " + ("median of the repetitions" if reps else "single run") +
          "; ratios are throughput / baseline throughput with the same mask and n")
    print()

    show_spread = bool(spread)
    header = ["case", "options/s", "ns/option", "vs naive_o2", "vs naive_fastmath"]
    if show_spread:
        header.append("spread")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for name, ips in rates.items():
        key = parse(name)
        vs_o2 = vs_fm = None
        if key:
            o2 = baseline.get((key[0], "naive_o2", key[3], key[4]))
            fm = baseline.get((key[0], "naive_fastmath", key[3], key[4]))
            vs_o2 = ips / o2 if o2 else None
            vs_fm = ips / fm if fm else None
        fm_cell = "refused" if refusal else fmt_ratio(vs_fm)
        per_option = f"{1e9 / ips:.2f}" if ips > 0 else "-"  # a zero rate: no time per option
        row = [clean(name), fmt_rate(ips), per_option, fmt_ratio(vs_o2), fm_cell]
        if show_spread:
            row.append(f"{100 * spread[name]:.1f}%" if name in spread else "-")
        print("| " + " | ".join(row) + " |")
    if show_spread:
        print()
        print("spread = (max - min) / median of the repetitions' options/s")

    isa, mask, n = TARGET
    print()
    for layout in LAYOUTS:
        target = by_key.get((layout, "bsm", isa, mask, n))
        fm = baseline.get((layout, "naive_fastmath", mask, n))
        o2 = baseline.get((layout, "naive_o2", mask, n))
        if target and o2 and refusal:
            print(f"target ({layout}, {isa}, {mask}, {n}): vs fastmath refused (see above), "
                  f"{target / o2:.2f}x vs O2 (>= {TARGET_VS_O2:g}x)")
        elif target and fm and o2:
            print(f"target ({layout}, {isa}, {mask}, {n}): {target / fm:.2f}x vs fastmath "
                  f"(>= {TARGET_VS_FASTMATH:g}x), {target / o2:.2f}x vs O2 (>= {TARGET_VS_O2:g}x)")
        else:
            print(f"target ({layout}, {isa}, {mask}, {n}): n/a (case or baseline missing)")
    for e in errors:
        print(f"error: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
