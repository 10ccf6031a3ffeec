/*
 * American options: argument checks, the American domain rules, Greeks by
 * bump-and-reprice (shared by every ISA; ALO's Greeks come from its boundary
 * solve instead, gk_alo_price_element, bumps only where that declines), and ISA dispatch
 * (gk_american_price_batch_on; gk_alo_price_batch_on for ALO's levels).
 *
 * Negative rates (docs/kernels.md): gk_american_exercise_of is the one
 * predicate of the exercise regime (never, one boundary, two boundaries). The
 * kernels ask gk_american_routed_to_tree per element and price the
 * two-boundary ones (and a thin strip beside them) by the tree whatever the
 * method: bs2002 and alo model one boundary only. The scalar kernel routes
 * before pricing, the vector kernels (american_vector.h) route their lanes
 * the same way. Elements never exercised early get the European price
 * exactly on every method (the tree's too).
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "american_internal.h"
#include "greeks/bsm.h"
#include "kernel_internal.h"

static const gk_american_kernel american_kernels[GK_ISA_COUNT] = {
    [GK_ISA_SCALAR] = gk_american_kernel_scalar,
    [GK_ISA_AVX2] = gk_american_kernel_avx2,
    [GK_ISA_AVX512] = gk_american_kernel_avx512,
};

static const gk_alo_kernel alo_kernels[GK_ISA_COUNT] = {
    [GK_ISA_SCALAR] = gk_alo_kernel_scalar,
    [GK_ISA_AVX2] = gk_alo_kernel_avx2,
    [GK_ISA_AVX512] = gk_alo_kernel_avx512,
};

static const char *const method_names[GK_AMERICAN_METHOD_COUNT] = {"bs2002", "tree", "alo", "alo-fast"};

/* Bumps: small enough for a 1e-7-relative truncation error on the smooth BS2002
 * formula (its spot bump at most 1% of a standard deviation to expiry, a
 * ~1e-5-relative error where that cap binds, sigma sqrt(T) < 0.01); on the
 * tree, large enough that its residual wiggles (period: one node spacing in S)
 * do not dominate the difference quotient. Measured in docs/kernels.md,
 * tested in tests/test_american.c. */
static const gk_american_bumps method_bumps[GK_AMERICAN_METHOD_COUNT] = {
    [GK_AMERICAN_BS2002] = {.spot_relative = 1e-4, .expiry_relative = 1e-4, .vol = 1e-4, .rate = 1e-5,
                            .spot_node_spacings = 0.0, .spot_stddevs = 1e-2},
    [GK_AMERICAN_TREE] = {.spot_relative = 1e-3, .expiry_relative = 1e-3, .vol = 1e-3, .rate = 1e-4,
                          .spot_node_spacings = 4.0},
    /* ALO is smooth to ~1e-10 relative: the BS2002 bumps balance truncation
     * (h^2) against its noise (1e-10 / h). */
    [GK_AMERICAN_ALO] = {.spot_relative = 1e-4, .expiry_relative = 1e-4, .vol = 1e-4, .rate = 1e-5,
                         .spot_node_spacings = 0.0, .spot_stddevs = 1e-2},
    /* The fast level is smooth too (its noise ~1e-13 relative, its error a
     * smooth function of the inputs); its analytic Greeks are used anyway. */
    [GK_AMERICAN_ALO_FAST] = {.spot_relative = 1e-4, .expiry_relative = 1e-4, .vol = 1e-4, .rate = 1e-5,
                              .spot_node_spacings = 0.0, .spot_stddevs = 1e-2},
};

const gk_american_bumps *gk_american_bumps_of(gk_american_method method) {
  return &method_bumps[method];
}

const char *gk_american_method_name(gk_american_method method) {
  if ((unsigned)method >= GK_AMERICAN_METHOD_COUNT) return "unknown";
  return method_names[method];
}

gk_rc gk_american_method_from_name(const char *name, gk_american_method *method) {
  if (name == NULL || method == NULL) return GK_RC_NULL_ARGUMENT;
  for (int i = 0; i < GK_AMERICAN_METHOD_COUNT; i++) {
    if (strcmp(name, method_names[i]) == 0) {
      *method = (gk_american_method)i;
      return GK_RC_OK;
    }
  }
  return GK_RC_BAD_METHOD;
}

