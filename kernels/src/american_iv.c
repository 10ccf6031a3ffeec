/*
 * American implied vol (greeks/american_iv.h): a safeguarded Newton iteration
 * on price(sigma) - price, run on a whole chunk of elements at once.
 *
 * How. A chunk (GK_AMERICAN_IV_CHUNK elements) goes through four steps:
 *  1. the lower limit: every element priced at sigma = 0 in one batch call,
 *     which also classifies its inputs (the American per-element errors) and
 *     gives the price's lower bound; the price checks follow (iv.h's order);
 *  2. the start: the European implied vol of the price, one gk_implied_vol
 *     batch call (an upper bound of the American vol), or 100%;
 *  3. alo only, the warm start: step 4 on alo's fast level (1e-6 of the
 *     strike, ~4x cheaper a price), to a step of 1e-6 of sigma; its root
 *     starts step 4, whose first Newton step then usually ends the search;
 *  4. the steps: the still-active elements are gathered into one batch, priced
 *     in one gk_american_price_batch_on call (with the method's vega the first
 *     time), and each takes a Newton step (the vega, then the secant of its
 *     last two points), or a bisection of its bracket when Newton would leave
 *     the bracket or did not halve the residual;
 *  5. the vega note: the solutions priced once more, a hair higher (on alo,
 *     only those whose vega is near the note's threshold).
 * Why this way: the pricing calls carry every unconverged element together, so
 * the cost is that of the method's batch kernel (vectorized methods make this
 * faster with no change here), and the bracket makes convergence certain even
 * where the vega is 0 (the exercise region) or only approximate (the tree).
 * The warm start only moves where step 4 starts: every result, error and flag
 * comes from step 4 and 5 at the method's own accuracy, so an element the
 * fast level misjudges (an error, no convergence, a vol it cannot reach)
 * starts from step 2's vol as before. With it, a vol takes one accurate
 * price with vega where it took four to five prices and a note (adr/0043).
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "american_internal.h"
#include "greeks/american_iv.h"
#include "kernel_internal.h"

#define CHUNK GK_AMERICAN_IV_CHUNK
#define STEP_TOLERANCE (0.1 * GK_AMERICAN_IV_TOLERANCE) /* a tenth of the target */
#define START_WITHOUT_EUROPEAN 1.0                       /* 100%: the price is above the European bound */
#define VEGA_PROBE 1e-7                                  /* relative sigma step of the vega note */
#define WARM_STEP_TOLERANCE 1e-6 /* the warm start's stop: its level is only good to ~1e-6 of K anyway */
/* A bracket that closed with both ends' prices further than this (relative to
 * price + max(S, K)) from the target closed on a step of the method's price:
 * no vol gives the price back (american_iv.h, GK_AMERICAN_IV_FLAG_PRICE_NOT_REPRODUCED).
 * A smooth price's ends are within vega x sigma x 1e-11 of it, ~1e-12 of K. */
#define NOT_REPRODUCED_RELATIVE 1e-9

/* One chunk: the solver's state per element and the gathered batch of the
 * elements still being solved (map[k]: chunk position of batch element k). */
typedef struct chunk_solver {
  gk_isa isa;
  gk_model model;
  gk_american_method method;
  int warm;              /* pricing on alo's fast level (step 3) */
  const gk_american_pace *pace; /* the tree's, between its prices; NULL: none */
  double step_tolerance; /* the relative sigma step that ends a search */
  const gk_iv_batch *in;
  size_t first, n;
  double target[CHUNK], resolution[CHUNK], lo[CHUNK], hi[CHUNK], sigma[CHUNK];
  double slope[CHUNK];      /* the last slope that rose above rounding */
  uint8_t warm_started[CHUNK]; /* step 3 gave step 4's start */
  double last_sigma[CHUNK], last_residual[CHUNK]; /* the previous priced point */
  double lo_residual[CHUNK], hi_residual[CHUNK]; /* price - target at the bracket's ends (INFINITY: unpriced) */
  uint8_t active[CHUNK], hi_priced[CHUNK], error[CHUNK], flags[CHUNK];
  uint8_t noted[CHUNK]; /* the vega note taken by step 4's first step (alo) */
  size_t batch, map[CHUNK];
  double S[CHUNK], K[CHUNK], T[CHUNK], r[CHUNK], q[CHUNK], vol[CHUNK], price[CHUNK], vega[CHUNK];
  uint8_t type[CHUNK], batch_error[CHUNK];
} chunk_solver;

