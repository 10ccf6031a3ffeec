/*
 * hedge.c - the cheapest trades that bring one underlying's book risk to a
 * target: delta 0, or delta and gamma 0, or delta and vega 0
 * (greeks/strategy.h: gk_generate_hedge, gk_quoted_instruments_validate).
 *
 * Steps, each a function below:
 *   1. check the request (every quote, every instrument on the underlying, no
 *      option expired, no instrument twice);
 *   2. value the underlying's positions with gk_value_book_positions (the
 *      valuation every book query uses, American positions included): `before`;
 *   3. price one contract of each instrument offered at the book's market, in one
 *      gk_price_batch_ex call (European and American elements side by side, the
 *      American ones with the request's method); the underlying is delta 1;
 *   4. solve the linear program  min sum c_i |q_i|  s.t.  sum_i q_i g_ik = -before_k
 *      (k = delta, and gamma or vega), c_i = multiplier x half-spread. An optimum
 *      lies on a vertex, which uses at most m instruments (m = 1 or 2 constraints),
 *      so enumerating every basis - each instrument alone, each pair - and keeping
 *      the cheapest is exact; with m <= 2 and at most 512 instruments that is at
 *      most 130,816 2x2 solves, far less than a simplex implementation would cost
 *      to get right. Ties keep the first found: fewer legs, then lower indices;
 *   5. round: options to the nearest whole contract, then the underlying (when
 *      offered, chosen or not: it has no gamma and no vega, so it absorbs the
 *      options' rounding in delta without touching the other constraint) to
 *      -(before.delta + the options' delta) in whole units, a half toward none;
 *   6. legs at the ask (buy) or bid (sell), the spread cost, the premium, and
 *      `after` = before + the legs' Greeks, summed from the per-contract Greeks of
 *      step 3 (no cloned book: the legs are valued exactly as they were solved,
 *      at their quote's vol, and a 1M-position book is not copied per hedge).
 *
 * Numerics: each constraint row is divided by its scale (the largest |g_ik| or
 * |before_k|), so that delta (tens per contract) and gamma (hundredths) are
 * compared alike; a pair is singular when its determinant is below 1e-10 of the
 * size of its two terms (scale-free), and a basis whose solution is not finite or
 * beyond GK_MAX_QUANTITY is refused rather than divided into an overflow.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/pricing.h"
#include "greeks/strategy.h"

#define NONE SIZE_MAX
#define SINGULAR 1e-10   /* |det| below this fraction of its terms: singular */
#define NEGLIGIBLE 1e-12 /* a scaled coefficient below this is 0 */
#define FEASIBLE 1e-9    /* a scaled residual below this meets its constraint */
#define ACCEPTABLE_MISS 0.5 /* whole contracts leave at most half of each target Greek */
#define MISS_TOLERANCE 0.01 /* misses this close (share of the book's Greek) tie: cost decides */
#define MAX_QUOTE_VOL 10.0

const char *gk_hedge_target_name(unsigned target) {
  static const char *const names[] = {"delta", "delta_gamma", "delta_vega"};
  return target >= GK_HEDGE_DELTA && target <= GK_HEDGE_DELTA_VEGA ? names[target - 1] : "unknown";
}

/* ---- validation ----------------------------------------------------------------- */

static gk_code bad_quote(gk_status *status, size_t i, const char *what, double value,
                         const char *rule) {
  char field[48], text[32];
  snprintf(field, sizeof field, "instruments[%zu].%s", i, what);
  snprintf(text, sizeof text, "%.17g", value);
  return gk_status_set(status, GK_INVALID_ARGUMENT, field, text, (int64_t)i, "%s is %s: %s",
                       field, text, rule);
}

/* gk_instrument_validate's error, its field prefixed with the quote's. */
static gk_code check_instrument(const gk_quoted_instrument *q, size_t i, gk_status *status) {
  gk_status why;
  if (gk_instrument_validate(&q->instrument, &why) == GK_OK) return GK_OK;
  char field[48];
  snprintf(field, sizeof field, "instruments[%zu].%.12s", i, why.field);
  return gk_status_set(status, why.code, field, why.value, (int64_t)i, "instruments[%zu]: %s", i,
                       why.message);
}