gk_element_error gk_classify_american_element(gk_model model, const gk_option_batch *in, size_t i) {
  gk_element_error error = gk_classify_element(model, in, i);
  if (error != GK_ELEMENT_OK) return error;
  /* Negative r and q are priced (GK_ELEMENT_AMERICAN_RATE_NEGATIVE and
   * _YIELD_NEGATIVE are no longer returned). */
  if (in->expiry[i] > 0.0 && in->expiry[i] < GK_AMERICAN_MIN_EXPIRY) return GK_ELEMENT_AMERICAN_EXPIRY_TOO_SHORT;
  return GK_ELEMENT_OK;
}

/* The regime of the put (r, q) (american_internal.h). */
static gk_american_exercise put_exercise(double r, double q) {
  if (r > 0.0) return GK_EXERCISE_ONE_BOUNDARY;
  return q >= r ? GK_EXERCISE_NEVER : GK_EXERCISE_TWO_BOUNDARIES;
}

gk_american_exercise gk_american_exercise_of(const gk_american_option *o) {
  double q = o->r - o->b;
  return o->omega < 0.0 ? put_exercise(o->r, q) : put_exercise(q, o->r);
}

int gk_american_routed_to_tree(gk_model model, const gk_option_batch *in, size_t i) {
  if (model == GK_MODEL_BLACK76) return 0; /* q = r: never two boundaries */
  double r = in->rate[i], q = in->yield[i];
  double r_put = in->type[i] == GK_PUT ? r : q, q_put = in->type[i] == GK_PUT ? q : r;
  return q_put < r_put && r_put < GK_AMERICAN_ROUTE_MARGIN;
}

int gk_alo_beyond_carry_at(gk_model model, const gk_option_batch *in, size_t i) {
  if (model == GK_MODEL_BLACK76) return 0; /* q = r: no carry */
  double put_carry = in->type[i] == GK_PUT ? in->rate[i] - in->yield[i] : in->yield[i] - in->rate[i];
  return fabs(put_carry) * in->expiry[i] > GK_ALO_MAX_CARRY;
}

int gk_bs2002_beyond_flat_boundary_at(gk_model model, const gk_option_batch *in, size_t i) {
  if (in->vol[i] * sqrt(in->expiry[i]) > GK_BS2002_MAX_STDDEV) return 1;
  if (model == GK_MODEL_BLACK76) return 0; /* q = r: no carry */
  double put_carry = in->type[i] == GK_PUT ? in->rate[i] - in->yield[i] : in->yield[i] - in->rate[i];
  return put_carry * sqrt(in->expiry[i]) > GK_BS2002_MAX_CARRY_PER_VOL * in->vol[i];
}

int gk_alo_past_levels_reach_at(gk_model model, const gk_option_batch *in, size_t i) {
  double b = model == GK_MODEL_BLACK76 ? 0.0 : in->rate[i] - in->yield[i];
  double put_carry = in->type[i] == GK_PUT ? b : -b;
  double r_put = in->type[i] == GK_PUT ? in->rate[i] : in->rate[i] - b; /* as the scalar's r - b */
  return r_put * in->expiry[i] > GK_ALO_LEVELS_REACH || fabs(put_carry) * in->expiry[i] > GK_ALO_LEVELS_REACH ||
         in->vol[i] * sqrt(in->expiry[i]) > GK_ALO_LEVELS_STDDEV_REACH;
}

int gk_alo_beyond_levels_at(gk_model model, const gk_option_batch *in, size_t i) {
  if (model == GK_MODEL_BLACK76) return in->rate[i] * in->expiry[i] > GK_ALO_MAX_DISCOUNT; /* b = 0: no carry, no pull */
  if (gk_alo_beyond_carry_at(model, in, i)) return 1;
  double put_carry = in->type[i] == GK_PUT ? in->rate[i] - in->yield[i] : in->yield[i] - in->rate[i];
  double sigma = in->vol[i], b = in->rate[i] - in->yield[i];
  double r_put = in->type[i] == GK_PUT ? in->rate[i] : in->rate[i] - b; /* as the scalar's r - b */
  return (put_carry > 0.0 && in->expiry[i] * put_carry * put_carry > GK_ALO_MAX_PULL * sigma * sigma) ||
         r_put * in->expiry[i] > GK_ALO_MAX_DISCOUNT;
}

