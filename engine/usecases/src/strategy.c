/*
 * strategy.c - option structures from a market view, ranked
 * (greeks/strategy.h: gk_generate_strategies; docs/strategy.md says what the
 * numbers mean).
 *
 * Steps, each a function below:
 *   1. check the arguments, the market, every quote (gk_quoted_instruments_validate),
 *      every instrument on the market's underlying and alive, and the view;
 *   2. slices: the options grouped by (expiry, multiplier, style), nearest expiry
 *      first, at most MAX_SLICES of them; in each, the strikes ascending with the
 *      first call and first put quoted at that strike;
 *   3. candidates: in each slice, strikes picked around the spot S - ATM is the
 *      strike nearest S, the wings the strike nearest S x (1 +/- move) on its side
 *      of ATM and that strike's two neighbours - and every standard structure
 *      built on them (butterflies symmetric about ATM); calendars pair the strike
 *      nearest S that two slices share; covered calls and protective puts when the
 *      chain quotes the underlying. At most 88 per slice and 12 calendars: 364,
 *      under MAX_CANDIDATES;
 *   4. tables: every option a candidate uses is priced once at the valuation time
 *      (value and Greeks), once per spot of a common grid at the horizon, and once
 *      per point of the view's scenario grid - one gk_price_batch_ex call each,
 *      European and American elements side by side. Options are shared by many
 *      candidates and the American tree costs ~0.3 ms a price, so no (option,
 *      spot, vol) is priced twice;
 *   5. each candidate read off the tables: premium, Greeks, P&L on the grid, its
 *      bounds, breakevens (refined by Brent's method on exact prices), the view's
 *      P&L and the score;
 *   6. the view's caps, then a sort on (score, kind, legs), a total order: the
 *      output is a function of the input alone.
 *
 * The horizon: an option is worth its model value with T' = T - (horizon -
 * valuation) (ACT/365F, gk_year_fraction from the horizon), or its intrinsic value
 * once T' <= 0; every vol moves by view->vol_change (floored at VOL_FLOOR); rate
 * and yield stay. The underlying is worth the spot (no carry). Over every spot
 * S >= 0 the P&L is bounded on the grid and beyond it by its asymptote: as
 * S -> inf a call tends to a S - b K (a = e^-qT', b = e^-rT' while alive, a = b = 1
 * once expired or, American with q > 0, exercised), a put to 0, so the
 * P&L's slope there is exact. When every leg has expired by the horizon the P&L
 * is piecewise linear with kinks at the strikes, which are on the grid: the
 * bounds are then exact; otherwise they are those of the grid (docs/strategy.md).
 *
 * Errors: GK_INVALID_ARGUMENT naming the field ("view.move", "chain[4].ask"), its
 * value and the rule; GK_RESOURCE_EXHAUSTED on OOM. Options the kernels refuse
 * (an element error: an expiry past 100 years, a vol above the kernels'
 * limit) are left out with every candidate that uses them.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/pricing.h"
#include "greeks/strategy.h"

#define NONE SIZE_MAX
#define MAX_SLICES 4
#define MAX_CANDIDATES 512
#define MAX_STRUCTURE_LEGS 4
#define LOG_GRID_POINTS 241   /* 0.01 S .. top, log-spaced: 2.6% apart */
#define GRID_LOW 0.01         /* the log grid's first spot, x S */
#define GRID_HIGH 5.0         /* its last, x max(S, the largest strike used) */
#define VOL_FLOOR 1e-3        /* a vol moved below this is priced at it */
#define SCENARIO_VOL_STEP 0.02 /* the scenario grid's vols: vol_change -/0/+ this */
#define MAX_SCENARIO_SPOTS 5
#define SCENARIO_VOLS 3
#define RISK_FLOOR 0.01       /* x S x quantity x multiplier: the least risk a score divides by */
#define UNBOUNDED_PENALTY 2.0 /* an unbounded loss counts as twice the worst loss on its own range */
#define SLOPE_TOLERANCE 1e-9  /* x sum |q m|: an asymptotic slope this small is flat */
#define BREAKEVEN_TOLERANCE 1e-9 /* relative: Brent stops within this of the root */
#define EXTREMUM_STEPS 40        /* at most, Brent's localmin at a local extremum */
#define EXTREMUM_TOLERANCE 1e-6  /* relative: where it stops; the P&L is flat there, so its value is ~1e-12 off */
#define SAME_DIP 1e-4            /* relative: two localmins whose best spots are this close found one dip */
#define MAX_REFINED 2      /* the deepest local minima and the highest maxima refined per structure */
#define SEARCHES_PER_STRUCTURE (2 * MAX_REFINED + GK_MAX_BREAKEVENS + 1) /* + its range's end */
#define DIP_SEARCHES (2 * 2 * MAX_REFINED) /* two roots beside each refined extremum (a second round) */
#define MAX_VOL_CHANGE 1.0
#define GREEKS 7              /* value, delta, gamma, vega, theta, rho, phi */

enum { NEED_CALL = 1, NEED_PUT = 2, NEED_BOTH = 3 };

/* The structures, by kind name; the enum indexes KIND_NAMES. */
typedef enum kind {
  BULL_CALL_SPREAD, BEAR_CALL_SPREAD, BULL_PUT_SPREAD, BEAR_PUT_SPREAD, LONG_STRADDLE,
  SHORT_STRADDLE, LONG_STRANGLE, SHORT_STRANGLE, LONG_CALL_BUTTERFLY, SHORT_CALL_BUTTERFLY,
  LONG_PUT_BUTTERFLY, SHORT_PUT_BUTTERFLY, IRON_CONDOR, LONG_CALL_CONDOR, CALL_CALENDAR,
  PUT_CALENDAR, BULLISH_RISK_REVERSAL, BEARISH_RISK_REVERSAL, COVERED_CALL, PROTECTIVE_PUT,
} kind;

static const char *const KIND_NAMES[] = {
    "bull_call_spread", "bear_call_spread", "bull_put_spread", "bear_put_spread",
    "long_straddle", "short_straddle", "long_strangle", "short_strangle",
    "long_call_butterfly", "short_call_butterfly", "long_put_butterfly", "short_put_butterfly",
    "iron_condor", "long_call_condor", "call_calendar", "put_calendar",
    "bullish_risk_reversal", "bearish_risk_reversal", "covered_call", "protective_put"};

typedef struct strike_row {
  double strike;
  size_t call, put; /* chain indices, NONE when not quoted */
} strike_row;

typedef struct slice {
  int64_t expiry_us;
  double multiplier;
  uint8_t style;
  strike_row *rows; /* strikes ascending */
  size_t row_count;
} slice;

/* A structure: legs as (chain index, signed quantity: contracts or units). */
typedef struct candidate {
  kind kind;
  size_t leg_count;
  size_t quote[MAX_STRUCTURE_LEGS];
  int64_t quantity[MAX_STRUCTURE_LEGS];
  bool dropped;
  gk_strategy s;
} candidate;

typedef struct work {
  const gk_market_quote *market;
  const gk_quoted_instrument *chain;
  size_t count;
  const gk_strategy_view *view;
  int64_t valuation_us;
  gk_american_method method;
  double spot;
  size_t underlying; /* chain index of the underlying's first quote, NONE: none */
  double *vol;       /* by chain index: an option's vol now */
  slice slices[MAX_SLICES];
  size_t slice_count;
  strike_row *rows;
  candidate *candidates;
  size_t candidate_count;
  /* the options candidates use: columns of the tables */
  size_t *column;   /* chain index -> column, NONE: unused */
  size_t *quote_of; /* column -> chain index */
  size_t columns;
  bool *bad;        /* by column: the kernels refused it */
  double *now;      /* GREEKS x columns: at the valuation time */
  double *grid;     /* spots at the horizon, ascending; grid[0] = 0 */
  size_t grid_count;
  double *horizon;  /* columns x grid_count */
  size_t view_at[3], view_count; /* grid indices of the view's spots */
  double scenario_spot[MAX_SCENARIO_SPOTS], scenario_vol[SCENARIO_VOLS];
  size_t scenario_spots;
  double *scenario; /* columns x scenario_spots x SCENARIO_VOLS */
  /* one batch's inputs, sized for the largest table */
  size_t batch_capacity;
  double *b_spot, *b_strike, *b_years, *b_rate, *b_yield, *b_vol, *b_out;
  uint8_t *b_type, *b_style, *b_error;
  size_t *b_column;
  /* the evaluation of each candidate, and the searches on exact prices they need */
  struct evaluation *evaluations;
  struct search *searches;
  size_t search_count;
} work;

/* ---- validation ------------------------------------------------------------------ */

static gk_code bad_number(gk_status *status, const char *field, double value, const char *rule) {
  char text[32];
  snprintf(text, sizeof text, "%.17g", value);
  return gk_status_set(status, GK_INVALID_ARGUMENT, field, text, GK_STATUS_NO_INDEX,
                       "%s is %s: %s", field, text, rule);
}

static gk_code null_argument(gk_status *status, const char *field) {
  return gk_status_set(status, GK_INVALID_ARGUMENT, field, "", GK_STATUS_NO_INDEX,
                       "%s must not be NULL", field);
}

/* Rewrites every "from" that starts a field or message word as "to": the shared
 * validators name their own input ("instruments[4].ask", "spot"). */
static void rename_in(char *text, size_t size, const char *from, const char *to) {
  char copy[256];
  size_t n = 0, from_len = strlen(from), to_len = strlen(to);
  for (const char *p = text; *p && n + 1 < sizeof copy;) {
    if (strncmp(p, from, from_len) == 0 && n + to_len + 1 < sizeof copy) {
      memcpy(copy + n, to, to_len), n += to_len, p += from_len;
    } else {
      copy[n++] = *p++;
    }
  }
  copy[n] = '\0';
  snprintf(text, size, "%s", copy);
}

static gk_code check_market(const gk_market_quote *market, gk_status *status) {
  gk_status why;
  if (gk_market_quote_validate(market, &why) == GK_OK) return GK_OK;
  char field[32];
  snprintf(field, sizeof field, "market.%.24s", why.field);
  return gk_status_set(status, why.code, field, why.value, why.index, "%s: %s", field,
                       why.message);
}

