/*
 * test_hedge.c - hedges for a book (greeks/strategy.h: gk_generate_hedge), each
 * checked against references the test computes itself:
 *   - per-contract Greeks from the closed-form BSM formulas written here (N(x)
 *     with erfc), the book's Greeks as their sum over its positions;
 *   - the optimal hedge from the linear program solved again here by brute force
 *     (every basis, and random feasible points off the vertices), so a wrong
 *     basis, a wrong cost or a wrong tie shows;
 *   - American hedge instruments against a finite difference of the American
 *     kernel's price (a path of the kernels the hedge must not bypass).
 * The book is built with the domain API (decide + apply), one short call
 * position on AAPL and an unrelated MSFT position the hedge must ignore.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "greeks/strategy.h"
#include "support/test_support.h"

#define T0 INT64_C(1796083200000000) /* 2026-12-01T00:00:00Z */
#define YEAR INT64_C(31536000000000) /* 365 days */
#define SPOT 100.0
#define RATE 0.03
#define YIELD 0.01
#define VOL 0.25
#define PI 3.14159265358979323846

/* ---- the book ------------------------------------------------------------------------ */

static void commit(gk_book *book, gk_event *e) {
  e->meta.sequence = gk_book_version(book) + 1;
  e->meta.time_us = T0;
  snprintf(e->meta.book_id, sizeof e->meta.book_id, "desk");
  gk_status st;
  if (gk_book_apply(book, e, &st) != GK_OK) fail_msg("apply: %s", st.message);
}

static void set_market(gk_book *book, const char *symbol, double spot) {
  gk_market_quote q = {.spot = spot, .rate = RATE, .yield = YIELD, .vol = VOL,
                       .market_time_us = T0};
  snprintf(q.underlying, sizeof q.underlying, "%s", symbol);
  gk_event e;
  assert_int_equal(gk_book_decide_market(book, &q, &e, NULL), GK_OK);
  commit(book, &e);
}

static void trade(gk_book *book, const char *id, gk_instrument in, int64_t quantity) {
  gk_trade t = {.trade_time_us = T0, .leg_count = 1, .legs = {{in, quantity, 5.0}}};
  snprintf(t.trade_id, sizeof t.trade_id, "%s", id);
  gk_event e;
  gk_status st;
  if (gk_book_decide_trade(book, &t, T0, &e, &st) != GK_OK) fail_msg("trade: %s", st.message);
  commit(book, &e);
}

static gk_instrument option(const char *symbol, unsigned type, unsigned style, double strike,
                            int64_t expiry_us, double multiplier) {
  gk_instrument in;
  assert_int_equal(gk_instrument_option(symbol, type, style, strike, expiry_us, multiplier, &in,
                                        NULL), GK_OK);
  return in;
}

static gk_instrument underlying(const char *symbol) {
  gk_instrument in;
  assert_int_equal(gk_instrument_underlying(symbol, &in, NULL), GK_OK);
  return in;
}

/* The book of every test: short 10 AAPL 6-month 100 calls (x100), markets for
 * AAPL and MSFT, and long 50 MSFT calls that an AAPL hedge must not see. */
static gk_instrument short_call(void) {
  return option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 100, T0 + YEAR / 2, 100);
}

static gk_book *desk_short(int64_t calls);

/* An open book with the AAPL market and nothing traded. */
static gk_book *aapl_desk(void) {
  gk_book *book = gk_book_new();
  gk_event e;
  assert_int_equal(gk_book_decide_open(book, "desk", "", "USD", &e, NULL), GK_OK);
  commit(book, &e);
  set_market(book, "AAPL", SPOT);
  return book;
}

static gk_book *desk(void) { return desk_short(10); }

static gk_book *desk_short(int64_t calls) {
  gk_book *book = aapl_desk();
  set_market(book, "MSFT", 300);
  trade(book, "T1", short_call(), -calls);
  trade(book, "T2", option("MSFT", GK_CALL, GK_STYLE_EUROPEAN, 300, T0 + YEAR, 100), 50);
  return book;
}

/* ---- independent references ------------------------------------------------------------ */

static double N(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }
static double n(double x) { return exp(-0.5 * x * x) / sqrt(2 * PI); }

typedef struct greeks { double delta, gamma, vega; } greeks;

/* Closed-form BSM Greeks per contract (x multiplier) at the AAPL market; the
 * underlying is delta 1. */
static greeks reference(const gk_instrument *in, double vol) {
  if (in->kind == GK_KIND_UNDERLYING) return (greeks){1, 0, 0};
  double t = (double)(in->expiry_us - T0) / (double)YEAR, sq = sqrt(t);
  double d1 = (log(SPOT / in->strike) + (RATE - YIELD + 0.5 * vol * vol) * t) / (vol * sq);
  double carry = exp(-YIELD * t), m = in->multiplier;
  double delta = in->type == GK_CALL ? carry * N(d1) : -carry * N(-d1);
  return (greeks){delta * m, carry * n(d1) / (SPOT * vol * sq) * m, SPOT * carry * n(d1) * sq * m};
}

/* The book's AAPL Greeks: 10 short calls. */
static greeks book_reference(void) {
  gk_instrument call = short_call();
  greeks g = reference(&call, VOL);
  return (greeks){-10 * g.delta, -10 * g.gamma, -10 * g.vega};
}

static double pick(greeks g, gk_hedge_target target, int k) {
  return k == 0 ? g.delta : target == GK_HEDGE_DELTA_GAMMA ? g.gamma : g.vega;
}

static gk_quoted_instrument quote(gk_instrument in, double bid, double ask, double vol) {
  return (gk_quoted_instrument){in, bid, ask, vol};
}

static double quote_vol(const gk_quoted_instrument *q) { return q->vol > 0 ? q->vol : VOL; }

/* The LP solved again: every pair of instruments by Cramer's rule (the book has
 * gamma and vega, so no instrument alone meets both constraints), cheapest kept;
 * returns its cost and fills the pair and its quantities. */
static double reference_lp(const gk_quoted_instrument *q, size_t count, gk_hedge_target target,
                           size_t pair[2], double quantity[2]) {
  greeks book = book_reference();
  double best = INFINITY;
  for (size_t i = 0; i < count; i++)
    for (size_t j = i + 1; j < count; j++) {
      greeks gi = reference(&q[i].instrument, quote_vol(&q[i]));
      greeks gj = reference(&q[j].instrument, quote_vol(&q[j]));
      double a = pick(gi, target, 0), b = pick(gj, target, 0);
      double c = pick(gi, target, 1), d = pick(gj, target, 1);
      double r0 = -pick(book, target, 0), r1 = -pick(book, target, 1), det = a * d - b * c;
      if (fabs(det) < 1e-9 * (fabs(a * d) + fabs(b * c))) continue;
      double qi = (r0 * d - b * r1) / det, qj = (a * r1 - c * r0) / det;
      double cost = fabs(qi) * q[i].instrument.multiplier * (q[i].ask - q[i].bid) / 2 +
                    fabs(qj) * q[j].instrument.multiplier * (q[j].ask - q[j].bid) / 2;
      if (cost < best) best = cost, pair[0] = i, pair[1] = j, quantity[0] = qi, quantity[1] = qj;
    }
  return best;
}

