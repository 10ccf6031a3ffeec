/*
 * greeks/batch.h - structure-of-arrays batches shared by every kernel.
 *
 * A batch is a set of parallel arrays, one per quantity, all `count` long. The
 * caller owns every array; kernels read the inputs and write the outputs and keep
 * no pointer after they return. Arrays need no particular alignment (64-byte
 * alignment is fastest). Output arrays must not overlap input arrays or each other.
 *
 * Units, everywhere in greeks:
 *   time (expiry)         years (ACT/365 or whatever the caller's year is)
 *   rate, yield           continuously compounded, per year (0.05 = 5%)
 *   vol                   per sqrt(year) (0.20 = 20%)
 *   price                 currency units of the underlying's price
 *   delta                 d price / d S
 *   gamma                 d2 price / d S2 (per unit of spot)
 *   vega                  d price / d vol, per 1.00 of vol (not per 1%)
 *   theta                 -d price / d expiry, per year of calendar time
 *                         (negative for a long vanilla in normal conditions)
 *   rho                   d price / d rate, per 1.00 of rate (not per 1%)
 *   phi                   d price / d yield, per 1.00 (dividend / foreign rho)
 * Second order (the time derivatives, like theta, are minus d/dT: the change as
 * calendar time passes, per year):
 *   vanna = d2 price / dS dvol      volga (vomma) = d2 price / dvol2
 *   charm = -d delta / dT           veta = -d vega / dT
 *   speed = d gamma / dS            zomma = d gamma / dvol
 *   color = -d gamma / dT
 *   dual delta = d price / dK       dual gamma = d2 price / dK2
 */
#ifndef GREEKS_BATCH_H
#define GREEKS_BATCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes of kernel-level calls: misuse of the API, never per-element errors. */
typedef enum gk_rc {
  GK_RC_OK = 0,
  GK_RC_NULL_ARGUMENT,    /* a required pointer argument is NULL */
  GK_RC_BAD_MODEL,        /* model is not one of gk_model */
  GK_RC_BAD_OUTPUT_MASK,  /* output mask has bits outside GK_OUT_EVERYTHING */
  GK_RC_MISSING_OUTPUT,   /* the mask asks for an output whose array is NULL */
  GK_RC_MISSING_INPUT,    /* an input array the model needs is NULL */
  GK_RC_ISA_UNKNOWN,      /* an ISA name (GREEKS_ISA, --isa) names no ISA */
  GK_RC_ISA_UNSUPPORTED,  /* the CPU or the OS cannot run the requested ISA */
  GK_RC_MODEL_NOT_SUPPORTED, /* this operation is not available for this model */
  GK_RC_BAD_METHOD,       /* an American pricing method outside gk_american_method */
  GK_RC_OUTPUT_NOT_SUPPORTED, /* the mask asks for an output this operation lacks */
  GK_RC_OUT_OF_MEMORY,    /* the American kernels' working memory for this thread could not be allocated */
} gk_rc;

/* Static English description of a return code; never NULL. */
const char *gk_rc_message(gk_rc rc);

/* Option type, one byte per element. */
enum { GK_CALL = 0, GK_PUT = 1 };

/* Pricing model; all share the generalized Black-Scholes-Merton core with cost
 * of carry b. */
typedef enum gk_model {
  GK_MODEL_BSM = 0,      /* stock/index, continuous dividend yield q: b = r - q */
  GK_MODEL_BLACK76 = 1,  /* option on a future/forward: spot is the futures price,
                            b = 0, the yield array is ignored (may be NULL) */
  GK_MODEL_GK = 2,       /* Garman-Kohlhagen FX: yield is the foreign rate,
                            b = r - r_foreign */
  GK_MODEL_BACHELIER = 3, /* normal model on a forward: spot is the forward or
                             futures price and may be zero or negative, as may the
                             strike; vol is a NORMAL vol, in price units per
                             sqrt(year); yield is ignored (may be NULL) */
  GK_MODEL_COUNT
} gk_model;

/* 1 when `model` reads the yield array (bsm: dividend yield, gk: foreign rate);
 * 0 for black76 and bachelier, which ignore it (it may be NULL). */
int gk_model_uses_yield(gk_model model);

/* The model's name as metrics, spans and logs show it ("bsm", "black76",
 * "garman_kohlhagen", "bachelier"); "unknown" for any other value. Static. */
const char *gk_model_name(gk_model model);

/* Output mask: which outputs to compute. Price-only work skips the Greeks. */
enum {
  GK_OUT_PRICE = 1u << 0,
  GK_OUT_DELTA = 1u << 1,
  GK_OUT_GAMMA = 1u << 2,
  GK_OUT_VEGA = 1u << 3,
  GK_OUT_THETA = 1u << 4,
  GK_OUT_RHO = 1u << 5,
  GK_OUT_PHI = 1u << 6,
  GK_OUT_ALL = (1u << 7) - 1u, /* price and every first-order Greek */
  GK_OUT_VANNA = 1u << 7,
  GK_OUT_VOLGA = 1u << 8,
  GK_OUT_CHARM = 1u << 9,
  GK_OUT_VETA = 1u << 10,
  GK_OUT_SPEED = 1u << 11,
  GK_OUT_ZOMMA = 1u << 12,
  GK_OUT_COLOR = 1u << 13,
  GK_OUT_DUAL_DELTA = 1u << 14,
  GK_OUT_DUAL_GAMMA = 1u << 15,
  GK_OUT_SECOND_ORDER = ((1u << 16) - 1u) & ~GK_OUT_ALL,
  GK_OUT_EVERYTHING = (1u << 16) - 1u,
};

