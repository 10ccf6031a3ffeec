#include "greeks/pricing.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "greeks/american.h"
#include "greeks/bsm.h"
#include "greeks/isa.h"
#include "greeks/iv.h"

/* Rounded up without n + S - 1, which wraps to 0 slices near SIZE_MAX. */
static size_t slice_count(size_t n) { return n / GK_SLICE_OPTIONS + (n % GK_SLICE_OPTIONS != 0); }

/* The field a kernel's refusal is about (engine.md: every error names one;
 * they came back empty: found in review). null_field: which argument is NULL,
 * as the caller sees it ("in", "out", "out.error"). */
static const char *kernel_field(gk_rc rc, const char *null_field) {
  switch (rc) {
    case GK_RC_NULL_ARGUMENT: return null_field;
    case GK_RC_BAD_MODEL:
    case GK_RC_MODEL_NOT_SUPPORTED: return "model";
    case GK_RC_BAD_OUTPUT_MASK:
    case GK_RC_MISSING_OUTPUT:
    case GK_RC_OUTPUT_NOT_SUPPORTED: return "outputs";
    case GK_RC_ISA_UNKNOWN:
    case GK_RC_ISA_UNSUPPORTED: return "GREEKS_ISA";
    case GK_RC_BAD_METHOD: return "method";
    default: return NULL;
  }
}

/* A bad GREEKS_ISA is the process's setting, chosen once (isa.h): no retry
 * can succeed, so FAILED_PRECONDITION, not the transient UNAVAILABLE clients
 * retry (found in review). Every engine entry point answers it so. */
gk_code gk_engine_isa_refused(gk_rc rc, gk_status *status) {
  char value[32] = "";
  const char *isa = getenv("GREEKS_ISA");
  if (isa) snprintf(value, sizeof value, "%.31s", isa);
  return gk_status_set(status, GK_FAILED_PRECONDITION, "GREEKS_ISA", value[0] ? value : NULL, GK_STATUS_NO_INDEX,
                       "pricing kernels: %s", gk_rc_message(rc));
}

static gk_code kernel_error(gk_rc rc, gk_model model, const char *null_field, gk_status *status) {
  if (rc == GK_RC_ISA_UNKNOWN || rc == GK_RC_ISA_UNSUPPORTED) return gk_engine_isa_refused(rc, status);
  gk_code code = rc == GK_RC_OUT_OF_MEMORY ? GK_RESOURCE_EXHAUSTED : GK_INVALID_ARGUMENT;
  char value[32] = "";
  if (rc == GK_RC_BAD_MODEL || rc == GK_RC_MODEL_NOT_SUPPORTED) snprintf(value, sizeof value, "%d", (int)model);
  return gk_status_set(status, code, kernel_field(rc, null_field), value[0] ? value : NULL, GK_STATUS_NO_INDEX,
                       "pricing kernels: %s", gk_rc_message(rc));
}

/* Which of a batch call's pointers is NULL ("in", "out", "out.error"), else NULL. */
static const char *null_batch_argument(const gk_option_batch *in, const gk_greeks_batch *out) {
  return in == NULL ? "in" : out == NULL ? "out" : out->error == NULL ? "out.error" : NULL;
}

/* The first input array of `in` the model needs that is NULL, else NULL: the
 * kernels' GK_RC_MISSING_INPUT does not say which (pricing.h promises the
 * field: found in review). */
static const char *missing_input(gk_model model, const gk_option_batch *in) {
  if (in == NULL || in->count == 0) return NULL;
  const struct {
    const char *name;
    const void *array;
  } arrays[] = {{"spot", in->spot}, {"strike", in->strike}, {"expiry", in->expiry}, {"rate", in->rate},
                {"vol", in->vol},   {"type", in->type}};
  for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
    if (arrays[k].array == NULL) return arrays[k].name;
  return (unsigned)model < GK_MODEL_COUNT && gk_model_uses_yield(model) && in->yield == NULL ? "yield" : NULL;
}

static gk_code missing_input_error(const char *field, gk_status *status) {
  return gk_status_set(status, GK_INVALID_ARGUMENT, field, NULL, GK_STATUS_NO_INDEX,
                       "pricing kernels: the input array '%s' the model needs is NULL", field);
}