/* The rule of docs/strategy.md steps 3-5, applied again: every pair solved as
 * above, its options rounded to whole contracts, the underlying (where
 * offered) to the whole units that bring delta nearest 0; among the pairs that
 * take at least half of each target Greek off the book, the cheapest whole
 * trade (spread crossed on the contracts and units actually traded; the first
 * found on a tie). Fills the pair and its fractional quantities. */
static double reference_whole(const gk_quoted_instrument *q, size_t count, gk_hedge_target target,
                              size_t pair[2], double quantity[2]) {
  greeks book = book_reference();
  size_t u = count;
  for (size_t i = 0; i < count; i++)
    if (q[i].instrument.kind == GK_KIND_UNDERLYING) u = i;
  double best = INFINITY;
  for (size_t i = 0; i < count; i++)
    for (size_t j = i + 1; j < count; j++) {
      const size_t at[2] = {i, j};
      greeks g[2] = {reference(&q[i].instrument, quote_vol(&q[i])), reference(&q[j].instrument, quote_vol(&q[j]))};
      double a = pick(g[0], target, 0), b = pick(g[1], target, 0);
      double c = pick(g[0], target, 1), d = pick(g[1], target, 1);
      double r0 = -pick(book, target, 0), r1 = -pick(book, target, 1), det = a * d - b * c;
      if (fabs(det) < 1e-9 * (fabs(a * d) + fabs(b * c))) continue;
      double fractional[2] = {(r0 * d - b * r1) / det, (a * r1 - c * r0) / det};
      double left[2] = {pick(book, target, 0), pick(book, target, 1)}, cost = 0;
      for (int k = 0; k < 2; k++) {
        if (at[k] == u) continue; /* the underlying's units follow */
        double whole = (double)llround(fractional[k]);
        left[0] += whole * g[k].delta, left[1] += whole * pick(g[k], target, 1);
        cost += fabs(whole) * q[at[k]].instrument.multiplier * (q[at[k]].ask - q[at[k]].bid) / 2;
      }
      if (u < count) {
        double units = round(-left[0]);
        left[0] += units, cost += fabs(units) * (q[u].ask - q[u].bid) / 2;
      }
      bool ok = fabs(left[0]) <= 0.5 * fabs(pick(book, target, 0)) && fabs(left[1]) <= 0.5 * fabs(pick(book, target, 1));
      if (ok && (isinf(best) || cost < best - 1e-12 * best))
        best = cost, pair[0] = i, pair[1] = j, quantity[0] = fractional[0], quantity[1] = fractional[1];
    }
  return best;
}

/* Off the vertices: any three instruments, the third's quantity free on a grid,
 * the other two solving the constraints; none may beat the vertex optimum. */
static void assert_no_feasible_point_is_cheaper(const gk_quoted_instrument *q, size_t count,
                                                gk_hedge_target target, double optimum) {
  greeks book = book_reference();
  test_rng rng = {42};
  for (int trial = 0; trial < 2000; trial++) {
    size_t i = rng_next(&rng) % count, j = rng_next(&rng) % count, k = rng_next(&rng) % count;
    if (i == j || j == k || i == k) continue;
    double t = rng_uniform(&rng, -40, 40);
    greeks gi = reference(&q[i].instrument, quote_vol(&q[i]));
    greeks gj = reference(&q[j].instrument, quote_vol(&q[j]));
    greeks gk = reference(&q[k].instrument, quote_vol(&q[k]));
    double r0 = -pick(book, target, 0) - t * pick(gk, target, 0);
    double r1 = -pick(book, target, 1) - t * pick(gk, target, 1);
    double a = pick(gi, target, 0), b = pick(gj, target, 0);
    double c = pick(gi, target, 1), d = pick(gj, target, 1), det = a * d - b * c;
    if (fabs(det) < 1e-9 * (fabs(a * d) + fabs(b * c))) continue;
    double qi = (r0 * d - b * r1) / det, qj = (a * r1 - c * r0) / det;
    double cost = fabs(qi) * q[i].instrument.multiplier * (q[i].ask - q[i].bid) / 2 +
                  fabs(qj) * q[j].instrument.multiplier * (q[j].ask - q[j].bid) / 2 +
                  fabs(t) * q[k].instrument.multiplier * (q[k].ask - q[k].bid) / 2;
    assert_true(cost >= optimum * (1 - 1e-9));
  }
}

static gk_hedge_request request(gk_hedge_target target, const gk_quoted_instrument *q,
                                size_t count) {
  gk_hedge_request r = {.underlying = "AAPL", .target = target, .instruments = q,
                        .count = count, .valuation_us = T0,
                        .american_method = GK_AMERICAN_BS2002};
  return r;
}

static gk_hedge_proposal hedge(const gk_book *book, const gk_hedge_request *r) {
  gk_hedge_proposal p;
  gk_status st;
  if (gk_generate_hedge(book, r, &p, &st) != GK_OK) fail_msg("hedge: %s", st.message);
  return p;
}

static const gk_leg *leg_of(const gk_hedge_proposal *p, const gk_instrument *in) {
  for (size_t i = 0; i < p->leg_count; i++)
    if (gk_instrument_equal(&p->legs[i].instrument, in)) return &p->legs[i];
  return NULL;
}

/* Cost, premium and after from the legs, with the reference Greeks. */
static void assert_legs_add_up(const gk_hedge_proposal *p, const gk_quoted_instrument *q,
                               size_t count) {
  double cost = 0, premium = 0, delta = p->before.delta, gamma = p->before.gamma;
  double vega = p->before.vega;
  for (size_t i = 0; i < count; i++) {
    const gk_leg *leg = leg_of(p, &q[i].instrument);
    if (leg == NULL) continue;
    double m = q[i].instrument.multiplier, k = (double)leg->quantity;
    assert_true(leg->quantity != 0);
    assert_true(leg->price == (leg->quantity > 0 ? q[i].ask : q[i].bid));
    cost += fabs(k) * m * (q[i].ask - q[i].bid) / 2, premium += k * leg->price * m;
    greeks g = reference(&q[i].instrument, quote_vol(&q[i]));
    delta += k * g.delta, gamma += k * g.gamma, vega += k * g.vega;
  }
  assert_true(close_enough(p->cost, cost, 1e-12, 1e-9));
  assert_true(close_enough(p->premium, premium, 1e-12, 1e-9));
  assert_true(close_enough(p->after.delta, delta, 1e-9, 1e-7));
  assert_true(close_enough(p->after.gamma, gamma, 1e-9, 1e-9));
  assert_true(close_enough(p->after.vega, vega, 1e-9, 1e-7));
}

static void assert_before_is_the_books(const gk_hedge_proposal *p) {
  greeks book = book_reference();
  assert_true(close_enough(p->before.delta, book.delta, 1e-10, 1e-9));
  assert_true(close_enough(p->before.gamma, book.gamma, 1e-10, 1e-12));
  assert_true(close_enough(p->before.vega, book.vega, 1e-10, 1e-9));
  assert_int_equal(p->before.positions, 1); /* the MSFT calls are not AAPL's */
}

/* ---- (1) delta with the underlying alone ---------------------------------------------- */

