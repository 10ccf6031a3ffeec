// quantlib_american.cc: QuantLib 1.29's QdFpAmericanEngine (Andersen-Lake-
// Offengelden fixed point, Klaus Spanderen's implementation) as an independent
// reference for tests/test_american_alo.c, behind a C interface.
//
// How: the engine's put formula calculatePut(S, K, r, q, vol, T) is protected;
// a subclass exposes it, so the reference prices at exactly the test's T, r and
// q (no date arithmetic, no day-count rounding of T). Calls go through put-call
// symmetry C(S, K, r, q) = P(K, S, q, r), as the engine itself does; the
// European cases (r' <= 0 and r' <= q' for the put) are not asked of it.
// Why: the code under test must be compared against something it shares no
// code with; QuantLib is linked to this test only (tests/CMakeLists.txt finds
// it as bench/CMakeLists.txt does).
#include <cmath>
#include <limits>

#include <ql/handle.hpp>
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
    case 0: return QdFpAmericanEngine::fastScheme();
    case 1: return QdFpAmericanEngine::accurateScheme();
    case 2: return QdFpAmericanEngine::highPrecisionScheme();
    /* highPrecisionScheme's tanh-sinh rule (1e-10) run to 20 fixed-point steps
     * on 24 nodes instead of 10 steps on 30: on long-dated options with high
     * dividends its 10 steps (one Jacobi-Newton, nine plain) stop up to
     * 2.6e-8 x K short of the fixed point (measured); 20 and 30 steps, 24 and
     * 30 nodes, agree to 1.5e-9 x K, at half the cost of 30 x 30. */
    case 3: return ext::make_shared<QdFpTanhSinhIterationScheme>(20, 24, 1e-10);
    /* 48 nodes, 24 steps, tanh-sinh to 1e-12: where the put form's r T
     * passes 0.5 (rates of 0.2 to 1 over years) the 24 nodes above stop up
     * to 3e-8 x K from the converged price (measured 2026-12-07: this scheme
     * and a 48-node alo solve agree to 1e-10 x K there); ~0.1 s a price. */
    default: return ext::make_shared<QdFpTanhSinhIterationScheme>(24, 48, 1e-12);
  }
}

}  // namespace

// The American price of a put (call = 0, put = 1 in `type`) under Black-Scholes
// with rate r and dividend yield q; scheme 0 fast, 1 accurate, 2 high precision,
// 3 high precision run to convergence (the reference; scheme_of says how), 4
// the same on 48 nodes (the reference past a put-form r T of 0.5).
// NaN when QuantLib throws (e.g. the double-boundary case q < r < 0).
extern "C" double quantlib_qdfp_american(int type, double S, double K, double T, double r, double q,
                                         double sigma, int scheme) {
  try {
    static const ExposedQdFp fast(placeholder_process(), scheme_of(0));
    static const ExposedQdFp accurate(placeholder_process(), scheme_of(1));
    static const ExposedQdFp high(placeholder_process(), scheme_of(2));
    static const ExposedQdFp converged(placeholder_process(), scheme_of(3));
    static const ExposedQdFp finer(placeholder_process(), scheme_of(4));
    const ExposedQdFp &engine = scheme <= 0   ? fast
                                : scheme == 1 ? accurate
                                : scheme == 2 ? high
                                : scheme == 3 ? converged
                                              : finer;
    return type == 1 ? engine.put(S, K, r, q, sigma, T) : engine.put(K, S, q, r, sigma, T);
  } catch (...) {
    return std::numeric_limits<double>::quiet_NaN();
  }
}
