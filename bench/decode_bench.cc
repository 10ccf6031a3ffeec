// bench/decode_bench.cc - greeksd's request decoding (api/server/requests.c)
// under Google Benchmark: a PriceChainRequest (the hand decoder every small
// call takes), a RevaluePortfolioRequest of N positions and a
// PriceBatchRequest of N contracts, delivered as gRPC delivers them (64 KiB
// slices), decoded by the paced hand decoders (portfolio_decode_any,
// batch_decode_any: what greeksd runs) and by protobuf-c alone (readall,
// unpack, kernel types: what it ran before adr/0041 and adr/0045).
// items_per_second = positions or contracts decoded; the counter paces =
// pace calls per decode.
//   build/bench/greeks_decode_bench --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>

extern "C" {
#include "requests.h"
}

namespace {

struct Message {
  std::vector<uint8_t> bytes;
  grpc_byte_buffer *payload = nullptr;
};

Message sliced(Message &m);

// N positions on 50 underlyings, packed by protobuf-c, cut into 64 KiB slices.
Message portfolio(size_t n) {
  std::vector<uint32_t> underlying(n);
  std::vector<Greeks__V1__OptionType> type(n);
  std::vector<double> strike(n), expiry(n), vol(n), quantity(n), multiplier(n, 100.0);
  uint64_t x = 23;
  for (size_t i = 0; i < n; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    underlying[i] = static_cast<uint32_t>((x >> 33) % 50);
    type[i] = (x >> 20) & 1 ? GREEKS__V1__OPTION_TYPE__CALL : GREEKS__V1__OPTION_TYPE__PUT;
    strike[i] = 80.0 + static_cast<double>((x >> 11) % 7000) / 100.0;
    expiry[i] = 0.05 + static_cast<double>((x >> 24) % 195) / 100.0;
    vol[i] = 0.1 + static_cast<double>((x >> 40) % 40) / 100.0;
    quantity[i] = static_cast<double>(static_cast<int>((x >> 50) % 21) - 10);
  }
  std::vector<double> spot(50), rate(50, 0.03);
  for (size_t k = 0; k < 50; k++) spot[k] = 100.0 + static_cast<double>(k);
  Greeks__V1__Markets markets = GREEKS__V1__MARKETS__INIT;
  markets.n_spot = markets.n_rate = 50, markets.spot = spot.data(), markets.rate = rate.data();
  Greeks__V1__Positions p = GREEKS__V1__POSITIONS__INIT;
  p.n_underlying = p.n_type = p.n_strike = p.n_expiry = p.n_vol = p.n_quantity = p.n_multiplier = n;
  p.underlying = underlying.data(), p.type = type.data(), p.strike = strike.data(), p.expiry = expiry.data();
  p.vol = vol.data(), p.quantity = quantity.data(), p.multiplier = multiplier.data();
  Greeks__V1__RevaluePortfolioRequest q = GREEKS__V1__REVALUE_PORTFOLIO_REQUEST__INIT;
  q.model = GREEKS__V1__MODEL__MODEL_BSM, q.markets = &markets, q.positions = &p;
  Message m;
  m.bytes.resize(greeks__v1__revalue_portfolio_request__get_packed_size(&q));
  greeks__v1__revalue_portfolio_request__pack(&q, m.bytes.data());
  return sliced(m);
}

// N contracts with every column, packed by protobuf-c, cut into 64 KiB slices.
Message batch(size_t n) {
  std::vector<Greeks__V1__OptionType> type(n);
  std::vector<double> spot(n), strike(n), expiry(n), rate(n, 0.03), yield(n, 0.01), vol(n);
  uint64_t x = 29;
  for (size_t i = 0; i < n; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    type[i] = (x >> 20) & 1 ? GREEKS__V1__OPTION_TYPE__CALL : GREEKS__V1__OPTION_TYPE__PUT;
    spot[i] = 100.0 + static_cast<double>((x >> 33) % 50);
    strike[i] = 80.0 + static_cast<double>((x >> 11) % 7000) / 100.0;
    expiry[i] = 0.05 + static_cast<double>((x >> 24) % 195) / 100.0;
    vol[i] = 0.1 + static_cast<double>((x >> 40) % 40) / 100.0;
  }
  Greeks__V1__Output outputs[] = {GREEKS__V1__OUTPUT__ALL_FIRST_ORDER};
  Greeks__V1__PriceBatchRequest q = GREEKS__V1__PRICE_BATCH_REQUEST__INIT;
  q.model = GREEKS__V1__MODEL__MODEL_BSM;
  q.n_spot = q.n_strike = q.n_expiry = q.n_rate = q.n_yield = q.n_vol = q.n_type = n;
  q.spot = spot.data(), q.strike = strike.data(), q.expiry = expiry.data(), q.rate = rate.data();
  q.yield = yield.data(), q.vol = vol.data(), q.type = type.data();
  q.n_outputs = 1, q.outputs = outputs;
  Message m;
  m.bytes.resize(greeks__v1__price_batch_request__get_packed_size(&q));
  greeks__v1__price_batch_request__pack(&q, m.bytes.data());
  return sliced(m);
}

// A PriceChainRequest of N contracts (strike, expiry, vol, type; all
// first-order outputs), packed by protobuf-c, cut into 64 KiB slices.
Message chain(size_t n) {
  std::vector<Greeks__V1__OptionType> type(n);
  std::vector<double> strike(n), expiry(n), vol(n);
  for (size_t i = 0; i < n; i++) {
    type[i] = i % 2 ? GREEKS__V1__OPTION_TYPE__CALL : GREEKS__V1__OPTION_TYPE__PUT;
    strike[i] = 80.0 + static_cast<double>(i % 400) / 10.0;
    expiry[i] = 0.25 + static_cast<double>(i % 8) / 4.0;
    vol[i] = 0.2 + static_cast<double>(i % 10) / 100.0;
  }
  Greeks__V1__Market market = GREEKS__V1__MARKET__INIT;
  market.spot = 100.0, market.rate = 0.03, market.yield = 0.01;
  Greeks__V1__ChainContracts contracts = GREEKS__V1__CHAIN_CONTRACTS__INIT;
  contracts.n_strike = contracts.n_expiry = contracts.n_vol = contracts.n_type = n;
  contracts.strike = strike.data(), contracts.expiry = expiry.data(), contracts.vol = vol.data();
  contracts.type = type.data();
  Greeks__V1__Output outputs[] = {GREEKS__V1__OUTPUT__ALL_FIRST_ORDER};
  Greeks__V1__PriceChainRequest q = GREEKS__V1__PRICE_CHAIN_REQUEST__INIT;
  q.model = GREEKS__V1__MODEL__MODEL_BSM, q.market = &market, q.contracts = &contracts;
  q.n_outputs = 1, q.outputs = outputs;
  Message m;
  m.bytes.resize(greeks__v1__price_chain_request__get_packed_size(&q));
  greeks__v1__price_chain_request__pack(&q, m.bytes.data());
  return sliced(m);
}

Message sliced(Message &m) {
  std::vector<grpc_slice> slices;
  for (size_t at = 0; at < m.bytes.size(); at += 64 * 1024) {
    size_t end = at + 64 * 1024 < m.bytes.size() ? at + 64 * 1024 : m.bytes.size();
    slices.push_back(grpc_slice_from_copied_buffer(reinterpret_cast<const char *>(m.bytes.data()) + at, end - at));
  }
  m.payload = grpc_raw_byte_buffer_create(slices.data(), slices.size());
  for (grpc_slice &s : slices) grpc_slice_unref(s);
  return m;
}

void count_pace(void *context) { ++*static_cast<int64_t *>(context); }

// The paced hand decoder, through its *_decode_any as greeksd calls it:
// decode_any(payload, pace, context, &decoded, &verdict); took(decoded) says
// the hand decoder (not protobuf-c) read it.
template <typename Decoded, typename DecodeAny, typename Took, typename Release>
void time_paced(benchmark::State &state, Message (*make)(size_t), DecodeAny decode_any, Took took, Release release) {
  size_t n = static_cast<size_t>(state.range(0));
  Message m = make(n);
  int64_t paces = 0;
  for (auto _ : state) {
    Decoded d;
    request_verdict v;
    if (decode_any(m.payload, count_pace, &paces, &d, &v) != 0 || !took(d)) {
      state.SkipWithError("the paced decoder did not take the message");
      break;
    }
    benchmark::DoNotOptimize(d.kernel_types);
    release(&d);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
  state.counters["paces"] = state.iterations() ? static_cast<double>(paces) / static_cast<double>(state.iterations()) : 0;
  state.counters["bytes"] = static_cast<double>(m.bytes.size());
  grpc_byte_buffer_destroy(m.payload);
}

// protobuf-c alone: readall, unpack, and the types as kernel codes;
// types_of(message, &count) finds the type column.
template <typename TypesOf>
void time_protobuf_c(benchmark::State &state, Message (*make)(size_t), const ProtobufCMessageDescriptor *descriptor,
                     TypesOf types_of) {
  size_t n = static_cast<size_t>(state.range(0));
  Message m = make(n);
  for (auto _ : state) {
    ProtobufCMessage *unpacked;
    request_verdict v;
    if (request_unpack_payload(descriptor, m.payload, &unpacked, &v) != 0) {
      state.SkipWithError("protobuf-c refused the message");
      break;
    }
    size_t count = 0;
    const Greeks__V1__OptionType *type = types_of(unpacked, &count);
    uint8_t *types = request_kernel_types(count, type);
    benchmark::DoNotOptimize(types);
    free(types);
    protobuf_c_message_free_unpacked(unpacked, nullptr);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
  state.counters["bytes"] = static_cast<double>(m.bytes.size());
  grpc_byte_buffer_destroy(m.payload);
}

void BM_revalue_paced(benchmark::State &state) {
  time_paced<decoded_portfolio>(
      state, portfolio, portfolio_decode_any,
      [](const decoded_portfolio &d) { return d.hand.request.positions != nullptr; }, decoded_portfolio_free);
}

void BM_revalue_protobuf_c(benchmark::State &state) {
  time_protobuf_c(state, portfolio, &greeks__v1__revalue_portfolio_request__descriptor,
                  [](ProtobufCMessage *m, size_t *count) {
                    const Greeks__V1__Positions *p = reinterpret_cast<Greeks__V1__RevaluePortfolioRequest *>(m)->positions;
                    *count = p->n_type;
                    return static_cast<const Greeks__V1__OptionType *>(p->type);
                  });
}

void BM_batch_paced(benchmark::State &state) {
  time_paced<decoded_batch>(
      state, batch, batch_decode_any, [](const decoded_batch &d) { return d.hand.request.spot != nullptr; },
      decoded_batch_free);
}

void BM_batch_protobuf_c(benchmark::State &state) {
  time_protobuf_c(state, batch, &greeks__v1__price_batch_request__descriptor, [](ProtobufCMessage *m, size_t *count) {
    const Greeks__V1__PriceBatchRequest *q = reinterpret_cast<Greeks__V1__PriceBatchRequest *>(m);
    *count = q->n_type;
    return static_cast<const Greeks__V1__OptionType *>(q->type);
  });
}

// PriceChain's hand decoder (chain_decode_any), as the completion-queue
// thread runs it on every small call.
void BM_chain(benchmark::State &state) {
  size_t n = static_cast<size_t>(state.range(0));
  Message m = chain(n);
  for (auto _ : state) {
    chain_request q;
    request_verdict v;
    if (chain_decode_any(m.payload, &q, &v) != 0) {
      state.SkipWithError("the chain decoder refused the message");
      break;
    }
    benchmark::DoNotOptimize(q.type);
    chain_request_free(&q);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
  state.counters["bytes"] = static_cast<double>(m.bytes.size());
  grpc_byte_buffer_destroy(m.payload);
}

}  // namespace

BENCHMARK(BM_chain)->Name("decode/chain")->Arg(16)->Arg(256)->Arg(4096)->Arg(1000000)->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_batch_paced)->Name("decode/batch/paced")->Arg(4096)->Arg(200000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_batch_protobuf_c)->Name("decode/batch/protobuf_c")->Arg(4096)->Arg(200000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_revalue_paced)->Name("decode/revalue/paced")->Arg(5000)->Arg(200000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_revalue_protobuf_c)->Name("decode/revalue/protobuf_c")->Arg(5000)->Arg(200000)->Unit(benchmark::kMicrosecond);

int main(int argc, char **argv) {
  grpc_init();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  grpc_shutdown();
  return 0;
}
