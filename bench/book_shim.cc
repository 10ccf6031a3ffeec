// bench/book_shim.cc - registers the book cases (book_cases.c) and the
// strategy cases (strategy_cases.c) with Google
// Benchmark: real time (several threads, fsyncs), items_per_second = trades,
// events, positions or ticks per second, and p50_us / p99_us: for the append
// cases each trade's acknowledgement, for risk_tick each tick's fold.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <vector>

#include "book_cases.h"

namespace {

// Every case of both tables, and its state once created (on first run).
struct registered_case {
  const book_case *c;
  bool keeps_latency;  // the book's cases record p50/p99 (book_case_latency)
  void *state;
};

std::vector<registered_case> g_cases;

void run_book_case(benchmark::State &state, size_t index) {
  registered_case &r = g_cases[index];
  if (!r.state) {
    char error[256] = "";
    r.state = r.c->create(r.c, error, sizeof error);
    if (!r.state) {
      state.SkipWithError(error);
      return;
    }
  }
  for (auto _ : state) {
    r.c->run(r.state);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(r.c->items));
  double p50 = 0, p99 = 0;
  if (r.keeps_latency && book_case_latency(r.state, &p50, &p99)) {
    state.counters["p50_us"] = p50;
    state.counters["p99_us"] = p99;
  }
}

}  // namespace

int main(int argc, char **argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  for (size_t i = 0; i < book_cases_count(); i++) g_cases.push_back({book_cases_get(i), true, nullptr});
  for (size_t i = 0; i < strategy_cases_count(); i++)
    g_cases.push_back({strategy_cases_get(i), false, nullptr});
  for (size_t i = 0; i < g_cases.size(); i++) {
    benchmark::RegisterBenchmark(g_cases[i].c->name,
                                 [i](benchmark::State &state) { run_book_case(state, i); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::AddCustomContext("items", "trades appended, events replayed, positions loaded or valued; strategy cases: calls");
  benchmark::AddCustomContext("store", "SQLite WAL, synchronous=FULL, in GREEKS_BENCH_DIR (default /tmp)");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (registered_case &r : g_cases)
    if (r.state) r.c->destroy(r.state);
  return 0;
}