static gk_rc check_arguments(gk_isa isa, gk_model model, gk_american_method method, const gk_iv_batch *in,
                             const double *vol, const uint8_t *error) {
  if ((unsigned)isa >= GK_ISA_COUNT) return GK_RC_ISA_UNKNOWN;
  if (!gk_isa_supported(isa)) return GK_RC_ISA_UNSUPPORTED;
  if (in == NULL || vol == NULL || error == NULL) return GK_RC_NULL_ARGUMENT;
  if ((unsigned)model >= GK_MODEL_COUNT) return GK_RC_BAD_MODEL;
  if (model == GK_MODEL_BACHELIER) return GK_RC_MODEL_NOT_SUPPORTED;
  if ((unsigned)method >= GK_AMERICAN_METHOD_COUNT) return GK_RC_BAD_METHOD;
  if (in->count > 0 && (!in->spot || !in->strike || !in->expiry || !in->rate || !in->price || !in->type))
    return GK_RC_MISSING_INPUT;
  if (in->count > 0 && gk_model_uses_yield(model) && !in->yield) return GK_RC_MISSING_INPUT;
  return GK_RC_OK;
}

/* Gathers the active elements (all of them when `all`) at their current sigma. */
static void gather_batch(chunk_solver *c, int all) {
  c->batch = 0;
  for (size_t j = 0; j < c->n; j++) {
    if (!all && !c->active[j]) continue;
    size_t i = c->first + j, k = c->batch++;
    c->map[k] = j;
    c->S[k] = c->in->spot[i], c->K[k] = c->in->strike[i], c->T[k] = c->in->expiry[i];
    c->r[k] = c->in->rate[i], c->q[k] = gk_model_uses_yield(c->model) ? c->in->yield[i] : 0.0;
    c->type[k] = c->in->type[i], c->vol[k] = c->sigma[j];
  }
}

/* Prices the gathered batch: the price, and the method's vega when asked. */
static gk_rc price_batch(chunk_solver *c, unsigned outputs) {
  gk_option_batch in = {c->batch, c->S, c->K, c->T, c->r, c->q, c->vol, c->type};
  gk_greeks_batch out = {.price = c->price, .vega = c->vega, .error = c->batch_error};
  if (c->warm) return gk_alo_price_batch_on(c->isa, c->model, GK_ALO_FAST, &in, outputs, &out, NULL);
  if (c->pace && c->method == GK_AMERICAN_TREE) /* scalar on every ISA: the same prices */
    return gk_american_price_batch_paced(c->model, c->method, &in, outputs, &out, NULL, c->pace);
  return gk_american_price_batch_on(c->isa, c->model, c->method, &in, outputs, &out, NULL);
}

static void finish(chunk_solver *c, size_t j, gk_element_error error, double sigma) {
  c->active[j] = 0;
  c->error[j] = (uint8_t)error;
  c->sigma[j] = error == GK_ELEMENT_OK ? sigma : 0.0;
  if (error != GK_ELEMENT_OK) c->flags[j] = 0;
}

/* The price resolution R of american_iv.h: rounding of a few ulps of the price
 * and of the levels S and K, which the methods' formulas carry. */
static double price_resolution(double target, double S, double K) {
  return GK_IV_INTRINSIC_ULPS * DBL_EPSILON * (fabs(target) + fmax(S, K));
}