static gk_code check_quote(const gk_quoted_instrument *q, size_t i, gk_status *status) {
  gk_code rc = check_instrument(q, i, status);
  if (rc != GK_OK) return rc;
  if (!isfinite(q->bid) || q->bid < 0 || q->bid > GK_MAX_CASH)
    return bad_quote(status, i, "bid", q->bid, "a bid must be a finite number in [0, 1e18]");
  if (!isfinite(q->ask) || q->ask <= 0 || q->ask > GK_MAX_CASH)
    return bad_quote(status, i, "ask", q->ask, "an ask must be a finite number in (0, 1e18]");
  if (q->bid > q->ask) {
    char rule[96];
    snprintf(rule, sizeof rule, "the bid must not be above the ask (%.17g)", q->ask);
    return bad_quote(status, i, "bid", q->bid, rule);
  }
  if (!isfinite(q->vol) || q->vol < 0 || q->vol > MAX_QUOTE_VOL)
    return bad_quote(status, i, "vol", q->vol,
                     "a vol must be in [0, 10] per 1.00 (0: the market's vol)");
  return GK_OK;
}

gk_code gk_quoted_instruments_validate(const gk_quoted_instrument *quotes, size_t count,
                                       gk_status *status) {
  char text[32];
  snprintf(text, sizeof text, "%zu", count);
  if (count > GK_MAX_QUOTED_INSTRUMENTS)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "count", text, GK_STATUS_NO_INDEX,
                         "at most %d instruments may be quoted, not %zu",
                         GK_MAX_QUOTED_INSTRUMENTS, count);
  if (count && quotes == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "instruments", "", GK_STATUS_NO_INDEX,
                         "instruments is NULL with a count of %zu", count);
  for (size_t i = 0; i < count; i++) {
    gk_code rc = check_quote(&quotes[i], i, status);
    if (rc != GK_OK) return rc;
  }
  return GK_OK;
}

/* An instrument the hedge can trade: on the underlying, alive, offered once. */
static gk_code check_tradable(const gk_hedge_request *r, size_t i, gk_status *status) {
  const gk_instrument *in = &r->instruments[i].instrument;
  char field[48];
  if (strcmp(in->underlying, r->underlying) != 0) {
    snprintf(field, sizeof field, "instruments[%zu].underlying", i);
    return gk_status_set(status, GK_INVALID_ARGUMENT, field, in->underlying, (int64_t)i,
                         "%s is %s: every hedge instrument must be on %s", field,
                         in->underlying, r->underlying);
  }
  if (in->kind == GK_KIND_OPTION && gk_year_fraction(r->valuation_us, in->expiry_us) <= 0) {
    char text[32];
    snprintf(field, sizeof field, "instruments[%zu].expiry", i);
    snprintf(text, sizeof text, "%lld", (long long)in->expiry_us);
    return gk_status_set(status, GK_INVALID_ARGUMENT, field, text, (int64_t)i,
                         "%s is %s us: the option has expired at the valuation time %lld us",
                         field, text, (long long)r->valuation_us);
  }
  for (size_t j = 0; j < i; j++)
    if (gk_instrument_equal(in, &r->instruments[j].instrument)) {
      snprintf(field, sizeof field, "instruments[%zu]", i);
      return gk_status_set(status, GK_INVALID_ARGUMENT, field, in->underlying, (int64_t)i,
                           "instruments[%zu] and [%zu] are the same instrument: quote it once",
                           j, i);
    }
  return GK_OK;
}

static gk_code check_request(const gk_hedge_request *r, gk_status *status) {
  char text[32];
  gk_instrument underlying;
  if (strnlen(r->underlying, GK_SYMBOL_SIZE) >= GK_SYMBOL_SIZE)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "underlying", "", GK_STATUS_NO_INDEX,
                         "underlying must be 1 to %d characters", GK_SYMBOL_SIZE - 1);
  gk_code rc = gk_instrument_underlying(r->underlying, &underlying, status);
  if (rc != GK_OK) return rc;
  unsigned target = (unsigned)r->target, method = (unsigned)r->american_method;
  snprintf(text, sizeof text, "%u", target);
  if (target < GK_HEDGE_DELTA || target > GK_HEDGE_DELTA_VEGA)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "target", text, GK_STATUS_NO_INDEX,
                         "target must be delta (1), delta_gamma (2) or delta_vega (3)");
  snprintf(text, sizeof text, "%u", method);
  if (method >= GK_AMERICAN_METHOD_COUNT)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "american_method", text,
                         GK_STATUS_NO_INDEX, "american_method must be bs2002 (0), tree (1) or alo (2)");
  snprintf(text, sizeof text, "%zu", r->count);
  if (r->count == 0)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "count", text, GK_STATUS_NO_INDEX,
                         "a hedge needs 1 to %d instruments to choose from",
                         GK_MAX_QUOTED_INSTRUMENTS);
  rc = gk_quoted_instruments_validate(r->instruments, r->count, status);
  for (size_t i = 0; rc == GK_OK && i < r->count; i++) rc = check_tradable(r, i, status);
  return rc;
}

