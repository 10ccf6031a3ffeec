/*
 * strategy_cases.c - benchmark cases of "generate a strategy" (greeks/strategy.h),
 * registered by bench/book_shim.cc beside the book's cases, so a regression in
 * the strategies' cost shows in `make bench` (build/bench-book.json):
 *
 *   strategy/generate/<method>/quotes:512  gk_generate_strategies on a chain of
 *                             4 expiries x 64 strikes x call and put around a
 *                             spot of 100 (every structure's legs still live at
 *                             the horizon, so each is valued and its max loss
 *                             and gain refined with the method's prices);
 *                             european, and American with bs2002, alo_fast, alo
 *   strategy/generate/tree/quotes:32  the tree on 4 expiries x 4 strikes: it
 *                             pays its scalar cost per structure (seconds a
 *                             chain of 512; docs/strategy.md)
 *   strategy/hedge/<target>/quotes:512  gk_generate_hedge of a book short 10
 *                             calls and long 5 puts, offered the underlying and
 *                             511 options of that chain: every basis solved
 *
 * items = chains (or hedge requests) per run(), so items_per_second is calls a
 * second and the time per iteration a call's latency. The quotes are BSM prices
 * at the quote's vol (a skew in strike), a spread of 2% of the price at least
 * 0.01: realistic enough that the caps and rankings do the work they do live.
 * create() checks that the call succeeds and yields structures (or legs), so
 * a case timing an early refusal fails instead of reading fast.
 */
#include "book_cases.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/strategy.h"

#define T0 INT64_C(1796083200000000) /* 2026-12-01T00:00:00Z */
#define DAY INT64_C(86400000000)
#define SPOT 100.0
#define RATE 0.03
#define YIELD 0.01
#define VOL 0.25

enum { MAX_CHAIN = 512, STRATEGIES_KEPT = 16 };

typedef struct strategy_bench {
  gk_market_quote market;
  gk_quoted_instrument chain[MAX_CHAIN];
  size_t count;
  gk_american_method method;
  bool american;
  gk_strategy_view view;
  gk_strategy out[STRATEGIES_KEPT];
  gk_book *book;            /* hedge cases */
  gk_hedge_request hedge;
  gk_hedge_proposal proposal;
} strategy_bench;

static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

static double bsm_price(unsigned type, double strike, double t, double vol) {
  double sd = vol * sqrt(t);
  double d1 = (log(SPOT / strike) + (RATE - YIELD) * t) / sd + 0.5 * sd, d2 = d1 - sd;
  double s = SPOT * exp(-YIELD * t), k = strike * exp(-RATE * t);
  return type == GK_CALL ? s * normal_cdf(d1) - k * normal_cdf(d2)
                         : k * normal_cdf(-d2) - s * normal_cdf(-d1);
}

/* expiries x strikes x {call, put}, strikes 1 apart centred on the spot. */
static void build_chain(strategy_bench *b, size_t expiries, size_t strikes, unsigned style) {
  static const int days[] = {30, 61, 91, 182};
  b->count = 0;
  for (size_t e = 0; e < expiries; e++)
    for (size_t k = 0; k < strikes; k++)
      for (unsigned type = GK_CALL; type <= GK_PUT; type++) {
        gk_quoted_instrument *q = &b->chain[b->count++];
        double strike = SPOT - (double)(strikes / 2) + (double)k;
        double t = days[e] / 365.0;
        q->vol = VOL + 0.1 * (SPOT - strike) / SPOT; /* a put skew */
        gk_instrument_option("XYZ", type, style, strike, T0 + days[e] * DAY, 100, &q->instrument,
                             NULL);
        double price = bsm_price(type, strike, t, q->vol);
        double half = fmax(0.005, 0.01 * price);
        q->bid = fmax(0.0, price - half);
        q->ask = price + half;
      }
  snprintf(b->market.underlying, sizeof b->market.underlying, "XYZ");
  b->market.spot = SPOT, b->market.rate = RATE, b->market.yield = YIELD, b->market.vol = VOL;
  b->market.market_time_us = T0;
}

static void *create_generate(const book_case *c, char *error, size_t size) {
  strategy_bench *b = calloc(1, sizeof *b);
  if (b == NULL) return snprintf(error, size, "out of memory"), NULL;
  const char *method = c->name + strlen("strategy/generate/");
  b->american = strncmp(method, "european", 8) != 0;
  b->method = strncmp(method, "tree", 4) == 0       ? GK_AMERICAN_TREE
              : strncmp(method, "alo_fast", 8) == 0 ? GK_AMERICAN_ALO_FAST
              : strncmp(method, "alo", 3) == 0      ? GK_AMERICAN_ALO
                                                    : GK_AMERICAN_BS2002;
  build_chain(b, 4, c->items_per_chain / 8, b->american ? GK_STYLE_AMERICAN : GK_STYLE_EUROPEAN);
  b->view = (gk_strategy_view){.direction = GK_VIEW_BULLISH, .move = 0.05,
                               .horizon_us = T0 + 20 * DAY, .quantity = 1};
  size_t written = 0;
  gk_status st;
  gk_code rc = gk_generate_strategies(&b->market, b->chain, b->count, &b->view, T0, b->method,
                                      b->out, STRATEGIES_KEPT, &written, &st);
  if (rc != GK_OK || written == 0) {
    snprintf(error, size, "generate: %s", rc != GK_OK ? st.message : "no structure");
    free(b);
    return NULL;
  }
  return b;
}

