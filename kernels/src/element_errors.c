#include <math.h>

#include "greeks/american.h"
#include "kernel_internal.h"

static gk_element_error classify_price_level(double value, gk_element_error not_finite) {
  /* The three codes of each level field are consecutive: not finite, not positive,
   * out of range. */
  if (!isfinite(value)) return not_finite;
  if (value <= 0.0) return (gk_element_error)(not_finite + 1);
  if (value < GK_MIN_PRICE_LEVEL || value > GK_MAX_PRICE_LEVEL)
    return (gk_element_error)(not_finite + 2);
  return GK_ELEMENT_OK;
}

static gk_element_error classify_rate(double value, gk_element_error not_finite) {
  if (!isfinite(value)) return not_finite;
  if (fabs(value) > GK_MAX_ABS_RATE) return (gk_element_error)(not_finite + 1);
  return GK_ELEMENT_OK;
}

/* The normal model: levels of any sign, a normal vol in price units. */
static gk_element_error classify_bachelier_element(const gk_option_batch *in, size_t i) {
  double spot = in->spot[i], strike = in->strike[i], expiry = in->expiry[i], vol = in->vol[i];
  if (!isfinite(spot)) return GK_ELEMENT_SPOT_NOT_FINITE;
  if (fabs(spot) > GK_MAX_PRICE_LEVEL) return GK_ELEMENT_SPOT_MAGNITUDE;
  if (!isfinite(strike)) return GK_ELEMENT_STRIKE_NOT_FINITE;
  if (fabs(strike) > GK_MAX_PRICE_LEVEL) return GK_ELEMENT_STRIKE_MAGNITUDE;
  if (!isfinite(expiry)) return GK_ELEMENT_EXPIRY_NOT_FINITE;
  if (expiry < 0.0) return GK_ELEMENT_EXPIRY_NEGATIVE;
  if (expiry > GK_MAX_EXPIRY) return GK_ELEMENT_EXPIRY_OUT_OF_RANGE;
  gk_element_error error = classify_rate(in->rate[i], GK_ELEMENT_RATE_NOT_FINITE);
  if (error) return error;
  if (!isfinite(vol)) return GK_ELEMENT_VOL_NOT_FINITE;
  if (vol < 0.0) return GK_ELEMENT_VOL_NEGATIVE;
  if (vol > GK_MAX_PRICE_LEVEL) return GK_ELEMENT_NORMAL_VOL_OUT_OF_RANGE;
  if (in->type[i] != GK_CALL && in->type[i] != GK_PUT) return GK_ELEMENT_TYPE_INVALID;
  return GK_ELEMENT_OK;
}

gk_element_error gk_classify_element(gk_model model, const gk_option_batch *in, size_t i) {
  if (model == GK_MODEL_BACHELIER) return classify_bachelier_element(in, i);
  gk_element_error error;
  if ((error = classify_price_level(in->spot[i], GK_ELEMENT_SPOT_NOT_FINITE))) return error;
  if ((error = classify_price_level(in->strike[i], GK_ELEMENT_STRIKE_NOT_FINITE))) return error;

  double expiry = in->expiry[i];
  if (!isfinite(expiry)) return GK_ELEMENT_EXPIRY_NOT_FINITE;
  if (expiry < 0.0) return GK_ELEMENT_EXPIRY_NEGATIVE;
  if (expiry > GK_MAX_EXPIRY) return GK_ELEMENT_EXPIRY_OUT_OF_RANGE;

  if ((error = classify_rate(in->rate[i], GK_ELEMENT_RATE_NOT_FINITE))) return error;
  if (gk_model_uses_yield(model) &&
      (error = classify_rate(in->yield[i], GK_ELEMENT_YIELD_NOT_FINITE)))
    return error;

  double vol = in->vol[i];
  if (!isfinite(vol)) return GK_ELEMENT_VOL_NOT_FINITE;
  if (vol < 0.0) return GK_ELEMENT_VOL_NEGATIVE;
  if (vol > GK_MAX_VOL) return GK_ELEMENT_VOL_OUT_OF_RANGE;

  if (in->type[i] != GK_CALL && in->type[i] != GK_PUT) return GK_ELEMENT_TYPE_INVALID;
  return GK_ELEMENT_OK;
}

void gk_zero_element_outputs(unsigned outputs, gk_greeks_batch *out, size_t i) {
  if (outputs & GK_OUT_PRICE) out->price[i] = 0.0;
  if (outputs & GK_OUT_DELTA) out->delta[i] = 0.0;
  if (outputs & GK_OUT_GAMMA) out->gamma[i] = 0.0;
  if (outputs & GK_OUT_VEGA) out->vega[i] = 0.0;
  if (outputs & GK_OUT_THETA) out->theta[i] = 0.0;
  if (outputs & GK_OUT_RHO) out->rho[i] = 0.0;
  if (outputs & GK_OUT_PHI) out->phi[i] = 0.0;
  if (outputs & GK_OUT_VANNA) out->vanna[i] = 0.0;
  if (outputs & GK_OUT_VOLGA) out->volga[i] = 0.0;
  if (outputs & GK_OUT_CHARM) out->charm[i] = 0.0;
  if (outputs & GK_OUT_VETA) out->veta[i] = 0.0;
  if (outputs & GK_OUT_SPEED) out->speed[i] = 0.0;
  if (outputs & GK_OUT_ZOMMA) out->zomma[i] = 0.0;
  if (outputs & GK_OUT_COLOR) out->color[i] = 0.0;
  if (outputs & GK_OUT_DUAL_DELTA) out->dual_delta[i] = 0.0;
  if (outputs & GK_OUT_DUAL_GAMMA) out->dual_gamma[i] = 0.0;
}