/* ---- the book's side: before ------------------------------------------------------ */

typedef struct hedge_work {
  const gk_book *book;
  const gk_hedge_request *request;
  const gk_market_quote *market;
  size_t n;
  gk_risk *contract; /* one contract of each instrument: value and Greeks x multiplier */
  double *cost;      /* c_i: multiplier x half-spread, per contract */
  size_t underlying; /* the underlying's index among the instruments, NONE if not offered */
  double *held;      /* the book's position in each instrument now, contracts (0: none) */
  gk_risk before;
} hedge_work;

static gk_code out_of_memory(gk_status *status) {
  return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book", "", GK_STATUS_NO_INDEX,
                       "out of memory proposing a hedge");
}

/* A position the valuation could not price would leave `before` incomplete. */
static gk_code check_valued(const gk_book *book, const gk_book_valuation *v, const size_t *mine,
                            gk_status *status) {
  for (size_t k = 0; k < v->count; k++) {
    const gk_position_value *value = &v->positions[k];
    if (value->state != GK_VALUED_ERROR) continue;
    char text[64];
    gk_instrument_format(&gk_book_position(book, mine[k])->instrument, text, sizeof text);
    return gk_status_set(status, GK_FAILED_PRECONDITION, "positions", text, (int64_t)mine[k],
                         "position %zu (%s) cannot be valued (%s %s): its risk is unknown, so "
                         "no hedge can offset it", mine[k], text,
                         gk_position_error_field(value->error),
                         gk_position_error_rule(value->error));
  }
  return GK_OK;
}

/* before: the Greeks of the book's positions on the underlying, valued alone. */
static gk_code value_before(hedge_work *w, gk_status *status) {
  size_t n = gk_book_position_count(w->book), count = 0;
  size_t *mine = malloc((n ? n : 1) * sizeof *mine);
  if (mine == NULL) return out_of_memory(status);
  for (size_t i = 0; i < n; i++)
    if (strcmp(gk_book_position(w->book, i)->instrument.underlying, w->request->underlying) == 0)
      mine[count++] = i;
  gk_book_valuation v;
  gk_code rc = gk_value_book_positions(w->book, mine, count, w->request->valuation_us, NULL,
                                       w->request->american_method, NULL, &v, status);
  if (rc == GK_OK) {
    rc = check_valued(w->book, &v, mine, status);
    w->before = v.total;
    gk_book_valuation_free(&v);
  }
  free(mine);
  return rc;
}

/* ---- the instruments' side: one contract of each ------------------------------------ */

typedef struct option_columns {
  size_t count;
  size_t *index; /* the instrument each row prices */
  double *in[6]; /* spot, strike, expiry, rate, yield, vol */
  double *out[7]; /* price, delta, gamma, vega, theta, rho, phi */
  uint8_t *type, *style, *error;
} option_columns;

static void free_columns(option_columns *c) {
  free(c->index), free(c->type), free(c->style), free(c->error);
  for (size_t k = 0; k < 6; k++) free(c->in[k]);
  for (size_t k = 0; k < 7; k++) free(c->out[k]);
}

static bool alloc_columns(option_columns *c, size_t n) {
  memset(c, 0, sizeof *c);
  bool ok = (c->index = malloc(n * sizeof *c->index)) != NULL;
  ok = (c->type = malloc(n)) != NULL && ok;
  ok = (c->style = malloc(n)) != NULL && ok;
  ok = (c->error = calloc(n, 1)) != NULL && ok;
  for (size_t k = 0; k < 6; k++) ok = (c->in[k] = malloc(n * sizeof(double))) != NULL && ok;
  for (size_t k = 0; k < 7; k++) ok = (c->out[k] = calloc(n, sizeof(double))) != NULL && ok;
  return ok;
}

/* The underlying: value S, delta 1, no gamma or vega. */
static gk_risk underlying_contract(const gk_market_quote *m) {
  gk_risk r = {.value = m->spot, .delta = 1, .dollar_delta = m->spot, .positions = 1};
  return r;
}

static void push_option(hedge_work *w, option_columns *c, size_t i) {
  const gk_quoted_instrument *q = &w->request->instruments[i];
  double vol = q->vol;
  if (vol == 0 && !gk_book_vol_of(w->book, &q->instrument, &vol)) vol = w->market->vol;
  size_t k = c->count++;
  c->index[k] = i;
  c->in[0][k] = w->market->spot, c->in[1][k] = q->instrument.strike;
  c->in[2][k] = gk_year_fraction(w->request->valuation_us, q->instrument.expiry_us);
  c->in[3][k] = w->market->rate, c->in[4][k] = w->market->yield, c->in[5][k] = vol;
  c->type[k] = q->instrument.type, c->style[k] = q->instrument.style;
}