static gk_code check_chain(const gk_market_quote *market, const gk_quoted_instrument *chain,
                           size_t count, int64_t valuation_us, gk_status *status) {
  gk_code rc = gk_quoted_instruments_validate(chain, count, status);
  if (rc != GK_OK) {
    if (status) {
      rename_in(status->field, sizeof status->field, "instruments", "chain");
      rename_in(status->message, sizeof status->message, "instruments[", "chain[");
    }
    return rc;
  }
  char field[48], text[32];
  for (size_t i = 0; i < count; i++) {
    const gk_instrument *in = &chain[i].instrument;
    if (strcmp(in->underlying, market->underlying) != 0) {
      snprintf(field, sizeof field, "chain[%zu].underlying", i);
      return gk_status_set(status, GK_INVALID_ARGUMENT, field, in->underlying, (int64_t)i,
                           "%s is %s: every instrument of the chain must be on the market's "
                           "underlying %s", field, in->underlying, market->underlying);
    }
    if (in->kind == GK_KIND_OPTION && gk_year_fraction(valuation_us, in->expiry_us) <= 0) {
      snprintf(field, sizeof field, "chain[%zu].expiry", i);
      snprintf(text, sizeof text, "%lld", (long long)in->expiry_us);
      return gk_status_set(status, GK_INVALID_ARGUMENT, field, text, (int64_t)i,
                           "%s is %s us: the option has expired at the valuation time %lld us",
                           field, text, (long long)valuation_us);
    }
  }
  return GK_OK;
}

static gk_code check_view(const gk_strategy_view *v, int64_t valuation_us, gk_status *status) {
  char text[32];
  if ((unsigned)v->direction > GK_VIEW_VOLATILE) {
    snprintf(text, sizeof text, "%d", (int)v->direction);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "view.direction", text, GK_STATUS_NO_INDEX,
                         "view.direction is %s: it must be neutral (0), bullish (1), bearish (2) "
                         "or volatile (3)", text);
  }
  if (!(v->move > 0 && v->move <= 1))
    return bad_number(status, "view.move", v->move, "the relative move must be in (0, 1]");
  if (!(v->vol_change >= -MAX_VOL_CHANGE && v->vol_change <= MAX_VOL_CHANGE))
    return bad_number(status, "view.vol_change", v->vol_change,
                      "the vol change must be in [-1, 1] per 1.00");
  if (v->horizon_us <= valuation_us) {
    snprintf(text, sizeof text, "%lld", (long long)v->horizon_us);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "view.horizon_us", text,
                         GK_STATUS_NO_INDEX, "view.horizon_us is %s: the horizon must be after "
                         "the valuation time %lld us", text, (long long)valuation_us);
  }
  if (!(v->max_premium >= 0 && v->max_premium <= GK_MAX_CASH))
    return bad_number(status, "view.max_premium", v->max_premium,
                      "the premium cap must be in [0, 1e18] (0: none)");
  if (!(v->max_loss >= 0 && v->max_loss <= GK_MAX_CASH))
    return bad_number(status, "view.max_loss", v->max_loss,
                      "the loss cap must be in [0, 1e18] (0: none)");
  if (v->quantity < 1 || v->quantity > GK_MAX_QUANTITY / 2) {
    snprintf(text, sizeof text, "%lld", (long long)v->quantity);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "view.quantity", text, GK_STATUS_NO_INDEX,
                         "view.quantity is %s: it must be in [1, %lld] contracts (a butterfly's "
                         "body is twice it)", text, (long long)(GK_MAX_QUANTITY / 2));
  }
  return GK_OK;
}

static gk_code check_arguments(const gk_market_quote *market, const gk_quoted_instrument *chain,
                               size_t count, const gk_strategy_view *view, int64_t valuation_us,
                               gk_american_method method, size_t capacity, gk_status *status) {
  char text[32];
  if (count == 0 || count > GK_MAX_QUOTED_INSTRUMENTS) {
    snprintf(text, sizeof text, "%zu", count);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "count", text, GK_STATUS_NO_INDEX,
                         "count is %s: a chain holds 1 to %d instruments", text,
                         GK_MAX_QUOTED_INSTRUMENTS);
  }
  if (capacity == 0)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "capacity", "0", GK_STATUS_NO_INDEX,
                         "capacity is 0: room for at least one strategy is needed");
  if ((unsigned)method >= GK_AMERICAN_METHOD_COUNT) {
    snprintf(text, sizeof text, "%d", (int)method);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "american_method", text,
                         GK_STATUS_NO_INDEX, "american_method is %s: it must be bs2002 (0), "
                         "tree (1) or alo (2)", text);
  }
  gk_code rc = check_market(market, status);
  if (rc == GK_OK) rc = check_chain(market, chain, count, valuation_us, status);
  if (rc == GK_OK) rc = check_view(view, valuation_us, status);
  return rc;
}

/* ---- memory ---------------------------------------------------------------------- */

static gk_code out_of_memory(gk_status *status) {
  return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "chain", "", GK_STATUS_NO_INDEX,
                       "out of memory generating strategies");
}

static void free_work(work *w) {
  free(w->vol), free(w->rows), free(w->candidates), free(w->column), free(w->quote_of);
  free(w->bad), free(w->now), free(w->grid), free(w->horizon), free(w->scenario);
  free(w->b_spot), free(w->b_strike), free(w->b_years), free(w->b_rate), free(w->b_yield);
  free(w->b_vol), free(w->b_out), free(w->b_type), free(w->b_style), free(w->b_error);
  free(w->b_column), free(w->evaluations), free(w->searches);
}

/* (Re)allocates the batch for n elements; false on OOM (free_work frees what was got). */
static bool alloc_batch(work *w, size_t n) {
  free(w->b_spot), free(w->b_strike), free(w->b_years), free(w->b_rate), free(w->b_yield);
  free(w->b_vol), free(w->b_out), free(w->b_type), free(w->b_style), free(w->b_error);
  free(w->b_column);
  w->batch_capacity = n;
  double **d[] = {&w->b_spot, &w->b_strike, &w->b_years, &w->b_rate, &w->b_yield, &w->b_vol};
  bool ok = true;
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
    ok = (*d[i] = malloc(n * sizeof(double))) && ok;
  w->b_out = malloc(GREEKS * n * sizeof(double));
  w->b_type = malloc(n), w->b_style = malloc(n), w->b_error = malloc(n);
  w->b_column = malloc(n * sizeof *w->b_column);
  return ok && w->b_out && w->b_type && w->b_style && w->b_error && w->b_column;
}

/* ---- the chain: vols and slices ------------------------------------------------------ */

/* The quote's vol, else the market's vol point for the instrument, else its vol. */
static double vol_of(const gk_market_quote *m, const gk_quoted_instrument *q) {
  if (q->vol > 0) return q->vol;
  for (size_t i = 0; i < m->vol_point_count; i++)
    if (gk_instrument_equal(&m->vol_points[i].instrument, &q->instrument))
      return m->vol_points[i].vol;
  return m->vol;
}

/* qsort context is not portable: the chain rides along in each element. */
typedef struct option_ref {
  const gk_quoted_instrument *chain;
  size_t quote;
} option_ref;

static int compare_options(const void *pa, const void *pb) {
  const option_ref *ra = pa, *rb = pb;
  const gk_instrument *a = &ra->chain[ra->quote].instrument, *b = &rb->chain[rb->quote].instrument;
  if (a->expiry_us != b->expiry_us) return a->expiry_us < b->expiry_us ? -1 : 1;
  if (a->multiplier != b->multiplier) return a->multiplier < b->multiplier ? -1 : 1;
  if (a->style != b->style) return a->style < b->style ? -1 : 1;
  if (a->strike != b->strike) return a->strike < b->strike ? -1 : 1;
  if (a->type != b->type) return a->type < b->type ? -1 : 1;
  return ra->quote < rb->quote ? -1 : ra->quote > rb->quote;
}

static bool same_slice(const gk_instrument *a, const slice *s) {
  return a->expiry_us == s->expiry_us && a->multiplier == s->multiplier && a->style == s->style;
}

/* Adds option `quote` to the current slice: a new row for a new strike, else the
 * row's missing type (the first quote of a type at a strike is kept). */
static void add_to_slice(work *w, slice *s, size_t quote) {
  const gk_instrument *in = &w->chain[quote].instrument;
  if (s->row_count == 0 || s->rows[s->row_count - 1].strike != in->strike)
    s->rows[s->row_count++] = (strike_row){in->strike, NONE, NONE};
  strike_row *r = &s->rows[s->row_count - 1];
  size_t *slot = in->type == GK_CALL ? &r->call : &r->put;
  if (*slot == NONE) *slot = quote;
}

static bool build_slices(work *w) {
  option_ref *refs = malloc(w->count * sizeof *refs);
  w->rows = malloc(w->count * sizeof *w->rows);
  if (refs == NULL || w->rows == NULL) {
    free(refs);
    return false;
  }
  size_t n = 0;
  for (size_t i = 0; i < w->count; i++)
    if (w->chain[i].instrument.kind == GK_KIND_OPTION) refs[n++] = (option_ref){w->chain, i};
  qsort(refs, n, sizeof *refs, compare_options);
  strike_row *next_rows = w->rows;
  for (size_t i = 0; i < n; i++) {
    const gk_instrument *in = &w->chain[refs[i].quote].instrument;
    slice *s = w->slice_count ? &w->slices[w->slice_count - 1] : NULL;
    if (s == NULL || !same_slice(in, s)) {
      if (w->slice_count == MAX_SLICES) break;
      if (s) next_rows += s->row_count;
      s = &w->slices[w->slice_count++];
      *s = (slice){in->expiry_us, in->multiplier, in->style, next_rows, 0};
    }
    add_to_slice(w, s, refs[i].quote);
  }
  free(refs);
  return true;
}

/* ---- picking strikes ----------------------------------------------------------------- */

static bool row_has(const strike_row *r, unsigned need) {
  return (!(need & NEED_CALL) || r->call != NONE) && (!(need & NEED_PUT) || r->put != NONE);
}