/* A sub-range [begin, begin + count) of a batch: every array offset. */
static gk_option_batch batch_slice(const gk_option_batch *in, size_t begin, size_t count) {
  gk_option_batch s = *in;
  s.count = count;
  s.spot += begin, s.strike += begin, s.expiry += begin, s.rate += begin, s.vol += begin;
  s.type += begin;
  if (s.yield) s.yield += begin;
  return s;
}

static double *offset_or_null(double *p, size_t begin) { return p ? p + begin : NULL; }

/* Every output array offset by `begin` (NULL stays NULL). Starts from a zeroed
 * struct so that no member, present or added later, is left uninitialized. */
static gk_greeks_batch results_slice(const gk_greeks_batch *out, size_t begin) {
  gk_greeks_batch s = {0};
  double **dst[] = {&s.price, &s.delta, &s.gamma, &s.vega, &s.theta, &s.rho, &s.phi,
                    &s.vanna, &s.volga, &s.charm, &s.veta, &s.speed, &s.zomma, &s.color,
                    &s.dual_delta, &s.dual_gamma};
  double *const src[] = {out->price, out->delta, out->gamma, out->vega, out->theta, out->rho,
                         out->phi, out->vanna, out->volga, out->charm, out->veta, out->speed,
                         out->zomma, out->color, out->dual_delta, out->dual_gamma};
  for (size_t k = 0; k < sizeof src / sizeof src[0]; k++) *dst[k] = offset_or_null(src[k], begin);
  s.error = out->error + begin;
  return s;
}

/* Prices one slice: runs of equal style go to the European or the American
 * kernels in place (no copy), so a single-style slice is one kernel call. */
static size_t price_slice_by_style(gk_model model, const gk_option_batch *in,
                                   const gk_exercise *exercise, const uint8_t *style,
                                   unsigned outputs, const gk_greeks_batch *out, atomic_int *out_of_memory) {
  size_t invalid = 0;
  for (size_t begin = 0; begin < in->count;) {
    uint8_t run_style = style ? style[begin] : GK_STYLE_EUROPEAN;
    size_t end = begin + 1;
    while (end < in->count && (style ? style[end] : GK_STYLE_EUROPEAN) == run_style) end++;
    gk_option_batch run = batch_slice(in, begin, end - begin);
    gk_greeks_batch run_out = results_slice(out, begin);
    size_t run_invalid = 0;
    /* Arguments were checked on the whole batch; a run cannot fail differently,
     * but the American kernels' working memory for this thread can be missing. */
    if (run_style == GK_STYLE_AMERICAN) {
      if (gk_american_price_batch_paced(model, exercise->method, &run, outputs, &run_out, &run_invalid,
                                        &exercise->pace) == GK_RC_OUT_OF_MEMORY)
        atomic_store(out_of_memory, 1);
    } else
      gk_bsm_price_batch(model, &run, outputs, &run_out, &run_invalid);
    invalid += run_invalid;
    begin = end;
  }
  return invalid;
}

/* The exercise arguments: every style byte known, and the American kernels'
 * own argument rules when any element is American. */
static gk_code check_exercise(gk_model model, const gk_option_batch *in,
                              const gk_exercise *exercise, unsigned outputs,
                              const gk_greeks_batch *out, gk_status *status) {
  if (exercise == NULL || exercise->style == NULL) return GK_OK;
  int checked_american = 0; /* the American rules do not depend on the element */
  for (size_t i = 0; i < in->count; i++) {
    uint8_t style = exercise->style[i];
    if (style != GK_STYLE_EUROPEAN && style != GK_STYLE_AMERICAN)
      return gk_status_set(status, GK_INVALID_ARGUMENT, "style", NULL, (int64_t)i,
                           "element %zu: style %u must be european (0) or american (1)", i,
                           (unsigned)style);
    if (style == GK_STYLE_AMERICAN && !checked_american) {
      gk_rc rc = gk_american_check_batch(model, exercise->method, in, outputs, out);
      if (rc != GK_RC_OK)
        return gk_status_set(status, GK_INVALID_ARGUMENT, "style", "american", (int64_t)i,
                             "element %zu is american: %s", i, gk_rc_message(rc));
      checked_american = 1;
    }
  }
  return GK_OK;
}

typedef struct batch_job {
  gk_model model;
  const gk_option_batch *in;
  const gk_exercise *exercise;
  unsigned outputs;
  const gk_greeks_batch *out;
  _Atomic size_t invalid;
  atomic_int out_of_memory; /* an American run could not get its working memory */
} batch_job;