static void test_delta_hedge_buys_the_rounded_book_delta_in_the_underlying(void **state) {
  (void)state;
  gk_book *book = desk();
  gk_quoted_instrument q[] = {quote(underlying("AAPL"), 99.95, 100.05, 0)};
  gk_hedge_request r = request(GK_HEDGE_DELTA, q, 1);
  gk_hedge_proposal p = hedge(book, &r);
  assert_before_is_the_books(&p);
  int64_t want = llround(-book_reference().delta); /* 10 x 100 x e^{-qT} N(d1) */
  assert_true(want > 500 && want < 600);
  assert_int_equal(p.target, GK_HEDGE_DELTA);
  assert_int_equal(p.leg_count, 1);
  assert_int_equal(p.legs[0].quantity, want);
  assert_true(p.legs[0].price == 100.05); /* a buy pays the ask */
  assert_true(close_enough(p.cost, (double)want * 0.05, 1e-12, 1e-9));
  assert_true(close_enough(p.premium, (double)want * 100.05, 1e-12, 1e-9));
  assert_true(fabs(p.after.delta) <= 0.5 + 1e-9);
  assert_true(close_enough(p.after.gamma, p.before.gamma, 1e-15, 0)); /* no gamma added */
  assert_int_equal(p.after.positions, 2);
  assert_legs_add_up(&p, q, 1);
  gk_book_free(book);
}

/* A delta hedge offered the underlying beside a far cheaper option takes the
 * option (its delta solved exactly, then rounded, the underlying's units
 * absorbing the rounding): trading nothing but the underlying's units was
 * costed at 0 and won, and 570 units at a spread of 1 each came back where 7
 * calls at 0.01 and 7 units cost 14 (found in review). Offering the
 * underlying must not make the hedge dearer than the option alone plus its
 * rounding's units. */
static void test_a_delta_hedge_takes_a_cheaper_option_over_the_underlying(void **state) {
  (void)state;
  gk_book *book = desk(); /* short 10 calls: delta about -560 */
  gk_instrument deep = option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 90, T0 + YEAR / 2, 100);
  gk_quoted_instrument q[] = {quote(underlying("AAPL"), 99, 101, 0), quote(deep, 13.00, 13.02, 0)};
  gk_hedge_request both = request(GK_HEDGE_DELTA, q, 2), option_only = request(GK_HEDGE_DELTA, q + 1, 1);
  gk_hedge_proposal with = hedge(book, &both), without = hedge(book, &option_only);
  double per_contract = reference(&deep, VOL).delta;
  int64_t calls = llround(-book_reference().delta / per_contract);
  assert_true(calls >= 5 && calls <= 10);
  const gk_leg *leg = leg_of(&with, &deep);
  assert_non_null(leg);
  assert_int_equal(leg->quantity, calls);
  const gk_leg *units = leg_of(&with, &q[0].instrument);
  int64_t want_units = llround(-(book_reference().delta + (double)calls * per_contract));
  assert_int_equal(units ? units->quantity : 0, want_units);
  assert_true(llabs(want_units) <= llround(0.5 * per_contract) + 1);
  assert_true(close_enough(with.cost, (double)calls * 1.0 + (double)llabs(want_units) * 1.0, 1e-12, 1e-9));
  assert_true(with.cost <= without.cost + 0.5 * per_contract * 1.0 + 1e-9);
  assert_true(fabs(with.after.delta) <= 0.5 + 1e-9);
  assert_legs_add_up(&with, q, 2);
  gk_book_free(book);
}

/* A basis is judged by what it trades: short 84 shares, a call whose exact
 * quantity (~1.5 contracts) costs less than 84 shares' spread rounds to 2
 * contracts plus ~28 units the other way, dearer than the 84 units alone.
 * Costed in fractions, the call won: 120 where 84 would do (found in review of
 * the nothing basis's fix). */
static void test_a_delta_hedge_is_judged_by_what_it_trades(void **state) {
  (void)state;
  gk_book *book = aapl_desk();
  trade(book, "S1", underlying("AAPL"), -84);
  gk_instrument call = option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 100, T0 + YEAR / 2, 100);
  double per_contract = reference(&call, VOL).delta, fractional = 84 / per_contract;
  double calls = (double)llround(fractional), units = round(84 - calls * per_contract);
  assert_true(fractional * 49 < 84);                    /* cheaper in fractions... */
  assert_true(calls * 49 + fabs(units) * 1 > 84);       /* ...dearer as traded */
  gk_quoted_instrument q[] = {quote(underlying("AAPL"), 99, 101, 0), quote(call, 7.00, 7.98, 0)};
  gk_hedge_request r = request(GK_HEDGE_DELTA, q, 2);
  gk_hedge_proposal p = hedge(book, &r);
  assert_int_equal(p.leg_count, 1);
  assert_true(gk_instrument_equal(&p.legs[0].instrument, &q[0].instrument));
  assert_int_equal(p.legs[0].quantity, 84);
  assert_true(close_enough(p.cost, 84, 1e-12, 1e-9));
  assert_true(fabs(p.after.delta) <= 0.5 + 1e-9);
  assert_legs_add_up(&p, q, 2);
  gk_book_free(book);
}

/* ---- (2) delta-gamma ---------------------------------------------------------------------- */

static void assert_optimal(const gk_hedge_proposal *p, const gk_quoted_instrument *q,
                           size_t count, gk_hedge_target target) {
  size_t pair[2];
  double quantity[2];
  double optimum = reference_lp(q, count, target, pair, quantity);
  assert_true(isfinite(optimum));
  assert_no_feasible_point_is_cheaper(q, count, target, optimum); /* the reference LP is right */
  double whole = reference_whole(q, count, target, pair, quantity);
  assert_true(isfinite(whole));
  assert_true(close_enough(p->cost, whole, 1e-12, 1e-9));
  double residual_delta = p->before.delta, second = 0;
  for (int j = 0; j < 2; j++) { /* the reference basis's options, rounded */
    const gk_instrument *in = &q[pair[j]].instrument;
    if (in->kind == GK_KIND_UNDERLYING) continue;
    const gk_leg *leg = leg_of(p, in);
    assert_non_null(leg);
    assert_int_equal(leg->quantity, llround(quantity[j]));
    greeks g = reference(in, quote_vol(&q[pair[j]]));
    residual_delta += (double)leg->quantity * g.delta;
    second += 0.5 * fabs(pick(g, target, 1));
  }
  const gk_leg *u = leg_of(p, &q[0].instrument); /* q[0] is the underlying */
  assert_int_equal(u ? u->quantity : 0, llround(-residual_delta));
  assert_int_equal(p->leg_count, (size_t)(u != NULL) + 2 - (q[pair[0]].instrument.kind ==
                                                               GK_KIND_UNDERLYING));
  assert_true(fabs(p->after.delta) <= 0.5 + 1e-9);
  assert_true(fabs(target == GK_HEDGE_DELTA_GAMMA ? p->after.gamma : p->after.vega) <=
              second + 1e-9);
  assert_legs_add_up(p, q, count);
}