/* The row in [from, to) with `need` whose strike is nearest target (ties: the lower). */
static size_t nearest_row(const slice *s, unsigned need, double target, size_t from, size_t to) {
  size_t best = NONE;
  for (size_t i = from; i < to && i < s->row_count; i++)
    if (row_has(&s->rows[i], need) &&
        (best == NONE || fabs(s->rows[i].strike - target) < fabs(s->rows[best].strike - target)))
      best = i;
  return best;
}

/* The next row with `need` above (step +1) or below (step -1) row i; NONE at the end. */
static size_t next_row(const slice *s, unsigned need, size_t i, int step) {
  if (i == NONE) return NONE;
  for (size_t j = i + (size_t)(ptrdiff_t)step; j < s->row_count; j += (size_t)(ptrdiff_t)step)
    if (row_has(&s->rows[j], need)) return j;
  return NONE;
}

/* The wings on one side of row `atm`: the row nearest target strictly beyond atm
 * and its neighbours with `need`, ascending. Returns how many (0 to 3). */
static size_t wings(const slice *s, unsigned need, size_t atm, bool up, double target,
                    size_t out[3]) {
  if (atm == NONE) return 0;
  size_t w = up ? nearest_row(s, need, target, atm + 1, s->row_count)
                : nearest_row(s, need, target, 0, atm);
  if (w == NONE) return 0;
  size_t below = next_row(s, need, w, -1), above = next_row(s, need, w, +1), n = 0;
  if (below != NONE && (up ? below > atm : true)) out[n++] = below;
  out[n++] = w;
  if (above != NONE && (up ? true : above < atm)) out[n++] = above;
  return n;
}

/* ---- building candidates --------------------------------------------------------------- */

/* A leg to build: an option's factor multiplies view->quantity (a butterfly's
 * body is -2); the underlying's is its signed number of units. */
typedef struct leg_spec {
  size_t quote;
  int64_t factor;
} leg_spec;

static bool is_option(const work *w, size_t quote) {
  return w->chain[quote].instrument.kind == GK_KIND_OPTION;
}

static void add_candidate(work *w, kind k, const leg_spec *legs, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (legs[i].quote == NONE) return;
  if (w->candidate_count == MAX_CANDIDATES) return;
  candidate *c = &w->candidates[w->candidate_count++];
  memset(c, 0, sizeof *c);
  c->kind = k, c->leg_count = n;
  for (size_t i = 0; i < n; i++) {
    c->quote[i] = legs[i].quote;
    c->quantity[i] = is_option(w, legs[i].quote) ? legs[i].factor * w->view->quantity
                                                 : legs[i].factor;
  }
}

/* The legs of a spec negated: a short structure from its long one. */
static void add_both(work *w, kind long_kind, kind short_kind, leg_spec *legs, size_t n) {
  add_candidate(w, long_kind, legs, n);
  for (size_t i = 0; i < n; i++) legs[i].factor = -legs[i].factor;
  add_candidate(w, short_kind, legs, n);
}

typedef struct picks {
  size_t atm_call, atm_put, atm_both;
  size_t up_calls[3], down_calls[3], down_puts[3];
  size_t n_up_calls, n_down_calls, n_down_puts;
} picks;

static picks pick_strikes(const work *w, const slice *s) {
  double up = w->spot * (1 + w->view->move), down = w->spot * (1 - w->view->move);
  picks p;
  p.atm_call = nearest_row(s, NEED_CALL, w->spot, 0, s->row_count);
  p.atm_put = nearest_row(s, NEED_PUT, w->spot, 0, s->row_count);
  p.atm_both = nearest_row(s, NEED_BOTH, w->spot, 0, s->row_count);
  p.n_up_calls = wings(s, NEED_CALL, p.atm_call, true, up, p.up_calls);
  p.n_down_calls = wings(s, NEED_CALL, p.atm_call, false, down, p.down_calls);
  p.n_down_puts = wings(s, NEED_PUT, p.atm_put, false, down, p.down_puts);
  return p;
}

static size_t call_at(const slice *s, size_t row) { return row == NONE ? NONE : s->rows[row].call; }
static size_t put_at(const slice *s, size_t row) { return row == NONE ? NONE : s->rows[row].put; }

static void add_verticals(work *w, const slice *s, const picks *p) {
  for (size_t i = 0; i < p->n_up_calls; i++) {
    leg_spec bull[] = {{call_at(s, p->atm_call), 1}, {call_at(s, p->up_calls[i]), -1}};
    add_both(w, BULL_CALL_SPREAD, BEAR_CALL_SPREAD, bull, 2);
  }
  for (size_t i = 0; i < p->n_down_puts; i++) {
    leg_spec bear[] = {{put_at(s, p->down_puts[i]), -1}, {put_at(s, p->atm_put), 1}};
    add_both(w, BEAR_PUT_SPREAD, BULL_PUT_SPREAD, bear, 2);
  }
}

static void add_volatility(work *w, const slice *s, const picks *p) {
  leg_spec straddle[] = {{call_at(s, p->atm_both), 1}, {put_at(s, p->atm_both), 1}};
  add_both(w, LONG_STRADDLE, SHORT_STRADDLE, straddle, 2);
  for (size_t i = 0; i < p->n_down_puts; i++)
    for (size_t j = 0; j < p->n_up_calls; j++) {
      if (s->rows[p->down_puts[i]].strike >= s->rows[p->up_calls[j]].strike) continue;
      leg_spec strangle[] = {{put_at(s, p->down_puts[i]), 1}, {call_at(s, p->up_calls[j]), 1}};
      add_both(w, LONG_STRANGLE, SHORT_STRANGLE, strangle, 2);
    }
}

/* The row with `need` at the strike mirroring row d's about row atm (a symmetric
 * butterfly's far wing), NONE when the chain has none. */
static size_t mirror_row(const slice *s, unsigned need, size_t atm, size_t d) {
  if (atm == NONE) return NONE;
  double want = 2 * s->rows[atm].strike - s->rows[d].strike;
  for (size_t i = atm + 1; i < s->row_count; i++)
    if (row_has(&s->rows[i], need) && fabs(s->rows[i].strike - want) <= 1e-9 * want) return i;
  return NONE;
}

/* Symmetric butterflies: each down wing with the strike mirroring it above ATM. */
static void add_butterflies(work *w, const slice *s, const picks *p) {
  for (size_t i = 0; i < p->n_down_calls; i++) {
    leg_spec fly[] = {{call_at(s, p->down_calls[i]), 1}, {call_at(s, p->atm_call), -2},
                      {call_at(s, mirror_row(s, NEED_CALL, p->atm_call, p->down_calls[i])), 1}};
    add_both(w, LONG_CALL_BUTTERFLY, SHORT_CALL_BUTTERFLY, fly, 3);
  }
  for (size_t i = 0; i < p->n_down_puts; i++) {
    leg_spec fly[] = {{put_at(s, p->down_puts[i]), 1}, {put_at(s, p->atm_put), -2},
                      {put_at(s, mirror_row(s, NEED_PUT, p->atm_put, p->down_puts[i])), 1}};
    add_both(w, LONG_PUT_BUTTERFLY, SHORT_PUT_BUTTERFLY, fly, 3);
  }
}

/* Short iron condor: long put below the short put wing, short call wing, long call
 * above; long call condor: the same strikes in calls, bought outside. */
static void add_condors(work *w, const slice *s, const picks *p) {
  for (size_t i = 0; i < p->n_down_puts; i++)
    for (size_t j = 0; j < p->n_up_calls; j++) {
      size_t d = p->down_puts[i], u = p->up_calls[j];
      if (s->rows[d].strike >= s->rows[u].strike) continue;
      leg_spec iron[] = {{put_at(s, next_row(s, NEED_PUT, d, -1)), 1}, {put_at(s, d), -1},
                         {call_at(s, u), -1}, {call_at(s, next_row(s, NEED_CALL, u, +1)), 1}};
      add_candidate(w, IRON_CONDOR, iron, 4);
    }
  for (size_t i = 0; i < p->n_down_calls; i++)
    for (size_t j = 0; j < p->n_up_calls; j++) {
      size_t d = p->down_calls[i], u = p->up_calls[j];
      leg_spec condor[] = {{call_at(s, next_row(s, NEED_CALL, d, -1)), 1}, {call_at(s, d), -1},
                           {call_at(s, u), -1}, {call_at(s, next_row(s, NEED_CALL, u, +1)), 1}};
      add_candidate(w, LONG_CALL_CONDOR, condor, 4);
    }
}

static void add_risk_reversals(work *w, const slice *s, const picks *p) {
  for (size_t i = 0; i < p->n_down_puts; i++)
    for (size_t j = 0; j < p->n_up_calls; j++) {
      if (s->rows[p->down_puts[i]].strike >= s->rows[p->up_calls[j]].strike) continue;
      leg_spec bullish[] = {{put_at(s, p->down_puts[i]), -1}, {call_at(s, p->up_calls[j]), 1}};
      add_candidate(w, BULLISH_RISK_REVERSAL, bullish, 2);
      leg_spec bearish[] = {{put_at(s, p->down_puts[i]), 1}, {call_at(s, p->up_calls[j]), -1}};
      add_candidate(w, BEARISH_RISK_REVERSAL, bearish, 2);
    }
}

/* With the underlying: quantity x multiplier units of it, when that is a whole
 * number of units. */
static void add_underlying_pairs(work *w, const slice *s, const picks *p) {
  double units = s->multiplier * (double)w->view->quantity;
  if (w->underlying == NONE || units != floor(units) || units > (double)GK_MAX_QUANTITY) return;
  int64_t long_units = (int64_t)units;
  size_t calls[4] = {p->atm_call}, puts[4] = {p->atm_put};
  memcpy(calls + 1, p->up_calls, p->n_up_calls * sizeof *calls);
  memcpy(puts + 1, p->down_puts, p->n_down_puts * sizeof *puts);
  for (size_t i = 0; p->atm_call != NONE && i <= p->n_up_calls; i++) {
    leg_spec covered[] = {{w->underlying, long_units}, {call_at(s, calls[i]), -1}};
    add_candidate(w, COVERED_CALL, covered, 2);
  }
  for (size_t i = 0; p->atm_put != NONE && i <= p->n_down_puts; i++) {
    leg_spec protective[] = {{w->underlying, long_units}, {put_at(s, puts[i]), 1}};
    add_candidate(w, PROTECTIVE_PUT, protective, 2);
  }
}