/* The American price's upper bound: a put pays at most K, discounted at a
 * rate that may be negative, so K max(1, e^{-rT}); a call at most S max(1,
 * e^{-qT}) (black76: q = r). */
static double price_upper_bound(const chunk_solver *c, size_t k) {
  if (c->type[k] == GK_PUT) return c->K[k] * fmax(1.0, exp(-c->r[k] * c->T[k]));
  double q = gk_model_uses_yield(c->model) ? c->q[k] : c->r[k];
  return c->S[k] * fmax(1.0, exp(-q * c->T[k]));
}

/* Step 1 for batch element k, priced at sigma = 0: its input error, or the
 * price's against the limits (iv.h's order). */
static gk_element_error limit_error(const chunk_solver *c, size_t k, double target) {
  double lower = c->price[k], upper = price_upper_bound(c, k);
  if (c->batch_error[k] != GK_ELEMENT_OK) return (gk_element_error)c->batch_error[k];
  if (!(c->T[k] > 0.0)) return GK_ELEMENT_EXPIRY_NOT_POSITIVE;
  if (!isfinite(target)) return GK_ELEMENT_PRICE_NOT_FINITE;
  if (target - lower < -price_resolution(target, c->S[k], c->K[k])) return GK_ELEMENT_AMERICAN_PRICE_BELOW_LOWER_LIMIT;
  if (target >= upper) return GK_ELEMENT_AMERICAN_PRICE_ABOVE_UPPER_BOUND;
  return GK_ELEMENT_OK;
}

/* Finishes an element that is invalid or at its lower limit (vol 0); leaves the
 * others active on the bracket [0, max vol]. */
static void check_against_limits(chunk_solver *c, size_t k) {
  size_t j = c->map[k];
  double target = c->in->price[c->first + j];
  gk_element_error error = limit_error(c, k, target);
  c->target[j] = target;
  double resolution = error == GK_ELEMENT_OK ? price_resolution(target, c->S[k], c->K[k]) : 0.0;
  int at_lower = target - c->price[k] <= resolution;
  if (error == GK_ELEMENT_OK && at_lower) c->flags[j] |= GK_AMERICAN_IV_FLAG_AT_LOWER_LIMIT;
  if (error != GK_ELEMENT_OK || at_lower) {
    finish(c, j, error, 0.0);
    return;
  }
  c->active[j] = 1;
  c->resolution[j] = resolution;
  c->lo[j] = 0.0, c->hi[j] = GK_AMERICAN_IV_MAX_VOL, c->hi_priced[j] = 0;
  c->last_residual[j] = INFINITY, c->last_sigma[j] = 0.0, c->slope[j] = 0.0;
  c->lo_residual[j] = c->hi_residual[j] = INFINITY;
}

static gk_rc check_inputs(chunk_solver *c) {
  for (size_t j = 0; j < c->n; j++) c->sigma[j] = 0.0, c->active[j] = 0, c->flags[j] = 0, c->noted[j] = 0;
  gather_batch(c, 1);
  gk_rc rc = price_batch(c, GK_OUT_PRICE);
  if (rc != GK_RC_OK) return rc;
  for (size_t k = 0; k < c->batch; k++) check_against_limits(c, k);
  return GK_RC_OK;
}

/* Step 2: the European vol of each active price, where it exists and is below
 * the highest vol searched; else 100% (the search grows from there). */
static gk_rc choose_start(chunk_solver *c) {
  gather_batch(c, 0);
  for (size_t k = 0; k < c->batch; k++) c->price[k] = c->target[c->map[k]];
  gk_iv_batch iv = {c->batch, c->S, c->K, c->T, c->r, c->q, c->price, c->type};
  gk_rc rc = gk_implied_vol_batch_on(c->isa, c->model, &iv, c->vol, c->batch_error, NULL);
  if (rc != GK_RC_OK) return rc;
  for (size_t k = 0; k < c->batch; k++) {
    double european = c->vol[k];
    int usable = c->batch_error[k] == GK_ELEMENT_OK && european > 0.0 && european < GK_AMERICAN_IV_MAX_VOL;
    c->sigma[c->map[k]] = usable ? european : START_WITHOUT_EUROPEAN;
  }
  return GK_RC_OK;
}