static void price_batch_slice(void *context, size_t task, int worker) {
  (void)worker;
  batch_job *job = context;
  size_t begin = task * GK_SLICE_OPTIONS;
  size_t count = job->in->count - begin < GK_SLICE_OPTIONS ? job->in->count - begin : GK_SLICE_OPTIONS;
  gk_option_batch in = batch_slice(job->in, begin, count);
  gk_greeks_batch out = results_slice(job->out, begin);
  const uint8_t *style = job->exercise && job->exercise->style ? job->exercise->style + begin : NULL;
  size_t invalid = price_slice_by_style(job->model, &in, job->exercise, style, job->outputs, &out, &job->out_of_memory);
  atomic_fetch_add(&job->invalid, invalid);
}

static gk_code american_out_of_memory(gk_status *status) {
  return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "pricing kernels: %s",
                       gk_rc_message(GK_RC_OUT_OF_MEMORY));
}

gk_code gk_price_batch(gk_pool *pool, gk_model model, const gk_option_batch *in,
                       unsigned outputs, gk_greeks_batch *out, size_t *invalid_count,
                       gk_status *status) {
  return gk_price_batch_ex(pool, model, in, NULL, outputs, out, invalid_count, status);
}

gk_code gk_price_batch_ex(gk_pool *pool, gk_model model, const gk_option_batch *in,
                          const gk_exercise *exercise, unsigned outputs, gk_greeks_batch *out,
                          size_t *invalid_count, gk_status *status) {
  /* The kernels' own argument rules, checked once for the whole batch; the ISA
   * choice too, so a bad GREEKS_ISA fails here rather than inside a worker. */
  gk_rc rc = gk_bsm_check_batch(model, in, outputs, out);
  if (rc == GK_RC_MISSING_INPUT && missing_input(model, in)) return missing_input_error(missing_input(model, in), status);
  if (rc == GK_RC_OK) rc = gk_isa_init();
  if (rc != GK_RC_OK) return kernel_error(rc, model, null_batch_argument(in, out), status);
  gk_code code = check_exercise(model, in, exercise, outputs, out, status);
  if (code != GK_OK) return code;
  batch_job job = {model, in, exercise, outputs, out, 0, 0};
  size_t tasks = slice_count(in->count);
  if (pool == NULL) {
    for (size_t t = 0; t < tasks; t++) price_batch_slice(&job, t, 0);
  } else {
    code = gk_pool_run(pool, tasks, price_batch_slice, &job, status);
    if (code != GK_OK) return code;
  }
  if (atomic_load(&job.out_of_memory)) return american_out_of_memory(status);
  if (invalid_count) *invalid_count = atomic_load(&job.invalid);
  gk_status_clear(status);
  return GK_OK;
}

static gk_code reject_market(gk_status *status, const char *field, double value, const char *rule) {
  char text[64];
  snprintf(text, sizeof text, "%.17g", value);
  return gk_status_set(status, GK_INVALID_ARGUMENT, field, text, GK_STATUS_NO_INDEX,
                       "market %s = %s: %s", field, text, rule);
}

gk_code gk_market_validate(gk_model model, const gk_market *market, gk_status *status) {
  if (market == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "market", NULL, GK_STATUS_NO_INDEX, "market is NULL");
  double spot = market->spot, rate = market->rate, yield = market->yield;
  if (!isfinite(spot)) return reject_market(status, "spot", spot, "must be a finite number");
  if (model == GK_MODEL_BACHELIER) { /* a forward of any sign; no yield */
    if (fabs(spot) > GK_MAX_PRICE_LEVEL) return reject_market(status, "spot", spot, "must be in [-1e15, 1e15]");
    if (!isfinite(rate) || fabs(rate) > GK_MAX_ABS_RATE)
      return reject_market(status, "rate", rate, "must be finite and in [-5, 5] (per year)");
    gk_status_clear(status);
    return GK_OK;
  }
  if (spot <= 0) return reject_market(status, "spot", spot, "must be > 0");
  if (spot < GK_MIN_PRICE_LEVEL || spot > GK_MAX_PRICE_LEVEL)
    return reject_market(status, "spot", spot, "must be in [1e-12, 1e15]");
  if (!isfinite(rate) || fabs(rate) > GK_MAX_ABS_RATE)
    return reject_market(status, "rate", rate, "must be finite and in [-5, 5] (per year)");
  if (gk_model_uses_yield(model) && (!isfinite(yield) || fabs(yield) > GK_MAX_ABS_RATE))
    return reject_market(status, "yield", yield, "must be finite and in [-5, 5] (per year)");
  gk_status_clear(status);
  return GK_OK;
}