/* Long calendars: sell the near slice, buy the far one, at the strike both quote
 * nearest the spot. */
static void add_calendars(work *w) {
  for (size_t i = 0; i < w->slice_count; i++)
    for (size_t j = i + 1; j < w->slice_count; j++) {
      const slice *near = &w->slices[i], *far = &w->slices[j];
      if (near->expiry_us >= far->expiry_us || near->multiplier != far->multiplier) continue;
      for (unsigned type = GK_CALL; type <= GK_PUT; type++) {
        size_t best_near = NONE, best_far = NONE;
        for (size_t a = 0; a < near->row_count; a++) {
          size_t b = nearest_row(far, type == GK_CALL ? NEED_CALL : NEED_PUT,
                                 near->rows[a].strike, 0, far->row_count);
          if (b == NONE || far->rows[b].strike != near->rows[a].strike ||
              !row_has(&near->rows[a], type == GK_CALL ? NEED_CALL : NEED_PUT))
            continue;
          if (best_near == NONE || fabs(near->rows[a].strike - w->spot) <
                                       fabs(near->rows[best_near].strike - w->spot))
            best_near = a, best_far = b;
        }
        if (best_near == NONE) continue;
        leg_spec calendar[] = {
            {type == GK_CALL ? call_at(near, best_near) : put_at(near, best_near), -1},
            {type == GK_CALL ? call_at(far, best_far) : put_at(far, best_far), 1}};
        add_candidate(w, type == GK_CALL ? CALL_CALENDAR : PUT_CALENDAR, calendar, 2);
      }
    }
}

static void build_candidates(work *w) {
  for (size_t i = 0; i < w->slice_count; i++) {
    const slice *s = &w->slices[i];
    picks p = pick_strikes(w, s);
    add_verticals(w, s, &p);
    add_volatility(w, s, &p);
    add_butterflies(w, s, &p);
    add_condors(w, s, &p);
    add_risk_reversals(w, s, &p);
    add_underlying_pairs(w, s, &p);
  }
  add_calendars(w);
}

/* ---- pricing tables ---------------------------------------------------------------------- */

/* Columns for the options candidates use, in chain order. */
static void assign_columns(work *w) {
  for (size_t i = 0; i < w->count; i++) w->column[i] = NONE;
  for (size_t c = 0; c < w->candidate_count; c++)
    for (size_t l = 0; l < w->candidates[c].leg_count; l++)
      if (is_option(w, w->candidates[c].quote[l])) w->column[w->candidates[c].quote[l]] = 0;
  for (size_t i = 0; i < w->count; i++)
    if (w->column[i] != NONE) w->quote_of[w->columns] = i, w->column[i] = w->columns++;
}

static double horizon_years(const work *w, size_t column) {
  return gk_year_fraction(w->view->horizon_us, w->chain[w->quote_of[column]].instrument.expiry_us);
}

static double moved_vol(const work *w, size_t column, double by) {
  double v = w->vol[w->quote_of[column]] + by;
  return v < VOL_FLOOR ? VOL_FLOOR : v;
}

static double intrinsic(const gk_instrument *in, double s) {
  double v = in->type == GK_CALL ? s - in->strike : in->strike - s;
  return v > 0 ? v : 0;
}

/* Queues one element of a batch: option `column` at (s, years, vol). */
static void queue(work *w, size_t *n, size_t column, double s, double years, double vol) {
  const gk_instrument *in = &w->chain[w->quote_of[column]].instrument;
  size_t k = (*n)++;
  w->b_column[k] = column;
  w->b_spot[k] = s < GK_MIN_PRICE_LEVEL ? GK_MIN_PRICE_LEVEL : s;
  w->b_strike[k] = in->strike, w->b_years[k] = years, w->b_vol[k] = vol;
  w->b_rate[k] = w->market->rate, w->b_yield[k] = w->market->yield;
  w->b_type[k] = in->type, w->b_style[k] = in->style;
}

/* Prices the n queued elements (outputs into b_out, GREEKS x n); an element the
 * kernels refuse marks its column bad. */