/* The slope for the step: the method's vega at the first point, then the
 * secant through the last two (a price alone per step afterwards), unless
 * their prices differ by rounding only (16 resolutions): then the last good slope. */
static double step_slope(const chunk_solver *c, size_t k, size_t j, int step, double residual) {
  if (step == 0) return c->vega[k];
  double rise = residual - c->last_residual[j], run = c->sigma[j] - c->last_sigma[j];
  if (!(fabs(rise) > 16.0 * c->resolution[j]) || run == 0.0) return c->slope[j];
  return rise / run;
}

/* Whether element j's bracket closed on a step of the price: both of its
 * ends further from the target than a smooth price can be there. The vol
 * returned is the step's; it was returned unflagged (found in review: bs2002
 * at its hand-off to alo's fast level, a step of ~0.6% of the price; alo's
 * fast level leaving the exercise region, 1.9e-8 x K). */
static int closed_on_a_step(const chunk_solver *c, size_t j) {
  double scale = c->resolution[j] / (GK_IV_INTRINSIC_ULPS * DBL_EPSILON); /* price + max(S, K) */
  double nearest = fmin(fabs(c->lo_residual[j]), fabs(c->hi_residual[j]));
  return nearest > NOT_REPRODUCED_RELATIVE * scale;
}

/* Step 4 for batch element k, priced at its sigma: narrow the bracket, then
 * stop or choose the next sigma. */
static void take_step(chunk_solver *c, size_t k, int step) {
  size_t j = c->map[k];
  double sigma = c->sigma[j], residual = c->price[k] - c->target[j];
  if (c->batch_error[k] != GK_ELEMENT_OK) {
    finish(c, j, (gk_element_error)c->batch_error[k], 0.0);
    return;
  }
  double slope = step_slope(c, k, j, step, residual);
  if (residual < 0.0) c->lo[j] = sigma, c->lo_residual[j] = residual;
  else c->hi[j] = sigma, c->hi_priced[j] = 1, c->hi_residual[j] = residual; /* also a NaN price: search lower */
  if (slope > 0.0) c->slope[j] = slope;
  if (residual < 0.0 && sigma >= GK_AMERICAN_IV_MAX_VOL) {
    finish(c, j, GK_ELEMENT_AMERICAN_PRICE_ABOVE_UPPER_BOUND, 0.0);
    return;
  }
  if (fabs(residual) <= c->resolution[j]) {
    finish(c, j, GK_ELEMENT_OK, sigma);
    return;
  }
  /* Until a price above the target is seen, the bracket's top is the highest
   * vol, unpriced: the search grows sigma at most twofold per step, so that a
   * method that misprices huge vols (the tree: nodes too coarse) is not asked. */
  double lo = c->lo[j], top = c->hi_priced[j] ? c->hi[j] : fmin(2.0 * sigma, GK_AMERICAN_IV_MAX_VOL);
  double newton = slope > 0.0 ? sigma - residual / slope : NAN;
  int use_newton = slope > 0.0 && newton > lo && newton < top &&
                   fabs(residual) <= 0.5 * fabs(c->last_residual[j]);
  double next = use_newton ? newton : c->hi_priced[j] ? 0.5 * (lo + top) : top;
  int converged = use_newton ? fabs(next - sigma) <= c->step_tolerance * next
                             : c->hi_priced[j] && top - lo <= c->step_tolerance * top;
  c->last_residual[j] = residual, c->last_sigma[j] = sigma;
  if (!converged && step + 1 == GK_AMERICAN_IV_MAX_STEPS) c->flags[j] |= GK_AMERICAN_IV_FLAG_NOT_CONVERGED;
  /* not on the warm start's level: its bracket closes at 1e-6, where a smooth
   * price's ends are that far apart too (it discarded good starts: found in review) */
  if (converged && !use_newton && !c->warm && closed_on_a_step(c, j))
    c->flags[j] |= GK_AMERICAN_IV_FLAG_PRICE_NOT_REPRODUCED;
  if (converged || step + 1 == GK_AMERICAN_IV_MAX_STEPS) finish(c, j, GK_ELEMENT_OK, next);
  else c->sigma[j] = next;
}

