/*
 * Portfolio revaluation: base pricing with Greeks, aggregation, scenario grid.
 *
 * Positions are processed in chunks of CHUNK_POSITIONS. A worker prices a chunk
 * into a set of partial sums, then hands the set in; sets are merged into the
 * results strictly in chunk order, by whichever thread hands in the chunk that
 * completes the order. The floating-point sums are therefore the same for any
 * thread count, and a worker does not wait for a slower one before its next chunk
 * (adr/0019): it takes another set, up to PARTIAL_SETS_PER_WORKER per worker.
 * For the scenario grid each position's
 * shocked copies sit next to each other, so consecutive kernel vectors share
 * (T, r, q) and the kernels reuse their discount factors. Staging those copies
 * was as costly as pricing them; a worker now rewrites only the columns whose
 * input changed since the batch before (staged_slot), which for one underlying's
 * positions leaves strikes and expiries.
 */
#include "greeks/portfolio.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "greeks/bsm.h"

#define CHUNK_POSITIONS 1024
#define SCENARIO_BATCH_OPTIONS 4096

typedef struct chunk_arrays {
  double spot[CHUNK_POSITIONS], strike[CHUNK_POSITIONS], expiry[CHUNK_POSITIONS];
  double rate[CHUNK_POSITIONS], yield[CHUNK_POSITIONS], vol[CHUNK_POSITIONS];
  uint8_t type[CHUNK_POSITIONS], position_error[CHUNK_POSITIONS], error[CHUNK_POSITIONS];
  double price[CHUNK_POSITIONS], delta[CHUNK_POSITIONS], gamma[CHUNK_POSITIONS];
  double vega[CHUNK_POSITIONS], theta[CHUNK_POSITIONS], rho[CHUNK_POSITIONS], phi[CHUNK_POSITIONS];
} chunk_arrays;

/* The inputs one position slot of the scenario arrays was staged from, as bit
 * patterns (so -0.0 is not 0.0 and a NaN is itself). */
typedef struct staged_slot {
  uint64_t spot, vol, strike, expiry, rate, yield;
  uint8_t type;
} staged_slot;

/* Everything one worker owns; allocated and first touched by that worker. Every
 * array is written before it is read, so none is zeroed. */
typedef struct worker_state {
  chunk_arrays chunk;
  size_t scenario_capacity; /* options per scenario kernel call */
  double *s_spot, *s_strike, *s_expiry, *s_rate, *s_yield, *s_vol, *s_price;
  uint8_t *s_type, *s_error;
  /* What each position slot of the s_ arrays holds, for slots [0, staged_slots):
   * a column whose input is the one already staged there is not written again.
   * One underlying's positions share spot, vol, rate and yield, so after the
   * first batch of a projection's revaluation only strikes and expiries move. */
  staged_slot *staged;
  size_t staged_slots;
  /* Per underlying, its slot in the partial sums of the chunk in hand
   * (NO_SLOT: none yet); reset after each chunk. One dense map per worker, so
   * that a set of partial sums holds only the chunk's own underlyings. */
  uint32_t *slot_of;
} worker_state;

#define NO_SLOT UINT32_MAX

/* The partial sums of one chunk, from its pricing until its turn to be merged.
 * Slot t holds underlying touched[t]'s sums: a chunk touches at most
 * CHUNK_POSITIONS underlyings, so a set's size does not grow with the
 * portfolio's underlyings (sized by them, sets of 100,000 underlyings took
 * hundreds of MB while chunks waited for their turn: found in review). */
typedef struct partial_sums {
  gk_risk *risk;       /* per slot: CHUNK_POSITIONS */
  double *grid_by_underlying; /* CHUNK_POSITIONS x grid size, per slot, when asked for */
  double *grid;        /* grid size */
  gk_risk total;
  uint32_t *touched;   /* the underlying of each slot, in first-touch order */
  size_t touched_count, invalid;
  struct partial_sums *next; /* in the free list */
  struct partial_sums *next_allocated;
} partial_sums;

/* Enough sets that a worker rarely waits for the merge order: one in hand and
 * one waiting for a slower worker's chunk. On a pool of several NUMA nodes,
 * each node's workers start on their own range, which merges only after the
 * ranges before it: there sets may take up to PARTIAL_SETS_BUDGET bytes, so
 * that those workers keep working meanwhile instead of waiting for a set. */
#define PARTIAL_SETS_PER_WORKER 2
#define PARTIAL_SETS_BUDGET (size_t)(64u << 20)