/* The market of one element, with r and q apart so that rho and phi can move
 * one of them. */
typedef struct market_point {
  double S, K, T, r, q, sigma, omega;
  int futures;                   /* black76: b = 0 whatever r */
  const gk_american_pace *pace; /* NULL: none */
} market_point;

static double price_at(gk_american_pricer pricer, const market_point *m) {
  gk_american_option o = {m->S, m->K, m->T, m->r, m->futures ? 0.0 : m->r - m->q, m->sigma, m->omega};
  double price = pricer(&o);
  if (m->pace && m->pace->between_prices) m->pace->between_prices(m->pace->context);
  return price;
}

/* d price / d x by a central difference, or when x - h would leave the domain
 * (x >= lower) the second-order forward one, (-3 f(x) + 4 f(x+h) - f(x+2h)) / 2h,
 * as accurate. `x` points into *m and is restored. */
static double slope(gk_american_pricer pricer, market_point *m, double *x, double h, double lower,
                    double price) {
  double x0 = *x, result;
  *x = x0 + h;
  double up = price_at(pricer, m);
  if (x0 - h >= lower) {
    *x = x0 - h;
    result = (up - price_at(pricer, m)) / (2.0 * h);
  } else {
    *x = x0 + 2.0 * h;
    result = (4.0 * up - 3.0 * price - price_at(pricer, m)) / (2.0 * h);
  }
  *x = x0;
  return result;
}

/* Delta and gamma from one pair of spot bumps. */
static void spot_greeks(gk_american_pricer pricer, market_point *m, double h, double price,
                        double *delta, double *gamma) {
  double S0 = m->S;
  m->S = S0 + h;
  double up = price_at(pricer, m);
  m->S = S0 - h;
  double down = price_at(pricer, m);
  m->S = S0;
  *delta = (up - down) / (2.0 * h);
  *gamma = (up - 2.0 * price + down) / (h * h);
}

/* At expiry: the payoff, its step as delta, and no other sensitivity. */
static void expiry_outputs(const market_point *m, unsigned outputs, gk_greeks_batch *out, size_t i) {
  double moneyness = m->omega * (m->S - m->K);
  gk_zero_element_outputs(outputs, out, i);
  if (outputs & GK_OUT_PRICE) out->price[i] = fmax(moneyness, 0.0);
  if (outputs & GK_OUT_DELTA) out->delta[i] = moneyness > 0.0 ? m->omega : (moneyness == 0.0 ? 0.5 * m->omega : 0.0);
}