static void test_delta_gamma_hedge_is_the_cheapest_basis_rounded(void **state) {
  (void)state;
  gk_book *book = desk();
  int64_t half = T0 + YEAR / 2, quarter = T0 + YEAR / 4;
  gk_quoted_instrument q[] = {
      quote(underlying("AAPL"), 99.98, 100.02, 0),
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 90, half, 100), 12.0, 12.3, 0),
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 110, half, 100), 3.0, 3.1, 0),
      quote(option("AAPL", GK_PUT, GK_STYLE_EUROPEAN, 95, quarter, 100), 2.5, 2.7, 0),
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 105, T0 + YEAR, 100), 9.0, 9.4, 0.3),
  };
  gk_hedge_request r = request(GK_HEDGE_DELTA_GAMMA, q, 5);
  gk_hedge_proposal p = hedge(book, &r);
  assert_before_is_the_books(&p);
  assert_true(p.before.gamma < 0);
  assert_optimal(&p, q, 5, GK_HEDGE_DELTA_GAMMA);
  assert_true(fabs(p.after.gamma) < 0.1 * fabs(p.before.gamma));
  gk_book_free(book);
}

/* Whole contracts: a basis whose rounding undoes it loses to one that keeps it.
 * Short one call (gamma -2.2): a one-day ATM call offered beside a 6-month 110
 * call is the LP's cheapest vertex (0.07 of a contract: its gamma per contract
 * dwarfs the book's), but 0.07 rounds to 0 and left the book's gamma exactly
 * where it was, under "OK". Offering it must not make the hedge worse. */
static void test_a_vertex_rounded_to_nothing_loses_to_one_that_hedges(void **state) {
  (void)state;
  gk_book *book = desk_short(1);
  gk_quoted_instrument q[] = {quote(underlying("AAPL"), 99.99, 100.01, 0),
                              quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 110, T0 + YEAR / 2, 100), 3.0, 3.2, 0),
                              quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 100, T0 + YEAR / 365, 100), 0.50, 0.55, 0)};
  gk_hedge_request two = request(GK_HEDGE_DELTA_GAMMA, q, 2), three = request(GK_HEDGE_DELTA_GAMMA, q, 3);
  gk_hedge_proposal without = hedge(book, &two), with = hedge(book, &three);
  assert_true(with.before.gamma < -1);
  assert_true(fabs(with.after.gamma) <= 0.5 * fabs(with.before.gamma));
  assert_true(fabs(with.after.gamma) <= fabs(without.after.gamma) + 1e-12);
  assert_non_null(leg_of(&with, &q[1].instrument));
  assert_true(fabs(with.after.delta) <= 0.5 + 1e-9);
  assert_legs_add_up(&with, q, 3);
  gk_book_free(book);
}

/* A small book (a 90/91 call spread, x100) hedged delta-gamma with two options
 * a year out and no underlying: the exact pair is about -0.95 and +1.08
 * contracts, which round to -1 and +1, leaving delta and gamma twice and more
 * the book's own. Trading nothing leaves less of both, so nothing is proposed
 * (found in review: the rounded pair came back OK and charged the spread). */
static void test_whole_contracts_never_leave_more_than_the_book_has(void **state) {
  (void)state;
  gk_book *book = aapl_desk();
  trade(book, "T1", option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 90, T0 + YEAR / 2, 100), 1);
  trade(book, "T2", option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 91, T0 + YEAR / 2, 100), -1);
  gk_quoted_instrument q[] = {quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 115, T0 + YEAR, 100), 4.90, 5.00, 0),
                              quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 120, T0 + YEAR, 100), 3.50, 3.60, 0)};
  gk_hedge_request r = request(GK_HEDGE_DELTA_GAMMA, q, 2);
  gk_hedge_proposal p = hedge(book, &r);
  /* the independent check: the book's own Greeks, and the exact pair's rounding */
  gk_instrument low = option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 90, T0 + YEAR / 2, 100);
  gk_instrument high = option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 91, T0 + YEAR / 2, 100);
  greeks a = reference(&low, VOL), b = reference(&high, VOL);
  greeks c1 = reference(&q[0].instrument, VOL), c2 = reference(&q[1].instrument, VOL);
  double delta = a.delta - b.delta, gamma = a.gamma - b.gamma;
  double det = c1.delta * c2.gamma - c2.delta * c1.gamma;
  double x1 = (-delta * c2.gamma + c2.delta * gamma) / det, x2 = (-c1.delta * gamma + delta * c1.gamma) / det;
  double rounded_delta = delta + round(x1) * c1.delta + round(x2) * c2.delta;
  double rounded_gamma = gamma + round(x1) * c1.gamma + round(x2) * c2.gamma;
  assert_true(fabs(rounded_delta) > fabs(delta) && fabs(rounded_gamma) > fabs(gamma)); /* the trap is set */
  assert_true(close_enough(p.before.delta, delta, 1e-10, 1e-9));
  assert_true(close_enough(p.before.gamma, gamma, 1e-10, 1e-12));
  if (fabs(p.after.delta) > fabs(p.before.delta) * (1 + 1e-12) || fabs(p.after.gamma) > fabs(p.before.gamma) * (1 + 1e-12))
    fail_msg("%zu legs leave delta %g gamma %g of the book's %g and %g", p.leg_count, p.after.delta, p.after.gamma,
             p.before.delta, p.before.gamma);
  assert_int_equal(p.leg_count, 0);
  assert_true(p.cost == 0 && p.premium == 0);
  assert_legs_add_up(&p, q, 2);
  gk_book_free(book);
}

/* The same call at two multipliers: the same Greeks per unit, so the one whose
 * spread is narrower per unit is chosen (10 times as many contracts when it is
 * the x10), and the choice flips with the spreads. */
static void test_the_cheaper_of_two_equivalent_options_is_chosen(void **state) {
  (void)state;
  gk_book *book = desk();
  gk_instrument x100 = option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 110, T0 + YEAR / 2, 100);
  gk_instrument x10 = option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 110, T0 + YEAR / 2, 10);
  for (int flip = 0; flip < 2; flip++) {
    gk_quoted_instrument q[] = {quote(underlying("AAPL"), 99.99, 100.01, 0),
                                quote(x100, 3.0, flip ? 3.05 : 3.2, 0),
                                quote(x10, 3.0, flip ? 3.2 : 3.05, 0)};
    gk_hedge_request r = request(GK_HEDGE_DELTA_GAMMA, q, 3);
    gk_hedge_proposal p = hedge(book, &r);
    const gk_instrument *cheap = flip ? &x100 : &x10, *dear = flip ? &x10 : &x100;
    assert_non_null(leg_of(&p, cheap));
    assert_null(leg_of(&p, dear));
    double want = -p.before.gamma / reference(cheap, VOL).gamma;
    assert_int_equal(leg_of(&p, cheap)->quantity, llround(want));
    assert_int_equal(p.leg_count, 2);
    assert_optimal(&p, q, 3, GK_HEDGE_DELTA_GAMMA);
  }
  gk_book_free(book);
}

/* A full chain (the underlying and 511 options, spreads varied): the optimum
 * among 130,816 pairs is still the reference's. */