typedef struct revalue_job {
  gk_model model;
  const gk_markets *markets;
  const gk_positions *positions;
  const gk_scenario_grid *grid;
  size_t grid_size;
  /* Where shocked inputs are clamped: the normal model allows negative forwards and
   * normal vols in price units; the others need S >= 1e-12 and sigma <= 100. */
  double min_level, max_vol;
  gk_portfolio_results *results;
  worker_state **states;
  size_t chunk_count;
  /* Ordered merge; all guarded by merge_lock. */
  pthread_mutex_t merge_lock;
  pthread_cond_t merged_one;
  size_t merged;              /* chunks merged so far */
  partial_sums **handed_in;   /* per chunk: its sums, &no_sums, or NULL while in work */
  partial_sums *free_sets, *all_sets;
  size_t set_count, set_limit;
  _Atomic int out_of_memory;
  const gk_cancel_check *cancel;
  _Atomic int cancelled;
  gk_pool *pool; /* NULL: run on the caller; else its yield points (gk_pool_yield_point) */
  _Atomic size_t chunks_done;
} revalue_job;

static const char *const position_fields[] = {"underlying", "quantity", "multiplier", "quantity", "quantity"};
static const char *const position_rules[] = {
    "names no underlying in the market data", "must be a finite number", "must be finite and > 0",
    "times the multiplier must be finite (it passes the double range)",
    "times the multiplier times the price or a Greek passes the double range (1.8e308)"};

const char *gk_position_error_field(unsigned error) {
  if (error >= GK_POSITION_UNDERLYING_UNKNOWN && error <= GK_POSITION_SCALED_NOT_FINITE)
    return position_fields[error - GK_POSITION_UNDERLYING_UNKNOWN];
  return gk_element_error_field((gk_element_error)error);
}

const char *gk_position_error_rule(unsigned error) {
  if (error >= GK_POSITION_UNDERLYING_UNKNOWN && error <= GK_POSITION_SCALED_NOT_FINITE)
    return position_rules[error - GK_POSITION_UNDERLYING_UNKNOWN];
  return gk_element_error_rule((gk_element_error)error);
}

static void free_worker_state(worker_state *w) {
  if (w == NULL) return;
  void *arrays[] = {w->s_spot, w->s_strike, w->s_expiry, w->s_rate, w->s_yield, w->s_vol,
                    w->s_price, w->s_type, w->s_error, w->staged, w->slot_of};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
  free(w);
}

static void free_partial_sums(partial_sums *p) {
  if (p == NULL) return;
  void *arrays[] = {p->risk, p->grid_by_underlying, p->grid, p->touched};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
  free(p);
}

static partial_sums *new_partial_sums(const revalue_job *job) {
  partial_sums *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  size_t g = job->grid_size;
  int ok = 1;
  if (g > 0) {
    ok &= (p->grid = calloc(g, sizeof(double))) != NULL;
    if (job->results->pnl_per_underlying)
      ok &= (p->grid_by_underlying = calloc((size_t)CHUNK_POSITIONS * g, sizeof(double))) != NULL;
  }
  ok &= (p->risk = calloc(CHUNK_POSITIONS, sizeof(gk_risk))) != NULL;
  ok &= (p->touched = calloc(CHUNK_POSITIONS, sizeof(uint32_t))) != NULL;
  if (!ok) {
    free_partial_sums(p);
    return NULL;
  }
  return p;
}

static worker_state *new_worker_state(const revalue_job *job) {
  /* malloc from the worker: first touch is its own (and no page is zeroed for
   * nothing: 350 kB a worker and call) */
  worker_state *w = malloc(sizeof *w);
  if (w == NULL) return NULL;
  size_t g = job->grid_size;
  size_t per_position = g > 0 ? g : 1;
  size_t positions_per_call = SCENARIO_BATCH_OPTIONS / per_position;
  if (positions_per_call == 0) positions_per_call = 1;
  w->scenario_capacity = positions_per_call * per_position;
  size_t n = w->scenario_capacity;
  double **doubles[] = {&w->s_spot, &w->s_strike, &w->s_expiry, &w->s_rate,
                        &w->s_yield, &w->s_vol, &w->s_price};
  for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++)
    *doubles[i] = g > 0 ? malloc(n * sizeof(double)) : NULL;
  w->s_type = g > 0 ? malloc(n) : NULL;
  w->s_error = g > 0 ? malloc(n) : NULL;
  w->staged = g > 0 ? malloc(positions_per_call * sizeof *w->staged) : NULL;
  w->staged_slots = 0;
  size_t underlyings = job->markets->count > 0 ? job->markets->count : 1;
  w->slot_of = malloc(underlyings * sizeof *w->slot_of);
  if (w->slot_of) memset(w->slot_of, 0xff, underlyings * sizeof *w->slot_of); /* NO_SLOT */
  int ok = w->slot_of != NULL;
  for (size_t i = 0; g > 0 && i < sizeof doubles / sizeof doubles[0]; i++) ok &= *doubles[i] != NULL;
  if (g > 0) ok &= w->s_type != NULL && w->s_error != NULL && w->staged != NULL;
  if (!ok) {
    free_worker_state(w);
    return NULL;
  }
  return w;
}

