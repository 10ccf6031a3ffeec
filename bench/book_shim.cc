// bench/book_shim.cc - registers the book cases (book_cases.c) with Google
// Benchmark: real time (several threads, fsyncs), items_per_second = trades,
// events, positions or ticks per second, and p50_us / p99_us: for the append
// cases each trade's acknowledgement, for risk_tick each tick's fold.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <vector>

#include "book_cases.h"

namespace {

std::vector<void *> g_states;

void run_book_case(benchmark::State &state, size_t index) {
  const book_case *c = book_cases_get(index);
  if (!g_states[index]) {
    char error[256] = "";
    g_states[index] = c->create(c, error, sizeof error);
    if (!g_states[index]) {
      state.SkipWithError(error);
      return;
    }
  }
  void *s = g_states[index];
  for (auto _ : state) {
    c->run(s);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(c->items));
  double p50 = 0, p99 = 0;
  if (book_case_latency(s, &p50, &p99)) {
    state.counters["p50_us"] = p50;
    state.counters["p99_us"] = p99;
  }
}

}  // namespace

int main(int argc, char **argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  size_t count = book_cases_count();
  g_states.assign(count, nullptr);
  for (size_t i = 0; i < count; i++) {
    benchmark::RegisterBenchmark(book_cases_get(i)->name,
                                 [i](benchmark::State &state) { run_book_case(state, i); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::AddCustomContext("items", "trades appended, events replayed, positions loaded or valued");
  benchmark::AddCustomContext("store", "SQLite WAL, synchronous=FULL, in GREEKS_BENCH_DIR (default /tmp)");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (size_t i = 0; i < count; i++)
    if (g_states[i]) book_cases_get(i)->destroy(g_states[i]);
  return 0;
}