/* Row k of the priced batch, scaled to one contract. */
static gk_code take_option(hedge_work *w, const option_columns *c, size_t k, gk_status *status) {
  size_t i = c->index[k];
  if (c->error[k]) {
    char field[48];
    snprintf(field, sizeof field, "instruments[%zu]", i);
    return gk_status_set(status, GK_INVALID_ARGUMENT, field, gk_element_error_field(c->error[k]),
                         (int64_t)i, "instruments[%zu] cannot be priced at the book's market: "
                         "%s %s", i, gk_element_error_field(c->error[k]),
                         gk_element_error_rule(c->error[k]));
  }
  double m = w->request->instruments[i].instrument.multiplier, s = w->market->spot;
  gk_risk *r = &w->contract[i];
  r->value = c->out[0][k] * m, r->delta = c->out[1][k] * m, r->gamma = c->out[2][k] * m;
  r->vega = c->out[3][k] * m, r->theta = c->out[4][k] * m, r->rho = c->out[5][k] * m;
  r->phi = c->out[6][k] * m, r->dollar_delta = r->delta * s, r->dollar_gamma = r->gamma * s * s;
  r->positions = 1;
  return GK_OK;
}

/* Per-contract Greeks and spread costs of every instrument offered. */
static gk_code price_contracts(hedge_work *w, gk_status *status) {
  option_columns c;
  gk_code rc = alloc_columns(&c, w->n) ? GK_OK : out_of_memory(status);
  for (size_t i = 0; rc == GK_OK && i < w->n; i++) {
    const gk_quoted_instrument *q = &w->request->instruments[i];
    w->cost[i] = q->instrument.multiplier * 0.5 * (q->ask - q->bid);
    if (q->instrument.kind == GK_KIND_UNDERLYING) {
      w->contract[i] = underlying_contract(w->market);
      w->underlying = i;
    } else {
      push_option(w, &c, i);
    }
  }
  if (rc == GK_OK && c.count) {
    gk_option_batch in = {c.count, c.in[0], c.in[1], c.in[2], c.in[3], c.in[4], c.in[5], c.type};
    gk_greeks_batch out = {c.out[0], c.out[1], c.out[2], c.out[3], c.out[4], c.out[5], c.out[6],
                           c.error, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    gk_exercise exercise = {.style = c.style, .method = w->request->american_method};
    rc = gk_price_batch_ex(NULL, GK_MODEL_BSM, &in, &exercise, GK_OUT_ALL, &out, NULL, status);
  }
  for (size_t k = 0; rc == GK_OK && k < c.count; k++) rc = take_option(w, &c, k, status);
  free_columns(&c);
  return rc;
}

/* ---- the linear program ------------------------------------------------------------- */

typedef struct basis {
  size_t size;     /* instruments used: 0, 1 or 2; NONE = no feasible basis yet */
  size_t index[2];
  double q[2];     /* contracts (units for the underlying), before rounding */
  double cost;
  double miss;     /* after rounding: the largest |Greek left| / |Greek before| over the targets */
} basis;

typedef struct program {
  const hedge_work *w;
  size_t m, n;        /* constraints (1 or 2), instruments */
  double *a[2];       /* the constraint rows, each divided by its scale */
  double b[2];        /* -before, divided by the same scale */
  double scale[2];    /* that scale: the largest |Greek| of the row (0: an empty row) */
  size_t out_of_range; /* bases refused for a quantity beyond GK_MAX_QUANTITY */
  size_t past_position_bound; /* bases refused for a position past GK_MAX_POSITION_QUANTITY */
  size_t past_cash_bound;     /* bases refused for a leg moving more than GK_MAX_CASH */
} program;

/* The Greek of constraint k (0 delta; 1 gamma or vega) in a gk_risk. */
static double constrained(const gk_risk *r, gk_hedge_target target, size_t k) {
  if (k == 0) return r->delta;
  return target == GK_HEDGE_DELTA_GAMMA ? r->gamma : r->vega;
}

static void scale_row(program *p, size_t k) {
  double scale = fabs(p->b[k]);
  for (size_t i = 0; i < p->n; i++) scale = fmax(scale, fabs(p->a[k][i]));
  p->scale[k] = scale;
  if (scale == 0) return; /* 0 = 0: already met by every basis */
  p->b[k] /= scale;
  for (size_t i = 0; i < p->n; i++) p->a[k][i] /= scale;
}

static bool build_program(const hedge_work *w, program *p) {
  memset(p, 0, sizeof *p);
  p->w = w, p->m = w->request->target == GK_HEDGE_DELTA ? 1 : 2, p->n = w->n;
  p->a[0] = malloc(2 * w->n * sizeof(double));
  if (p->a[0] == NULL) return false;
  p->a[1] = p->a[0] + w->n;
  for (size_t k = 0; k < 2; k++) {
    p->b[k] = k < p->m ? -constrained(&w->before, w->request->target, k) : 0;
    for (size_t i = 0; i < w->n; i++)
      p->a[k][i] = k < p->m ? constrained(&w->contract[i], w->request->target, k) : 0;
    scale_row(p, k);
  }
  return true;
}

/* A basis in whole contracts (step 5): its options rounded to the nearest
 * contract, then the underlying, when offered, to the whole units that bring
 * delta nearest 0 (index NONE when not offered). Touches only the basis: the
 * search calls it for every candidate. */
typedef struct whole_basis {
  double q[2];   /* the basis's options, whole contracts (its underlying, if any: 0 here) */
  double units;  /* the underlying's units */
} whole_basis;

static whole_basis round_basis(const hedge_work *w, const basis *b) {
  whole_basis r = {{0, 0}, 0};
  double delta = w->before.delta;
  for (size_t j = 0; j < b->size; j++) {
    if (b->index[j] == w->underlying) continue;
    r.q[j] = (double)llround(b->q[j]);
    delta += r.q[j] * w->contract[b->index[j]].delta;
  }
  /* the nearest whole units, a half toward none: a book at exactly 0.5
   * paid a unit's spread to flip its delta to -0.5 (found in review) */
  if (w->underlying != NONE) r.units = fabs(-delta - trunc(-delta)) == 0.5 ? trunc(-delta) : round(-delta);
  return r;
}

/* What the whole-contract trade costs: its options' whole contracts and the
 * underlying's units, which every basis trades where the underlying is
 * offered. Costed in fractions of a contract, a basis whose rounding adds
 * contracts and units won over a cheaper trade: a delta hedge of 2 calls and
 * 22 units cost 120 where 84 units alone cost 84; and trading nothing, costed
 * at 0, won over every option though its units cost 570 (both found in
 * review). */
static double whole_cost(const hedge_work *w, const basis *b, const whole_basis *r) {
  double cost = 0;
  for (size_t j = 0; j < b->size; j++)
    if (b->index[j] != w->underlying) cost += w->cost[b->index[j]] * fabs(r->q[j]);
  if (w->underlying != NONE) cost += w->cost[w->underlying] * fabs(r->units);
  return cost;
}

/* What whole contracts leave of each target Greek, as a share of the book's. */
static double rounded_miss(const program *p, const basis *b, const whole_basis *r) {
  const hedge_work *w = p->w;
  double miss = 0;
  for (size_t k = 0; k < p->m; k++) {
    double before = constrained(&w->before, w->request->target, k), left = before;
    for (size_t j = 0; j < b->size; j++)
      left += r->q[j] * constrained(&w->contract[b->index[j]], w->request->target, k);
    if (k == 0) left += r->units; /* the underlying: delta 1, no gamma, no vega */
    /* With the underlying offered, delta within half a unit is met (step 5:
     * its units round to that): judged by share, a straddle 0.003 from flat
     * kept all its gamma while a flat one was hedged, and a delta target of
     * 0.5 bought a put at any spread (250 to move 0.15 of a share) because
     * no unit trade took half of it off (both found in review). So a book
     * within half a unit of flat gets no delta legs there, even where an
     * option would take it closer (documented). */
    if (k == 0 && w->underlying != NONE && fabs(left) <= 0.5) left = 0;
    if (fabs(p->b[k]) > FEASIBLE) {
      miss = fmax(miss, fabs(left) / fabs(before));
    } else if (fabs(left) > FEASIBLE * p->scale[k]) {
      /* Met already: a Greek the book does not have is a target too, and any
       * the trade adds is a larger share than none (a stock-only book asked
       * for delta-gamma neutral on calls alone was sold 3 gamma, a straddle
       * with delta 0 exactly 30 delta, where books with 3e-4 of either got no
       * legs: found in review). */
      miss = INFINITY;
    }
  }
  return miss;
}

/* Whether instrument i traded q whole contracts is a leg the book takes:
 * its cash (at the ask buying, the bid selling) within GK_MAX_CASH, and the
 * position after it within +-GK_MAX_POSITION_QUANTITY. */
static bool leg_fits(program *p, size_t i, double q) {
  const hedge_work *w = p->w;
  const gk_quoted_instrument *quote = &w->request->instruments[i];
  double cash = (q > 0 ? quote->ask : quote->bid) * fabs(q) * quote->instrument.multiplier;
  if (!(cash <= GK_MAX_CASH)) {
    p->past_cash_bound++;
    return false;
  }
  if (!(fabs(w->held[i] + q) <= (double)GK_MAX_POSITION_QUANTITY)) {
    p->past_position_bound++;
    return false;
  }
  return true;
}

/* Whether the whole-contract trade can be executed: the underlying's units
 * within GK_MAX_QUANTITY, and each leg one the book takes (leg_fits).
 * Trading nothing but 2e12 units beat a feasible put, then failed the
 * request; a hedge proposed a leg its execution refused; a put whose leg
 * moved 4.5e18 beat selling shares, then failed (all found in review). */
static bool tradable_whole(program *p, const basis *b, const whole_basis *r) {
  const hedge_work *w = p->w;
  if (w->underlying != NONE) {
    if (!(fabs(r->units) <= (double)GK_MAX_QUANTITY)) {
      p->out_of_range++;
      return false;
    }
    if (r->units != 0 && !leg_fits(p, w->underlying, r->units)) return false;
  }
  for (size_t j = 0; j < b->size; j++)
    if (b->index[j] != w->underlying && r->q[j] != 0 && !leg_fits(p, b->index[j], r->q[j])) return false;
  return true;
}

/* Keeps `candidate` when it is tradable and better than the best: a basis that
 * in whole contracts takes at least half of each target Greek off the book
 * beats one that does not; among those the cheaper wins (the LP's optimum,
 * as before), among the others the one that leaves less (by more than 1% of
 * the book's Greek), then the cheaper. The vertex is exact in fractions of a
 * contract, and rounding can undo it: a delta-gamma hedge picked 0.07 of a
 * one-day option (its gamma per contract dwarfs the book's), rounded it to 0
 * and left the book's gamma untouched. */
static void consider(program *p, basis *candidate, basis *best) {
  for (size_t j = 0; j < candidate->size; j++) {
    double q = candidate->q[j];
    if (!isfinite(q) || fabs(q) > (double)GK_MAX_QUANTITY) {
      p->out_of_range++;
      return;
    }
  }
  whole_basis whole = round_basis(p->w, candidate);
  if (!tradable_whole(p, candidate, &whole)) return;
  candidate->cost = whole_cost(p->w, candidate, &whole);
  bool cheaper = best->size == NONE || candidate->cost < best->cost - 1e-12 * best->cost;
  bool best_ok = best->size != NONE && best->miss <= ACCEPTABLE_MISS;
  if (best_ok && !cheaper) return; /* cannot win (130,816 bases at 512 instruments) */
  candidate->miss = rounded_miss(p, candidate, &whole);
  if (best->size == NONE) {
    *best = *candidate;
    return;
  }
  bool ok = candidate->miss <= ACCEPTABLE_MISS;
  bool better = ok != best_ok ? ok
                : ok          ? cheaper
                              : candidate->miss < best->miss - MISS_TOLERANCE ||
                          (candidate->miss <= best->miss + MISS_TOLERANCE && cheaper);
  if (better) *best = *candidate;
}

/* Instrument i alone: the least-squares quantity, kept if it meets every row. */
static void try_single(program *p, size_t i, basis *best) {
  double a0 = p->a[0][i], a1 = p->a[1][i];
  double norm = a0 * a0 + a1 * a1;
  if (!(norm > NEGLIGIBLE * NEGLIGIBLE)) {
    /* nonzero but 1e12 times below the book's exposure: it would take more
     * contracts than any quantity allows; say that, not "no delta" */
    if (norm > 0) p->out_of_range++;
    return;
  }
  double q = (a0 * p->b[0] + a1 * p->b[1]) / norm;
  if (fabs(a0 * q - p->b[0]) > FEASIBLE || fabs(a1 * q - p->b[1]) > FEASIBLE) return;
  basis candidate = {1, {i, 0}, {q, 0}, 0};
  consider(p, &candidate, best);
}

/* Instruments i < j: the 2x2 system by Cramer's rule, unless singular. */
static void try_pair(program *p, size_t i, size_t j, basis *best) {
  double a00 = p->a[0][i], a01 = p->a[0][j], a10 = p->a[1][i], a11 = p->a[1][j];
  double det = a00 * a11 - a01 * a10, terms = fabs(a00 * a11) + fabs(a01 * a10);
  if (!(terms > 0) || !(fabs(det) > SINGULAR * terms)) return;
  basis candidate = {2, {i, j},
                     {(p->b[0] * a11 - a01 * p->b[1]) / det, (a00 * p->b[1] - a10 * p->b[0]) / det},
                     0};
  consider(p, &candidate, best);
}

/* Every basis, smallest first: best->size stays NONE when none is feasible.
 * Trading nothing (but the underlying's whole units, where offered) is a
 * candidate too once any basis is feasible: whole contracts of the best basis
 * can leave more of a target Greek than the book has now (a delta-gamma hedge
 * of a small book, rounded from -0.44 and +0.51 contracts to 0 and +1, made
 * its delta 4x and its gamma 5x larger, and charged the spread for it). */
static void solve(program *p, basis *best) {
  best->size = NONE;
  basis nothing = {0, {0, 0}, {0, 0}, 0};
  bool met = fabs(p->b[0]) <= FEASIBLE && fabs(p->b[1]) <= FEASIBLE;
  if (met) consider(p, &nothing, best);
  for (size_t i = 0; i < p->n; i++) try_single(p, i, best);
  for (size_t i = 0; p->m == 2 && i < p->n; i++)
    for (size_t j = i + 1; j < p->n; j++) try_pair(p, i, j, best);
  if (!met && best->size != NONE) consider(p, &nothing, best);
}

/* No feasible basis: says which target and what the instruments lack. */
static gk_code infeasible(const hedge_work *w, const program *p, gk_status *status) {
  const char *target = gk_hedge_target_name(w->request->target);
  const char *second = w->request->target == GK_HEDGE_DELTA_GAMMA ? "gamma" : "vega";
  if (p->out_of_range)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "target", target, GK_STATUS_NO_INDEX,
                         "%s-neutral: every hedge with these instruments needs more than %lld "
                         "contracts of one of them%s", target, (long long)GK_MAX_QUANTITY,
                         p->past_position_bound ? ", or takes a position past the book's bound" : "");
  if (p->past_position_bound || p->past_cash_bound)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "target", target, GK_STATUS_NO_INDEX,
                         "%s-neutral: every hedge with these instruments takes a position past the book's "
                         "bound of %lld contracts or a leg moving more than %g currency units",
                         target, (long long)GK_MAX_POSITION_QUANTITY, GK_MAX_CASH);
  if (p->m == 1)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "target", target, GK_STATUS_NO_INDEX,
                         "delta-neutral needs an instrument with nonzero delta among the "
                         "instruments (the underlying or an option)");
  bool any = false;
  for (size_t i = 0; i < p->n; i++) any = any || fabs(p->a[1][i]) > NEGLIGIBLE;
  if (!any)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "target", target, GK_STATUS_NO_INDEX,
                         "%s-neutral needs an option with nonzero %s among the instruments",
                         target, second);
  return gk_status_set(status, GK_FAILED_PRECONDITION, "target", target, GK_STATUS_NO_INDEX,
                       "%s-neutral needs two instruments whose delta and %s are independent "
                       "(the underlying and an option, or two options of different strikes "
                       "or expiries)", target, second);
}