static void test_a_full_chain_hedge_is_the_cheapest_basis(void **state) {
  (void)state;
  gk_book *book = desk();
  size_t count = GK_MAX_QUOTED_INSTRUMENTS;
  gk_quoted_instrument *q = calloc(count, sizeof *q);
  assert_non_null(q);
  q[0] = quote(underlying("AAPL"), 99.97, 100.03, 0);
  test_rng rng = {7};
  for (size_t i = 1; i < count; i++) {
    double strike = 60 + (double)((i - 1) % 64) * 1.25;
    int64_t expiry = T0 + (int64_t)(1 + (i - 1) / 64) * YEAR / 8; /* 8 expiries */
    unsigned type = i % 2 ? GK_CALL : GK_PUT;
    double mid = rng_uniform(&rng, 1, 20), half = rng_uniform(&rng, 0.01, 0.5);
    q[i] = quote(option("AAPL", type, GK_STYLE_EUROPEAN, strike, expiry, 100), mid - half,
                 mid + half, 0);
  }
  for (int target = GK_HEDGE_DELTA_GAMMA; target <= GK_HEDGE_DELTA_VEGA; target++) {
    gk_hedge_request r = request((gk_hedge_target)target, q, count);
    gk_hedge_proposal p = hedge(book, &r);
    assert_optimal(&p, q, count, (gk_hedge_target)target);
  }
  free(q);
  gk_book_free(book);
}

/* ---- (3) delta-vega ----------------------------------------------------------------------- */

static void test_delta_vega_hedge_is_the_cheapest_basis_rounded(void **state) {
  (void)state;
  gk_book *book = desk();
  gk_quoted_instrument q[] = {
      quote(underlying("AAPL"), 99.9, 100.1, 0),
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 100, T0 + YEAR, 100), 10.5, 10.9, 0.3),
      quote(option("AAPL", GK_PUT, GK_STYLE_EUROPEAN, 90, T0 + YEAR / 4, 100), 0.9, 1.0, 0),
      quote(option("AAPL", GK_PUT, GK_STYLE_EUROPEAN, 100, T0 + 2 * YEAR, 50), 11.0, 11.8, 0),
  };
  gk_hedge_request r = request(GK_HEDGE_DELTA_VEGA, q, 4);
  gk_hedge_proposal p = hedge(book, &r);
  assert_before_is_the_books(&p);
  assert_int_equal(p.target, GK_HEDGE_DELTA_VEGA);
  assert_optimal(&p, q, 4, GK_HEDGE_DELTA_VEGA);
  assert_true(fabs(p.after.vega) < 0.1 * fabs(p.before.vega));
  gk_book_free(book);
}

/* ---- (4) infeasible targets ----------------------------------------------------------------- */

static void test_unreachable_targets_fail_naming_what_is_missing(void **state) {
  (void)state;
  gk_book *book = desk();
  gk_hedge_proposal p;
  gk_status st;
  gk_quoted_instrument spot_only[] = {quote(underlying("AAPL"), 99.9, 100.1, 0)};
  gk_hedge_request r = request(GK_HEDGE_DELTA_GAMMA, spot_only, 1);
  assert_int_equal(gk_generate_hedge(book, &r, &p, &st), GK_FAILED_PRECONDITION);
  assert_string_equal(st.field, "target");
  assert_string_equal(st.value, "delta_gamma");
  assert_non_null(strstr(st.message, "option with nonzero gamma"));
  assert_int_equal(p.leg_count, 0);

  gk_quoted_instrument one_option[] = {
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 110, T0 + YEAR, 100), 5, 5.2, 0)};
  r = request(GK_HEDGE_DELTA_VEGA, one_option, 1);
  assert_int_equal(gk_generate_hedge(book, &r, &p, &st), GK_FAILED_PRECONDITION);
  assert_string_equal(st.value, "delta_vega");
  assert_non_null(strstr(st.message, "independent"));

  /* gamma ~1e-17 per contract: the basis exists but needs ~1e18 contracts */
  gk_quoted_instrument far[] = {
      quote(underlying("AAPL"), 99.9, 100.1, 0),
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 200, T0 + YEAR / 10, 100), 0, 0.01, 0)};
  r = request(GK_HEDGE_DELTA_GAMMA, far, 2);
  assert_int_equal(gk_generate_hedge(book, &r, &p, &st), GK_FAILED_PRECONDITION);
  assert_string_equal(st.field, "target");
  assert_non_null(strstr(st.message, "more than"));

  /* the underlying has delta, but a book short 1e12 calls x100 needs ~5e13
   * units of it: "more than", not "no instrument with delta" */
  gk_book *huge = desk_short(INT64_C(1000000000000));
  r = request(GK_HEDGE_DELTA, spot_only, 1);
  assert_int_equal(gk_generate_hedge(huge, &r, &p, &st), GK_FAILED_PRECONDITION);
  assert_non_null(strstr(st.message, "more than"));
  gk_book_free(huge);

  gk_quoted_instrument ibm[] = {quote(underlying("IBM"), 99.9, 100.1, 0)};
  r = request(GK_HEDGE_DELTA, ibm, 1);
  snprintf(r.underlying, sizeof r.underlying, "IBM");
  assert_int_equal(gk_generate_hedge(book, &r, &p, &st), GK_FAILED_PRECONDITION);
  assert_string_equal(st.field, "underlying");
  assert_string_equal(st.value, "IBM");
  gk_book_free(book);
}

/* Offering the underlying never makes a feasible hedge infeasible: a book
 * long 2e12 shares was hedged with 2e6 puts (x1e6), but with the underlying
 * offered too, "trading nothing but 2e12 units" (past GK_MAX_QUANTITY) won
 * on cost and the request failed (found in review). */
static void test_units_past_the_quantity_bound_do_not_win(void **state) {
  (void)state;
  gk_book *book = aapl_desk();
  trade(book, "S1", underlying("AAPL"), INT64_C(1000000000000));
  trade(book, "S2", underlying("AAPL"), INT64_C(1000000000000));
  gk_instrument put = option("AAPL", GK_PUT, GK_STYLE_EUROPEAN, 1000, T0 + YEAR / 4, 1e6);
  gk_quoted_instrument offered[] = {quote(put, 899, 901, 0), quote(underlying("AAPL"), 100, 100, 0)};
  for (size_t count = 1; count <= 2; count++) {
    gk_hedge_request r = request(GK_HEDGE_DELTA, offered, count);
    gk_hedge_proposal p = hedge(book, &r);
    const gk_leg *leg = leg_of(&p, &put);
    assert_non_null(leg);
    /* the put's delta x 1e6 per contract: about -1e6 (deep in the money) */
    double per_contract = reference(&put, VOL).delta;
    assert_true(llabs(leg->quantity - (int64_t)llround(-2e12 / per_contract)) <= 1);
    for (size_t i = 0; i < p.leg_count; i++) assert_true(llabs(p.legs[i].quantity) <= GK_MAX_QUANTITY);
  }
  gk_book_free(book);
}

/* A leg moving more than GK_MAX_CASH is not tradable either: a deep
 * in-the-money put needing 5e9 contracts (4.5e18 of cash) beat selling 5e11
 * shares (5e17) on cost, then failed the request (found in review). */
static void test_a_leg_past_the_cash_bound_does_not_win(void **state) {
  (void)state;
  gk_book *book = gk_book_new();
  gk_event e;
  assert_int_equal(gk_book_decide_open(book, "desk", "", "USD", &e, NULL), GK_OK);
  commit(book, &e);
  set_market(book, "AAPL", 1e6);
  trade(book, "S1", underlying("AAPL"), 500000000000);
  gk_instrument put = option("AAPL", GK_PUT, GK_STYLE_EUROPEAN, 1e7, T0 + YEAR / 4, 100);
  gk_quoted_instrument offered[] = {quote(underlying("AAPL"), 999990, 1000010, 0), quote(put, 8.93e6, 8.93e6 + 2, 0)};
  gk_hedge_request r = request(GK_HEDGE_DELTA, offered, 2);
  gk_hedge_proposal p = hedge(book, &r);
  assert_int_equal(p.leg_count, 1);
  assert_true(p.legs[0].instrument.kind == GK_KIND_UNDERLYING && p.legs[0].quantity == -500000000000);
  gk_book_free(book);
}