void gk_risk_add(gk_risk *sum, const gk_risk *r) {
  sum->value += r->value, sum->delta += r->delta, sum->gamma += r->gamma;
  sum->vega += r->vega, sum->theta += r->theta, sum->rho += r->rho, sum->phi += r->phi;
  sum->dollar_delta += r->dollar_delta, sum->dollar_gamma += r->dollar_gamma;
  sum->positions += r->positions;
}

/* Underlying u's slot in the chunk's sums, given one on its first touch. */
static uint32_t slot_for(worker_state *w, partial_sums *p, uint32_t u) {
  if (w->slot_of[u] == NO_SLOT) {
    w->slot_of[u] = (uint32_t)p->touched_count;
    p->touched[p->touched_count++] = u;
  }
  return w->slot_of[u];
}

/* The worker's map back to NO_SLOT for the next chunk: only what was set. */
static void release_slots(worker_state *w, const partial_sums *p) {
  for (size_t t = 0; t < p->touched_count; t++) w->slot_of[p->touched[t]] = NO_SLOT;
}

static uint8_t check_position(const revalue_job *job, size_t i) {
  const gk_positions *p = job->positions;
  if (p->underlying[i] >= job->markets->count) return GK_POSITION_UNDERLYING_UNKNOWN;
  if (!isfinite(p->quantity[i])) return GK_POSITION_QUANTITY_NOT_FINITE;
  if (!(isfinite(p->multiplier[i]) && p->multiplier[i] > 0)) return GK_POSITION_MULTIPLIER_NOT_POSITIVE;
  /* a weight past the range is one position's fault: name it, rather than
   * fail the whole revaluation on an infinite sum */
  if (!isfinite(p->quantity[i] * p->multiplier[i])) return GK_POSITION_WEIGHT_NOT_FINITE;
  return 0;
}

/* Fills the chunk's SoA inputs; positions failing their own checks get a type
 * byte the kernels reject, and keep their position error. */
static void gather_chunk(const revalue_job *job, worker_state *w, size_t begin, size_t count) {
  const gk_positions *p = job->positions;
  const gk_markets *m = job->markets;
  chunk_arrays *c = &w->chunk;
  for (size_t k = 0; k < count; k++) {
    size_t i = begin + k;
    uint8_t error = check_position(job, i);
    c->position_error[k] = error;
    uint32_t u = error == GK_POSITION_UNDERLYING_UNKNOWN ? 0 : p->underlying[i];
    int has_market = m->count > 0 && error != GK_POSITION_UNDERLYING_UNKNOWN;
    c->spot[k] = has_market ? m->spot[u] : 1.0;
    c->rate[k] = has_market ? m->rate[u] : 0.0;
    c->yield[k] = has_market && m->yield ? m->yield[u] : 0.0;
    c->strike[k] = p->strike[i];
    c->expiry[k] = p->expiry[i];
    c->vol[k] = p->vol[i];
    c->type[k] = error ? 0xff : p->type[i];
  }
}

static void write_position(gk_portfolio_results *r, size_t i, const gk_risk *x) {
  if (r->value) r->value[i] = x->value;
  if (r->delta) r->delta[i] = x->delta;
  if (r->gamma) r->gamma[i] = x->gamma;
  if (r->vega) r->vega[i] = x->vega;
  if (r->theta) r->theta[i] = x->theta;
  if (r->rho) r->rho[i] = x->rho;
  if (r->phi) r->phi[i] = x->phi;
}

static bool risk_is_finite(const gk_risk *x) {
  return isfinite(x->value) && isfinite(x->delta) && isfinite(x->gamma) && isfinite(x->vega) &&
         isfinite(x->theta) && isfinite(x->rho) && isfinite(x->phi) && isfinite(x->dollar_delta) &&
         isfinite(x->dollar_gamma);
}

/* Base prices and Greeks of a chunk, scaled, written per position and summed. */
static void value_chunk(revalue_job *job, worker_state *w, partial_sums *sums, size_t begin, size_t count) {
  chunk_arrays *c = &w->chunk;
  gk_option_batch in = {count, c->spot, c->strike, c->expiry, c->rate, c->yield, c->vol, c->type};
  gk_greeks_batch out = {c->price, c->delta, c->gamma, c->vega, c->theta, c->rho, c->phi, c->error};
  gk_bsm_price_batch(job->model, &in, GK_OUT_ALL, &out, NULL);
  const gk_positions *p = job->positions;
  for (size_t k = 0; k < count; k++) {
    size_t i = begin + k;
    uint8_t error = c->position_error[k] ? c->position_error[k] : c->error[k];
    job->results->error[i] = error;
    gk_risk x = {0};
    if (error != 0) {
      sums->invalid++;
      write_position(job->results, i, &x);
      continue;
    }
    double weight = p->quantity[i] * p->multiplier[i], S = c->spot[k];
    x.value = weight * c->price[k], x.delta = weight * c->delta[k];
    x.gamma = weight * c->gamma[k], x.vega = weight * c->vega[k];
    x.theta = weight * c->theta[k], x.rho = weight * c->rho[k], x.phi = weight * c->phi[k];
    x.dollar_delta = x.delta * S, x.dollar_gamma = x.gamma * S * S;
    x.positions = 1;
    if (!risk_is_finite(&x)) { /* one position's figure past the range: name it, as a weight past it */
      job->results->error[i] = GK_POSITION_SCALED_NOT_FINITE;
      sums->invalid++;
      x = (gk_risk){0};
      write_position(job->results, i, &x);
      continue;
    }
    write_position(job->results, i, &x);
    gk_risk_add(&sums->risk[slot_for(w, sums, p->underlying[i])], &x);
    gk_risk_add(&sums->total, &x);
  }
}