static gk_rc iterate(chunk_solver *c, int first_step) {
  for (int step = first_step; step < GK_AMERICAN_IV_MAX_STEPS; step++) {
    gather_batch(c, 0);
    if (c->batch == 0) break;
    gk_rc rc = price_batch(c, step == 0 ? GK_OUT_PRICE | GK_OUT_VEGA : GK_OUT_PRICE);
    if (rc != GK_RC_OK) return rc;
    for (size_t k = 0; k < c->batch; k++) take_step(c, k, step);
  }
  return GK_RC_OK;
}

/* Whether element j is one that alo hands to the tree (american.h, negative
 * rates) or prices on its wide scheme (past GK_ALO_MAX_CARRY): the fast level
 * would price it the same way, at full cost. */
static int routed_to_tree(const chunk_solver *c, size_t j) {
  size_t i = c->first + j;
  const gk_iv_batch *in = c->in;
  if (!gk_model_uses_yield(c->model)) return 0; /* black76: never */
  gk_option_batch one = {in->count, in->spot, in->strike, in->expiry, in->rate, in->yield, NULL, in->type};
  return gk_american_routed_to_tree(c->model, &one, i) || gk_alo_beyond_carry_at(c->model, &one, i); /* not the pull: it moves with the vol solved for */
}

/* The state of step 4's search from sigma, its bracket the whole range. */
static void restart_search(chunk_solver *c, size_t j, double sigma) {
  c->active[j] = 1, c->error[j] = GK_ELEMENT_OK, c->flags[j] = 0;
  c->sigma[j] = sigma;
  c->lo[j] = 0.0, c->hi[j] = GK_AMERICAN_IV_MAX_VOL, c->hi_priced[j] = 0;
  c->last_residual[j] = INFINITY, c->last_sigma[j] = 0.0, c->slope[j] = 0.0;
  c->lo_residual[j] = c->hi_residual[j] = INFINITY;
}

/* Step 3: alo's fast level solved from step 2's start; where it converged
 * cleanly, its root starts step 4, else step 2's vol does. */
static gk_rc warm_start(chunk_solver *c) {
  for (size_t j = 0; j < c->n; j++) c->warm_started[j] = 0;
  if (c->method != GK_AMERICAN_ALO) return GK_RC_OK;
  uint8_t searched[CHUNK];
  double start[CHUNK];
  for (size_t j = 0; j < c->n; j++) {
    searched[j] = c->active[j], start[j] = c->sigma[j];
    if (c->active[j] && routed_to_tree(c, j)) c->active[j] = 0;
  }
  c->warm = 1, c->step_tolerance = WARM_STEP_TOLERANCE;
  gk_rc rc = iterate(c, 0);
  c->warm = 0, c->step_tolerance = STEP_TOLERANCE;
  if (rc != GK_RC_OK) return rc;
  for (size_t j = 0; j < c->n; j++) {
    if (!searched[j]) continue;
    int usable = !routed_to_tree(c, j) && c->error[j] == GK_ELEMENT_OK && c->flags[j] == 0 &&
                 c->sigma[j] > 0.0 && c->sigma[j] < GK_AMERICAN_IV_MAX_VOL && c->slope[j] > 0.0;
    restart_search(c, j, usable ? c->sigma[j] : start[j]);
    c->warm_started[j] = (uint8_t)usable;
  }
  return GK_RC_OK;
}

/* The vega note of a solved element from a rise of its price over sigma
 * VEGA_PROBE (step 5). */