/* gk_american_price_element with `pace` called after each price (may be NULL). */
static void price_element_paced(gk_model model, gk_american_method method, gk_american_pricer pricer,
                                const gk_option_batch *in, size_t i, unsigned outputs, gk_greeks_batch *out,
                                const gk_american_pace *pace) {
  int futures = model == GK_MODEL_BLACK76;
  market_point m = {in->spot[i], in->strike[i], in->expiry[i], in->rate[i],
                    futures ? in->rate[i] : in->yield[i], in->vol[i],
                    in->type[i] == GK_PUT ? -1.0 : 1.0, futures, pace};
  if (m.T == 0.0) {
    expiry_outputs(&m, outputs, out, i);
    return;
  }
  const gk_american_bumps *bump = gk_american_bumps_of(method);
  double price = price_at(pricer, &m);
  if (outputs & GK_OUT_PRICE) out->price[i] = price;
  if (outputs & (GK_OUT_DELTA | GK_OUT_GAMMA)) {
    double delta, gamma;
    double h = gk_american_spot_bump(bump, m.S, m.sigma, m.T);
    spot_greeks(pricer, &m, h, price, &delta, &gamma);
    if (outputs & GK_OUT_DELTA) out->delta[i] = delta;
    if (outputs & GK_OUT_GAMMA) out->gamma[i] = gamma;
  }
  if (outputs & GK_OUT_VEGA) out->vega[i] = slope(pricer, &m, &m.sigma, bump->vol, 0.0, price);
  /* theta = -d price / dT; T - h stays > 0 with a relative bump. At a tiny
   * T (1e-12 years) that bump moves the price by less than its rounding and
   * theta came out 0 where it is qS - rK (-19; the vector kernels had it;
   * found in review): while the move is within 2^20 ulps of the price (a
   * theta to ~1e-6 of itself), the bump grows tenfold, to 1e-6 years at most
   * (forward differences past T). Not where the price is the exercise value
   * (exercised now: theta 0), to 4 ulps of max(S, K) (bs2002 prices on
   * strike 1 and scales back: a few ulps off K - S): a bump grown past T
   * priced lives in which the option is held, and theta came out +944 a
   * year seconds from expiry (found in review, twice). */
  if (outputs & GK_OUT_THETA) {
    double h = bump->expiry_relative * m.T, theta = -slope(pricer, &m, &m.T, h, 0.0, price);
    double exercise = m.omega * (m.S - m.K);
    int exercised = exercise > 0.0 && fabs(price - exercise) <= 4.0 * DBL_EPSILON * fmax(m.S, m.K);
    while (!exercised && fabs(theta * h) < 0x1p20 * DBL_EPSILON * fabs(price) && h * 10.0 <= 1e-6) {
      h *= 10.0;
      theta = -slope(pricer, &m, &m.T, h, 0.0, price);
    }
    out->theta[i] = theta;
  }
  /* Rates of any sign: r and q bumps are always central. */
  if (outputs & GK_OUT_RHO) {
    /* black76: q follows r (b = 0), so rho moves the discount rate alone. */
    out->rho[i] = slope(pricer, &m, &m.r, bump->rate, -INFINITY, price);
  }
  if (outputs & GK_OUT_PHI)
    out->phi[i] = futures ? 0.0 : slope(pricer, &m, &m.q, bump->rate, -INFINITY, price);
}

void gk_american_price_element(gk_model model, gk_american_method method, gk_american_pricer pricer,
                               const gk_option_batch *in, size_t i, unsigned outputs,
                               gk_greeks_batch *out) {
  price_element_paced(model, method, pricer, in, i, outputs, out, NULL);
}

static gk_american_pricer method_pricer(gk_american_method method) {
  switch (method) {
    case GK_AMERICAN_TREE: return gk_american_tree_price;
    case GK_AMERICAN_ALO: return gk_alo_price;
    case GK_AMERICAN_ALO_FAST: return gk_alo_price_fast;
    default: return gk_bs2002_price;
  }
}

/* The tree's prices of a routed element, `pace` after each (may be NULL):
 * 11 prices with every Greek, each up to 8192 steps where the drift needs
 * them (a put on q = -0.5 held its thread ~100 ms with one pause after it:
 * found in review). */
static void price_routed_element_paced(gk_model model, const gk_option_batch *in, size_t i, unsigned outputs,
                                       gk_greeks_batch *out, const gk_american_pace *pace) {
  price_element_paced(model, GK_AMERICAN_TREE, gk_american_tree_price, in, i, outputs, out, pace);
}

void gk_american_price_routed_element(gk_model model, const gk_option_batch *in, size_t i, unsigned outputs,
                                      gk_greeks_batch *out) {
  price_routed_element_paced(model, in, i, outputs, out, NULL);
}

static gk_american_option element_option(gk_model model, const gk_option_batch *in, size_t i) {
  int futures = model == GK_MODEL_BLACK76;
  double r = in->rate[i], q = futures ? r : in->yield[i];
  return (gk_american_option){in->spot[i], in->strike[i], in->expiry[i], r, futures ? 0.0 : r - q, in->vol[i],
                              in->type[i] == GK_PUT ? -1.0 : 1.0};
}

int gk_american_never_exercised_at(gk_model model, const gk_option_batch *in, size_t i) {
  double T = in->expiry[i];
  if (T == 0.0 || !(in->vol[i] * sqrt(T) >= GK_AMERICAN_TINY_STDDEV)) return 0; /* the limits' own rules */
  gk_american_option o = element_option(model, in, i);
  return gk_american_exercise_of(&o) == GK_EXERCISE_NEVER;
}