/* The two string tables are indexed by gk_element_error; keep them in its order. */
static const char *const element_fields[GK_ELEMENT_ERROR_COUNT] = {
    "", "S", "S", "S", "K", "K", "K", "T", "T", "T", "r", "r", "q", "q",
    "sigma", "sigma", "sigma", "type", "S", "K", "sigma", "price", "price", "T", "price", "r", "q",
    "sigma*sqrt(T)", "T", "price", "price", "price",
};

#define STR_(x) #x
#define STR(x) STR_(x)
static const char *const element_rules[GK_ELEMENT_ERROR_COUNT] = {
    "",
    "must be a finite number",
    "must be > 0",
    "must be in [" STR(GK_MIN_PRICE_LEVEL) ", " STR(GK_MAX_PRICE_LEVEL) "]",
    "must be a finite number",
    "must be > 0",
    "must be in [" STR(GK_MIN_PRICE_LEVEL) ", " STR(GK_MAX_PRICE_LEVEL) "]",
    "must be a finite number",
    "must be >= 0 (years)",
    "must be <= " STR(GK_MAX_EXPIRY) " (years)",
    "must be a finite number",
    "must be in [-" STR(GK_MAX_ABS_RATE) ", " STR(GK_MAX_ABS_RATE) "] (per year)",
    "must be a finite number",
    "must be in [-" STR(GK_MAX_ABS_RATE) ", " STR(GK_MAX_ABS_RATE) "] (per year)",
    "must be a finite number",
    "must be >= 0",
    "must be <= " STR(GK_MAX_VOL),
    "must be call or put",
    "must be in [-" STR(GK_MAX_PRICE_LEVEL) ", " STR(GK_MAX_PRICE_LEVEL) "] (bachelier)",
    "must be in [-" STR(GK_MAX_PRICE_LEVEL) ", " STR(GK_MAX_PRICE_LEVEL) "] (bachelier)",
    "must be <= " STR(GK_MAX_PRICE_LEVEL) " (normal vol, price units per sqrt(year))",
    "must be a finite number",
    "must be >= the discounted intrinsic value (no vol gives a lower price)",
    "must be > 0 to imply a vol",
    "must be < the no-arbitrage upper bound (S e^{-qT} for a call, K e^{-rT} for a put; "
    "black76: F e^{-rT}); at the bound the implied vol is infinite",
    "must be >= 0 for an american option",
    "must be >= 0 for an american option",
    "is so small that a requested output exceeds the double range (1.8e308)",
    "must be 0 or >= " STR(GK_AMERICAN_MIN_EXPIRY) " (years) for an american option "
    "(its theta bump would be a subnormal number)",
    "implies a vol past what the pricer accepts (lognormal: above " STR(GK_MAX_VOL) ", 10000%; bachelier: above "
    STR(GK_MAX_PRICE_LEVEL) " price units per sqrt(year))",
    "must be < the American upper bound (S for a call, K for a put; S e^{-qT} or K e^{-rT} where larger) "
    "and no more than the method's price at a vol of 10 (1000%), the highest searched",
    "must be >= the American price at vol 0, the lower limit (exercise now: K - S for a put, S - K for a call; "
    "or the discounted forward's intrinsic value where waiting pays more): no vol gives a lower price",
};

const char *gk_element_error_field(gk_element_error error) {
  if ((unsigned)error >= GK_ELEMENT_ERROR_COUNT) return "unknown";
  return element_fields[error];
}

const char *gk_element_error_rule(gk_element_error error) {
  if ((unsigned)error >= GK_ELEMENT_ERROR_COUNT) return "unknown element error";
  return element_rules[error];
}

const char *gk_rc_message(gk_rc rc) {
  switch (rc) {
    case GK_RC_OK: return "ok";
    case GK_RC_NULL_ARGUMENT: return "a required pointer argument is NULL";
    case GK_RC_BAD_MODEL: return "model must be bsm, black76, gk or bachelier";
    case GK_RC_BAD_OUTPUT_MASK: return "output mask has bits outside GK_OUT_EVERYTHING";
    case GK_RC_MISSING_OUTPUT: return "an output in the mask has no array";
    case GK_RC_MISSING_INPUT: return "an input array the model needs is NULL";
    case GK_RC_ISA_UNKNOWN: return "unknown ISA name (expected scalar, avx2 or avx512)";
    case GK_RC_ISA_UNSUPPORTED: return "this CPU or OS cannot run the requested ISA";
    case GK_RC_MODEL_NOT_SUPPORTED: return "this operation is not available for this model in this version";
    case GK_RC_BAD_METHOD: return "american method must be bs2002, tree, alo or alo-fast";
    case GK_RC_OUTPUT_NOT_SUPPORTED: return "an output in the mask is not available here (american: price and first-order Greeks only)";
    case GK_RC_OUT_OF_MEMORY: return "out of memory: the American kernels' working memory for this thread (~0.6 MiB) could not be allocated";
  }
  return "unknown return code";
}