/* ---- rounding and the proposal ----------------------------------------------------- */

/* Options to whole contracts, then the underlying to whole units absorbing the
 * options' rounding in delta. */
static gk_code round_quantities(const hedge_work *w, const basis *best, int64_t *q,
                                gk_status *status) {
  whole_basis whole = round_basis(w, best);
  memset(q, 0, w->n * sizeof *q);
  for (size_t j = 0; j < best->size; j++)
    if (best->index[j] != w->underlying) q[best->index[j]] = (int64_t)whole.q[j];
  if (w->underlying == NONE) return GK_OK;
  double units = whole.units;
  if (!(fabs(units) <= (double)GK_MAX_QUANTITY)) {
    char text[32];
    snprintf(text, sizeof text, "%.17g", units);
    return gk_status_set(status, GK_FAILED_PRECONDITION, "quantity", text,
                         (int64_t)w->underlying, "the hedge needs %s units of the underlying, "
                         "beyond %lld", text, (long long)GK_MAX_QUANTITY);
  }
  q[w->underlying] = (int64_t)units;
  return GK_OK;
}

/* +1 when the leg opens a position, -1 when it closes one, else 0. */
static int position_change(const gk_book *book, const gk_instrument *in, int64_t q) {
  const gk_position *p = gk_book_find_position(book, in);
  int64_t held = p ? p->quantity : 0;
  return (held != -q) - (held != 0);
}