/* Plain comparisons, not fmin/fmax: those are out-of-line libm calls here and
 * were 15% of a revaluation. Shocks are finite (checked), so no NaN reaches this. */
static double shock(double x, double by, gk_shock_mode mode, double lo, double hi) {
  double shocked = mode == GK_SHOCK_RELATIVE ? x * (1.0 + by) : x + by;
  return shocked < lo ? lo : shocked > hi ? hi : shocked;
}

/* n copies of x. Through restrict pointers the copies vectorize: through the
 * worker's fields the compiler reloaded each array pointer after every store
 * (they could alias), and the fill cost as much as the kernel behind it. */
static void fill(double *restrict to, size_t n, double x) {
  for (size_t e = 0; e < n; e++) to[e] = x;
}

static uint64_t bits(double x) {
  uint64_t b;
  memcpy(&b, &x, sizeof b);
  return b;
}

/* A position's shocked spots: spot by spot, each repeated over the vols. */
static void stage_spots(const revalue_job *job, double *restrict to, double spot) {
  const gk_scenario_grid *grid = job->grid;
  size_t vols = grid->vol.count;
  for (size_t i = 0; i < grid->spot.count; i++) {
    double S = shock(spot, grid->spot.shocks[i], grid->spot.mode, job->min_level, GK_MAX_PRICE_LEVEL);
    fill(to + i * vols, vols, S);
  }
}

/* A position's shocked vols: the vol shocks, once per spot. */
static void stage_vols(const revalue_job *job, double *restrict to, double vol) {
  const gk_scenario_grid *grid = job->grid;
  size_t vols = grid->vol.count;
  double shocked_vol[GK_MAX_SCENARIO_AXIS];
  for (size_t j = 0; j < vols; j++)
    shocked_vol[j] = shock(vol, grid->vol.shocks[j], grid->vol.mode, 0.0, job->max_vol);
  for (size_t i = 0; i < grid->spot.count; i++) memcpy(to + i * vols, shocked_vol, vols * sizeof(double));
}

/* Position k's g shocked copies at slot `at` of the worker's scenario arrays:
 * spot by spot, vol by vol within a spot; the rest repeated. Only the columns
 * whose input differs from what the slot already holds are written. */
static void stage_scenarios(const revalue_job *job, worker_state *w, const chunk_arrays *c,
                            size_t k, size_t at) {
  size_t g = job->grid_size, first = at * g;
  staged_slot now = {bits(c->spot[k]), bits(c->vol[k]), bits(c->strike[k]), bits(c->expiry[k]),
                     bits(c->rate[k]), bits(c->yield[k]), c->type[k]};
  const staged_slot *was = at < w->staged_slots ? &w->staged[at] : NULL;
  if (!was || was->spot != now.spot) stage_spots(job, w->s_spot + first, c->spot[k]);
  if (!was || was->vol != now.vol) stage_vols(job, w->s_vol + first, c->vol[k]);
  if (!was || was->strike != now.strike) fill(w->s_strike + first, g, c->strike[k]);
  if (!was || was->expiry != now.expiry) fill(w->s_expiry + first, g, c->expiry[k]);
  if (!was || was->rate != now.rate) fill(w->s_rate + first, g, c->rate[k]);
  if (!was || was->yield != now.yield) fill(w->s_yield + first, g, c->yield[k]);
  if (!was || was->type != now.type) memset(w->s_type + first, c->type[k], g);
  w->staged[at] = now;
  if (at >= w->staged_slots) w->staged_slots = at + 1;
}

/* One position's scenario P&L, weight x (shocked price - base), added to the
 * grid and, when asked, to its underlying's grid. */
/* A scenario the kernel could not price (its outputs zeroed, an element error)
 * adds nothing: the position is out of that scenario, as on the American path
 * (book_valuation.c). It added weight x (0 - base), a loss of the whole
 * position from a number nobody priced. */
