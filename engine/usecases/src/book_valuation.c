/*
 * book_valuation.c - a book's positions priced at its markets: per position,
 * per underlying, in total, and on a spot x vol scenario grid.
 *
 * Three kinds of position, three paths, one set of sums:
 *   - European options go through gk_revalue_portfolio (the engine's pooled,
 *     vectorized revaluation; its sums are already independent of thread count);
 *   - American options through gk_american_price_batch, once for price and
 *     Greeks and once per scenario for the grid (few in a desk's book today;
 *     issue 22 makes the American kernel fast enough to fold them in above);
 *   - the underlying itself linearly: value S x q, delta q, no gamma or vega.
 * Positions that are flat, expired (T <= 0 by ACT/365F at the valuation time)
 * or without a market are reported in those states and carry no risk: an
 * expired option is never priced with T <= 0 by accident.
 *
 * Sums run in position order within each path and the paths are added in a
 * fixed order, so a valuation is reproducible bit for bit.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "book_service_internal.h"
#include "greeks/american.h"

const char *gk_valuation_state_name(unsigned state) {
  static const char *const names[] = {"valued", "flat", "expired", "no_market", "error"};
  return state < sizeof names / sizeof names[0] ? names[state] : "unknown";
}

/* Column arrays for one pricing path; sized for every position of the book. */
typedef struct path_columns {
  size_t count;
  size_t *position;   /* index in the book */
  uint32_t *underlying;
  uint8_t *type;
  double *spot, *strike, *years, *rate, *yield, *vol, *quantity, *multiplier;
} path_columns;

/* What the totals need of a position, copied once by classify: the book's
 * positions of one underlying lie far apart (500 apart in a 1M-position book),
 * and a second walk over them missed the cache and the TLB on every one. */
typedef struct position_terms {
  double average_cost, quantity, multiplier, realized_pnl;
} position_terms;

typedef struct valuation_work {
  const gk_book *book;
  const size_t *subset; /* book positions to value, in this order; NULL: all */
  size_t subset_count;
  gk_book_valuation *out;
  position_terms *terms; /* per output slot */
  const gk_scenario_grid *grid;
  size_t grid_size;
  path_columns european, american;
  /* The markets the option paths price with, as compact slots: a subset (one
   * underlying's positions) passes the kernels one market, not the book's 500,
   * so the revaluation's partial sums stay one underlying wide. The whole book
   * keeps slot = market index. */
  size_t *slot_of;   /* book market -> slot, SIZE_MAX: not used */
  size_t *market_of; /* slot -> book market */
  size_t slots;
  double *market_spot, *market_rate, *market_yield; /* by slot */
} valuation_work;

/* The book position valued in output slot i. */
static const gk_position *position_at(const valuation_work *w, size_t i) {
  return gk_book_position(w->book, w->subset ? w->subset[i] : i);
}

static void free_columns(path_columns *c) {
  free(c->position), free(c->underlying), free(c->type), free(c->spot), free(c->strike);
  free(c->years), free(c->rate), free(c->yield), free(c->vol), free(c->quantity);
  free(c->multiplier);
}

static bool alloc_columns(path_columns *c, size_t n) {
  size_t k = n ? n : 1;
  c->position = malloc(k * sizeof *c->position);
  c->underlying = malloc(k * sizeof *c->underlying);
  c->type = malloc(k);
  double **d[] = {&c->spot, &c->strike, &c->years, &c->rate, &c->yield, &c->vol, &c->quantity,
                  &c->multiplier};
  bool ok = c->position && c->underlying && c->type;
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) ok = (*d[i] = malloc(k * sizeof(double))) && ok;
  return ok;
}

void gk_book_valuation_free(gk_book_valuation *v) {
  if (v == NULL) return;
  free(v->positions);
  free(v->per_underlying);
  free(v->pnl);
  free(v->pnl_per_underlying);
  memset(v, 0, sizeof *v);
}

static gk_code out_of_memory(gk_status *status) {
  return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "book", "", GK_STATUS_NO_INDEX,
                       "out of memory valuing the book");
}