/* Per-worker chain scratch: the market broadcast over one slice. */
typedef struct chain_scratch {
  double spot[GK_SLICE_OPTIONS];
  double rate[GK_SLICE_OPTIONS];
  double yield[GK_SLICE_OPTIONS];
} chain_scratch;

size_t gk_chain_scratch_bytes(void) { return sizeof(chain_scratch); }

typedef struct chain_job {
  gk_pool *pool;
  gk_model model;
  const gk_market *market;
  const gk_chain *chain;
  const gk_exercise *exercise;
  unsigned outputs;
  const gk_greeks_batch *out;
  _Atomic size_t invalid;
  chain_scratch *inline_scratch; /* used when there is no pool */
  atomic_int out_of_memory;      /* an American run could not get its working memory */
} chain_job;

static void price_chain_slice(void *context, size_t task, int worker) {
  chain_job *job = context;
  chain_scratch *scratch = job->pool ? gk_pool_scratch(job->pool, worker) : job->inline_scratch;
  size_t begin = task * GK_SLICE_OPTIONS;
  size_t count = job->chain->count - begin < GK_SLICE_OPTIONS ? job->chain->count - begin : GK_SLICE_OPTIONS;
  for (size_t i = 0; i < count; i++) {
    scratch->spot[i] = job->market->spot;
    scratch->rate[i] = job->market->rate;
    scratch->yield[i] = job->market->yield;
  }
  gk_option_batch in = {count, scratch->spot, job->chain->strike + begin,
                        job->chain->expiry + begin, scratch->rate, scratch->yield,
                        job->chain->vol + begin, job->chain->type + begin};
  gk_greeks_batch out = results_slice(job->out, begin);
  const uint8_t *style = job->exercise && job->exercise->style ? job->exercise->style + begin : NULL;
  size_t invalid = price_slice_by_style(job->model, &in, job->exercise, style, job->outputs, &out, &job->out_of_memory);
  atomic_fetch_add(&job->invalid, invalid);
}

/* Every worker writes a whole chain_scratch into its scratch: a pool with less
 * (none, or created for other work) would overflow it, so it is refused. */
static gk_code check_chain_pool(const gk_pool *pool, gk_status *status) {
  size_t has = gk_pool_scratch_bytes(pool), needs = gk_chain_scratch_bytes();
  if (pool == NULL || has >= needs) return GK_OK;
  char value[32];
  snprintf(value, sizeof value, "%zu", has);
  return gk_status_set(status, GK_INVALID_ARGUMENT, "pool", value, GK_STATUS_NO_INDEX,
                       "gk_price_chain: the pool has %zu bytes of scratch per worker, %zu needed "
                       "(create it with scratch_bytes >= gk_chain_scratch_bytes())", has, needs);
}

gk_code gk_price_chain(gk_pool *pool, gk_model model, const gk_market *market,
                       const gk_chain *chain, unsigned outputs, gk_greeks_batch *out,
                       size_t *invalid_count, gk_status *status) {
  return gk_price_chain_ex(pool, model, market, chain, NULL, outputs, out, invalid_count, status);
}

