# greeks: the two commands a user needs are `make run` and `make test`; both install
# missing Debian packages first (scripts/install-deps.sh), then configure and build.
BUILD_DIR ?= build
SANITIZE_DIR ?= build-asan
TSAN_DIR ?= build-tsan
FUZZ_DIR ?= build-fuzz
# Per fuzz target: `make fuzz` (opt-in, long) runs until FUZZ_RUNS executions or
# FUZZ_SECONDS, whichever first (10^7 took 26-29 min for the CSV targets on a
# 2-core VM: docs/fuzzing.md); `make test` runs each FUZZ_TEST_SECONDS.
FUZZ_SECONDS ?= 2400
FUZZ_RUNS ?= 10000000
FUZZ_TEST_SECONDS ?= 8
CONCURRENCY_TESTS = test_engine test_portfolio test_breaker test_agent test_pricing_agent \
  test_book_service test_event_store test_risk_agent test_execution_agent test_event_feed test_strategy_agent \
  test_metrics test_book_follow
# The gRPC suites (label "concurrency" too) need the server, the CLI and the stubs.
CONCURRENCY_TARGETS = $(CONCURRENCY_TESTS) greeksd greeks greeks_python_stubs
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps deps-node-example build run test test-release test-sanitizers test-tsan bench clean

all: build

deps:
	@scripts/install-deps.sh

# The suites also run examples/node: Node.js and its packages from npm.
deps-node-example: deps
	@scripts/install-deps.sh --node-example

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DGREEKS_WERROR=ON $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The service with its embedded defaults (127.0.0.1:50051, plaintext, no token);
# Ctrl-C or SIGTERM drains it. GREEKSD_* variables or ARGS="--flag value" change it.
run: build
	$(BUILD_DIR)/api/greeksd $(ARGS)

test: test-release test-sanitizers test-tsan test-fuzz

