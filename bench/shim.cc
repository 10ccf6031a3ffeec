// bench/shim.cc - the thin C++ layer between Google Benchmark and the C cases in
// bench_cases.c: registers one benchmark per case and runs them.
//
// items_per_second in the output (and the JSON) is options priced per second.
// Each case runs for at least kDefaultMinTime seconds unless the command line
// passes --benchmark_min_time; --benchmark_repetitions=N gives mean/median/stddev.
// (The default goes in as a command-line flag rather than Benchmark::MinTime(),
// which would append "/min_time:0.200" to every case name.)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_cases.h"
#include "engine_cases.h"
#include "naive_bsm.h"
#include "greeks/batch.h"
#include "greeks/isa.h"

#ifndef GREEKS_NAIVE_O2_FLAGS
#define GREEKS_NAIVE_O2_FLAGS "unknown"
#endif
#ifndef GREEKS_NAIVE_FASTMATH_FLAGS
#define GREEKS_NAIVE_FASTMATH_FLAGS "unknown"
#endif

namespace {

// The ISAs the CPU and OS offer, by the compiler's own probe: "scalar,avx2,avx512"
// with the kernels' requirements (AVX-512 needs F and DQ, and AVX2 with FMA).
std::string cpu_isas() {
  __builtin_cpu_init();
  std::string isas = "scalar";
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2) isas += ",avx2";
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) isas += ",avx512";
  return isas;
}

// /proc/cpuinfo's first "model name", or "unknown": bench/gate refuses to
// compare a run with a baseline measured on another CPU model.
std::string cpu_model() {
  std::string model = "unknown";
  FILE *f = std::fopen("/proc/cpuinfo", "r");
  if (f == nullptr) return model;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "model name", 10) != 0) continue;
    const char *colon = std::strchr(line, ':');
    if (colon == nullptr) break;
    std::string value(colon + 1);
    size_t first = value.find_first_not_of(" \t");
    size_t last = value.find_last_not_of(" \t\r\n");
    if (first != std::string::npos) model = value.substr(first, last - first + 1);
    break;
  }
  std::fclose(f);
  return model;
}

constexpr const char *kDefaultMinTime = "--benchmark_min_time=0.2";  // s per case and repetition

// States are created on a case's first run and kept until every benchmark has
// finished: Google Benchmark calls a case several times (iteration-count search,
// repetitions) and the 1M-option inputs are not worth rebuilding each time. Cases
// with the same n share their arrays, so this costs one input set per size.
std::vector<void *> g_states;

void run_case(benchmark::State &state, size_t index) {
  const bench_case *c = bench_cases_get(index);
  if (!g_states[index]) {
    char error[256] = "";
    g_states[index] = bench_case_create(c, error, sizeof error);
    if (!g_states[index]) {
      state.SkipWithError(error);
      return;
    }
  }
  void *s = g_states[index];
  for (auto _ : state) {
    c->run(s);
    benchmark::DoNotOptimize(s);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(c->n));
}

std::vector<void *> g_engine_states;

// Engine cases use several threads: timed in real time, not the main thread's CPU.
void run_engine_case(benchmark::State &state, size_t index) {
  const engine_case *c = engine_cases_get(index);
  if (!g_engine_states[index]) {
    char error[256] = "";
    g_engine_states[index] = c->create(c, error, sizeof error);
    if (!g_engine_states[index]) {
      state.SkipWithError(error);
      return;
    }
  }
  void *s = g_engine_states[index];
  for (auto _ : state) {
    c->run(s);
    benchmark::ClobberMemory();
  }
  if (const char *failure = engine_case_failure(s)) {  // a failed call timed no work
    state.SkipWithError(failure);
    return;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(c->items));
  state.counters["threads"] = c->threads;
  if (c->accuracy) {  // implied vols: how close the timed results are, in the same run
    double median = 0, worst = 0, off = 0;
    c->accuracy(s, &median, &worst, &off);
    state.counters["median_rel_err"] = median;
    state.counters["worst_rel_err"] = worst;
    state.counters["off_by_1e-8"] = off;
  }
}

bool has_flag(int argc, char **argv, const char *flag) {
  size_t len = std::strlen(flag);
  for (int i = 1; i < argc; i++)
    if (std::strncmp(argv[i], flag, len) == 0 && (argv[i][len] == '=' || argv[i][len] == '\0'))
      return true;
  return false;
}

}  // namespace