int gk_american_perpetual_at(gk_model model, const gk_option_batch *in, size_t i) {
  gk_american_option o = element_option(model, in, i);
  return gk_american_perpetual_limit(&o);
}

/* g, the put-or-call's price and Greeks, into element i of `out`. */
static void store_greeks(gk_model model, const gk_alo_greeks *g, size_t i, unsigned outputs, gk_greeks_batch *out) {
  int futures = model == GK_MODEL_BLACK76;
  if (outputs & GK_OUT_PRICE) out->price[i] = g->price;
  if (outputs & GK_OUT_DELTA) out->delta[i] = g->delta;
  if (outputs & GK_OUT_GAMMA) out->gamma[i] = g->gamma;
  if (outputs & GK_OUT_THETA) out->theta[i] = g->theta;
  if (outputs & GK_OUT_VEGA) out->vega[i] = g->vega;
  /* black76: q follows r (b = 0), so rho moves both and there is no phi. */
  if (outputs & GK_OUT_RHO) out->rho[i] = futures ? g->rho + g->phi : g->rho;
  if (outputs & GK_OUT_PHI) out->phi[i] = futures ? 0.0 : g->phi;
}

void gk_american_perpetual_element(gk_model model, const gk_option_batch *in, size_t i, unsigned outputs,
                                   gk_greeks_batch *out) {
  gk_american_option o = element_option(model, in, i);
  gk_alo_greeks g;
  gk_american_perpetual_greeks(&o, &g);
  store_greeks(model, &g, i, outputs, out);
}

void gk_american_european_element(gk_model model, const gk_option_batch *in, size_t i, unsigned outputs,
                                  gk_greeks_batch *out) {
  uint8_t error = GK_ELEMENT_OK;
  gk_option_batch one = {1, in->spot + i, in->strike + i, in->expiry + i, in->rate + i, in->yield + i,
                         in->vol + i, in->type + i};
  gk_greeks_batch at = {.error = &error};
  double *const from[] = {out->price, out->delta, out->gamma, out->vega, out->theta, out->rho, out->phi};
  double **to[] = {&at.price, &at.delta, &at.gamma, &at.vega, &at.theta, &at.rho, &at.phi};
  for (size_t k = 0; k < sizeof to / sizeof to[0]; k++) *to[k] = from[k] ? from[k] + i : NULL;
  gk_bsm_kernel_scalar(model, &one, outputs & (unsigned)GK_OUT_ALL, &at);
  /* the price as every American path gives it (the two formulas' orders
   * differ in the last bits; the implied vols invert this one) */
  gk_american_option o = element_option(model, in, i);
  if ((outputs & GK_OUT_PRICE) && out->price) out->price[i] = gk_american_european_price(&o);
}

/* Element i of a method other than ALO (classified valid, not routed). The
 * tree's pricer models every regime; a never-exercised element reaches here
 * only at T = 0 or in the deterministic limit (gk_american_never_exercised_at
 * takes the others), where it is the European price with the smooth methods'
 * bumps, as bs2002's and alo's are. */
static void price_method_element(gk_model model, gk_american_method method, const gk_option_batch *in, size_t i,
                                 unsigned outputs, gk_greeks_batch *out, const gk_american_pace *pace) {
  gk_american_option o = element_option(model, in, i);
  if (method == GK_AMERICAN_TREE && gk_american_exercise_of(&o) == GK_EXERCISE_NEVER) {
    gk_american_price_element(model, GK_AMERICAN_BS2002, gk_american_european_price, in, i, outputs, out);
    return;
  }
  price_element_paced(model, method, method_pricer(method), in, i, outputs, out, pace);
}