static bool alloc_results(valuation_work *w) {
  gk_book_valuation *o = w->out;
  size_t markets = gk_book_market_count(w->book), m = markets ? markets : 1;
  size_t g = w->grid_size ? w->grid_size : 1;
  o->count = w->subset ? w->subset_count : gk_book_position_count(w->book);
  o->underlying_count = markets;
  o->positions = calloc(o->count ? o->count : 1, sizeof *o->positions);
  w->terms = malloc((o->count ? o->count : 1) * sizeof *w->terms);
  o->per_underlying = calloc(m, sizeof *o->per_underlying);
  o->pnl = calloc(g, sizeof *o->pnl);
  o->pnl_per_underlying = calloc(m * g, sizeof *o->pnl_per_underlying);
  w->slot_of = malloc(m * sizeof *w->slot_of);
  w->market_of = malloc(m * sizeof *w->market_of);
  if (w->slot_of && w->market_of)
    for (size_t i = 0; i < markets; i++) w->slot_of[i] = w->subset ? SIZE_MAX : i;
  if (w->market_of && !w->subset)
    for (size_t i = 0; i < markets; i++) w->market_of[i] = i;
  w->slots = w->subset ? 0 : markets;
  w->market_spot = malloc(m * sizeof(double));
  w->market_rate = malloc(m * sizeof(double));
  w->market_yield = malloc(m * sizeof(double));
  return o->positions && w->terms && o->per_underlying && o->pnl && o->pnl_per_underlying && w->slot_of &&
         w->market_of && w->market_spot &&
         w->market_rate && w->market_yield && alloc_columns(&w->european, o->count) &&
         alloc_columns(&w->american, o->count);
}

/* The book's markets are one array: a market's index is its offset in it. */
static size_t market_index(const gk_book *book, const char *underlying) {
  const gk_market_quote *q = gk_book_find_market(book, underlying);
  return q == NULL ? SIZE_MAX : (size_t)(q - gk_book_market(book, 0));
}

static size_t slot_for(valuation_work *w, size_t m) {
  if (w->slot_of[m] == SIZE_MAX) {
    w->slot_of[m] = w->slots;
    w->market_of[w->slots++] = m;
  }
  return w->slot_of[m];
}

static void push_option(valuation_work *w, path_columns *c, size_t index, size_t m,
                        const gk_position *p, double years, double vol) {
  const gk_market_quote *q = gk_book_market(w->book, m);
  size_t k = c->count++;
  c->position[k] = index;
  c->underlying[k] = (uint32_t)slot_for(w, m);
  c->type[k] = p->instrument.type;
  c->spot[k] = q->spot;
  c->strike[k] = p->instrument.strike;
  c->years[k] = years;
  c->rate[k] = q->rate;
  c->yield[k] = q->yield;
  c->vol[k] = vol;
  c->quantity[k] = (double)p->quantity;
  c->multiplier[k] = p->instrument.multiplier;
}

/* A shocked spot or vol kept in [lo, hi], as the portfolio revaluation keeps
 * its European options' (portfolio.h): the same grid prices every kind of
 * position at the same points. */
static double shocked(double x, double by, gk_shock_mode mode, double lo, double hi) {
  double s = mode == GK_SHOCK_RELATIVE ? x * (1 + by) : x + by;
  return s < lo ? lo : s > hi ? hi : s;
}

/* The underlying: value S x q, delta q, dollar delta S x q; the grid linearly. */
static void value_underlying(valuation_work *w, size_t index, size_t m, const gk_position *p) {
  const gk_market_quote *q = gk_book_market(w->book, m);
  gk_position_value *v = &w->out->positions[index];
  double units = (double)p->quantity;
  v->price = q->spot, v->delta = 1;
  v->market_value = q->spot * units;
  v->dollar_delta = q->spot * units;
  gk_risk *r = &w->out->per_underlying[m];
  r->value += v->market_value, r->delta += units, r->dollar_delta += v->dollar_delta;
  r->positions++;
  for (size_t i = 0; w->grid_size && i < w->grid->spot.count; i++) {
    double shock = w->grid->spot.shocks[i];
    double s = shocked(q->spot, shock, w->grid->spot.mode, GK_MIN_PRICE_LEVEL, GK_MAX_PRICE_LEVEL);
    for (size_t j = 0; j < w->grid->vol.count; j++) {
      double pnl = units * (s - q->spot);
      w->out->pnl[i * w->grid->vol.count + j] += pnl;
      w->out->pnl_per_underlying[m * w->grid_size + i * w->grid->vol.count + j] += pnl;
    }
  }
}

/* The position's vol (gk_book_vol_of): the market's own unless it has vol
 * points, which only gk_book_vol_of matches; that saves a second lookup of the
 * market per position. */
static double vol_of(const gk_book *book, const gk_market_quote *q, const gk_instrument *in) {
  double vol = q->vol;
  if (q->vol_point_count) gk_book_vol_of(book, in, &vol);
  return vol;
}

/* Sorts the positions into the three paths. A market is looked up once per run
 * of positions on the same underlying (a projection values one underlying's
 * positions: one lookup, not 2,000 symbol hashes). */