static void add_contracts(gk_risk *sum, const gk_risk *contract, int64_t q) {
  double k = (double)q;
  gk_risk r = {contract->value * k, contract->delta * k, contract->gamma * k,
               contract->vega * k, contract->theta * k, contract->rho * k, contract->phi * k,
               contract->dollar_delta * k, contract->dollar_gamma * k, 0};
  gk_risk_add(sum, &r);
}

static gk_code add_leg(const hedge_work *w, size_t i, int64_t q, gk_hedge_proposal *out,
                       gk_status *status) {
  const gk_quoted_instrument *quote = &w->request->instruments[i];
  gk_leg *leg = &out->legs[out->leg_count++];
  leg->instrument = quote->instrument, leg->quantity = q;
  leg->price = q > 0 ? quote->ask : quote->bid;
  double cash = leg->price * (double)q * quote->instrument.multiplier;
  if (!(fabs(cash) <= GK_MAX_CASH)) {
    char field[48];
    snprintf(field, sizeof field, "instruments[%zu]", i);
    return gk_status_set(status, GK_FAILED_PRECONDITION, field, "", (int64_t)i,
                         "the hedge's leg in instruments[%zu] would move %g currency units, "
                         "above %g", i, cash, GK_MAX_CASH);
  }
  out->premium += cash;
  out->cost += fabs((double)q) * w->cost[i];
  add_contracts(&out->after, &w->contract[i], q);
  out->after.positions =
      (size_t)((long long)out->after.positions +
               position_change(w->book, &quote->instrument, q));
  return GK_OK;
}