/* A hedge is never proposed that its execution would refuse: a book at the
 * position bound in the only instrument offered got a leg taking it past
 * 1e15 contracts (found in review); it is told why instead. */
static void test_a_hedge_never_takes_a_position_past_the_books_bound(void **state) {
  (void)state;
  gk_book *book = aapl_desk();
  gk_instrument put = option("AAPL", GK_PUT, GK_STYLE_EUROPEAN, 100, T0 + YEAR / 4, 1e-6);
  for (int i = 0; i < 1000; i++) {
    char id[16];
    snprintf(id, sizeof id, "P%d", i);
    trade(book, id, put, GK_MAX_QUANTITY);
  }
  assert_true(gk_book_find_position(book, &put)->quantity == GK_MAX_POSITION_QUANTITY);
  /* delta +1e4 with the puts': buying ~2e10 more puts (within GK_MAX_QUANTITY) hedges it */
  trade(book, "S", underlying("AAPL"), llround(-1e15 * reference(&put, VOL).delta) + 10000);
  gk_quoted_instrument offered[] = {quote(put, 3.9, 4.0, 0)};
  gk_hedge_request r = request(GK_HEDGE_DELTA, offered, 1);
  gk_hedge_proposal p;
  gk_status st;
  assert_int_equal(gk_generate_hedge(book, &r, &p, &st), GK_FAILED_PRECONDITION);
  assert_string_equal(st.field, "target");
  assert_non_null(strstr(st.message, "takes a position past the book's bound of 1000000000000000 contracts"));
  assert_int_equal(p.leg_count, 0);
  gk_book_free(book);
}

/* ---- (5) validation -------------------------------------------------------------------------- */

static void assert_refused(const gk_book *book, const gk_hedge_request *r, const char *field,
                           int64_t index) {
  gk_hedge_proposal p;
  gk_status st;
  assert_int_equal(gk_generate_hedge(book, r, &p, &st), GK_INVALID_ARGUMENT);
  assert_string_equal(st.field, field);
  assert_int_equal(st.index, index);
  assert_true(st.message[0] != '\0');
}

static void test_bad_requests_fail_naming_the_field(void **state) {
  (void)state;
  gk_book *book = desk();
  gk_quoted_instrument q[] = {
      quote(underlying("AAPL"), 99.9, 100.1, 0),
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 110, T0 + YEAR, 100), 5, 5.2, 0)};
  gk_hedge_request r = request(GK_HEDGE_DELTA, q, 2);
  q[1].bid = 5.3; /* above the ask */
  assert_refused(book, &r, "instruments[1].bid", 1);
  q[1].bid = -1;
  assert_refused(book, &r, "instruments[1].bid", 1);
  q[1].bid = 5, q[1].ask = 0;
  assert_refused(book, &r, "instruments[1].ask", 1);
  q[1].ask = NAN;
  assert_refused(book, &r, "instruments[1].ask", 1);
  q[1].ask = 5.2, q[1].vol = 10.5;
  assert_refused(book, &r, "instruments[1].vol", 1);
  q[1].vol = 0, q[1].instrument.strike = -1;
  assert_refused(book, &r, "instruments[1].strike", 1);
  q[1].instrument.strike = 110, q[1].instrument.expiry_us = T0; /* expired at valuation */
  assert_refused(book, &r, "instruments[1].expiry", 1);
  q[1].instrument.expiry_us = T0 + YEAR;
  snprintf(q[0].instrument.underlying, sizeof q[0].instrument.underlying, "MSFT");
  assert_refused(book, &r, "instruments[0].underlying", 0);
  q[0] = q[1]; /* the same instrument twice */
  assert_refused(book, &r, "instruments[1]", 1);
  q[0] = quote(underlying("AAPL"), 99.9, 100.1, 0);
  r.target = (gk_hedge_target)7;
  assert_refused(book, &r, "target", GK_STATUS_NO_INDEX);
  r = request(GK_HEDGE_DELTA, q, 0);
  assert_refused(book, &r, "count", GK_STATUS_NO_INDEX);
  r.count = GK_MAX_QUOTED_INSTRUMENTS + 1;
  assert_refused(book, &r, "count", GK_STATUS_NO_INDEX);
  r = request(GK_HEDGE_DELTA, NULL, 2);
  assert_refused(book, &r, "instruments", GK_STATUS_NO_INDEX);
  r = request(GK_HEDGE_DELTA, q, 2);
  r.american_method = GK_AMERICAN_METHOD_COUNT;
  assert_refused(book, &r, "american_method", GK_STATUS_NO_INDEX);
  r = request(GK_HEDGE_DELTA, q, 2);
  assert_int_equal(gk_generate_hedge(book, &r, NULL, NULL), GK_INVALID_ARGUMENT);
  assert_int_equal(gk_quoted_instruments_validate(q, 2, NULL), GK_OK);
  assert_string_equal(gk_hedge_target_name(GK_HEDGE_DELTA_GAMMA), "delta_gamma");
  assert_string_equal(gk_hedge_target_name(0), "unknown");
  gk_book_free(book);
}

/* ---- (6) already at the target --------------------------------------------------------------- */

static void test_a_neutral_book_needs_no_legs(void **state) {
  (void)state;
  gk_book *book = desk();
  int64_t units = llround(-book_reference().delta);
  trade(book, "T3", underlying("AAPL"), units); /* |delta| <= 0.5 now */
  gk_quoted_instrument q[] = {
      quote(underlying("AAPL"), 99.9, 100.1, 0),
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 110, T0 + YEAR, 100), 5, 5.2, 0)};
  gk_hedge_request r = request(GK_HEDGE_DELTA, q, 2);
  gk_hedge_proposal p = hedge(book, &r);
  assert_true(fabs(p.before.delta) <= 0.5);
  assert_int_equal(p.leg_count, 0);
  assert_true(p.cost == 0 && p.premium == 0);
  assert_memory_equal(&p.after, &p.before, sizeof p.before);

  gk_book *empty = gk_book_new(); /* no AAPL position at all: every Greek is 0 */
  gk_event e;
  assert_int_equal(gk_book_decide_open(empty, "desk", "", "USD", &e, NULL), GK_OK);
  commit(empty, &e);
  set_market(empty, "AAPL", SPOT);
  r = request(GK_HEDGE_DELTA_GAMMA, q, 2);
  p = hedge(empty, &r);
  assert_int_equal(p.leg_count, 0);
  assert_int_equal(p.before.positions, 0);
  assert_true(p.after.delta == 0 && p.after.gamma == 0);
  gk_book_free(empty);
  gk_book_free(book);
}

/* A book without gamma (the underlying alone) meets delta-gamma with one leg in
 * the underlying: a basis smaller than the constraints. */
