// bench/quantlib_american.cc: QuantLib 1.29's QdFpAmericanEngine for the
// benchmark and the accuracy report (C interface: quantlib_american.h).
//
// How: the engine's put formula calculatePut(S, K, r, q, vol, T) is protected; a
// subclass exposes it (as tests/reference/quantlib_american.cc does), and each
// contract is priced at exactly its T, r and q: no Date, no day count, no
// observer notification per contract. Calls go through put-call symmetry
// C(S, K, r, q) = P(K, S, q, r), which is what the engine's own calculate() does.
// Where early exercise never pays (the put with r <= 0 and r <= q; a call with
// q <= 0 after symmetry) this returns the European price, through QuantLib's
// blackFormula, rather than ask the fixed point (neither the benchmark's draws
// nor the stored contracts reach it, but a q = 0 call would).
// Why: the engine object is built once, outside any timed loop, so the timing
// is QuantLib's numerics alone, the comparison fairest to QuantLib.
#include "quantlib_american.h"

#include <cmath>
#include <limits>
#include <new>

#include <ql/handle.hpp>
#include <ql/pricingengines/blackformula.hpp>
#include <ql/pricingengines/vanilla/qdfpamericanengine.hpp>
#include <ql/processes/blackscholesprocess.hpp>
#include <ql/quotes/simplequote.hpp>
#include <ql/termstructures/volatility/equityfx/blackconstantvol.hpp>
#include <ql/termstructures/yield/flatforward.hpp>
#include <ql/time/calendars/nullcalendar.hpp>
#include <ql/time/daycounters/actual365fixed.hpp>

namespace {

using namespace QuantLib;

// The engine with its put formula made callable.
class ExposedQdFp : public QdFpAmericanEngine {
 public:
  ExposedQdFp(const ext::shared_ptr<GeneralizedBlackScholesProcess> &process,
              const ext::shared_ptr<QdFpIterationScheme> &scheme)
      : QdFpAmericanEngine(process, scheme) {}
  Real put(Real S, Real K, Rate r, Rate q, Volatility vol, Time T) const {
    return calculatePut(S, K, r, q, vol, T);
  }
};

// The engine needs a process to exist; calculatePut never reads it.
ext::shared_ptr<GeneralizedBlackScholesProcess> placeholder_process() {
  Date today(2, January, 2023);
  DayCounter dc = Actual365Fixed();
  Handle<Quote> spot(ext::make_shared<SimpleQuote>(100.0));
  Handle<YieldTermStructure> rate(ext::make_shared<FlatForward>(today, 0.05, dc));
  Handle<YieldTermStructure> yield(ext::make_shared<FlatForward>(today, 0.0, dc));
  Handle<BlackVolTermStructure> vol(ext::make_shared<BlackConstantVol>(today, NullCalendar(), 0.2, dc));
  return ext::make_shared<GeneralizedBlackScholesProcess>(spot, yield, rate, vol);
}

ext::shared_ptr<QdFpIterationScheme> scheme_of(int scheme) {
  switch (scheme) {
    case QUANTLIB_QDFP_FAST: return QdFpAmericanEngine::fastScheme();
    case QUANTLIB_QDFP_HIGH: return QdFpAmericanEngine::highPrecisionScheme();
    default: return QdFpAmericanEngine::accurateScheme();
  }
}

// One put (after the call's symmetry): European where early exercise never pays.
double price_put(const ExposedQdFp &engine, double S, double K, double T, double r, double q, double vol) {
  if (r <= 0.0 && r <= q) {
    double forward = S * std::exp((r - q) * T), discount = std::exp(-r * T);
    return blackFormula(Option::Put, K, forward, vol * std::sqrt(T), discount);
  }
  return engine.put(S, K, r, q, vol, T);
}

}  // namespace

struct quantlib_american {
  explicit quantlib_american(int scheme) : engine(placeholder_process(), scheme_of(scheme)) {}
  ExposedQdFp engine;
};

extern "C" quantlib_american *quantlib_american_new(int scheme) {
  try {
    return new quantlib_american(scheme);
  } catch (...) {  // QuantLib and new report failure by throwing
    return nullptr;
  }
}

extern "C" void quantlib_american_free(quantlib_american *engine) { delete engine; }

extern "C" size_t quantlib_american_price_batch(const quantlib_american *engine, size_t n, const uint8_t *type,
                                                const double *spot, const double *strike, const double *expiry,
                                                const double *rate, const double *yield, const double *vol,
                                                double *price) {
  size_t failures = 0;
  for (size_t i = 0; i < n; i++) {
    try {
      price[i] = type[i] == 1
                     ? price_put(engine->engine, spot[i], strike[i], expiry[i], rate[i], yield[i], vol[i])
                     : price_put(engine->engine, strike[i], spot[i], expiry[i], yield[i], rate[i], vol[i]);
    } catch (...) {
      price[i] = std::numeric_limits<double>::quiet_NaN();
      failures++;
    }
  }
  return failures;
}