void gk_alo_price_element(gk_model model, gk_alo_level level, const gk_option_batch *in, size_t i, unsigned outputs,
                          gk_greeks_batch *out) {
  if (gk_american_never_exercised_at(model, in, i)) { /* the vector kernels' scalar lanes come here */
    gk_american_european_element(model, in, i, outputs, out);
    return;
  }
  if (gk_american_perpetual_at(model, in, i)) {
    gk_american_perpetual_element(model, in, i, outputs, out);
    return;
  }
  gk_american_pricer pricer = level == GK_ALO_FAST ? gk_alo_price_fast : gk_alo_price;
  int futures = model == GK_MODEL_BLACK76;
  double S = in->spot[i], K = in->strike[i], T = in->expiry[i], r = in->rate[i], sigma = in->vol[i];
  double q = futures ? r : in->yield[i], omega = in->type[i] == GK_PUT ? -1.0 : 1.0;
  gk_american_option o = {S, K, T, r, futures ? 0.0 : r - q, sigma, omega};
  gk_alo_greeks g;
  gk_american_option as = gk_alo_priced_as(&o);
  /* gk_alo_price_greeks checks the bounds of the option it solves; where the
   * bracket prices o (perhaps on a shorter life), o's, with R(T) below */
  if (!(outputs & ~(unsigned)GK_OUT_PRICE) || !gk_alo_price_greeks(&as, gk_alo_scheme_for(&o, level), &g) ||
      !gk_alo_within_bracket_bounds(&o, level, g.price)) {
    if ((outputs & ~(unsigned)GK_OUT_PRICE) && gk_alo_held_at_perpetual(&o, level, &g))
      store_greeks(model, &g, i, outputs, out); /* bumps of a clamped price are not Greeks */
    else
      gk_american_price_element(model, GK_AMERICAN_ALO, pricer, in, i, outputs, out);
    return;
  }
  g.price = fmax(g.price, gk_alo_first_touch_floor(&o)); /* within the slack of R(T): floored, its own Greeks */
  store_greeks(model, &g, i, outputs, out);
}

/* Every element of `in` with `pricer`, the Greeks by `method`'s bumps; ALO's
 * at `level` with its analytic Greeks. */
static size_t scalar_kernel_with(gk_model model, gk_american_method method, gk_alo_level level,
                                 const gk_option_batch *in, unsigned outputs, gk_greeks_batch *out,
                                 const gk_american_pace *pace) {
  size_t invalid = 0;
  for (size_t i = 0; i < in->count; i++) {
    gk_element_error error = gk_classify_american_element(model, in, i);
    out->error[i] = (uint8_t)error;
    if (error != GK_ELEMENT_OK) {
      gk_zero_element_outputs(outputs, out, i);
      invalid++;
      continue;
    }
    /* the perpetual limit first: it needs r > 0, so it is one boundary even in the tree's strip */
    if (gk_american_perpetual_at(model, in, i)) gk_american_perpetual_element(model, in, i, outputs, out);
    else if (gk_american_routed_to_tree(model, in, i)) price_routed_element_paced(model, in, i, outputs, out, pace);
    else if (gk_american_never_exercised_at(model, in, i)) gk_american_european_element(model, in, i, outputs, out);
    else if (gk_american_method_is_alo(method)) gk_alo_price_element(model, level, in, i, outputs, out);
    else if (method == GK_AMERICAN_BS2002 && gk_alo_beyond_carry_at(model, in, i))
      gk_alo_price_element(model, GK_ALO_ACCURATE, in, i, outputs, out);
    else if (method == GK_AMERICAN_BS2002 && gk_bs2002_beyond_flat_boundary_at(model, in, i))
      gk_alo_price_element(model, GK_ALO_FAST, in, i, outputs, out);
    else price_method_element(model, method, in, i, outputs, out, pace);
  }
  return invalid;
}

size_t gk_american_kernel_scalar(gk_model model, gk_american_method method,
                                 const gk_option_batch *in, unsigned outputs, gk_greeks_batch *out) {
  return scalar_kernel_with(model, method, gk_alo_level_of(method), in, outputs, out, NULL);
}

size_t gk_alo_kernel_scalar(gk_model model, gk_alo_level level, const gk_option_batch *in, unsigned outputs,
                            gk_greeks_batch *out) {
  return scalar_kernel_with(model, GK_AMERICAN_ALO, level, in, outputs, out, NULL);
}