static void test_a_gammaless_book_hedges_delta_gamma_with_the_underlying_alone(void **state) {
  (void)state;
  gk_book *book = aapl_desk();
  trade(book, "T1", underlying("AAPL"), 300);
  gk_quoted_instrument q[] = {
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 100, T0 + YEAR, 100), 10.5, 10.6, 0),
      quote(underlying("AAPL"), 99.9, 100.1, 0)};
  gk_hedge_request r = request(GK_HEDGE_DELTA_GAMMA, q, 2);
  gk_hedge_proposal p = hedge(book, &r);
  assert_true(p.before.delta == 300 && p.before.gamma == 0);
  assert_int_equal(p.leg_count, 1);
  assert_true(gk_instrument_equal(&p.legs[0].instrument, &q[1].instrument));
  assert_int_equal(p.legs[0].quantity, -300);
  assert_true(p.legs[0].price == 99.9);
  assert_true(p.after.delta == 0 && p.after.gamma == 0);
  assert_int_equal(p.after.positions, 0); /* the sale closes the position */
  gk_book_free(book);
}

/* A book without gamma (vega), asked to be delta-gamma (delta-vega) neutral on
 * calls alone: any whole-contract trade that takes its delta off adds gamma,
 * a larger share of it than the book has (none), so the proposal has no legs,
 * as for a book with a little gamma. It was sold -4 and +6 calls, gamma 0 to
 * 3.05 (found in review). With the underlying offered, the underlying alone
 * (the test above). */
static void test_a_gammaless_book_is_not_sold_gamma(void **state) {
  (void)state;
  gk_quoted_instrument q[] = {
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 100, T0 + YEAR / 12, 100), 2.0, 2.2, 0),
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 105, T0 + YEAR / 12, 100), 1.0, 1.2, 0)};
  const gk_hedge_target targets[] = {GK_HEDGE_DELTA_GAMMA, GK_HEDGE_DELTA_VEGA};
  for (int t = 0; t < 2; t++) {
    gk_book *book = aapl_desk();
    trade(book, "T1", underlying("AAPL"), 100);
    gk_hedge_request r = request(targets[t], q, 2);
    gk_hedge_proposal p = hedge(book, &r);
    assert_true(p.before.delta == 100 && p.before.gamma == 0 && p.before.vega == 0);
    if (p.leg_count != 0)
      fail_msg("target %d: %zu legs, gamma %g vega %g after none", t, p.leg_count, p.after.gamma, p.after.vega);
    assert_true(p.after.delta == 100 && p.after.gamma == 0 && p.after.vega == 0);
    gk_book_free(book);
  }
}

/* The same on the delta row: a straddle whose delta is exactly 0 (r = 0, q =
 * sigma^2 / 2: d1 = 0), asked for delta-gamma (delta-vega) neutral on calls
 * alone, was sold +22 and -53 calls that left it 30 delta (one with -3e-4 got
 * no legs: found in review). Now no legs either. With the underlying offered
 * delta within half a unit is met, so the flat
 * straddle and one 0.003 or 0.03 from flat are all hedged (those two kept all
 * their gamma, judged by share: found in review). */
static void test_a_deltaless_book_is_not_sold_delta(void **state) {
  (void)state;
  for (int y = 0; y < 3; y++) {
    const double yields[] = {0.03125, 0.031251, 0.03126};
    gk_book *book = gk_book_new();
    gk_event e;
    assert_int_equal(gk_book_decide_open(book, "desk", "", "USD", &e, NULL), GK_OK);
    commit(book, &e);
    gk_market_quote m = {.underlying = "AAPL", .spot = 100, .rate = 0, .yield = yields[y], .vol = 0.25,
                         .market_time_us = T0};
    assert_int_equal(gk_book_decide_market(book, &m, &e, NULL), GK_OK);
    commit(book, &e);
    trade(book, "T1", option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 100, T0 + YEAR, 100), 10);
    trade(book, "T2", option("AAPL", GK_PUT, GK_STYLE_EUROPEAN, 100, T0 + YEAR, 100), 10);
    gk_quoted_instrument with[] = {
        quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 90, T0 + YEAR / 2, 100), 12.0, 12.2, 0),
        quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 110, T0 + YEAR / 2, 100), 3.0, 3.1, 0),
        quote(underlying("AAPL"), 99.9, 100.1, 0)};
    gk_hedge_request r = request(GK_HEDGE_DELTA_GAMMA, with, 3);
    gk_hedge_proposal p = hedge(book, &r);
    assert_true(fabs(p.before.delta) < 0.05 && p.before.gamma > 30);
    if (!(p.leg_count > 0 && fabs(p.after.delta) <= 0.5 && fabs(p.after.gamma) < 0.05 * p.before.gamma))
      fail_msg("yield %g: %zu legs, delta %g -> %g, gamma %g -> %g", yields[y], p.leg_count, p.before.delta,
               p.after.delta, p.before.gamma, p.after.gamma);
    gk_book_free(book);
  }
  {
    /* A delta target on a book half a share from flat (a 200 call), the
     * underlying and a wide put offered: the unit (0.1), not the put (250
     * of spread to move 0.15 of a share, which the share rule chose: found
     * in review). */
    gk_book *book = aapl_desk();
    trade(book, "T1", option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 200, T0 + YEAR, 100), 1);
    gk_quoted_instrument wide[] = {
        quote(option("AAPL", GK_PUT, GK_STYLE_EUROPEAN, 58, T0 + YEAR, 100), 0.05, 5.05, 0),
        quote(underlying("AAPL"), 99.9, 100.1, 0)};
    gk_hedge_request r = request(GK_HEDGE_DELTA, wide, 2);
    gk_hedge_proposal p = hedge(book, &r);
    assert_true(p.before.delta > 0.5 && p.before.delta < 0.75);
    if (!(p.leg_count == 1 && p.legs[0].instrument.kind == GK_KIND_UNDERLYING && p.cost < 1))
      fail_msg("delta %g: %zu legs, cost %g, after %g", p.before.delta, p.leg_count, p.cost, p.after.delta);
    gk_book_free(book);
  }
  {
    /* Exactly half a unit from flat: no legs (round(-0.5) sold a unit to
     * leave -0.5 for a spread: found in review). A deep call at a strike of
     * 1 and a multiplier of 0.5 on no yield has delta 0.5. */
    gk_book *book = gk_book_new();
    gk_event e;
    assert_int_equal(gk_book_decide_open(book, "desk", "", "USD", &e, NULL), GK_OK);
    commit(book, &e);
    gk_market_quote m = {.underlying = "AAPL", .spot = 100, .rate = RATE, .yield = 0, .vol = VOL,
                         .market_time_us = T0};
    assert_int_equal(gk_book_decide_market(book, &m, &e, NULL), GK_OK);
    commit(book, &e);
    trade(book, "T1", option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 1, T0 + YEAR, 0.5), 1);
    gk_quoted_instrument units[] = {quote(underlying("AAPL"), 99.9, 100.1, 0)};
    gk_hedge_request r = request(GK_HEDGE_DELTA, units, 1);
    gk_hedge_proposal p = hedge(book, &r);
    assert_true(p.before.delta == 0.5);
    if (p.leg_count != 0) fail_msg("%zu legs for a delta of 0.5: after %g", p.leg_count, p.after.delta);
    gk_book_free(book);
  }
  gk_quoted_instrument q[] = {
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 90, T0 + YEAR / 2, 100), 12.0, 12.2, 0),
      quote(option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 110, T0 + YEAR / 2, 100), 3.0, 3.1, 0),
      quote(underlying("AAPL"), 99.9, 100.1, 0)};
  const gk_hedge_target targets[] = {GK_HEDGE_DELTA_GAMMA, GK_HEDGE_DELTA_VEGA};
  for (int t = 0; t < 2; t++)
    for (int with_underlying = 0; with_underlying < 2; with_underlying++) {
      gk_book *book = gk_book_new();
      gk_event e;
      assert_int_equal(gk_book_decide_open(book, "desk", "", "USD", &e, NULL), GK_OK);
      commit(book, &e);
      gk_market_quote m = {.underlying = "AAPL", .spot = 100, .rate = 0, .yield = 0.03125, .vol = 0.25,
                           .market_time_us = T0};
      assert_int_equal(gk_book_decide_market(book, &m, &e, NULL), GK_OK);
      commit(book, &e);
      trade(book, "T1", option("AAPL", GK_CALL, GK_STYLE_EUROPEAN, 100, T0 + YEAR, 100), 10);
      trade(book, "T2", option("AAPL", GK_PUT, GK_STYLE_EUROPEAN, 100, T0 + YEAR, 100), 10);
      gk_hedge_request r = request(targets[t], q, with_underlying ? 3 : 2);
      gk_hedge_proposal p = hedge(book, &r);
      assert_true(p.before.delta == 0);
      if (with_underlying) {
        assert_true(p.leg_count > 0 && fabs(p.after.delta) <= 0.5);
      } else if (p.leg_count != 0) {
        fail_msg("target %d: %zu legs leave delta %g of none", t, p.leg_count, p.after.delta);
      }
      gk_book_free(book);
    }
}