int main(int argc, char **argv) {
  std::vector<char *> args(argv, argv + argc);
  std::string min_time = kDefaultMinTime;
  if (!has_flag(argc, argv, "--benchmark_min_time")) args.insert(args.begin() + 1, &min_time[0]);
  int args_count = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&args_count, args.data());
  if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) return 1;

  // A GREEKS_ISA the dispatcher refuses (an unknown name, "AVX512" in
  // capitals, an ISA this CPU lacks) makes every unpinned call fail or run
  // on scalar: the run would time failures under confident names (found in
  // review).
  gk_rc isa_rc = gk_isa_init();
  if (isa_rc != GK_RC_OK) {
    std::fprintf(stderr, "greeks_bench: GREEKS_ISA='%s': %s; not benchmarking\n", bench_cases_forced_isa(),
                 gk_rc_message(isa_rc));
    return 2;
  }

  // Every implementation against the scalar reference before timing anything:
  // a fast wrong answer is not a result.
  std::vector<char> report(4096);
  int agree = bench_cases_verify(1024, report.data(), report.size());
  std::fprintf(stderr, "greeks_bench: cross-check on 1024 options:\n%s", report.data());
  if (!agree) {
    std::fprintf(stderr, "greeks_bench: implementations disagree; not benchmarking\n");
    return 1;
  }

  size_t count = bench_cases_count();
  g_states.assign(count, nullptr);
  for (size_t i = 0; i < count; i++) {
    const bench_case *c = bench_cases_get(i);
    auto *b = benchmark::RegisterBenchmark(
        c->name, [i](benchmark::State &state) { run_case(state, i); });
    b->Unit(benchmark::kMicrosecond);
  }

  size_t engine_count = engine_cases_count();
  g_engine_states.assign(engine_count, nullptr);
  for (size_t i = 0; i < engine_count; i++) {
    const engine_case *c = engine_cases_get(i);
    auto *b = benchmark::RegisterBenchmark(c->name, [i](benchmark::State &state) { run_engine_case(state, i); });
    b->Unit(benchmark::kMillisecond);
    // Pooled cases work on other threads: wall time. The implied-vol cases run
    // on this one, where wall time also counts a busy neighbour's slices (a
    // 55% spread across repetitions, against which the gate's tolerance was
    // never measured): CPU time, as the batch and chain cases.
    if (std::strncmp(c->name, "iv/", 3) != 0) b->UseRealTime();
  }

  benchmark::AddCustomContext("greeks_isas", bench_cases_isas());
  // What the CPU itself reports, probed apart from the kernels' dispatcher
  // (libgcc's cpuid and xgetbv reading), and what the dispatcher chose: a
  // detection that lost AVX-512 would otherwise drop the avx512 cases and look
  // like a machine without it (bench/gate compares the three).
  benchmark::AddCustomContext("cpu_isas", cpu_isas());
  benchmark::AddCustomContext("greeks_dispatch", bench_cases_dispatched_isa());
  benchmark::AddCustomContext("greeks_isa_forced", bench_cases_forced_isa());
  benchmark::AddCustomContext("cpu_model", cpu_model());
  // Whether this build has QuantLib's cases: a run without them is "absent"
  // to the gate only then; a filter that left them out is "missing" (found in
  // review: the gate inferred a build without QuantLib from the run alone).
#ifdef GREEKS_HAVE_QUANTLIB
  benchmark::AddCustomContext("greeks_quantlib", "true");
#else
  benchmark::AddCustomContext("greeks_quantlib", "false");
#endif
  benchmark::AddCustomContext("naive_o2_flags", GREEKS_NAIVE_O2_FLAGS);
  benchmark::AddCustomContext("naive_fastmath_flags", GREEKS_NAIVE_FASTMATH_FLAGS);
  // "true" only if the build found libmvec calls in every loop of the fast-math
  // baseline; bench/summarize.py and bench/gate refuse "vs naive_fastmath" otherwise.
  benchmark::AddCustomContext("fastmath_baseline_vectorized", naive_fastmath_vectorized);
  benchmark::AddCustomContext("fastmath_baseline_vector_calls", naive_fastmath_vector_calls);
  benchmark::AddCustomContext("items", "options priced (items_per_second = options/s)");

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (void *s : g_states) bench_case_destroy(s);
  for (size_t i = 0; i < engine_count; i++)
    if (g_engine_states[i]) engine_cases_get(i)->destroy(g_engine_states[i]);
  return 0;
}