gk_rc gk_american_check_batch(gk_model model, gk_american_method method,
                              const gk_option_batch *in, unsigned outputs,
                              const gk_greeks_batch *out) {
  gk_rc rc = gk_bsm_check_batch(model, in, outputs, out);
  if (rc != GK_RC_OK) return rc;
  if (model == GK_MODEL_BACHELIER) return GK_RC_MODEL_NOT_SUPPORTED;
  if ((unsigned)method >= GK_AMERICAN_METHOD_COUNT) return GK_RC_BAD_METHOD;
  if (outputs & GK_OUT_SECOND_ORDER) return GK_RC_OUTPUT_NOT_SUPPORTED;
  return GK_RC_OK;
}

int gk_american_scratch_ready(gk_isa isa) {
  if (!gk_alo_scalar_scratch_ready() || !gk_tree_scratch_ready()) return 0;
  if (isa == GK_ISA_AVX2) return gk_alo_scratch_ready_avx2();
  if (isa == GK_ISA_AVX512) return gk_alo_scratch_ready_avx512();
  return 1;
}

gk_rc gk_american_price_batch_on(gk_isa isa, gk_model model, gk_american_method method,
                                 const gk_option_batch *in, unsigned outputs,
                                 gk_greeks_batch *out, size_t *invalid_count) {
  if ((unsigned)isa >= GK_ISA_COUNT) return GK_RC_ISA_UNKNOWN;
  if (!gk_isa_supported(isa)) return GK_RC_ISA_UNSUPPORTED;
  gk_rc rc = gk_american_check_batch(model, method, in, outputs, out);
  if (rc != GK_RC_OK) return rc;
  if (in->count > 0 && !gk_american_scratch_ready(isa)) return GK_RC_OUT_OF_MEMORY;
  size_t invalid = in->count == 0 ? 0 : american_kernels[isa](model, method, in, outputs, out);
  if (invalid_count) *invalid_count = invalid;
  return GK_RC_OK;
}

gk_rc gk_american_price_batch(gk_model model, gk_american_method method,
                              const gk_option_batch *in, unsigned outputs, gk_greeks_batch *out,
                              size_t *invalid_count) {
  gk_rc rc = gk_isa_init();
  if (rc != GK_RC_OK) return rc;
  return gk_american_price_batch_on(gk_isa_active(), model, method, in, outputs, out, invalid_count);
}

gk_rc gk_alo_price_batch_on(gk_isa isa, gk_model model, gk_alo_level level, const gk_option_batch *in,
                            unsigned outputs, gk_greeks_batch *out, size_t *invalid_count) {
  if ((unsigned)isa >= GK_ISA_COUNT) return GK_RC_ISA_UNKNOWN;
  if (!gk_isa_supported(isa)) return GK_RC_ISA_UNSUPPORTED;
  if ((unsigned)level >= GK_ALO_LEVEL_COUNT) return GK_RC_BAD_METHOD;
  gk_rc rc = gk_american_check_batch(model, GK_AMERICAN_ALO, in, outputs, out);
  if (rc != GK_RC_OK) return rc;
  if (in->count > 0 && !gk_american_scratch_ready(isa)) return GK_RC_OUT_OF_MEMORY;
  size_t invalid = in->count == 0 ? 0 : alo_kernels[isa](model, level, in, outputs, out);
  if (invalid_count) *invalid_count = invalid;
  return GK_RC_OK;
}

/* Whether valid element i of a vectorized method's batch is one that the
 * scalar reference prices at length on `isa`: routed to the tree (negative
 * rates), or on alo's wide or long fast scheme (adr/0046, adr/0058; bs2002
 * hands its strong carry there too, element by element): ~0.1 to a few ms
 * each, against microseconds. Past the levels' reach alo's vector kernels
 * price those schemes in groups (~8 and ~36 us a price on AVX-512,
 * adr/0059), so there only the scalar ISA prices them at length, short of
 * GK_ALO_SLOW_STDDEV, past which every ISA does (bumps on the scalar path). */