test-release: build deps-node-example
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-sanitizers: deps-node-example
	cmake -S . -B $(SANITIZE_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEKS_WERROR=ON \
	  -DGREEKS_SANITIZE=address,undefined -DGREEKS_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(SANITIZE_DIR) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  ctest --test-dir $(SANITIZE_DIR) --output-on-failure -j $(JOBS)

# The concurrent suites (label "concurrency": the engine's and the gRPC suites,
# greeksd with 4 server threads) under ThreadSanitizer, two at a time as the
# other stages run (serially they took 206 s of make test's 15 minutes, 109 s
# with -j 2 on the 2-vCPU VM; the suites' waits are scaled by
# GREEKS_TEST_SLOWDOWN 10 under TSan, tests/CMakeLists.txt).
test-tsan: deps-node-example
	cmake -S . -B $(TSAN_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEKS_WERROR=ON \
	  -DGREEKS_SANITIZE=thread -DGREEKS_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(TSAN_DIR) -j $(JOBS) --target $(CONCURRENCY_TARGETS)
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$(CURDIR)/tests/tsan.supp \
	  ctest --test-dir $(TSAN_DIR) --output-on-failure -L concurrency -j $(JOBS)

# Kernel throughput per ISA against naive baselines; JSON in $(BUILD_DIR)/bench.json.
# Then the book (durable appends, replay, snapshot load, risk; docs/performance.md,
# "The book"); JSON in $(BUILD_DIR)/bench-book.json. The store files go to
# GREEKS_BENCH_DIR (default /tmp): durability is measured on that file system.
bench: build
	$(BUILD_DIR)/bench/greeks_bench --benchmark_out=$(BUILD_DIR)/bench.json \
	  --benchmark_out_format=json $(BENCH_ARGS)
	$(BUILD_DIR)/bench/greeks_book_bench --benchmark_repetitions=5 \
	  --benchmark_report_aggregates_only=true --benchmark_out=$(BUILD_DIR)/bench-book.json \
	  --benchmark_out_format=json $(BOOK_BENCH_ARGS)
	$(BUILD_DIR)/bench/greeks_decode_bench --benchmark_repetitions=3 \
	  --benchmark_report_aggregates_only=true --benchmark_out=$(BUILD_DIR)/bench-decode.json \
	  --benchmark_out_format=json

clean:
	rm -rf $(BUILD_DIR) $(SANITIZE_DIR) $(TSAN_DIR) $(FUZZ_DIR)

# libFuzzer targets (fuzz/, docs/fuzzing.md) in a clang build with ASan+UBSan.
.PHONY: fuzz-build fuzz test-fuzz
fuzz-build: deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEKS_WERROR=ON \
	  -DGREEKS_FUZZ=ON -DGREEKS_SANITIZE=address,undefined -DGREEKS_BUILD_TESTS=OFF -DGREEKS_BUILD_BENCH=OFF \
	  $(CMAKE_FLAGS)
	cmake --build $(FUZZ_DIR) -j $(JOBS)

# Each target briefly, as part of `make test`.
test-fuzz: fuzz-build
	GREEKS_FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) ASAN_OPTIONS=detect_leaks=1 \
	  ctest --test-dir $(FUZZ_DIR) --output-on-failure --no-tests=error -L fuzz -j $(JOBS)

# Each target to FUZZ_RUNS executions or FUZZ_SECONDS, one per core at a time; the
# executions and coverage each reached are printed (docs/fuzzing.md), the whole
# log kept in $(FUZZ_DIR)/fuzz.log. The exit status is ctest's: piped into grep,
# a finding exited 0 (found in review).
fuzz: fuzz-build
	GREEKS_FUZZ_SECONDS=$(FUZZ_SECONDS) GREEKS_FUZZ_RUNS=$(FUZZ_RUNS) ASAN_OPTIONS=detect_leaks=1 \
	  ctest --test-dir $(FUZZ_DIR) --output-on-failure -V -L fuzz -j $(JOBS) > $(FUZZ_DIR)/fuzz.log 2>&1; \
	  status=$$?; grep -E 'fuzz_|FINDING|tests passed|Failed' $(FUZZ_DIR)/fuzz.log; exit $$status

# Benchmark gate (docs/benchmark-gate.md): every benchmark with 5 repetitions, then
# bench/gate compares the figures with bench/baseline.json and exits 1 on a
# regression beyond the baseline's tolerance. Meant for a quiet machine.
.PHONY: load-test
# greeksd under load on loopback (docs/performance.md, "Serving overhead"):
# PriceChain with 16, 256 and 4096 contracts, closed loop, then 16 contracts at
# 5000 requests/s open loop, each beside the same chain priced in process.
# JSON per run in $(BUILD_DIR)/load/.
load-test: build
	bench/load-test $(BUILD_DIR)

.PHONY: telemetry-cost
# What logs at info, 1% traces exported over OTLP and /metrics scraped every
# second cost PriceChain throughput against all of it off, alternating rounds on
# one machine (issue 19's 3% budget; docs/performance.md, "Telemetry").
telemetry-cost: build
	bench/telemetry-cost $(BUILD_DIR)

.PHONY: cluster-bench
# Several greeksd on one PostgreSQL (docs/performance.md, "Several instances"):
# trades/s and acknowledgement latency with 1, 2 and 3 instances, then the time
# from a SIGKILL to every client trading again. JSON in $(BUILD_DIR)/cluster/.
cluster-bench: build
	bench/cluster-bench $(BUILD_DIR)

.PHONY: bench-gate
bench-gate:
	$(MAKE) bench BENCH_ARGS="--benchmark_repetitions=5 --benchmark_enable_random_interleaving=true"
	bench/gate --run $(BUILD_DIR)/bench.json

# Mutation testing of the safety checks (docs/mutation.md), opt-in and slow:
# each mutant in scripts/mutation/mutations.json is applied to a scratch worktree
# of HEAD (build-mutation/), rebuilt, and its tests run; the table and
# build-mutation/mutation.json say which were killed, survived or went stale.
.PHONY: mutation
mutation: deps
	scripts/mutation/run $(MUTATION_ARGS)

# Soak (docs/soak.md), opt-in: greeksd under SOAK_SECONDS (default an hour) of
# mixed valid, malformed, cancelled and expiring traffic; RSS and descriptors
# sampled and required flat; samples and verdict in $(BUILD_DIR)/soak/.
SOAK_SECONDS ?= 3600
.PHONY: soak
soak: build
	SOAK_SECONDS=$(SOAK_SECONDS) GREEKSD=$(BUILD_DIR)/api/greeksd GREEKS_STUBS=$(BUILD_DIR)/tests/grpc_stubs \
	  SOAK_OUT=$(BUILD_DIR)/soak nice -n 10 /usr/bin/python3 tests/soak/soak.py