static void classify(valuation_work *w, int64_t valuation_us) {
  const char *last_symbol = NULL;
  size_t m = SIZE_MAX;
  for (size_t i = 0; i < w->out->count; i++) {
    const gk_position *p = position_at(w, i);
    gk_position_value *v = &w->out->positions[i];
    w->terms[i] = (position_terms){p->average_cost, (double)p->quantity, p->instrument.multiplier,
                                   p->realized_pnl};
    if (last_symbol == NULL || strcmp(last_symbol, p->instrument.underlying) != 0) {
      m = market_index(w->book, p->instrument.underlying);
      last_symbol = p->instrument.underlying;
    }
    double years = p->instrument.kind == GK_KIND_OPTION
                       ? gk_year_fraction(valuation_us, p->instrument.expiry_us) : 0;
    v->years = years;
    if (p->quantity == 0) { v->state = GK_VALUED_FLAT; continue; }
    if (p->instrument.kind == GK_KIND_OPTION && years <= 0) {
      v->state = GK_VALUED_EXPIRED;
      w->out->expired++;
      continue;
    }
    if (m == SIZE_MAX) { v->state = GK_VALUED_NO_MARKET; w->out->no_market++; continue; }
    v->spot = gk_book_market(w->book, m)->spot;
    if (p->instrument.kind == GK_KIND_UNDERLYING) { value_underlying(w, i, m, p); continue; }
    v->vol = vol_of(w->book, gk_book_market(w->book, m), &p->instrument);
    push_option(w, p->instrument.style == GK_STYLE_AMERICAN ? &w->american : &w->european, i, m,
                p, years, v->vol);
  }
}

/* Per-unit figures from the scaled ones the portfolio revaluation returns. */
static void unscale(gk_position_value *v, double scale, const double scaled[7]) {
  v->market_value = scaled[0];
  v->price = scaled[0] / scale, v->delta = scaled[1] / scale, v->gamma = scaled[2] / scale;
  v->vega = scaled[3] / scale, v->theta = scaled[4] / scale, v->rho = scaled[5] / scale;
  v->dollar_delta = scaled[1] * v->spot;
  v->dollar_gamma = scaled[2] * v->spot * v->spot;
}


static gk_code value_european(valuation_work *w, gk_pool *pool, gk_status *status) {
  path_columns *c = &w->european;
  if (c->count == 0) return GK_OK;
  size_t n = c->count, m = w->slots, g_size = w->grid_size ? w->grid_size : 1;
  double *scaled = calloc(7 * n, sizeof *scaled);
  uint8_t *error = calloc(n, 1);
  gk_risk *per = calloc(m, sizeof *per);
  double *pnl = calloc(w->grid_size ? w->grid_size : 1, sizeof *pnl);
  /* With one market (a projection's underlying) its grid is the total grid, bit
   * for bit (the same additions from zero in the same order): not summed twice. */
  bool one_market = m == 1;
  double *pnl_per = one_market ? pnl : calloc(m * g_size, sizeof *pnl_per);
  gk_code rc = scaled && error && per && pnl && pnl_per ? GK_OK : out_of_memory(status);
  if (rc == GK_OK) {
    gk_markets markets = {m, w->market_spot, w->market_rate, w->market_yield};
    gk_positions positions = {n, c->underlying, c->type, c->strike, c->years, c->vol, c->quantity,
                              c->multiplier};
    gk_portfolio_results r = {scaled, scaled + n, scaled + 2 * n, scaled + 3 * n, scaled + 4 * n,
                              scaled + 5 * n, scaled + 6 * n, error, per, {0}, pnl,
                              one_market ? NULL : pnl_per, 0};
    rc = gk_revalue_portfolio(pool, GK_MODEL_BSM, &markets, &positions, w->grid, &r, status);
    for (size_t k = 0; rc == GK_OK && k < n; k++) {
      gk_position_value *v = &w->out->positions[c->position[k]];
      if (error[k]) { v->state = GK_VALUED_ERROR, v->error = error[k]; continue; }
      double values[7] = {scaled[k], scaled[n + k], scaled[2 * n + k], scaled[3 * n + k],
                          scaled[4 * n + k], scaled[5 * n + k], scaled[6 * n + k]};
      unscale(v, c->quantity[k] * c->multiplier[k], values);
    }
    for (size_t u = 0; rc == GK_OK && u < m; u++) {
      size_t book_market = w->market_of[u];
      gk_risk_add(&w->out->per_underlying[book_market], &per[u]);
      for (size_t g = 0; g < w->grid_size; g++)
        w->out->pnl_per_underlying[book_market * w->grid_size + g] += pnl_per[u * w->grid_size + g];
    }
    for (size_t g = 0; rc == GK_OK && g < w->grid_size; g++) w->out->pnl[g] += pnl[g];
  }
  if (!one_market) free(pnl_per);
  free(scaled), free(error), free(per), free(pnl);
  return rc;
}