static bool risk_finite(const gk_risk *r) {
  double v[] = {r->value, r->delta, r->gamma, r->vega, r->theta, r->rho, r->phi,
                r->dollar_delta, r->dollar_gamma};
  for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
    if (!isfinite(v[k])) return false;
  return true;
}

static gk_code propose(const hedge_work *w, const int64_t *q, gk_hedge_proposal *out,
                       gk_status *status) {
  out->target = w->request->target;
  out->before = out->after = w->before;
  gk_code rc = GK_OK;
  for (size_t i = 0; rc == GK_OK && i < w->n; i++) /* at most m + 1 <= 3 are nonzero */
    if (q[i] != 0) rc = add_leg(w, i, q[i], out, status);
  if (rc == GK_OK && !risk_finite(&out->after))
    rc = gk_status_set(status, GK_FAILED_PRECONDITION, "target",
                       gk_hedge_target_name(w->request->target), GK_STATUS_NO_INDEX,
                       "the hedged Greeks overflow the double range");
  return rc;
}

/* ---- the use case --------------------------------------------------------------------- */

static gk_code hedge(hedge_work *w, gk_hedge_proposal *out, gk_status *status) {
  gk_code rc = value_before(w, status);
  if (rc == GK_OK) rc = price_contracts(w, status);
  if (rc != GK_OK) return rc;
  program p;
  if (!build_program(w, &p)) return out_of_memory(status);
  basis best;
  solve(&p, &best);
  int64_t *q = malloc(w->n * sizeof *q);
  if (q == NULL) rc = out_of_memory(status);
  else if (best.size == NONE) rc = infeasible(w, &p, status);
  else rc = round_quantities(w, &best, q, status);
  if (rc == GK_OK) rc = propose(w, q, out, status);
  free(q), free(p.a[0]);
  return rc;
}