static void add_scenario_pnl(double *restrict grid, double *restrict by_underlying,
                             const double *restrict prices, const uint8_t *restrict errors, size_t g, double weight,
                             double base) {
  uint8_t any = 0;
  for (size_t e = 0; e < g; e++) any |= errors[e];
  if (!any) {
    for (size_t e = 0; e < g; e++) grid[e] += weight * (prices[e] - base);
    if (by_underlying)
      for (size_t e = 0; e < g; e++) by_underlying[e] += weight * (prices[e] - base);
    return;
  }
  for (size_t e = 0; e < g; e++) {
    double pnl = errors[e] ? 0.0 : weight * (prices[e] - base);
    grid[e] += pnl;
    if (by_underlying) by_underlying[e] += pnl;
  }
}

/* Scenario P&L of a chunk's valid positions, position by position in order. */
static void shock_chunk(revalue_job *job, worker_state *w, partial_sums *sums, size_t begin, size_t count,
                        int worker) {
  size_t g = job->grid_size, per_call = w->scenario_capacity / g;
  const gk_positions *p = job->positions;
  chunk_arrays *c = &w->chunk;
  size_t k = 0;
  while (k < count) {
    size_t batch_positions = 0;
    size_t members[SCENARIO_BATCH_OPTIONS];
    for (; k < count && batch_positions < per_call; k++) {
      if (job->results->error[begin + k] != 0) continue;
      stage_scenarios(job, w, c, k, batch_positions);
      members[batch_positions++] = k;
    }
    if (batch_positions == 0) continue;
    gk_option_batch in = {batch_positions * g, w->s_spot, w->s_strike, w->s_expiry, w->s_rate,
                          w->s_yield, w->s_vol, w->s_type};
    gk_greeks_batch out = {w->s_price, NULL, NULL, NULL, NULL, NULL, NULL, w->s_error};
    gk_bsm_price_batch(job->model, &in, GK_OUT_PRICE, &out, NULL);
    gk_pool_yield_point(job->pool, worker); /* a bulk pool lets small calls' threads run (adr/0038) */
    for (size_t b = 0; b < batch_positions; b++) {
      size_t kk = members[b], i = begin + kk;
      /* a valid position's underlying has its slot from value_chunk */
      double *by_underlying =
          sums->grid_by_underlying ? sums->grid_by_underlying + (size_t)w->slot_of[p->underlying[i]] * g : NULL;
      add_scenario_pnl(sums->grid, by_underlying, w->s_price + b * g, w->s_error + b * g, g,
                       p->quantity[i] * p->multiplier[i], c->price[kk]);
    }
  }
}

/* Adds a chunk's partial sums to the results and clears them for reuse. Called
 * in chunk order only, under merge_lock. */
static void merge_partials(revalue_job *job, partial_sums *p) {
  gk_portfolio_results *r = job->results;
  size_t g = job->grid_size;
  for (size_t t = 0; t < p->touched_count; t++) {
    uint32_t u = p->touched[t];
    gk_risk_add(&r->per_underlying[u], &p->risk[t]);
    memset(&p->risk[t], 0, sizeof p->risk[t]);
    if (p->grid_by_underlying) {
      double *src = p->grid_by_underlying + t * g, *dst = r->pnl_per_underlying + (size_t)u * g;
      for (size_t e = 0; e < g; e++) dst[e] += src[e];
      memset(src, 0, g * sizeof(double));
    }
  }
  p->touched_count = 0;
  gk_risk_add(&r->total, &p->total);
  memset(&p->total, 0, sizeof p->total);
  for (size_t e = 0; e < g; e++) {
    r->pnl[e] += p->grid[e];
    p->grid[e] = 0.0;
  }
  r->invalid_positions += p->invalid;
  p->invalid = 0;
}

/* Handed in for a chunk that adds nothing (cancelled, or out of memory). */
static partial_sums no_sums;

/* Records a chunk's sums, then merges every chunk whose turn has come; their
 * sets go back to the free list. */
static void hand_in_chunk(revalue_job *job, partial_sums *sums, size_t chunk) {
  pthread_mutex_lock(&job->merge_lock);
  job->handed_in[chunk] = sums ? sums : &no_sums;
  while (job->merged < job->chunk_count && job->handed_in[job->merged] != NULL) {
    partial_sums *next = job->handed_in[job->merged];
    if (next != &no_sums) {
      merge_partials(job, next);
      next->next = job->free_sets;
      job->free_sets = next;
    }
    job->merged++;
  }
  pthread_cond_broadcast(&job->merged_one);
  pthread_mutex_unlock(&job->merge_lock);
}

/* A set to price `chunk` into: a free one, else a new one while under the limit,
 * else waits for a merge to free one. A chunk whose turn to merge has come never
 * waits (it gets a new set past the limit when none is free): every chunk
 * before it is merged, so nothing would free a set for it, for instance when it
 * was stolen from another NUMA node's range after this worker's sets were handed
 * in for later chunks. At the limit, a chunk whose turn has not come leaves the
 * last free set to the one whose turn it is: taking it made that one allocate
 * past the limit for every chunk of its range while a second NUMA node's
 * workers ran ahead (hundreds of sets for a cap of 4: found in review).
 * NULL: out of memory. */
