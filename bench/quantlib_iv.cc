// quantlib_iv.cc: QuantLib's Black implied standard deviation over a batch, for
// the iv/quantlib benchmark case and the accuracy comparison (C interface:
// quantlib_iv.h). Built only when QuantLib is found (bench/CMakeLists.txt).
#include "quantlib_iv.h"

#include <cmath>
#include <limits>

#include <ql/pricingengines/blackformula.hpp>

extern "C" size_t quantlib_implied_vol_batch(size_t n, const uint8_t *type, const double *forward,
                                             const double *strike, const double *discount,
                                             const double *price, const double *sqrt_t,
                                             double accuracy, double *vol) {
  size_t failures = 0;
  for (size_t i = 0; i < n; i++) {
    QuantLib::Option::Type kind = type[i] == 1 ? QuantLib::Option::Put : QuantLib::Option::Call;
    try {
      double stddev = QuantLib::blackFormulaImpliedStdDev(kind, strike[i], forward[i], price[i], discount[i], 0.0,
                                                          QuantLib::Null<QuantLib::Real>(), accuracy, 100);
      vol[i] = stddev / sqrt_t[i];
    } catch (...) {  // QuantLib reports a failed solve by throwing
      vol[i] = std::numeric_limits<double>::quiet_NaN();
      failures++;
    }
  }
  return failures;
}