static void note_vega(chunk_solver *c, size_t j, double rise) {
  if (!(rise * (GK_AMERICAN_IV_TOLERANCE / VEGA_PROBE) >= c->resolution[j])) c->flags[j] |= GK_AMERICAN_IV_FLAG_LOW_VEGA;
  c->noted[j] = 1;
}

/* The relative error allowed alo's vega as the slope of its own price in
 * sigma: the adjoint's vega is the converged boundary's derivative, which
 * the scheme's price follows to ~1e-8 (docs/kernels.md); a 100-fold margin. */
#define ALO_VEGA_SLOPE_ERROR 1e-6

/* Whether the Newton step from sigma to next, on alo's vega, lands within the
 * tolerance of the root: the slope's error times the step, plus a curvature
 * term (a second derivative ten times sigma's scale, allowed). */
static int first_step_is_final(double sigma, double next) {
  double step = fabs(next - sigma);
  return step * ALO_VEGA_SLOPE_ERROR + 10.0 * step * step / sigma <= STEP_TOLERANCE * next;
}

/* Step 4's first step on alo, from step 3's start: each element priced with
 * its vega (the adjoint pass, ~1.5x a price), the Newton slope. Where step 3
 * started it and the step is short enough that the slope's error cannot move
 * the result by the tolerance, the element is solved without another price.
 * Where the vega is well above the vega note's threshold (4 R), it is the
 * note: the note's secant just above the solution would give the same
 * verdict; nearer the threshold the note prices it (step 5). Elements that
 * alo hands to the tree (vega by bumps of a piecewise smooth price) were not
 * warm-started and take the usual steps. */
static gk_rc first_accurate_step(chunk_solver *c) {
  gather_batch(c, 0);
  if (c->batch == 0) return GK_RC_OK;
  gk_rc rc = price_batch(c, GK_OUT_PRICE | GK_OUT_VEGA);
  if (rc != GK_RC_OK) return rc;
  for (size_t k = 0; k < c->batch; k++) {
    size_t j = c->map[k];
    double sigma = c->sigma[j], rise = c->vega[k] * sigma * VEGA_PROBE;
    int warm = c->warm_started[j], priced = c->batch_error[k] == GK_ELEMENT_OK;
    int clear_of_the_note = priced && rise * (GK_AMERICAN_IV_TOLERANCE / VEGA_PROBE) >= 4.0 * c->resolution[j];
    take_step(c, k, 0);
    /* never at the unpriced top: a warm start a hair under it (the fast
     * level's price there is higher) stepped to it and ended there, vol 10
     * for a price above the accurate level's at 10 (found in review); priced
     * there next, that is the above-the-bound error */
    int at_the_unpriced_top = c->sigma[j] >= GK_AMERICAN_IV_MAX_VOL && !c->hi_priced[j];
    if (c->active[j] && warm && clear_of_the_note && !at_the_unpriced_top && first_step_is_final(sigma, c->sigma[j]))
      finish(c, j, GK_ELEMENT_OK, c->sigma[j]);
    if (!c->active[j] && c->error[j] == GK_ELEMENT_OK && clear_of_the_note && fabs(c->sigma[j] - sigma) <= 1e-6 * sigma)
      note_vega(c, j, rise);
  }
  return GK_RC_OK;
}

/* Step 4: alo's first accurate step, then the steps. */
static gk_rc search(chunk_solver *c) {
  if (c->method != GK_AMERICAN_ALO) return iterate(c, 0);
  gk_rc rc = first_accurate_step(c);
  return rc == GK_RC_OK ? iterate(c, 1) : rc;
}

/* Step 5, the vega note: every solved element priced once more, all in one
 * batch call, at sigma (1 + VEGA_PROBE). The secant to the price,
 * (price - target) / (sigma VEGA_PROBE), stands for the vega at the solution
 * (the last Newton slope can span the kink where the price leaves the
 * exercise region); R moves it by 1e-9 of itself at the flag's threshold. */