static partial_sums *take_partial_sums(revalue_job *job, size_t chunk) {
  pthread_mutex_lock(&job->merge_lock);
  partial_sums *p = NULL;
  for (;;) {
    int in_turn = job->merged == chunk;
    if (job->free_sets != NULL && (in_turn || job->free_sets->next != NULL || job->set_count < job->set_limit)) {
      p = job->free_sets;
      job->free_sets = p->next;
      break;
    }
    if (job->set_count < job->set_limit || (in_turn && job->free_sets == NULL)) {
      /* Reserve the set, then allocate it outside the lock: a set is
       * underlyings x grid doubles, and other workers are handing in meanwhile. */
      job->set_count++;
      pthread_mutex_unlock(&job->merge_lock);
      p = new_partial_sums(job);
      pthread_mutex_lock(&job->merge_lock);
      if (p != NULL) {
        p->next_allocated = job->all_sets;
        job->all_sets = p;
      } else {
        job->set_count--;
      }
      break;
    }
    pthread_cond_wait(&job->merged_one, &job->merge_lock);
  }
  pthread_mutex_unlock(&job->merge_lock);
  return p;
}

/* Once a check says stop, no later chunk asks again or does any work. */
static int stop_requested(revalue_job *job) {
  if (atomic_load(&job->cancelled)) return 1;
  if (job->cancel == NULL || !job->cancel->is_cancelled(job->cancel->user)) return 0;
  atomic_store(&job->cancelled, 1);
  return 1;
}

static void revalue_chunk(void *context, size_t chunk, int worker) {
  revalue_job *job = context;
  if (stop_requested(job)) {
    hand_in_chunk(job, NULL, chunk); /* keep the order moving; the call is cancelled */
    return;
  }
  worker_state *w = job->states[worker];
  if (w == NULL && !atomic_load(&job->out_of_memory)) {
    w = job->states[worker] = new_worker_state(job);
    if (w == NULL) atomic_store(&job->out_of_memory, 1);
  }
  partial_sums *sums = w && !atomic_load(&job->out_of_memory) ? take_partial_sums(job, chunk) : NULL;
  if (sums == NULL) {
    atomic_store(&job->out_of_memory, 1);
    hand_in_chunk(job, NULL, chunk); /* keep the order moving; the call fails */
    return;
  }
  size_t begin = chunk * CHUNK_POSITIONS;
  size_t count = job->positions->count - begin < CHUNK_POSITIONS ? job->positions->count - begin : CHUNK_POSITIONS;
  gather_chunk(job, w, begin, count);
  value_chunk(job, w, sums, begin, count);
  if (job->grid_size > 0) shock_chunk(job, w, sums, begin, count, worker);
  release_slots(w, sums);
  hand_in_chunk(job, sums, chunk);
  atomic_fetch_add(&job->chunks_done, 1);
}

/* A relative shock <= -100% would leave no spot (or a negative one) to price
 * at, so the spot axis refuses it; on the vol axis the same shock is the clamp
 * at vol 0 (portfolio.h), as an absolute shock below -vol already is. */
static gk_code check_axis(const gk_scenario_axis *axis, const char *name, int is_spot, gk_status *status) {
  char field[32];
  if (axis->count > GK_MAX_SCENARIO_AXIS)
    return gk_status_set(status, GK_INVALID_ARGUMENT, name, NULL, GK_STATUS_NO_INDEX,
                         "%s: %zu shocks, at most %d allowed", name, axis->count, GK_MAX_SCENARIO_AXIS);
  if (axis->count > 0 && axis->shocks == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, name, NULL, GK_STATUS_NO_INDEX, "%s: shocks array is NULL", name);
  if (axis->mode != GK_SHOCK_RELATIVE && axis->mode != GK_SHOCK_ABSOLUTE)
    return gk_status_set(status, GK_INVALID_ARGUMENT, name, NULL, GK_STATUS_NO_INDEX, "%s: mode must be relative or absolute", name);
  for (size_t i = 0; i < axis->count; i++) {
    double k = axis->shocks[i];
    char value[48];
    snprintf(field, sizeof field, "%s[%zu]", name, i);
    snprintf(value, sizeof value, "%.17g", k);
    if (!isfinite(k))
      return gk_status_set(status, GK_INVALID_ARGUMENT, field, value, (int64_t)i, "%s = %s: must be finite", field, value);
    if (is_spot && axis->mode == GK_SHOCK_RELATIVE && k <= -1.0)
      return gk_status_set(status, GK_INVALID_ARGUMENT, field, value, (int64_t)i,
                           "%s = %s: a relative spot shock must be > -1 (-100%%)", field, value);
  }
  return GK_OK;
}