gk_code gk_price_chain_ex(gk_pool *pool, gk_model model, const gk_market *market,
                          const gk_chain *chain, const gk_exercise *exercise, unsigned outputs,
                          gk_greeks_batch *out, size_t *invalid_count, gk_status *status) {
  if (chain == NULL || out == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, chain ? "out" : "chain", NULL, GK_STATUS_NO_INDEX,
                         "gk_price_chain: %s is NULL", chain ? "out" : "chain");
  gk_code code = gk_market_validate(model, market, status);
  if (code != GK_OK) return code;
  code = check_chain_pool(pool, status);
  if (code != GK_OK) return code;
  /* The kernels' argument rules on the batch the slices will build (market arrays
   * stand in for the broadcast spot, rate and yield). */
  double one_spot = market->spot, one_rate = market->rate, one_yield = market->yield;
  gk_option_batch shape = {chain->count, &one_spot, chain->strike, chain->expiry,
                           &one_rate, &one_yield, chain->vol, chain->type};
  gk_rc rc = gk_bsm_check_batch(model, &shape, outputs, out);
  /* the missing array named, as gk_price_batch names it (found in review) */
  if (rc == GK_RC_MISSING_INPUT && missing_input(model, &shape))
    return missing_input_error(missing_input(model, &shape), status);
  if (rc == GK_RC_OK) rc = gk_isa_init();
  if (rc != GK_RC_OK) return kernel_error(rc, model, null_batch_argument(&shape, out), status);
  code = check_exercise(model, &shape, exercise, outputs, out, status);
  if (code != GK_OK) return code;
  chain_job job = {pool, model, market, chain, exercise, outputs, out, 0, NULL, 0};
  size_t tasks = slice_count(chain->count);
  if (pool == NULL) {
    /* One allocation per call, not per slice or element. */
    job.inline_scratch = malloc(sizeof *job.inline_scratch);
    if (job.inline_scratch == NULL)
      return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX,
                           "out of memory for the chain's scratch");
    for (size_t t = 0; t < tasks; t++) price_chain_slice(&job, t, 0);
    free(job.inline_scratch);
  } else {
    code = gk_pool_run(pool, tasks, price_chain_slice, &job, status);
    if (code != GK_OK) return code;
  }
  if (atomic_load(&job.out_of_memory)) return american_out_of_memory(status);
  if (invalid_count) *invalid_count = atomic_load(&job.invalid);
  gk_status_clear(status);
  return GK_OK;
}

/* ---- implied vol ---- */

typedef struct iv_job {
  gk_model model;
  const gk_iv_batch *in;
  double *vol;
  uint8_t *error;
  _Atomic size_t invalid;
} iv_job;

static gk_rc solve_iv_slice(iv_job *job, size_t task) {
  size_t begin = task * GK_SLICE_OPTIONS, n = job->in->count - begin;
  if (n > GK_SLICE_OPTIONS) n = GK_SLICE_OPTIONS;
  const gk_iv_batch *in = job->in;
  gk_iv_batch slice = {n, in->spot + begin, in->strike + begin, in->expiry + begin, in->rate + begin,
                       in->yield ? in->yield + begin : NULL, in->price + begin, in->type + begin};
  size_t invalid = 0;
  gk_rc rc = gk_implied_vol_batch(job->model, &slice, job->vol + begin, job->error + begin, &invalid);
  atomic_fetch_add(&job->invalid, invalid);
  return rc;
}

/* Slice 0 ran on the caller (the argument check): tasks here are slices 1.. */
static void solve_iv_task(void *context, size_t task, int worker) {
  (void)worker;
  solve_iv_slice(context, task + 1); /* arguments already accepted by slice 0 */
}

gk_code gk_implied_vol(gk_pool *pool, gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error,
                       size_t *invalid_count, gk_status *status) {
  if (in == NULL || vol == NULL || error == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, !in ? "in" : !vol ? "vol" : "error", NULL, GK_STATUS_NO_INDEX,
                         "gk_implied_vol: a required argument is NULL");
  if (in->count > 0 && (!in->spot || !in->strike || !in->expiry || !in->rate || !in->price || !in->type))
    return gk_status_set(status, GK_INVALID_ARGUMENT,
                         !in->spot ? "spot" : !in->strike ? "strike" : !in->expiry ? "expiry"
                         : !in->rate ? "rate" : !in->price ? "price" : "type",
                         NULL, GK_STATUS_NO_INDEX, "gk_implied_vol: spot, strike, expiry, rate, price and type arrays are required");
  if (in->count > 0 && (unsigned)model < GK_MODEL_COUNT && gk_model_uses_yield(model) && in->yield == NULL)
    return missing_input_error("yield", status);
  iv_job job = {model, in, vol, error, 0};
  gk_rc rc = in->count == 0 ? gk_implied_vol_batch(model, in, vol, error, NULL) : solve_iv_slice(&job, 0);
  if (rc != GK_RC_OK) return kernel_error(rc, model, "in", status);
  size_t tasks = slice_count(in->count);
  if (tasks > 1 && pool != NULL) {
    gk_code code = gk_pool_run(pool, tasks - 1, solve_iv_task, &job, status);
    if (code != GK_OK) return code;
  } else {
    for (size_t t = 1; t < tasks; t++) solve_iv_slice(&job, t);
  }
  if (invalid_count) *invalid_count = atomic_load(&job.invalid);
  gk_status_clear(status);
  return GK_OK;
}