/* ---- (7) an American put as the hedge -------------------------------------------------------- */

/* The American kernel's delta and gamma by central differences of its price
 * (bumps of 0.5%: the tree's price is not smooth on a finer scale). */
static greeks american_put_reference(gk_american_method method, double strike, double t) {
  double h = 0.5, s[3] = {SPOT - h, SPOT, SPOT + h}, k[3] = {strike, strike, strike};
  double tt[3] = {t, t, t}, r[3] = {RATE, RATE, RATE}, y[3] = {YIELD, YIELD, YIELD};
  double v[3] = {VOL, VOL, VOL}, price[3];
  uint8_t type[3] = {GK_PUT, GK_PUT, GK_PUT}, error[3];
  gk_option_batch in = {3, s, k, tt, r, y, v, type};
  gk_greeks_batch out = {.price = price, .error = error};
  assert_int_equal(gk_american_price_batch(GK_MODEL_BSM, method, &in, GK_OUT_PRICE, &out, NULL),
                   GK_RC_OK);
  return (greeks){(price[2] - price[0]) / (2 * h) * 100,
                  (price[2] - 2 * price[1] + price[0]) / (h * h) * 100, 0};
}

static void test_an_american_put_hedges_with_its_own_greeks(void **state) {
  (void)state;
  gk_book *book = desk();
  gk_instrument put = option("AAPL", GK_PUT, GK_STYLE_AMERICAN, 100, T0 + YEAR / 2, 100);
  for (int method = 0; method < GK_AMERICAN_METHOD_COUNT; method++) {
    gk_quoted_instrument alone[] = {quote(put, 6.0, 6.2, 0)};
    gk_hedge_request r = request(GK_HEDGE_DELTA, alone, 1);
    r.american_method = (gk_american_method)method;
    gk_hedge_proposal p = hedge(book, &r);
    greeks ref = american_put_reference(r.american_method, 100, 0.5);
    greeks european = reference(&put, VOL);
    assert_true(ref.delta < 0 && ref.delta > -100);     /* per contract, x100 */
    assert_true(ref.delta <= european.delta + 0.5);     /* early exercise: at least as short */
    assert_int_equal(p.leg_count, 1);
    const gk_leg *leg = leg_of(&p, &put);
    assert_non_null(leg);
    assert_true(leg->quantity < 0); /* short calls, short puts: the delta offsets */
    assert_true(leg->price == 6.0);  /* a sale receives the bid */
    assert_true(close_enough(p.premium, (double)leg->quantity * 6.0 * 100, 1e-12, 0));
    assert_true(close_enough(p.cost, fabs((double)leg->quantity) * 0.1 * 100, 1e-12, 0));
    assert_true(fabs((double)leg->quantity - (-p.before.delta / ref.delta)) <= 0.5 + 0.01);
    double per = (p.after.delta - p.before.delta) / (double)leg->quantity;
    assert_true(isfinite(per) && per > -100 && per < 0);
    assert_true(close_enough(per, ref.delta, 1e-3, 1e-3));

    gk_quoted_instrument both[] = {quote(underlying("AAPL"), 99.95, 100.05, 0), alone[0]};
    r = request(GK_HEDGE_DELTA_GAMMA, both, 2);
    r.american_method = (gk_american_method)method;
    p = hedge(book, &r);
    leg = leg_of(&p, &put);
    assert_non_null(leg);
    assert_true(leg->quantity > 0); /* buy puts for the gamma the short calls sold */
    double gamma = (p.after.gamma - p.before.gamma) / (double)leg->quantity;
    assert_true(close_enough(gamma, ref.gamma, 0.03, 0));
    assert_int_equal(leg->quantity, llround(-p.before.gamma / gamma));
    assert_true(fabs(p.after.delta) <= 0.5 + 1e-9);
    assert_true(fabs(p.after.gamma) <= 0.5 * gamma + 1e-9);
    assert_true(isfinite(p.after.vega) && isfinite(p.after.theta) && isfinite(p.premium));
  }
  gk_book_free(book);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_delta_hedge_buys_the_rounded_book_delta_in_the_underlying),
      cmocka_unit_test(test_units_past_the_quantity_bound_do_not_win),
      cmocka_unit_test(test_a_hedge_never_takes_a_position_past_the_books_bound),
      cmocka_unit_test(test_a_leg_past_the_cash_bound_does_not_win),
      cmocka_unit_test(test_a_delta_hedge_takes_a_cheaper_option_over_the_underlying),
      cmocka_unit_test(test_a_delta_hedge_is_judged_by_what_it_trades),
      cmocka_unit_test(test_delta_gamma_hedge_is_the_cheapest_basis_rounded),
      cmocka_unit_test(test_the_cheaper_of_two_equivalent_options_is_chosen),
      cmocka_unit_test(test_a_vertex_rounded_to_nothing_loses_to_one_that_hedges),
      cmocka_unit_test(test_whole_contracts_never_leave_more_than_the_book_has),
      cmocka_unit_test(test_a_full_chain_hedge_is_the_cheapest_basis),
      cmocka_unit_test(test_delta_vega_hedge_is_the_cheapest_basis_rounded),
      cmocka_unit_test(test_unreachable_targets_fail_naming_what_is_missing),
      cmocka_unit_test(test_bad_requests_fail_naming_the_field),
      cmocka_unit_test(test_a_neutral_book_needs_no_legs),
      cmocka_unit_test(test_a_gammaless_book_hedges_delta_gamma_with_the_underlying_alone),
      cmocka_unit_test(test_a_gammaless_book_is_not_sold_gamma),
      cmocka_unit_test(test_a_deltaless_book_is_not_sold_delta),
      cmocka_unit_test(test_an_american_put_hedges_with_its_own_greeks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