static void run_generate(void *state) {
  strategy_bench *b = state;
  size_t written = 0;
  gk_status st;
  gk_generate_strategies(&b->market, b->chain, b->count, &b->view, T0, b->method, b->out,
                         STRATEGIES_KEPT, &written, &st);
}

/* ---- hedges ------------------------------------------------------------------------ */

static bool commit(gk_book *book, gk_code decided, gk_event *e, gk_status *st) {
  if (decided != GK_OK) return false;
  e->meta.sequence = gk_book_version(book) + 1;
  e->meta.time_us = T0;
  snprintf(e->meta.book_id, sizeof e->meta.book_id, "bench");
  return gk_book_apply(book, e, st) == GK_OK;
}

static bool trade(gk_book *book, const char *id, const gk_instrument *in, int64_t quantity,
                  gk_status *st) {
  gk_trade t = {.trade_time_us = T0, .leg_count = 1, .legs = {{*in, quantity, 5.0}}};
  snprintf(t.trade_id, sizeof t.trade_id, "%s", id);
  gk_event e;
  return commit(book, gk_book_decide_trade(book, &t, T0, &e, st), &e, st);
}

/* A book short 10 of the chain's 91-day 100 calls and long 5 of its 30-day 95 puts. */
static gk_book *hedge_book(const strategy_bench *b, gk_status *st) {
  gk_book *book = gk_book_new();
  gk_event e;
  gk_instrument call, put;
  gk_instrument_option("XYZ", GK_CALL, GK_STYLE_EUROPEAN, 100, T0 + 91 * DAY, 100, &call, NULL);
  gk_instrument_option("XYZ", GK_PUT, GK_STYLE_EUROPEAN, 95, T0 + 30 * DAY, 100, &put, NULL);
  if (book && commit(book, gk_book_decide_open(book, "bench", "", "USD", &e, st), &e, st) &&
      commit(book, gk_book_decide_market(book, &b->market, &e, st), &e, st) &&
      trade(book, "T1", &call, -10, st) && trade(book, "T2", &put, 5, st))
    return book;
  gk_book_free(book);
  return NULL;
}

static void *create_hedge(const book_case *c, char *error, size_t size) {
  strategy_bench *b = calloc(1, sizeof *b);
  if (b == NULL) return snprintf(error, size, "out of memory"), NULL;
  build_chain(b, 4, 64, GK_STYLE_EUROPEAN);
  gk_status st = {0};
  b->book = hedge_book(b, &st);
  if (b->book == NULL) {
    snprintf(error, size, "book: %s", st.message);
    free(b);
    return NULL;
  }
  /* The underlying first, then 511 of the options. */
  memmove(&b->chain[1], &b->chain[0], (MAX_CHAIN - 1) * sizeof b->chain[0]);
  gk_instrument_underlying("XYZ", &b->chain[0].instrument, NULL);
  b->chain[0].bid = SPOT - 0.01, b->chain[0].ask = SPOT + 0.01, b->chain[0].vol = 0;
  const char *target = c->name + strlen("strategy/hedge/");
  b->hedge = (gk_hedge_request){.target = strncmp(target, "delta_gamma", 11) == 0 ? GK_HEDGE_DELTA_GAMMA
                                          : strncmp(target, "delta_vega", 10) == 0 ? GK_HEDGE_DELTA_VEGA
                                                                                   : GK_HEDGE_DELTA,
                                .instruments = b->chain, .count = MAX_CHAIN, .valuation_us = T0,
                                .american_method = GK_AMERICAN_BS2002};
  snprintf(b->hedge.underlying, sizeof b->hedge.underlying, "XYZ");
  gk_code rc = gk_generate_hedge(b->book, &b->hedge, &b->proposal, &st);
  if (rc != GK_OK || b->proposal.leg_count == 0) {
    snprintf(error, size, "hedge: %s", rc != GK_OK ? st.message : "no legs");
    gk_book_free(b->book);
    free(b);
    return NULL;
  }
  return b;
}

static void run_hedge(void *state) {
  strategy_bench *b = state;
  gk_status st;
  gk_generate_hedge(b->book, &b->hedge, &b->proposal, &st);
}

static void destroy(void *state) {
  strategy_bench *b = state;
  if (b == NULL) return;
  gk_book_free(b->book);
  free(b);
}

static const book_case cases[] = {
    {"strategy/generate/european/quotes:512", 1, 1, create_generate, run_generate, destroy, 512},
    {"strategy/generate/bs2002/quotes:512", 1, 1, create_generate, run_generate, destroy, 512},
    {"strategy/generate/alo_fast/quotes:512", 1, 1, create_generate, run_generate, destroy, 512},
    {"strategy/generate/alo/quotes:512", 1, 1, create_generate, run_generate, destroy, 512},
    {"strategy/generate/tree/quotes:32", 1, 1, create_generate, run_generate, destroy, 32},
    {"strategy/hedge/delta/quotes:512", 1, 1, create_hedge, run_hedge, destroy, 512},
    {"strategy/hedge/delta_gamma/quotes:512", 1, 1, create_hedge, run_hedge, destroy, 512},
    {"strategy/hedge/delta_vega/quotes:512", 1, 1, create_hedge, run_hedge, destroy, 512},
};

size_t strategy_cases_count(void) { return sizeof cases / sizeof cases[0]; }
const book_case *strategy_cases_get(size_t i) { return &cases[i]; }