static int priced_at_length(gk_isa isa, gk_model model, gk_american_method method, const gk_option_batch *in,
                            size_t i) {
  if (gk_classify_american_element(model, in, i) != GK_ELEMENT_OK || gk_american_perpetual_at(model, in, i)) return 0;
  if (gk_american_routed_to_tree(model, in, i)) return 1;
  if (gk_american_never_exercised_at(model, in, i)) return 0;
  int alo_slow = gk_alo_beyond_levels_at(model, in, i) || in->vol[i] * sqrt(in->expiry[i]) > GK_ALO_SLOW_STDDEV ||
                 (isa == GK_ISA_SCALAR && gk_alo_past_levels_reach_at(model, in, i));
  if (method == GK_AMERICAN_BS2002) /* its handoff is alo fast (vector groups on a vector ISA), slow where alo's is */
    return gk_alo_beyond_carry_at(model, in, i) || (gk_bs2002_beyond_flat_boundary_at(model, in, i) && alo_slow);
  return alo_slow;
}

/* `in` and `out` from element `begin` on, `count` elements. */
static gk_option_batch inputs_from(const gk_option_batch *in, size_t begin, size_t count) {
  gk_option_batch s = *in;
  s.count = count;
  s.spot += begin, s.strike += begin, s.expiry += begin, s.rate += begin, s.vol += begin, s.type += begin;
  if (s.yield) s.yield += begin;
  return s;
}

static gk_greeks_batch outputs_from(const gk_greeks_batch *out, size_t begin) {
  gk_greeks_batch s = *out;
  double **arrays[] = {&s.price, &s.delta, &s.gamma, &s.vega, &s.theta, &s.rho, &s.phi};
  for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
    if (*arrays[k]) *arrays[k] += begin;
  s.error += begin;
  return s;
}

/* The tree is scalar on every ISA (the vector kernels hand it to
 * gk_american_kernel_scalar), so its paced path is that kernel with the pace:
 * the same prices in the same order. The vectorized methods run their kernel
 * on the stretches between the elements priced at length, and each of those
 * alone, the pace after it (after each tree price for one routed to the
 * tree): a call of 8 such elements held its thread ~9 ms without a pause. A
 * lane's result does not depend on its neighbours, so the split changes no
 * output. */
gk_rc gk_american_price_batch_paced(gk_model model, gk_american_method method, const gk_option_batch *in,
                                    unsigned outputs, gk_greeks_batch *out, size_t *invalid_count,
                                    const gk_american_pace *pace) {
  if (pace == NULL || pace->between_prices == NULL)
    return gk_american_price_batch(model, method, in, outputs, out, invalid_count);
  gk_rc rc = gk_isa_init();
  if (rc != GK_RC_OK) return rc;
  rc = gk_american_check_batch(model, method, in, outputs, out);
  if (rc != GK_RC_OK) return rc;
  if (in->count > 0 && !gk_american_scratch_ready(gk_isa_active())) return GK_RC_OUT_OF_MEMORY;
  size_t invalid = 0;
  if (method == GK_AMERICAN_TREE) {
    invalid = in->count == 0 ? 0 : scalar_kernel_with(model, method, GK_ALO_ACCURATE, in, outputs, out, pace);
  } else {
    gk_isa isa = gk_isa_active();
    gk_american_kernel kernel = american_kernels[isa];
    for (size_t begin = 0; begin < in->count;) {
      size_t end = begin;
      while (end < in->count && !priced_at_length(isa, model, method, in, end)) end++;
      if (end > begin) {
        gk_option_batch run = inputs_from(in, begin, end - begin);
        gk_greeks_batch run_out = outputs_from(out, begin);
        invalid += kernel(model, method, &run, outputs, &run_out);
      }
      if (end == in->count) break;
      if (gk_american_routed_to_tree(model, in, end)) { /* the tree, paced between its prices (valid: classified) */
        out->error[end] = GK_ELEMENT_OK;
        price_routed_element_paced(model, in, end, outputs, out, pace);
      } else {
        gk_option_batch one = inputs_from(in, end, 1);
        gk_greeks_batch one_out = outputs_from(out, end);
        invalid += kernel(model, method, &one, outputs, &one_out);
        pace->between_prices(pace->context);
      }
      begin = end + 1;
    }
  }
  if (invalid_count) *invalid_count = invalid;
  return GK_RC_OK;
}