static gk_code price_american(const path_columns *c, const double *spot, const double *vol,
                              gk_american_method method, unsigned outputs, gk_greeks_batch *out,
                              gk_status *status) {
  gk_option_batch in = {c->count, spot, c->strike, c->years, c->rate, c->yield, vol, c->type};
  gk_rc rc = gk_american_price_batch(GK_MODEL_BSM, method, &in, outputs, out, NULL);
  if (rc == GK_RC_OK) return GK_OK;
  return gk_status_set(status, rc == GK_RC_OUT_OF_MEMORY ? GK_RESOURCE_EXHAUSTED : GK_INTERNAL, "american",
                       gk_american_method_name(method),
                       GK_STATUS_NO_INDEX, "American pricing failed: %s", gk_rc_message(rc));
}


/* One scenario's P&L over the American positions, added in position order. */
static gk_code american_scenario(valuation_work *w, gk_american_method method, size_t i, size_t j,
                                 double *spot, double *vol, gk_greeks_batch *out,
                                 const double *base, const uint8_t *base_error, gk_status *status) {
  path_columns *c = &w->american;
  for (size_t k = 0; k < c->count; k++) {
    /* vol floored at 1e-8, not 0: the American pricers' smallest vol */
    spot[k] = shocked(c->spot[k], w->grid->spot.shocks[i], w->grid->spot.mode, GK_MIN_PRICE_LEVEL, GK_MAX_PRICE_LEVEL);
    vol[k] = shocked(c->vol[k], w->grid->vol.shocks[j], w->grid->vol.mode, 1e-8, GK_MAX_VOL);
  }
  gk_code rc = price_american(c, spot, vol, method, GK_OUT_PRICE, out, status);
  size_t g = i * w->grid->vol.count + j;
  for (size_t k = 0; rc == GK_OK && k < c->count; k++) {
    if (out->error[k] || base_error[k]) continue; /* a position the base could not price is out of the grid too */
    double pnl = c->quantity[k] * c->multiplier[k] * (out->price[k] - base[k]);
    w->out->pnl[g] += pnl;
    w->out->pnl_per_underlying[w->market_of[c->underlying[k]] * w->grid_size + g] += pnl;
  }
  return rc;
}

static void add_american_position(valuation_work *w, size_t k, const gk_greeks_batch *g) {
  path_columns *c = &w->american;
  gk_position_value *v = &w->out->positions[c->position[k]];
  if (g->error[k]) { v->state = GK_VALUED_ERROR, v->error = g->error[k]; return; }
  double scale = c->quantity[k] * c->multiplier[k];
  v->price = g->price[k], v->delta = g->delta[k], v->gamma = g->gamma[k];
  v->vega = g->vega[k], v->theta = g->theta[k], v->rho = g->rho[k];
  v->market_value = g->price[k] * scale;
  v->dollar_delta = g->delta[k] * c->spot[k] * scale;
  v->dollar_gamma = g->gamma[k] * c->spot[k] * c->spot[k] * scale;
  gk_risk r = {v->market_value, g->delta[k] * scale, g->gamma[k] * scale, g->vega[k] * scale,
               g->theta[k] * scale, g->rho[k] * scale, g->phi[k] * scale, v->dollar_delta,
               v->dollar_gamma, 1};
  gk_risk_add(&w->out->per_underlying[w->market_of[c->underlying[k]]], &r);
}