gk_code gk_scenario_grid_check(const gk_scenario_grid *grid, gk_status *status) {
  if (grid == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "grid", NULL, GK_STATUS_NO_INDEX, "grid is NULL");
  gk_code code = check_axis(&grid->spot, "spot_shocks", 1, status);
  return code == GK_OK ? check_axis(&grid->vol, "vol_shocks", 0, status) : code;
}

static gk_code check_arguments(const gk_markets *m, const gk_positions *p, const gk_scenario_grid *grid,
                               const gk_portfolio_results *r, gk_model model, gk_status *status) {
  if (!m || !p || !grid || !r)
    return gk_status_set(status, GK_INVALID_ARGUMENT, !m ? "markets" : !p ? "positions" : !grid ? "grid" : "results",
                         NULL, GK_STATUS_NO_INDEX, "gk_revalue_portfolio: a required argument is NULL");
  if ((unsigned)model >= GK_MODEL_COUNT)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "model", NULL, GK_STATUS_NO_INDEX, "model must be bsm, black76, gk or bachelier");
  int uses_yield = gk_model_uses_yield(model);
  if (m->count > 0 && (!m->spot || !m->rate || (uses_yield && !m->yield)))
    return gk_status_set(status, GK_INVALID_ARGUMENT, "markets", NULL, GK_STATUS_NO_INDEX,
                         "markets: spot, rate%s arrays are required", uses_yield ? " and yield" : "");
  if (m->count > UINT32_MAX)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "markets", NULL, GK_STATUS_NO_INDEX, "more than 2^32 underlyings");
  if (p->count > 0 && (!p->underlying || !p->type || !p->strike || !p->expiry || !p->vol || !p->quantity || !p->multiplier))
    return gk_status_set(status, GK_INVALID_ARGUMENT, "positions", NULL, GK_STATUS_NO_INDEX,
                         "positions: every array (underlying, type, strike, expiry, vol, quantity, multiplier) is required");
  if (!r->error || (m->count > 0 && !r->per_underlying))
    return gk_status_set(status, GK_INVALID_ARGUMENT, !r->error ? "results.error" : "results.per_underlying",
                         NULL, GK_STATUS_NO_INDEX, "results: error and per_underlying arrays are required");
  gk_code code = gk_scenario_grid_check(grid, status);
  if (code != GK_OK) return code;
  if (grid->spot.count * grid->vol.count > 0 && !r->pnl)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "results.pnl", NULL, GK_STATUS_NO_INDEX,
                         "results.pnl is required when the scenario grid is not empty");
  return GK_OK;
}

/* The first of a risk's sums that is not finite, NULL if none. */
static const char *non_finite_risk_field(const gk_risk *r) {
  static const char *const names[9] = {"value", "delta", "gamma", "vega", "theta",
                                       "rho", "phi", "dollar_delta", "dollar_gamma"};
  const double v[9] = {r->value, r->delta, r->gamma, r->vega, r->theta,
                       r->rho, r->phi, r->dollar_delta, r->dollar_gamma};
  for (int k = 0; k < 9; k++)
    if (!isfinite(v[k])) return names[k];
  return NULL;
}

/* Sums of finite positions can still exceed the double range (quantity 1e300 x
 * a price of 100): such a call fails, naming the first total or scenario that
 * overflowed, and its sums and grid are zeroed, so no inf or NaN is reported. */
static gk_code check_sums_finite(const revalue_job *job, gk_status *status) {
  gk_portfolio_results *r = job->results;
  size_t under = job->markets->count, g = job->grid_size, vols = job->grid->vol.count;
  char what[160] = "";
  const char *field = non_finite_risk_field(&r->total);
  if (field) snprintf(what, sizeof what, "total.%s", field);
  for (size_t u = 0; !what[0] && u < under; u++)
    if ((field = non_finite_risk_field(&r->per_underlying[u])))
      snprintf(what, sizeof what, "per_underlying[%zu].%s", u, field);
  for (size_t e = 0; !what[0] && e < g; e++)
    if (!isfinite(r->pnl[e]))
      snprintf(what, sizeof what, "pnl[%zu] (spot shock %.17g, vol shock %.17g)", e,
               job->grid->spot.shocks[e / vols], job->grid->vol.shocks[e % vols]);
  for (size_t e = 0; !what[0] && r->pnl_per_underlying && e < under * g; e++)
    if (!isfinite(r->pnl_per_underlying[e]))
      snprintf(what, sizeof what, "pnl_per_underlying[%zu][%zu]", e / g, e % g);
  if (!what[0]) return GK_OK;
  memset(&r->total, 0, sizeof r->total);
  if (under > 0) memset(r->per_underlying, 0, under * sizeof(gk_risk));
  if (g > 0) memset(r->pnl, 0, g * sizeof(double));
  if (r->pnl_per_underlying && g > 0) memset(r->pnl_per_underlying, 0, under * g * sizeof(double));
  return gk_status_set(status, GK_INVALID_ARGUMENT, "positions", NULL, GK_STATUS_NO_INDEX,
                       "%s overflowed the double range (|sum| > 1.8e308): quantities x multipliers too large",
                       what);
}