gk_code gk_generate_hedge(const gk_book *book, const gk_hedge_request *request,
                          gk_hedge_proposal *out, gk_status *status) {
  if (book == NULL || request == NULL || out == NULL) {
    const char *field = book == NULL ? "book" : request == NULL ? "request" : "out";
    return gk_status_set(status, GK_INVALID_ARGUMENT, field, "", GK_STATUS_NO_INDEX,
                         "%s is NULL: book, request and out are required", field);
  }
  memset(out, 0, sizeof *out);
  gk_code rc = check_request(request, status);
  if (rc != GK_OK) return rc;
  hedge_work w = {.book = book, .request = request, .n = request->count, .underlying = NONE,
                  .market = gk_book_find_market(book, request->underlying)};
  if (w.market == NULL)
    return gk_status_set(status, GK_FAILED_PRECONDITION, "underlying", request->underlying,
                         GK_STATUS_NO_INDEX, "the book has no market for %s: update its market "
                         "before hedging it", request->underlying);
  w.contract = calloc(w.n, sizeof *w.contract);
  w.cost = calloc(w.n, sizeof *w.cost);
  w.held = calloc(w.n, sizeof *w.held);
  for (size_t i = 0; w.held && i < w.n; i++) {
    const gk_position *held = gk_book_find_position(book, &request->instruments[i].instrument);
    w.held[i] = held ? (double)held->quantity : 0.0;
  }
  rc = w.contract && w.cost && w.held ? hedge(&w, out, status) : out_of_memory(status);
  free(w.contract), free(w.cost), free(w.held);
  if (rc != GK_OK) memset(out, 0, sizeof *out);
  else gk_status_clear(status);
  return rc;
}