static gk_code value_american(valuation_work *w, gk_american_method method, gk_status *status) {
  path_columns *c = &w->american;
  if (c->count == 0) return GK_OK;
  size_t n = c->count;
  double *columns = calloc(9 * n, sizeof *columns);
  uint8_t *error = calloc(n, 1);
  if (columns == NULL || error == NULL) {
    free(columns), free(error);
    return out_of_memory(status);
  }
  gk_greeks_batch g = {.price = columns, .delta = columns + n, .gamma = columns + 2 * n,
                       .vega = columns + 3 * n, .theta = columns + 4 * n, .rho = columns + 5 * n,
                       .phi = columns + 6 * n, .error = error};
  unsigned all = GK_OUT_PRICE | GK_OUT_DELTA | GK_OUT_GAMMA | GK_OUT_VEGA | GK_OUT_THETA |
                 GK_OUT_RHO | GK_OUT_PHI;
  gk_code rc = price_american(c, c->spot, c->vol, method, all, &g, status);
  for (size_t k = 0; rc == GK_OK && k < n; k++) add_american_position(w, k, &g);
  double *base = columns + 7 * n; /* scenario pricing reuses the price column */
  if (rc == GK_OK) memcpy(base, g.price, n * sizeof *base);
  double *spot = malloc(n * sizeof *spot), *vol = malloc(n * sizeof *vol);
  if (rc == GK_OK && (spot == NULL || vol == NULL)) rc = out_of_memory(status);
  uint8_t *scenario_error = calloc(n, 1); /* its own: the base's flags say who is out of the grid */
  if (rc == GK_OK && scenario_error == NULL) rc = out_of_memory(status);
  gk_greeks_batch scenario = {.price = columns + 8 * n, .error = scenario_error};
  for (size_t i = 0; rc == GK_OK && w->grid_size && i < w->grid->spot.count; i++)
    for (size_t j = 0; rc == GK_OK && j < w->grid->vol.count; j++)
      rc = american_scenario(w, method, i, j, spot, vol, &scenario, base, error, status);
  free(columns), free(error), free(scenario_error), free(spot), free(vol);
  return rc;
}

static void totals(valuation_work *w) {
  gk_book_valuation *o = w->out;
  memset(&o->total, 0, sizeof o->total);
  for (size_t u = 0; u < o->underlying_count; u++) gk_risk_add(&o->total, &o->per_underlying[u]);
  for (size_t i = 0; i < o->count; i++) {
    const position_terms *p = &w->terms[i];
    gk_position_value *v = &o->positions[i];
    o->realized_pnl += p->realized_pnl;
    if (v->state != GK_VALUED) continue;
    v->unrealized_pnl = (v->price - p->average_cost) * p->quantity * p->multiplier;
    o->unrealized_pnl += v->unrealized_pnl;
  }
}

static void fill_markets(valuation_work *w) {
  for (size_t slot = 0; slot < w->slots; slot++) {
    const gk_market_quote *q = gk_book_market(w->book, w->market_of[slot]);
    w->market_spot[slot] = q->spot, w->market_rate[slot] = q->rate;
    w->market_yield[slot] = q->yield;
  }
}

gk_code gk_value_book(const gk_book *book, int64_t valuation_us, const gk_scenario_grid *grid,
                      gk_american_method method, gk_pool *pool, gk_book_valuation *out,
                      gk_status *status) {
  return gk_value_book_positions(book, NULL, 0, valuation_us, grid, method, pool, out, status);
}

gk_code gk_value_book_positions(const gk_book *book, const size_t *positions, size_t count,
                                int64_t valuation_us, const gk_scenario_grid *grid,
                                gk_american_method method, gk_pool *pool,
                                gk_book_valuation *out, gk_status *status) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; positions && i < count; i++)
    if (positions[i] >= gk_book_position_count(book))
      return gk_status_set(status, GK_INVALID_ARGUMENT, "positions", "", (int64_t)i,
                           "position index %zu is not in the book (%zu positions)", positions[i],
                           gk_book_position_count(book));
  /* the grid's rules hold for every position kind, not only where the book
   * has European options (a -150% shock was a success, equal to -100%, on a
   * book of American options and stock) */
  gk_code checked = grid ? gk_scenario_grid_check(grid, status) : GK_OK;
  if (checked != GK_OK) return checked;
  gk_scenario_grid none = {{0, NULL, GK_SHOCK_RELATIVE}, {0, NULL, GK_SHOCK_ABSOLUTE}};
  valuation_work w = {.book = book, .subset = positions, .subset_count = count, .out = out,
                      .grid = grid ? grid : &none};
  w.grid_size = w.grid->spot.count * w.grid->vol.count;
  out->spot_count = w.grid->spot.count, out->vol_count = w.grid->vol.count;
  gk_code rc = alloc_results(&w) ? GK_OK : out_of_memory(status);
  if (rc == GK_OK) {
    classify(&w, valuation_us); /* assigns the market slots the options use */
    fill_markets(&w);
    rc = value_european(&w, pool, status);
  }
  if (rc == GK_OK) rc = value_american(&w, method, status);
  if (rc == GK_OK) totals(&w);
  free_columns(&w.european), free_columns(&w.american);
  free(w.market_spot), free(w.market_rate), free(w.market_yield);
  free(w.slot_of), free(w.market_of), free(w.terms);
  if (rc != GK_OK) gk_book_valuation_free(out);
  return rc;
}