static gk_code price_queue(work *w, size_t n, unsigned outputs, gk_status *status) {
  if (n == 0) return GK_OK;
  double *o = w->b_out;
  gk_option_batch in = {n, w->b_spot, w->b_strike, w->b_years, w->b_rate, w->b_yield, w->b_vol,
                        w->b_type};
  gk_greeks_batch out = {o, o + n, o + 2 * n, o + 3 * n, o + 4 * n, o + 5 * n, o + 6 * n,
                         w->b_error, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
  if (!(outputs & GK_OUT_DELTA)) out = (gk_greeks_batch){.price = o, .error = w->b_error};
  gk_exercise exercise = {.style = w->b_style, .method = w->method};
  gk_code rc = gk_price_batch_ex(NULL, GK_MODEL_BSM, &in, &exercise, outputs, &out, NULL, status);
  for (size_t k = 0; rc == GK_OK && k < n; k++)
    if (w->b_error[k] != GK_ELEMENT_OK || !isfinite(o[k])) w->bad[w->b_column[k]] = true;
  return rc;
}

static gk_code price_now(work *w, gk_status *status) {
  size_t n = 0;
  for (size_t c = 0; c < w->columns; c++)
    queue(w, &n, c, w->spot, gk_year_fraction(w->valuation_us,
                                               w->chain[w->quote_of[c]].instrument.expiry_us),
          w->vol[w->quote_of[c]]);
  gk_code rc = price_queue(w, n, GK_OUT_ALL, status);
  for (size_t g = 0; rc == GK_OK && g < GREEKS; g++)
    for (size_t c = 0; c < n; c++) w->now[g * w->columns + c] = w->b_out[g * n + c];
  return rc;
}

/* values[c * spots + i] for column c at spots[i] and the vol moved by `by`: the
 * intrinsic value once expired, else one batch for the live columns. */
static gk_code price_at_horizon(work *w, const double *spots, size_t spot_count, double by,
                                double *values, size_t stride, gk_status *status) {
  size_t n = 0;
  for (size_t c = 0; c < w->columns; c++) {
    double years = horizon_years(w, c);
    const gk_instrument *in = &w->chain[w->quote_of[c]].instrument;
    for (size_t i = 0; i < spot_count; i++) {
      if (years <= 0) values[c * stride + i] = intrinsic(in, spots[i]);
      else queue(w, &n, c, spots[i], years, moved_vol(w, c, by));
    }
  }
  gk_code rc = price_queue(w, n, GK_OUT_PRICE, status);
  for (size_t c = 0, k = 0; rc == GK_OK && c < w->columns; c++)
    for (size_t i = 0; horizon_years(w, c) > 0 && i < spot_count; i++)
      values[c * stride + i] = w->b_out[k++];
  return rc;
}

static int compare_doubles(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return (a > b) - (a < b);
}

/* The view's spots: where view_pnl is read (docs/strategy.md). */
static size_t view_spots(const work *w, double out[3]) {
  double s = w->spot, m = w->view->move, down = s * (1 - m) > 0 ? s * (1 - m) : 0;
  switch (w->view->direction) {
  case GK_VIEW_BULLISH: out[0] = s * (1 + m); return 1;
  case GK_VIEW_BEARISH: out[0] = down; return 1;
  case GK_VIEW_VOLATILE: out[0] = down, out[1] = s * (1 + m); return 2;
  default: out[0] = down, out[1] = s, out[2] = s * (1 + m); return 3;
  }
}

/* The scenario grid's spots: the region the view expects, in fractions of the move. */
static void scenario_axes(work *w) {
  static const double bullish[] = {0.5, 0.75, 1, 1.25, 1.5}, neutral[] = {-1, -0.5, 0, 0.5, 1},
                      volatile_[] = {-1.5, -1, 1, 1.5};
  const double *f = neutral;
  size_t n = 5;
  double sign = 1;
  if (w->view->direction == GK_VIEW_BULLISH) f = bullish;
  if (w->view->direction == GK_VIEW_BEARISH) f = bullish, sign = -1;
  if (w->view->direction == GK_VIEW_VOLATILE) f = volatile_, n = 4;
  for (size_t i = 0; i < n; i++) {
    double s = w->spot * (1 + sign * f[i] * w->view->move);
    w->scenario_spot[i] = s > 0 ? s : 0;
  }
  w->scenario_spots = n;
  for (size_t j = 0; j < SCENARIO_VOLS; j++)
    w->scenario_vol[j] = w->view->vol_change + ((double)j - 1) * SCENARIO_VOL_STEP;
}

/* 0, the log grid up to GRID_HIGH x max(S, largest strike), every strike used,
 * the view's spots; ascending, without repeats. */
static bool build_grid(work *w) {
  double top = w->spot;
  for (size_t c = 0; c < w->columns; c++)
    top = fmax(top, w->chain[w->quote_of[c]].instrument.strike);
  top *= GRID_HIGH;
  w->grid = malloc((1 + LOG_GRID_POINTS + w->columns + 3) * sizeof *w->grid);
  if (w->grid == NULL) return false;
  size_t n = 0;
  w->grid[n++] = 0;
  double lo = log(GRID_LOW * w->spot), step = (log(top) - lo) / (LOG_GRID_POINTS - 1);
  for (size_t i = 0; i < LOG_GRID_POINTS; i++) w->grid[n++] = exp(lo + step * (double)i);
  for (size_t c = 0; c < w->columns; c++) w->grid[n++] = w->chain[w->quote_of[c]].instrument.strike;
  double spots[3];
  w->view_count = view_spots(w, spots);
  for (size_t i = 0; i < w->view_count; i++) w->grid[n++] = spots[i];
  qsort(w->grid, n, sizeof *w->grid, compare_doubles);
  size_t unique = 0;
  for (size_t i = 0; i < n; i++)
    if (unique == 0 || w->grid[i] != w->grid[unique - 1]) w->grid[unique++] = w->grid[i];
  w->grid_count = unique;
  for (size_t i = 0; i < w->view_count; i++) {
    const double *at = bsearch(&spots[i], w->grid, unique, sizeof *w->grid, compare_doubles);
    w->view_at[i] = at ? (size_t)(at - w->grid) : 0; /* always found: it was added */
  }
  return true;
}

static gk_code build_tables(work *w, gk_status *status) {
  size_t c = w->columns;
  scenario_axes(w);
  w->bad = calloc(c ? c : 1, sizeof *w->bad);
  w->now = malloc(GREEKS * (c ? c : 1) * sizeof *w->now);
  if (w->bad == NULL || w->now == NULL || !build_grid(w)) return out_of_memory(status);
  size_t g = w->grid_count, sv = w->scenario_spots * SCENARIO_VOLS;
  w->horizon = malloc((c ? c : 1) * g * sizeof *w->horizon);
  w->scenario = malloc((c ? c : 1) * sv * sizeof *w->scenario);
  size_t largest = c * (g > sv ? g : sv);
  if (w->horizon == NULL || w->scenario == NULL || !alloc_batch(w, largest ? largest : 1))
    return out_of_memory(status);
  gk_code rc = price_now(w, status);
  if (rc == GK_OK)
    rc = price_at_horizon(w, w->grid, g, w->view->vol_change, w->horizon, g, status);
  for (size_t j = 0; rc == GK_OK && j < SCENARIO_VOLS; j++) {
    /* column-major by vol: scenario[c * sv + j * spots + i] */
    size_t n = w->scenario_spots;
    double *tmp = malloc((c ? c : 1) * n * sizeof *tmp);
    if (tmp == NULL) return out_of_memory(status);
    rc = price_at_horizon(w, w->scenario_spot, n, w->scenario_vol[j], tmp, n, status);
    for (size_t k = 0; rc == GK_OK && k < c; k++)
      memcpy(w->scenario + k * sv + j * n, tmp + k * n, n * sizeof *tmp);
    free(tmp);
  }
  return rc;
}

/* ---- evaluating a candidate ------------------------------------------------------------- */

typedef struct leg_view {
  size_t quote, column; /* column NONE: the underlying */
  double weight;        /* quantity x multiplier (units for the underlying) */
  double price;         /* paid per unit: ask (buy) or bid (sell) */
} leg_view;

/* A structure being evaluated. Its searches on exact prices (below) run after
 * every structure's grid work, all together; what they need and what combines
 * with their results is kept here between the two. */
typedef struct evaluation {
  work *w;
  candidate *c;
  leg_view legs[MAX_STRUCTURE_LEGS];
  bool read;          /* the grid was read: no refused option, every leg's cash in range */
  double *pnl;        /* on the grid (scratch, while the grid is read) */
  double slope, limit; /* the P&L's asymptote as S -> inf; slope 0 when flat */
  bool flat;
  double grid_low, grid_high; /* the least and largest grid P&L, with 0 */
  double own_worst;   /* the least grid P&L on the structure's own range (score) */
  double scenario;    /* the scenario grid's mean P&L (score) */
  double multiplier;  /* the largest of its options' (score's risk floor) */
  size_t breakeven_count;
  double breakeven[GK_MAX_BREAKEVENS]; /* a grid point, or NAN: search's result */
  size_t breakeven_search[GK_MAX_BREAKEVENS]; /* NONE: the grid point */
  size_t first_search, search_count;  /* its searches in work's array */
  size_t dip_search[DIP_SEARCHES];    /* the second round's zeroins (plan_dips), in work's array */
  size_t dip_count;
} evaluation;

static void describe_legs(evaluation *e) {
  work *w = e->w;
  const candidate *c = e->c;
  for (size_t l = 0; l < c->leg_count; l++) {
    leg_view *v = &e->legs[l];
    const gk_quoted_instrument *q = &w->chain[c->quote[l]];
    v->quote = c->quote[l];
    v->column = is_option(w, v->quote) ? w->column[v->quote] : NONE;
    v->price = c->quantity[l] > 0 ? q->ask : q->bid;
    v->weight = (double)c->quantity[l] * q->instrument.multiplier;
  }
}

static int sign_of(double x) { return (x > 0) - (x < 0); }

/* ---- searches on exact prices, every structure's in lock step ---------------------------
 *
 * Where the grid is not enough a structure's P&L at the horizon is priced
 * exactly: Brent's localmin at its deepest local minima and highest maxima,
 * Brent's zeroin at each breakeven between two grid points, a doubling past
 * the grid's end for a breakeven beyond it (then zeroin), and one point at its
 * own range's end for an unbounded loss. Each search is written in reverse
 * communication: it names the spot it needs next (`at`) and is fed the P&L
 * there. Every structure's searches advance a step together, and each step's
 * prices are one kernel call: one structure at a time, the 2-4 options of a
 * call left most of a vector's lanes empty, and the American methods paid
 * their per-call cost a few thousand times a chain (adr/0055). A search sees
 * the same P&L sequence as when run alone, so it stops at the same point. */

typedef enum search_kind { SEARCH_EXTREMUM, SEARCH_ZERO, SEARCH_TAIL, SEARCH_POINT } search_kind;
typedef enum search_role { ROLE_MINIMUM, ROLE_MAXIMUM, ROLE_BREAKEVEN, ROLE_TOP } search_role;

typedef struct search {
  search_kind kind;
  search_role role;
  bool done;
  bool started;     /* localmin: its first point was fed */
  size_t evaluation; /* whose P&L */
  double at;        /* the spot it needs next */
  double result;    /* localmin: the least sign x P&L seen (the start's grid value
                       included); zeroin: the root; tail: the root, NAN for none;
                       point: the P&L */
  int steps;        /* P&L values fed (localmin's and zeroin's limits) */
  double sign;      /* localmin: 1 for a minimum, -1 for a maximum */
  /* localmin: the bracket [a, b], x the best point, w and v the two before it,
   * d the last step and before_last the one before (Brent 1973, ch. 5) */
  double a, b, x, w, v, fx, fw, fv, d, before_last;
  /* zeroin (also a and b, d): c the other side of the root, fa fb fc, step the
   * step before d, m_tol the bracket's tolerance (Brent 1973, ch. 4) */
  double c, fa, fb, fc, step, m_tol;
  /* localmin: its bracket's ends (grid points) and the P&L there and at its
   * grid point, kept for plan_dips (the steps narrow a and b) */
  double low_spot, high_spot, low_pnl, high_pnl, grid_pnl;
} search;

/* Localmin's next spot, or done: converged, or out of steps. */
static void extremum_propose(search *s) {
  const double golden = 0.5 * (3.0 - sqrt(5.0));
  if (s->steps > EXTREMUM_STEPS) { s->done = true; return; }
  double middle = 0.5 * (s->a + s->b), tol = EXTREMUM_TOLERANCE * fabs(s->x) + DBL_MIN;
  double tol2 = 2 * tol;
  if (fabs(s->x - middle) <= tol2 - 0.5 * (s->b - s->a)) { s->done = true; return; }
  double p = 0, q = 0, r = 0;
  if (fabs(s->before_last) > tol) { /* the parabola through x, w, v */
    r = (s->x - s->w) * (s->fx - s->fv);
    q = (s->x - s->v) * (s->fx - s->fw);
    p = (s->x - s->v) * q - (s->x - s->w) * r;
    q = 2 * (q - r);
    if (q > 0) p = -p;
    else q = -q;
    r = s->before_last;
    s->before_last = s->d;
  }
  if (fabs(p) < fabs(0.5 * q * r) && p > q * (s->a - s->x) && p < q * (s->b - s->x)) {
    s->d = p / q;
    if (s->x + s->d - s->a < tol2 || s->b - (s->x + s->d) < tol2) s->d = s->x < middle ? tol : -tol;
  } else {
    s->before_last = (s->x < middle ? s->b : s->a) - s->x;
    s->d = golden * s->before_last;
  }
  s->at = fabs(s->d) >= tol ? s->x + s->d : s->x + (s->d > 0 ? tol : -tol);
}

/* The least of sign x P&L on [a, b] (a grid point's two intervals), to 1e-6 of
 * the spot; `found`, the grid point's, is the start. A live option's kink sits
 * near K e^{-(r-q)T'}, between grid points, and at a low vol the P&L's minimum
 * there is a sharp V the grid (2.6% apart) missed: a straddle at vol 2% showed
 * a max_loss of 60.5 against 93.7, and passed a cap of 70 (found in review).
 * The P&L is smooth while a leg lives, and the parabolic steps take ~10 prices. */
static void extremum_start(search *s, double a, double b, double sign, double found) {
  const double golden = 0.5 * (3.0 - sqrt(5.0));
  s->kind = SEARCH_EXTREMUM, s->sign = sign, s->result = found;
  s->a = a, s->b = b, s->x = s->w = s->v = a + golden * (b - a), s->d = s->before_last = 0;
  s->at = s->x;
}

static void extremum_feed(search *s, double pnl) {
  double f = s->sign * pnl;
  if (!isfinite(f)) { s->done = true; return; }
  s->result = fmin(s->result, f);
  s->steps++;
  if (!s->started) {
    s->started = true, s->fx = s->fw = s->fv = f;
  } else if (f <= s->fx) {
    if (s->at < s->x) s->b = s->x;
    else s->a = s->x;
    s->v = s->w, s->fv = s->fw, s->w = s->x, s->fw = s->fx, s->x = s->at, s->fx = f;
  } else {
    if (s->at < s->x) s->a = s->at;
    else s->b = s->at;
    if (f <= s->fw || s->w == s->x) s->v = s->w, s->fv = s->fw, s->w = s->at, s->fw = f;
    else if (f <= s->fv || s->v == s->x || s->v == s->w) s->v = s->at, s->fv = f;
  }
  extremum_propose(s);
}

/* Zeroin's next spot, or done with the root in `result`. */
static void zero_propose(search *s) {
  if (s->steps >= 100) { s->done = true, s->result = s->b; return; }
  if ((s->fb > 0 && s->fc > 0) || (s->fb < 0 && s->fc < 0))
    s->c = s->a, s->fc = s->fa, s->d = s->step = s->b - s->a;
  if (fabs(s->fc) < fabs(s->fb))
    s->a = s->b, s->b = s->c, s->c = s->a, s->fa = s->fb, s->fb = s->fc, s->fc = s->fa;
  double tol = 2 * DBL_EPSILON * fabs(s->b) + 0.5 * s->m_tol, half = 0.5 * (s->c - s->b);
  if (fabs(half) <= tol || s->fb == 0) { s->done = true, s->result = s->b; return; }
  if (fabs(s->step) >= tol && fabs(s->fa) > fabs(s->fb)) {
    double ratio = s->fb / s->fa, p, q;
    if (s->a == s->c) {
      p = 2 * half * ratio, q = 1 - ratio;
    } else {
      double qa = s->fa / s->fc, r = s->fb / s->fc;
      p = ratio * (2 * half * qa * (qa - r) - (s->b - s->a) * (r - 1));
      q = (qa - 1) * (r - 1) * (ratio - 1);
    }
    if (p > 0) q = -q;
    else p = -p;
    if (2 * p < fmin(3 * half * q - fabs(tol * q), fabs(s->step * q))) s->step = s->d, s->d = p / q;
    else s->d = half, s->step = s->d;
  } else {
    s->d = half, s->step = s->d;
  }
  s->a = s->b, s->fa = s->fb;
  s->b += fabs(s->d) > tol ? s->d : (half > 0 ? tol : -tol);
  s->at = s->b;
}

/* Brent's zeroin on [a, b] with f(a), f(b) of opposite signs: the root to
 * BREAKEVEN_TOLERANCE of the bracket. */
static void zero_start(search *s, double a, double b, double fa, double fb) {
  s->kind = SEARCH_ZERO, s->steps = 0;
  s->a = a, s->b = b, s->fa = fa, s->fb = fb, s->c = a, s->fc = fa, s->d = s->step = b - a;
  s->m_tol = BREAKEVEN_TOLERANCE * fmax(fabs(a), fabs(b));
  zero_propose(s);
}

static void zero_feed(search *s, double pnl) {
  s->fb = pnl;
  if (!isfinite(pnl)) { s->done = true, s->result = s->b; return; }
  s->steps++;
  zero_propose(s);
}

/* Past the grid's last point a (P&L fa), doubling the spot until the P&L's
 * sign turns, then zeroin on the last doubling. */
static void tail_start(search *s, double a, double fa) {
  s->kind = SEARCH_TAIL, s->result = NAN, s->a = a, s->fa = fa, s->at = 2 * a;
  s->done = !(s->at <= GK_MAX_PRICE_LEVEL / 2);
}

static void tail_feed(search *s, double pnl) {
  if (!isfinite(pnl)) { s->done = true; return; }
  if (sign_of(pnl) != sign_of(s->fa)) {
    if (pnl == 0) s->done = true, s->result = s->at;
    else zero_start(s, s->a, s->at, s->fa, pnl);
    return;
  }
  s->a = s->at, s->fa = pnl, s->at *= 2;
  s->done = !(s->at <= GK_MAX_PRICE_LEVEL / 2);
}

static void search_feed(search *s, double pnl) {
  switch (s->kind) {
  case SEARCH_EXTREMUM: extremum_feed(s, pnl); break;
  case SEARCH_ZERO: zero_feed(s, pnl); break;
  case SEARCH_TAIL: tail_feed(s, pnl); break;
  default: s->result = pnl, s->done = true; break;
  }
}

/* A new search of e's P&L. The array holds SEARCHES_PER_STRUCTURE a structure,
 * the most one plans: MAX_REFINED minima and maxima (local_extrema's bound),
 * GK_MAX_BREAKEVENS breakevens (plan_breakevens' bound), its range's end. */
static search *add_search(work *w, evaluation *e, search_role role) {
  search *s = &w->searches[w->search_count++];
  memset(s, 0, sizeof *s);
  s->role = role, s->evaluation = (size_t)(e - w->evaluations);
  e->search_count++;
  return s;
}

/* Queues e's live legs at spot s; the legs that have expired by the horizon
 * are summed by pnl_read. */
static void pnl_queue(work *w, const evaluation *e, double s, size_t *n) {
  for (size_t l = 0; l < e->c->leg_count; l++) {
    const leg_view *v = &e->legs[l];
    if (v->column != NONE && horizon_years(w, v->column) > 0)
      queue(w, n, v->column, s, horizon_years(w, v->column), moved_vol(w, v->column, w->view->vol_change));
  }
}

/* The P&L at spot s from the batch's prices at *k on (as pnl_queue queued them). */
static double pnl_read(const work *w, const evaluation *e, double s, size_t *k) {
  double sum = 0;
  for (size_t l = 0; l < e->c->leg_count; l++) {
    const leg_view *v = &e->legs[l];
    if (v->column == NONE) sum += v->weight * (s - v->price);
    else if (horizon_years(w, v->column) <= 0)
      sum += v->weight * (intrinsic(&w->chain[v->quote].instrument, s) - v->price);
    else sum += v->weight * (w->b_out[(*k)++] - v->price);
  }
  return sum;
}

/* Runs every search to its end, a step of all at a time, each step one batch. */
static void run_searches(work *w) {
  for (;;) {
    size_t n = 0, k = 0;
    for (size_t i = 0; i < w->search_count; i++)
      if (!w->searches[i].done)
        pnl_queue(w, &w->evaluations[w->searches[i].evaluation], w->searches[i].at, &n);
    bool any = false;
    for (size_t i = 0; i < w->search_count && !any; i++) any = !w->searches[i].done;
    if (!any) return;
    bool priced = price_queue(w, n, GK_OUT_PRICE, NULL) == GK_OK;
    for (size_t i = 0; i < w->search_count; i++) {
      search *s = &w->searches[i];
      if (s->done) continue;
      search_feed(s, priced ? pnl_read(w, &w->evaluations[s->evaluation], s->at, &k) : NAN);
    }
  }
}

/* ---- a structure's figures ------------------------------------------------------------- */

/* The P&L's slope as S -> inf and, where flat, its limit (the file's comment). */
static void asymptote(const evaluation *e, double *slope, double *limit, double *scale) {
  const work *w = e->w;
  *slope = 0, *limit = 0, *scale = 0;
  for (size_t l = 0; l < e->c->leg_count; l++) {
    const leg_view *v = &e->legs[l];
    *limit -= v->weight * v->price;
    *scale += fabs(v->weight);
    if (v->column == NONE) { *slope += v->weight; continue; }
    const gk_instrument *in = &w->chain[v->quote].instrument;
    if (in->type != GK_CALL) continue;
    /* an American call is exercised deep in the money when q > 0 or r < 0 (its
     * European value, e^{-qT} S - e^{-rT} K, then falls below S - K); with
     * q = 0 <= r it is the European call */
    double years = horizon_years(w, v->column);
    bool exercised = in->style == GK_STYLE_AMERICAN && (w->market->yield > 0 || w->market->rate < 0);
    bool live = years > 0 && !exercised;
    *slope += v->weight * (live ? exp(-w->market->yield * years) : 1);
    *limit -= v->weight * in->strike * (live ? exp(-w->market->rate * years) : 1);
  }
}

static bool a_leg_lives_past_the_horizon(const evaluation *e) {
  for (size_t l = 0; l < e->c->leg_count; l++)
    if (e->legs[l].column != NONE && horizon_years(e->w, e->legs[l].column) > 0) return true;
  return false;
}

/* The grid's local extrema (sign 1: minima, -1: maxima), deepest first, at
 * most MAX_REFINED: a point no worse than both neighbours by more than `noise`
 * and not level with them within it. A deep-in-the-money put's plateau carries
 * rounding of ~1e-12 once r != 0: taken as extrema in spot order, its wiggles
 * used every refinement and a put butterfly's V was left at its grid value,
 * 196 of a 245 loss under a cap of 200 (found in review). */
static size_t local_extrema(const evaluation *e, double sign, double noise, size_t *out) {
  const double *f = e->pnl;
  size_t n = 0;
  for (size_t i = 1; i + 1 < e->w->grid_count; i++) {
    double here = sign * f[i], left = sign * f[i - 1], right = sign * f[i + 1];
    if (here > left + noise || here > right + noise) continue;
    if (here >= left - noise && here >= right - noise) continue; /* level: a plateau */
    if (n == MAX_REFINED && sign * f[out[n - 1]] <= here) continue; /* not deeper than those kept */
    size_t at = n < MAX_REFINED ? n++ : n - 1;
    out[at] = i;
    for (; at > 0 && sign * f[out[at - 1]] > sign * f[out[at]]; at--) {
      size_t t = out[at - 1];
      out[at - 1] = out[at], out[at] = t;
    }
  }
  return n;
}

static double grid_pnl(const evaluation *e, const double *table, size_t stride, size_t i,
                       double s) {
  double sum = 0;
  for (size_t l = 0; l < e->c->leg_count; l++) {
    const leg_view *v = &e->legs[l];
    double value = v->column == NONE ? s : table[v->column * stride + i];
    sum += v->weight * (value - v->price);
  }
  return sum;
}

static void sum_greeks(evaluation *e) {
  const work *w = e->w;
  gk_strategy *s = &e->c->s;
  memset(&s->greeks, 0, sizeof s->greeks);
  for (size_t l = 0; l < e->c->leg_count; l++) {
    const leg_view *v = &e->legs[l];
    gk_risk r = {0};
    r.positions = 1;
    if (v->column == NONE) {
      r.value = v->weight * w->spot, r.delta = v->weight, r.dollar_delta = v->weight * w->spot;
    } else {
      const double *g = w->now + v->column;
      size_t c = w->columns;
      r.value = v->weight * g[0], r.delta = v->weight * g[c], r.gamma = v->weight * g[2 * c];
      r.vega = v->weight * g[3 * c], r.theta = v->weight * g[4 * c], r.rho = v->weight * g[5 * c];
      r.phi = v->weight * g[6 * c];
      r.dollar_delta = r.delta * w->spot, r.dollar_gamma = r.gamma * w->spot * w->spot;
    }
    gk_risk_add(&s->greeks, &r);
  }
}

static void format_date(int64_t us, char *out, size_t size) {
  /* days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil, inverted) */
  int64_t z = (us >= 0 ? us : us - GK_US_PER_DAY + 1) / GK_US_PER_DAY + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097, doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
  int64_t y = yoe + era * 400 + (m <= 2);
  snprintf(out, size, "%04d-%02d-%02d", (int)(y % 10000), (int)m, (int)d);
}

/* "+1 C 100 2025-03-21, -1 C 110 2025-03-21" or "+100 SPY, -1 C 110 2025-03-21". */
static void describe(evaluation *e) {
  gk_strategy *s = &e->c->s;
  size_t used = 0;
  for (size_t l = 0; l < s->leg_count && used < sizeof s->description; l++) {
    const gk_leg *leg = &s->legs[l];
    char date[32];
    int n;
    if (leg->instrument.kind == GK_KIND_UNDERLYING) {
      n = snprintf(s->description + used, sizeof s->description - used, "%s%+lld %s",
                   l ? ", " : "", (long long)leg->quantity, leg->instrument.underlying);
    } else {
      format_date(leg->instrument.expiry_us, date, sizeof date);
      n = snprintf(s->description + used, sizeof s->description - used, "%s%+lld %c %.10g %s",
                   l ? ", " : "", (long long)leg->quantity,
                   leg->instrument.type == GK_CALL ? 'C' : 'P', leg->instrument.strike, date);
    }
    if (n < 0) break;
    used += (size_t)n;
  }
}

static bool all_finite(const gk_strategy *s) {
  const gk_risk *g = &s->greeks;
  double v[] = {s->net_premium, g->value, g->delta, g->gamma, g->vega, g->theta, g->rho, g->phi,
                g->dollar_delta, g->dollar_gamma, s->view_pnl, s->score};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    if (!isfinite(v[i])) return false;
  for (size_t i = 0; i < s->breakeven_count; i++)
    if (!isfinite(s->breakevens[i])) return false;
  return !isnan(s->max_gain) && !isnan(s->max_loss);
}

static bool over_caps(const work *w, const gk_strategy *s) {
  return (w->view->max_premium > 0 && s->net_premium > w->view->max_premium) ||
         (w->view->max_loss > 0 && s->max_loss > w->view->max_loss);
}

static bool uses_bad_column(const evaluation *e) {
  for (size_t l = 0; l < e->c->leg_count; l++)
    if (e->legs[l].column != NONE && e->w->bad[e->legs[l].column]) return true;
  return false;
}

/* The strategy's legs and premium; false when a leg's cash is out of range. */
static bool fill_legs(evaluation *e) {
  gk_strategy *s = &e->c->s;
  snprintf(s->kind, sizeof s->kind, "%s", KIND_NAMES[e->c->kind]);
  s->leg_count = e->c->leg_count;
  for (size_t l = 0; l < e->c->leg_count; l++) {
    const leg_view *v = &e->legs[l];
    const gk_quoted_instrument *q = &e->w->chain[v->quote];
    memcpy(&s->legs[l].instrument, &q->instrument, sizeof q->instrument);
    s->legs[l].quantity = e->c->quantity[l];
    s->legs[l].price = v->price;
    if (fabs(v->weight * v->price) > GK_MAX_CASH) return false;
    s->net_premium += v->weight * v->price;
  }
  return true;
}

/* Breakevens: where the P&L changes sign on the grid (a run of exact zeros
 * counts once, at its first point), searched between two grid points; then
 * past the grid's end when the tail turns. At most GK_MAX_BREAKEVENS, in spot
 * order. */
static void plan_breakevens(evaluation *e) {
  work *w = e->w;
  size_t last = NONE; /* the last grid point with a nonzero P&L */
  for (size_t i = 0; i < w->grid_count && e->breakeven_count < GK_MAX_BREAKEVENS; i++) {
    int sg = sign_of(e->pnl[i]);
    if (sg == 0) continue;
    if (last != NONE && sign_of(e->pnl[last]) != sg) {
      size_t b = e->breakeven_count++;
      e->breakeven[b] = w->grid[last + 1], e->breakeven_search[b] = NONE;
      if (last + 1 == i) {
        e->breakeven_search[b] = w->search_count;
        zero_start(add_search(w, e, ROLE_BREAKEVEN), w->grid[last], w->grid[i], e->pnl[last],
                   e->pnl[i]);
      }
    }
    last = i;
  }
  size_t top = w->grid_count - 1;
  if (e->breakeven_count == GK_MAX_BREAKEVENS || sign_of(e->slope) == 0 ||
      sign_of(e->pnl[top]) == sign_of(e->slope) || e->pnl[top] == 0)
    return;
  size_t b = e->breakeven_count++;
  e->breakeven[b] = NAN, e->breakeven_search[b] = w->search_count;
  tail_start(add_search(w, e, ROLE_BREAKEVEN), w->grid[top], e->pnl[top]);
}

/* The grid's least and largest P&L (with 0), and searches at its deepest local
 * minima and highest maxima while a leg is alive at the horizon (once every
 * leg has expired the P&L is piecewise linear with its kinks at the strikes,
 * on the grid: exact). */
static void plan_extremes(evaluation *e) {
  const work *w = e->w;
  const double *f = e->pnl;
  double scale = 0;
  e->grid_low = 0, e->grid_high = 0;
  for (size_t i = 0; i < w->grid_count; i++)
    e->grid_high = fmax(e->grid_high, f[i]), e->grid_low = fmin(e->grid_low, f[i]);
  if (!a_leg_lives_past_the_horizon(e)) return;
  for (size_t l = 0; l < e->c->leg_count; l++) scale += fabs(e->legs[l].weight);
  double noise = SLOPE_TOLERANCE * scale * w->spot;
  size_t at[MAX_REFINED];
  for (int role = ROLE_MINIMUM; role <= ROLE_MAXIMUM; role++) {
    double sign = role == ROLE_MINIMUM ? 1 : -1;
    size_t n = local_extrema(e, sign, noise, at);
    for (size_t k = 0; k < n; k++) {
      search *s = add_search(e->w, e, (search_role)role);
      extremum_start(s, w->grid[at[k] - 1], w->grid[at[k] + 1], sign, sign * f[at[k]]);
      s->low_spot = w->grid[at[k] - 1], s->high_spot = w->grid[at[k] + 1];
      s->low_pnl = f[at[k] - 1], s->high_pnl = f[at[k] + 1], s->grid_pnl = f[at[k]];
    }
  }
}

/* The structure's own range for the score's unbounded loss: 0 to GRID_HIGH x
 * max(S, its strikes). On the whole grid a far strike elsewhere in the chain
 * stretched it, and one short straddle scored 11x apart in two requests
 * (found in review). */
static double own_top(const evaluation *e) {
  double top = e->w->spot;
  for (size_t l = 0; l < e->c->leg_count; l++)
    if (e->legs[l].column != NONE)
      top = fmax(top, e->w->chain[e->legs[l].quote].instrument.strike);
  return top * GRID_HIGH;
}

/* The score's parts read off the grids: view_pnl, the scenario mean, the
 * least P&L on the structure's own range, and a search at that range's end
 * (rarely a grid point) when the loss is unbounded. */
static void plan_score(evaluation *e) {
  work *w = e->w;
  gk_strategy *s = &e->c->s;
  double view = 0, scenario = 0, top = own_top(e);
  for (size_t i = 0; i < w->view_count; i++) view += e->pnl[w->view_at[i]];
  s->view_pnl = view / (double)w->view_count;
  size_t sv = w->scenario_spots * SCENARIO_VOLS;
  for (size_t k = 0; k < sv; k++)
    scenario += grid_pnl(e, w->scenario, sv, k, w->scenario_spot[k % w->scenario_spots]);
  e->scenario = scenario / (double)sv;
  for (size_t l = 0; l < e->c->leg_count; l++)
    if (e->legs[l].column != NONE)
      e->multiplier = fmax(e->multiplier, w->chain[e->legs[l].quote].instrument.multiplier);
  e->own_worst = INFINITY;
  for (size_t i = 0; i < w->grid_count && w->grid[i] <= top; i++)
    e->own_worst = fmin(e->own_worst, e->pnl[i]);
  if (e->slope < 0) {
    search *s_top = add_search(w, e, ROLE_TOP);
    s_top->kind = SEARCH_POINT, s_top->at = top, s_top->result = NAN;
  }
}

/* Reads c's grid: its legs and premium, P&L, asymptote, and the searches it
 * needs; c stays dropped when an option was refused or a cash is out of range.
 * `pnl` is scratch for the grid. */
static void read_grid(work *w, evaluation *e, candidate *c, double *pnl) {
  double scale;
  *e = (evaluation){.w = w, .c = c, .pnl = pnl, .first_search = w->search_count};
  describe_legs(e);
  memset(&c->s, 0, sizeof c->s);
  c->dropped = true;
  if (uses_bad_column(e) || !fill_legs(e)) return;
  e->read = true;
  for (size_t i = 0; i < w->grid_count; i++)
    pnl[i] = grid_pnl(e, w->horizon, w->grid_count, i, w->grid[i]);
  asymptote(e, &e->slope, &e->limit, &scale);
  e->flat = fabs(e->slope) <= SLOPE_TOLERANCE * scale;
  if (e->flat) e->slope = 0;
  plan_extremes(e);
  plan_breakevens(e);
  plan_score(e);
  e->pnl = NULL;
}

/* Whether extremum search s found a dip: its P&L crossed 0 at its best spot
 * while its grid point and both neighbours lie on the other side (a minimum
 * below 0 among positive grid values, or a maximum above 0 among negative
 * ones). The grid's scan saw no sign change there, yet the P&L has two
 * breakevens inside the bracket, one on each side of the best spot: a long
 * strangle's shallow dip, 0.9% wide, between two grid points 2.6% apart, came
 * back with a max_loss and no breakevens (found in review). */
static bool found_a_dip(const search *s) {
  if (s->kind != SEARCH_EXTREMUM || !s->started || !(s->fx < 0)) return false;
  return s->sign * s->grid_pnl > 0 && s->sign * s->low_pnl > 0 && s->sign * s->high_pnl > 0;
}

/* Whether the dip at first-round search i is one an earlier search of the same
 * structure found: two grid points level within the noise are both local
 * extrema (local_extrema), their overlapping brackets hold the same dip, and
 * its two breakevens came back twice (found in review). */
static bool dip_found_before(const work *w, size_t i) {
  const search *d = &w->searches[i];
  const evaluation *e = &w->evaluations[d->evaluation];
  for (size_t j = e->first_search; j < i; j++) {
    const search *o = &w->searches[j];
    if (found_a_dip(o) && o->sign == d->sign && fabs(o->x - d->x) <= SAME_DIP * fabs(d->x)) return true;
  }
  return false;
}

/* The second round: a zeroin on each side of every dip's best spot. Its
 * searches follow the first round's in work's array, so a structure's lie in
 * two places: its first round's run and dip_search. False when out of memory. */
static bool plan_dips(work *w) {
  size_t first_round = w->search_count, needed = 0;
  for (size_t i = 0; i < first_round; i++) needed += found_a_dip(&w->searches[i]) ? 2 : 0;
  if (needed == 0) return true;
  search *grown = realloc(w->searches, (first_round + needed) * sizeof *w->searches);
  if (grown == NULL) return false;
  w->searches = grown;
  for (size_t i = 0; i < first_round; i++) {
    const search *d = &w->searches[i];
    if (!found_a_dip(d) || dip_found_before(w, i)) continue;
    evaluation *e = &w->evaluations[d->evaluation];
    double at = d->x, pnl = d->sign * d->fx; /* the best spot and its P&L */
    double ends[2][2] = {{d->low_spot, d->low_pnl}, {d->high_spot, d->high_pnl}};
    for (int side = 0; side < 2; side++) {
      search *z = &w->searches[w->search_count];
      memset(z, 0, sizeof *z);
      z->role = ROLE_BREAKEVEN, z->evaluation = d->evaluation;
      e->dip_search[e->dip_count++] = w->search_count++;
      if (side == 0) zero_start(z, ends[0][0], at, ends[0][1], pnl);
      else zero_start(z, at, ends[1][0], pnl, ends[1][1]);
    }
  }
  return true;
}

static int compare_spots(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return (a > b) - (a < b);
}

/* The bounds and breakevens from the grid and the searches' results: the grid
 * scan's and the dips' roots in spot order, the first GK_MAX_BREAKEVENS. */
static void bounds_and_breakevens(evaluation *e, double *refined_low, double *at_top) {
  const work *w = e->w;
  gk_strategy *s = &e->c->s;
  double lo = e->grid_low, hi = e->grid_high;
  *refined_low = 0, *at_top = NAN;
  for (size_t i = e->first_search; i < e->first_search + e->search_count; i++) {
    const search *r = &w->searches[i];
    if (r->role == ROLE_MINIMUM) *refined_low = fmin(*refined_low, r->result);
    if (r->role == ROLE_MAXIMUM) hi = fmax(hi, -r->result);
    if (r->role == ROLE_TOP) *at_top = r->result;
  }
  lo = fmin(lo, *refined_low);
  if (e->flat) hi = fmax(hi, e->limit), lo = fmin(lo, e->limit);
  s->max_gain = e->slope > 0 ? INFINITY : hi;
  s->max_loss = e->slope < 0 ? INFINITY : -lo;
  double found[GK_MAX_BREAKEVENS + DIP_SEARCHES];
  size_t count = 0;
  for (size_t b = 0; b < e->breakeven_count; b++) {
    double x = e->breakeven_search[b] == NONE ? e->breakeven[b]
                                                : w->searches[e->breakeven_search[b]].result;
    if (!isnan(x)) found[count++] = x;
  }
  for (size_t d = 0; d < e->dip_count; d++)
    if (!isnan(w->searches[e->dip_search[d]].result)) found[count++] = w->searches[e->dip_search[d]].result;
  qsort(found, count, sizeof *found, compare_spots);
  for (size_t b = 0; b < count && b < GK_MAX_BREAKEVENS; b++) s->breakevens[s->breakeven_count++] = found[b];
}

/* The score (docs/strategy.md): the view's and the scenarios' mean P&L over
 * the risk, an unbounded loss counted as UNBOUNDED_PENALTY x the worst on the
 * structure's own range. */
static void score(evaluation *e, double refined_low, double at_top) {
  gk_strategy *s = &e->c->s;
  double worst = fmin(refined_low, e->own_worst);
  if (isfinite(at_top)) worst = fmin(worst, at_top);
  double risk = isinf(s->max_loss) ? -UNBOUNDED_PENALTY * worst : s->max_loss;
  double floor_risk = RISK_FLOOR * e->w->spot * (double)e->w->view->quantity * e->multiplier;
  s->score = 0.5 * (s->view_pnl + e->scenario) / fmax(risk, floor_risk);
}

/* Completes c->s from its grid and searches, or drops c: an option the
 * kernels refused, a number out of range, over the view's caps. */
static void finish(evaluation *e) {
  if (!e->read) return;
  double refined_low, at_top;
  bounds_and_breakevens(e, &refined_low, &at_top);
  score(e, refined_low, at_top);
  sum_greeks(e);
  describe(e);
  e->c->dropped = uses_bad_column(e) || !all_finite(&e->c->s) || over_caps(e->w, &e->c->s);
}

/* Every candidate: its grid, then every search in lock step, then the dips' zeroins
 * (a second round, also in lock step), then its figures. */
static gk_code evaluate_all(work *w, double *pnl, gk_status *status) {
  size_t most = w->candidate_count * SEARCHES_PER_STRUCTURE;
  w->evaluations = malloc(w->candidate_count * sizeof *w->evaluations);
  w->searches = malloc(most * sizeof *w->searches);
  if (w->evaluations == NULL || w->searches == NULL ||
      (most * MAX_STRUCTURE_LEGS > w->batch_capacity && !alloc_batch(w, most * MAX_STRUCTURE_LEGS)))
    return out_of_memory(status);
  for (size_t i = 0; i < w->candidate_count; i++)
    read_grid(w, &w->evaluations[i], &w->candidates[i], pnl);
  run_searches(w);
  if (!plan_dips(w)) return out_of_memory(status);
  run_searches(w);
  for (size_t i = 0; i < w->candidate_count; i++) finish(&w->evaluations[i]);
  return GK_OK;
}

/* ---- ranking --------------------------------------------------------------------------- */

static int compare_legs(const candidate *a, const candidate *b) {
  size_t n = a->leg_count < b->leg_count ? a->leg_count : b->leg_count;
  for (size_t l = 0; l < n; l++) {
    const gk_leg *x = &a->s.legs[l], *y = &b->s.legs[l];
    if (x->instrument.strike != y->instrument.strike)
      return x->instrument.strike < y->instrument.strike ? -1 : 1;
    if (x->instrument.expiry_us != y->instrument.expiry_us)
      return x->instrument.expiry_us < y->instrument.expiry_us ? -1 : 1;
    if (x->quantity != y->quantity) return x->quantity < y->quantity ? -1 : 1;
    if (a->quote[l] != b->quote[l]) return a->quote[l] < b->quote[l] ? -1 : 1;
  }
  return (a->leg_count > b->leg_count) - (a->leg_count < b->leg_count);
}

/* Score descending, then kind, then the legs: a total order on distinct candidates. */
static int compare_candidates(const void *pa, const void *pb) {
  const candidate *a = *(candidate *const *)pa, *b = *(candidate *const *)pb;
  if (a->s.score != b->s.score) return a->s.score > b->s.score ? -1 : 1;
  int k = strcmp(a->s.kind, b->s.kind);
  return k ? k : compare_legs(a, b);
}

static gk_code rank_and_write(work *w, gk_strategy *out, size_t capacity, size_t *written,
                              gk_status *status) {
  candidate **order = malloc((w->candidate_count ? w->candidate_count : 1) * sizeof *order);
  if (order == NULL) return out_of_memory(status);
  size_t n = 0;
  for (size_t i = 0; i < w->candidate_count; i++)
    if (!w->candidates[i].dropped) order[n++] = &w->candidates[i];
  qsort(order, n, sizeof *order, compare_candidates);
  for (size_t i = 0; i < n && i < capacity; i++)
    memcpy(&out[(*written)++], &order[i]->s, sizeof *out);
  free(order);
  return GK_OK;
}

/* ---- the use case ---------------------------------------------------------------------- */

static gk_code prepare(work *w, gk_status *status) {
  w->vol = malloc(w->count * sizeof *w->vol);
  w->column = malloc(w->count * sizeof *w->column);
  w->quote_of = malloc(w->count * sizeof *w->quote_of);
  w->candidates = malloc(MAX_CANDIDATES * sizeof *w->candidates);
  if (!w->vol || !w->column || !w->quote_of || !w->candidates || !build_slices(w))
    return out_of_memory(status);
  w->underlying = NONE;
  for (size_t i = 0; i < w->count; i++) {
    w->vol[i] = vol_of(w->market, &w->chain[i]);
    if (!is_option(w, i) && w->underlying == NONE) w->underlying = i;
  }
  build_candidates(w);
  assign_columns(w);
  return GK_OK;
}

gk_code gk_generate_strategies(const gk_market_quote *market, const gk_quoted_instrument *chain,
                               size_t count, const gk_strategy_view *view, int64_t valuation_us,
                               gk_american_method american_method, gk_strategy *out,
                               size_t capacity, size_t *written, gk_status *status) {
  if (written) *written = 0;
  const char *missing = !market ? "market" : !chain ? "chain" : !view ? "view" : !out ? "out"
                        : !written ? "written" : NULL;
  if (missing) return null_argument(status, missing);
  gk_code rc = check_arguments(market, chain, count, view, valuation_us, american_method,
                               capacity, status);
  if (rc != GK_OK) return rc;
  work w = {.market = market, .chain = chain, .count = count, .view = view,
            .valuation_us = valuation_us, .method = american_method, .spot = market->spot};
  rc = prepare(&w, status);
  if (rc == GK_OK && w.candidate_count) rc = build_tables(&w, status);
  double *pnl = rc == GK_OK && w.candidate_count ? malloc(w.grid_count * sizeof *pnl) : NULL;
  if (rc == GK_OK && w.candidate_count && pnl == NULL) rc = out_of_memory(status);
  if (rc == GK_OK && w.candidate_count) rc = evaluate_all(&w, pnl, status);
  if (rc == GK_OK) rc = rank_and_write(&w, out, capacity, written, status);
  free(pnl);
  free_work(&w);
  if (rc != GK_OK) *written = 0;
  else gk_status_clear(status);
  return rc;
}