static gk_rc note_low_vega(chunk_solver *c) {
  for (size_t j = 0; j < c->n; j++)
    c->active[j] = c->error[j] == GK_ELEMENT_OK && !(c->flags[j] & GK_AMERICAN_IV_FLAG_AT_LOWER_LIMIT) && !c->noted[j];
  gather_batch(c, 0);
  for (size_t k = 0; k < c->batch; k++) c->vol[k] *= 1.0 + VEGA_PROBE;
  gk_rc rc = price_batch(c, GK_OUT_PRICE);
  if (rc != GK_RC_OK) return rc;
  for (size_t k = 0; k < c->batch; k++) {
    size_t j = c->map[k];
    note_vega(c, j, c->price[k] - c->target[j]); /* the rise: vega sigma VEGA_PROBE, +- R */
    c->active[j] = 0;
  }
  return GK_RC_OK;
}

static gk_rc solve_chunk(chunk_solver *c, double *vol, uint8_t *error, uint8_t *flags, size_t *invalid) {
  gk_rc rc = check_inputs(c);
  if (rc == GK_RC_OK) rc = choose_start(c);
  if (rc == GK_RC_OK) rc = warm_start(c);
  if (rc == GK_RC_OK) rc = search(c);
  if (rc == GK_RC_OK) rc = note_low_vega(c);
  if (rc != GK_RC_OK) return rc;
  for (size_t j = 0; j < c->n; j++) {
    size_t i = c->first + j;
    vol[i] = c->sigma[j], error[i] = c->error[j];
    if (flags) flags[i] = c->flags[j];
    *invalid += c->error[j] != GK_ELEMENT_OK;
  }
  return GK_RC_OK;
}

static gk_rc solve_batch(gk_isa isa, gk_model model, gk_american_method method, const gk_iv_batch *in, double *vol,
                         uint8_t *error, uint8_t *flags, size_t *invalid_count, const gk_american_pace *pace) {
  gk_rc rc = check_arguments(isa, model, method, in, vol, error);
  if (rc != GK_RC_OK) return rc;
  chunk_solver c = {.isa = isa, .model = model, .method = method, .pace = pace, .step_tolerance = STEP_TOLERANCE,
                    .in = in};
  size_t invalid = 0;
  for (size_t first = 0; first < in->count; first += CHUNK) {
    c.first = first;
    c.n = in->count - first < CHUNK ? in->count - first : CHUNK;
    rc = solve_chunk(&c, vol, error, flags, &invalid);
    if (rc != GK_RC_OK) return rc;
  }
  if (invalid_count) *invalid_count = invalid;
  return GK_RC_OK;
}

gk_rc gk_american_implied_vol_batch_on(gk_isa isa, gk_model model, gk_american_method method,
                                       const gk_iv_batch *in, double *vol, uint8_t *error,
                                       uint8_t *flags, size_t *invalid_count) {
  return solve_batch(isa, model, method, in, vol, error, flags, invalid_count, NULL);
}

gk_rc gk_american_implied_vol_batch_paced(gk_model model, gk_american_method method, const gk_iv_batch *in,
                                          double *vol, uint8_t *error, uint8_t *flags, size_t *invalid_count,
                                          const gk_american_pace *pace) {
  gk_rc rc = gk_isa_init();
  if (rc != GK_RC_OK) return rc;
  return solve_batch(gk_isa_active(), model, method, in, vol, error, flags, invalid_count,
                     pace && pace->between_prices ? pace : NULL);
}

gk_rc gk_american_implied_vol_batch(gk_model model, gk_american_method method, const gk_iv_batch *in,
                                    double *vol, uint8_t *error, uint8_t *flags, size_t *invalid_count) {
  gk_rc rc = gk_isa_init();
  if (rc != GK_RC_OK) return rc;
  return gk_american_implied_vol_batch_on(gk_isa_active(), model, method, in, vol, error, flags, invalid_count);
}