/* Inputs: count elements, one array per quantity (units above). */
typedef struct gk_option_batch {
  size_t count;
  const double *spot;    /* S: spot (bsm, gk) or futures price (black76) */
  const double *strike;  /* K */
  const double *expiry;  /* T, years */
  const double *rate;    /* r, domestic risk-free rate */
  const double *yield;   /* q: dividend yield (bsm), foreign rate (gk); unused by black76 */
  const double *vol;     /* sigma */
  const uint8_t *type;   /* GK_CALL or GK_PUT */
} gk_option_batch;

/* Outputs: arrays for the outputs not in the mask may be NULL. `error` is always
 * required: it receives a gk_element_error per element. The second-order arrays
 * come after `error` so that code written for first-order outputs keeps working. */
typedef struct gk_greeks_batch {
  double *price;
  double *delta;
  double *gamma;
  double *vega;
  double *theta;
  double *rho;
  double *phi;
  uint8_t *error;
  double *vanna, *volga, *charm, *veta, *speed, *zomma, *color, *dual_delta, *dual_gamma;
} gk_greeks_batch;

/* Why one element of a batch was not priced. Valid elements of the same batch are
 * priced normally; an invalid element gets 0 in every requested output. */
typedef enum gk_element_error {
  GK_ELEMENT_OK = 0,
  GK_ELEMENT_SPOT_NOT_FINITE,
  GK_ELEMENT_SPOT_NOT_POSITIVE,
  GK_ELEMENT_SPOT_OUT_OF_RANGE,
  GK_ELEMENT_STRIKE_NOT_FINITE,
  GK_ELEMENT_STRIKE_NOT_POSITIVE,
  GK_ELEMENT_STRIKE_OUT_OF_RANGE,
  GK_ELEMENT_EXPIRY_NOT_FINITE,
  GK_ELEMENT_EXPIRY_NEGATIVE,
  GK_ELEMENT_EXPIRY_OUT_OF_RANGE,
  GK_ELEMENT_RATE_NOT_FINITE,
  GK_ELEMENT_RATE_OUT_OF_RANGE,
  GK_ELEMENT_YIELD_NOT_FINITE,
  GK_ELEMENT_YIELD_OUT_OF_RANGE,
  GK_ELEMENT_VOL_NOT_FINITE,
  GK_ELEMENT_VOL_NEGATIVE,
  GK_ELEMENT_VOL_OUT_OF_RANGE,
  GK_ELEMENT_TYPE_INVALID,
  /* Bachelier only: levels and normal vols may be any sign but bounded. */
  GK_ELEMENT_SPOT_MAGNITUDE,
  GK_ELEMENT_STRIKE_MAGNITUDE,
  GK_ELEMENT_NORMAL_VOL_OUT_OF_RANGE,
  /* Implied vol only. */
  GK_ELEMENT_PRICE_NOT_FINITE,
  GK_ELEMENT_PRICE_BELOW_INTRINSIC,
  GK_ELEMENT_EXPIRY_NOT_POSITIVE,
  GK_ELEMENT_PRICE_ABOVE_UPPER_BOUND,
  /* No longer returned: American options price negative rates (greeks/american.h).
   * Kept so that the codes after them keep their numbers. */
  GK_ELEMENT_AMERICAN_RATE_NEGATIVE,
  GK_ELEMENT_AMERICAN_YIELD_NEGATIVE,
  /* A requested output's true value lies beyond the double range (|x| > DBL_MAX):
   * sigma sqrt(T) so small that gamma, speed, color or charm exceed it. */
  GK_ELEMENT_GREEK_OVERFLOW,
  /* American only: 0 < T < GK_AMERICAN_MIN_EXPIRY (greeks/american.h). */
  GK_ELEMENT_AMERICAN_EXPIRY_TOO_SHORT,
  /* Implied vol only: the price implies a vol the pricer refuses (lognormal:
   * above GK_MAX_VOL; bachelier: above GK_MAX_PRICE_LEVEL), so price -> vol ->
   * price cannot round-trip (a price within a hair of the upper bound, tiny T). */
  GK_ELEMENT_IMPLIED_VOL_OUT_OF_RANGE,
  /* American implied vol only: at or above the American upper limit (S for a
   * call, K for a put; S e^{-qT} or K e^{-rT} where larger), or above the
   * method's price at GK_AMERICAN_IV_MAX_VOL (greeks/american_iv.h). The
   * European bound's words (S e^{-qT}) would misstate it. */
  GK_ELEMENT_AMERICAN_PRICE_ABOVE_UPPER_BOUND,
  /* American implied vol only: below the method's price at vol 0 (exercise
   * now, or the discounted forward's intrinsic value where waiting pays
   * more). The European words ("the discounted intrinsic value") named a
   * bound such a price meets (a put worth K - S = 20 now, refused at 19.5
   * against a discounted intrinsic 16.7; found in review). */
  GK_ELEMENT_AMERICAN_PRICE_BELOW_LOWER_LIMIT,
  GK_ELEMENT_ERROR_COUNT
} gk_element_error;

/* Supported input domain. Outside it results could overflow, so elements are
 * rejected rather than priced badly. */
#define GK_MIN_PRICE_LEVEL 1e-12 /* S and K */
#define GK_MAX_PRICE_LEVEL 1e15  /* S and K */
#define GK_MAX_EXPIRY 100.0      /* years */
#define GK_MAX_ABS_RATE 5.0      /* |r| and |q|: 500% per year */
#define GK_MAX_VOL 100.0         /* 10000% */

/* The input name an element error is about ("S", "K", "T", "r", "q", "sigma",
 * "type"), "" for GK_ELEMENT_OK. Static string, never NULL. */
const char *gk_element_error_field(gk_element_error error);

/* The rule the value broke, e.g. "must be > 0". Static string, never NULL. */
const char *gk_element_error_rule(gk_element_error error);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_BATCH_H */