gk_code gk_revalue_portfolio(gk_pool *pool, gk_model model, const gk_markets *markets,
                             const gk_positions *positions, const gk_scenario_grid *grid,
                             gk_portfolio_results *results, gk_status *status) {
  return gk_revalue_portfolio_ex(pool, model, markets, positions, grid, NULL, results, status);
}

gk_code gk_revalue_portfolio_ex(gk_pool *pool, gk_model model, const gk_markets *markets,
                                const gk_positions *positions, const gk_scenario_grid *grid,
                                const gk_cancel_check *cancel, gk_portfolio_results *results,
                                gk_status *status) {
  if (cancel != NULL && cancel->is_cancelled == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "cancel", NULL, GK_STATUS_NO_INDEX,
                         "gk_revalue_portfolio_ex: cancel->is_cancelled is NULL");
  gk_code code = check_arguments(markets, positions, grid, results, model, status);
  if (code != GK_OK) return code;
  gk_rc rc = gk_isa_init();
  if (rc != GK_RC_OK) return gk_engine_isa_refused(rc, status);
  revalue_job job = {0};
  job.model = model, job.markets = markets, job.positions = positions, job.grid = grid;
  job.grid_size = grid->spot.count * grid->vol.count;
  job.min_level = model == GK_MODEL_BACHELIER ? -GK_MAX_PRICE_LEVEL : GK_MIN_PRICE_LEVEL;
  job.max_vol = model == GK_MODEL_BACHELIER ? GK_MAX_PRICE_LEVEL : GK_MAX_VOL;
  job.results = results;
  job.cancel = cancel;
  job.chunk_count = positions->count / CHUNK_POSITIONS + (positions->count % CHUNK_POSITIONS != 0);
  job.pool = pool;
  int threads = pool ? gk_pool_threads(pool) : 1;
  job.states = calloc((size_t)threads, sizeof *job.states);
  job.handed_in = calloc(job.chunk_count > 0 ? job.chunk_count : 1, sizeof *job.handed_in);
  /* a set's bytes: its slots' risk and underlying, its grid, its slots' grids */
  size_t set_bytes = (size_t)CHUNK_POSITIONS * (sizeof(gk_risk) + sizeof(uint32_t)) + job.grid_size * sizeof(double) +
                     (results->pnl_per_underlying ? (size_t)CHUNK_POSITIONS * job.grid_size * sizeof(double) : 0);
  job.set_limit = (size_t)threads * PARTIAL_SETS_PER_WORKER;
  if (pool != NULL && gk_pool_numa_nodes(pool) > 1 && PARTIAL_SETS_BUDGET / set_bytes > job.set_limit)
    job.set_limit = PARTIAL_SETS_BUDGET / set_bytes;
  if (job.states == NULL || job.handed_in == NULL) {
    free(job.states), free(job.handed_in);
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "out of memory");
  }
  pthread_mutex_init(&job.merge_lock, NULL);
  pthread_cond_init(&job.merged_one, NULL);

  memset(&results->total, 0, sizeof results->total);
  results->invalid_positions = 0;
  if (markets->count > 0) memset(results->per_underlying, 0, markets->count * sizeof(gk_risk));
  if (job.grid_size > 0) memset(results->pnl, 0, job.grid_size * sizeof(double));
  if (results->pnl_per_underlying && job.grid_size > 0)
    memset(results->pnl_per_underlying, 0, markets->count * job.grid_size * sizeof(double));

  if (pool == NULL) {
    for (size_t c = 0; c < job.chunk_count; c++) revalue_chunk(&job, c, 0);
  } else {
    code = gk_pool_run(pool, job.chunk_count, revalue_chunk, &job, status);
  }
  for (int t = 0; t < threads; t++) free_worker_state(job.states[t]);
  for (partial_sums *p = job.all_sets, *next; p != NULL; p = next) next = p->next_allocated, free_partial_sums(p);
  free(job.states), free(job.handed_in);
  pthread_mutex_destroy(&job.merge_lock);
  pthread_cond_destroy(&job.merged_one);
  if (code != GK_OK) return code;
  if (atomic_load(&job.out_of_memory))
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX,
                         "out of memory for the workers' partial sums (%zu underlyings x %zu scenarios)",
                         markets->count, job.grid_size);
  if (atomic_load(&job.cancelled))
    return gk_status_set(status, GK_CANCELLED, NULL, NULL, GK_STATUS_NO_INDEX,
                         "revaluation cancelled after %zu of %zu chunks of %d positions",
                         atomic_load(&job.chunks_done), job.chunk_count, CHUNK_POSITIONS);
  if ((code = check_sums_finite(&job, status)) != GK_OK) return code;
  gk_status_clear(status);
  return GK_OK;
}
