/*
 * Model properties over many random inputs, independent of any stored value:
 * put-call parity, no-arbitrage bounds, monotonicity in S, K and sigma, and every
 * Greek against a central finite difference of the price (Richardson-extrapolated
 * so the truncation error is far below the tolerance).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "support/test_support.h"

#define RANDOM_COUNT 20000
#define FD_COUNT 3000

static const gk_model models[] = {GK_MODEL_BSM, GK_MODEL_BLACK76, GK_MODEL_GK};

typedef struct option {
  double S, K, T, r, q, sigma;
  uint8_t type;
} option;

typedef struct priced {
  double price, delta, gamma, vega, theta, rho, phi;
  double vanna, volga, charm, veta, speed, zomma, color, dual_delta, dual_gamma;
} priced;

static priced price_one(gk_model model, option o) {
  owned_batch b = owned_batch_make(1);
  b.spot[0] = o.S, b.strike[0] = o.K, b.expiry[0] = o.T, b.rate[0] = o.r;
  b.yield[0] = o.q, b.vol[0] = o.sigma, b.type[0] = o.type;
  owned_batch_price(&b, model);
  assert_int_equal(b.error[0], GK_ELEMENT_OK);
  priced p = {b.price[0], b.delta[0], b.gamma[0], b.vega[0], b.theta[0], b.rho[0], b.phi[0],
              b.vanna[0], b.volga[0], b.charm[0], b.veta[0], b.speed[0], b.zomma[0],
              b.color[0], b.dual_delta[0], b.dual_gamma[0]};
  owned_batch_free(&b);
  return p;
}

static void test_put_call_parity_and_bounds(void **state) {
  (void)state;
  test_rng rng = {42};
  for (size_t m = 0; m < 3; m++) {
    owned_batch calls = owned_batch_make(RANDOM_COUNT), puts = owned_batch_make(RANDOM_COUNT);
    for (size_t i = 0; i < RANDOM_COUNT; i++) {
      fill_random_option(&calls, i, &rng);
      puts.spot[i] = calls.spot[i], puts.strike[i] = calls.strike[i];
      puts.expiry[i] = calls.expiry[i], puts.rate[i] = calls.rate[i];
      puts.yield[i] = calls.yield[i], puts.vol[i] = calls.vol[i];
      calls.type[i] = GK_CALL, puts.type[i] = GK_PUT;
    }
    owned_batch_price(&calls, models[m]);
    owned_batch_price(&puts, models[m]);
    for (size_t i = 0; i < RANDOM_COUNT; i++) {
      double S = calls.spot[i], K = calls.strike[i], T = calls.expiry[i], r = calls.rate[i];
      double q = models[m] == GK_MODEL_BLACK76 ? r : calls.yield[i];
      double A = S * exp(-q * T), B = K * exp(-r * T);
      double tol = 1e-13 * (A + B);
      /* C - P = S e^{-qT} - K e^{-rT}; delta_C - delta_P = e^{-qT}. */
      assert_true(close_enough(calls.price[i] - puts.price[i], A - B, 0.0, tol));
      assert_true(close_enough(calls.delta[i] - puts.delta[i], exp(-q * T), 0.0, 1e-14));
      assert_true(close_enough(calls.gamma[i], puts.gamma[i], 1e-13, 1e-300));
      assert_true(close_enough(calls.vega[i], puts.vega[i], 1e-13, 1e-300));
      /* max(0, forward intrinsic) <= C <= A and max(0, -(A - B)) <= P <= B. */
      /* The kernel's A and B may differ from these by an ulp (SLEEF vs libm). */
      double ulps = 1e-15 * (A + B);
      assert_true(calls.price[i] >= 0.0 && puts.price[i] >= 0.0);
      assert_true(calls.price[i] >= A - B - ulps && calls.price[i] <= A + ulps);
      assert_true(puts.price[i] >= B - A - ulps && puts.price[i] <= B + ulps);
      assert_true(calls.gamma[i] >= 0.0 && calls.vega[i] >= 0.0);
    }
    owned_batch_free(&calls);
    owned_batch_free(&puts);
  }
}

/* A move of `bump` in one input must move the price in the stated direction
 * (allowing rounding of 1e-15 of the spot). */
static void test_monotonicity(void **state) {
  (void)state;
  test_rng rng = {7};
  owned_batch b = owned_batch_make(1);
  for (size_t n = 0; n < RANDOM_COUNT / 4; n++) {
    fill_random_option(&b, 0, &rng);
    option o = {b.spot[0], b.strike[0], b.expiry[0], b.rate[0], b.yield[0], b.vol[0], b.type[0]};
    double omega = o.type == GK_PUT ? -1.0 : 1.0, slack = 1e-15 * o.S;
    for (size_t m = 0; m < 3; m++) {
      double base = price_one(models[m], o).price;
      option up_s = o, up_k = o, up_vol = o;
      up_s.S *= 1.001, up_k.K *= 1.001, up_vol.sigma *= 1.01;
      double ds = price_one(models[m], up_s).price - base;
      double dk = price_one(models[m], up_k).price - base;
      double dv = price_one(models[m], up_vol).price - base;
      assert_true(omega * ds >= -slack); /* calls rise with S, puts fall */
      assert_true(omega * dk <= slack);  /* calls fall with K, puts rise */
      assert_true(dv >= -slack);         /* both rise with sigma */
    }
  }
  owned_batch_free(&b);
}

typedef double (*bumped_price)(gk_model model, option o, double h);

static double price_bump_spot(gk_model m, option o, double h) { o.S += h; return price_one(m, o).price; }
static double price_bump_vol(gk_model m, option o, double h) { o.sigma += h; return price_one(m, o).price; }
static double price_bump_expiry(gk_model m, option o, double h) { o.T += h; return price_one(m, o).price; }
static double price_bump_rate(gk_model m, option o, double h) { o.r += h; return price_one(m, o).price; }
static double price_bump_yield(gk_model m, option o, double h) { o.q += h; return price_one(m, o).price; }
static double delta_bump_spot(gk_model m, option o, double h) { o.S += h; return price_one(m, o).delta; }

/* Central difference with Richardson extrapolation: error O(h^4). */
static double derivative(bumped_price f, gk_model m, option o, double h) {
  double wide = (f(m, o, h) - f(m, o, -h)) / (2 * h);
  double narrow = (f(m, o, h / 2) - f(m, o, -h / 2)) / h;
  return (4 * narrow - wide) / 3;
}

/* Gamma from the price alone: second central difference, Richardson-extrapolated. */
static double second_derivative_in_spot(gk_model m, option o, double h) {
  double mid = price_one(m, o).price;
  double wide = (price_bump_spot(m, o, h) - 2 * mid + price_bump_spot(m, o, -h)) / (h * h);
  double narrow = (price_bump_spot(m, o, h / 2) - 2 * mid + price_bump_spot(m, o, -h / 2)) /
                  (h * h / 4);
  return (4 * narrow - wide) / 3;
}

static void expect_greek(const char *name, double analytic, double numeric, double rel,
                         double abs, option o) {
  if (!close_enough(analytic, numeric, rel, abs))
    fail_msg("%s: analytic %.15g vs finite difference %.15g (S=%g K=%g T=%g r=%g q=%g "
             "sigma=%g %s)", name, analytic, numeric, o.S, o.K, o.T, o.r, o.q, o.sigma,
             o.type == GK_PUT ? "put" : "call");
}

/* A random option in the domain where finite differences are well conditioned:
 * moderate moneyness, T >= 0.1, sigma >= 0.15. */
static option random_fd_option(test_rng *rng) {
  option o;
  o.S = rng_uniform(rng, 50, 200);
  o.K = o.S * rng_log_uniform(rng, 0.7, 1.4);
  o.T = rng_uniform(rng, 0.1, 3.0);
  o.r = rng_uniform(rng, -0.02, 0.08);
  o.q = rng_uniform(rng, 0.0, 0.06);
  o.sigma = rng_uniform(rng, 0.15, 0.8);
  o.type = (uint8_t)(rng_next(rng) & 1u);
  return o;
}

static void test_greeks_match_finite_differences(void **state) {
  (void)state;
  test_rng rng = {2026};
  for (size_t n = 0; n < FD_COUNT; n++) {
    option o = random_fd_option(&rng);
    gk_model m = models[n % 3];
    priced p = price_one(m, o);
    double s = o.sigma * sqrt(o.T);
    /* Bumps: a small fraction of one standard deviation (spot), of the input
     * itself (sigma, T) or a basis point (rates). */
    double hs = 0.01 * o.S * s;
    expect_greek("delta", p.delta, derivative(price_bump_spot, m, o, hs), 1e-7, 1e-10, o);
    expect_greek("gamma", p.gamma, second_derivative_in_spot(m, o, 2 * hs), 1e-5, 1e-9 / o.S, o);
    expect_greek("gamma(delta)", p.gamma, derivative(delta_bump_spot, m, o, hs), 1e-7, 1e-11 / o.S, o);
    expect_greek("vega", p.vega, derivative(price_bump_vol, m, o, 0.01 * o.sigma), 1e-7, 1e-10 * o.S, o);
    expect_greek("theta", p.theta, -derivative(price_bump_expiry, m, o, 0.01 * o.T), 1e-7, 1e-10 * o.S, o);
    expect_greek("rho", p.rho, derivative(price_bump_rate, m, o, 1e-4), 1e-7, 1e-10 * o.S, o);
    if (m == GK_MODEL_BLACK76) assert_true(p.phi == 0.0);
    else expect_greek("phi", p.phi, derivative(price_bump_yield, m, o, 1e-4), 1e-7, 1e-10 * o.S, o);
  }
}

/* First-order Greeks as functions of one bumped input, for the second-order tests. */
static double delta_bump_vol(gk_model m, option o, double h) { o.sigma += h; return price_one(m, o).delta; }
static double vega_bump_vol(gk_model m, option o, double h) { o.sigma += h; return price_one(m, o).vega; }
static double vega_bump_spot(gk_model m, option o, double h) { o.S += h; return price_one(m, o).vega; }
static double delta_bump_expiry(gk_model m, option o, double h) { o.T += h; return price_one(m, o).delta; }
static double vega_bump_expiry(gk_model m, option o, double h) { o.T += h; return price_one(m, o).vega; }
static double gamma_bump_spot(gk_model m, option o, double h) { o.S += h; return price_one(m, o).gamma; }
static double gamma_bump_vol(gk_model m, option o, double h) { o.sigma += h; return price_one(m, o).gamma; }
static double gamma_bump_expiry(gk_model m, option o, double h) { o.T += h; return price_one(m, o).gamma; }
static double price_bump_strike(gk_model m, option o, double h) { o.K += h; return price_one(m, o).price; }
static double dual_delta_bump_strike(gk_model m, option o, double h) { o.K += h; return price_one(m, o).dual_delta; }

static void test_second_order_greeks_match_finite_differences(void **state) {
  (void)state;
  test_rng rng = {909};
  for (size_t n = 0; n < FD_COUNT / 2; n++) {
    option o = random_fd_option(&rng);
    gk_model m = models[n % 3];
    priced p = price_one(m, o);
    double s = o.sigma * sqrt(o.T);
    /* Steps shrink in the tails, where the density changes fast with every input
     * (d1 of 5 moves n(d1) by 30% over 1% of sigma). */
    double q0 = m == GK_MODEL_BLACK76 ? o.r : o.q;
    double tail = 1 + fabs((log(o.S / o.K) + (o.r - q0 + 0.5 * o.sigma * o.sigma) * o.T) / s);
    double hs = 0.01 * o.S * s / tail, hv = 0.01 * o.sigma / tail, ht = 0.01 * o.T / (tail * tail);
    double hk = 0.01 * o.K * s / tail;
    /* Each formula sums terms that may cancel; the tolerance is 1e-6 of the size of
     * those terms (computed here independently), not of the possibly tiny result. */
    double q = m == GK_MODEL_BLACK76 ? o.r : o.q, b = o.r - q, carry = exp(-q * o.T), D = exp(-o.r * o.T);
    double d1 = (log(o.S / o.K) + (b + 0.5 * o.sigma * o.sigma) * o.T) / s, d2 = d1 - s;
    double n1 = exp(-0.5 * d1 * d1) / sqrt(2 * 3.14159265358979323846), n2 = exp(-0.5 * d2 * d2) / sqrt(2 * 3.14159265358979323846);
    double vega = o.S * carry * n1 * sqrt(o.T), gamma = carry * n1 / (o.S * s), dd = fabs(d1 * d2);
    double tol = 1e-6;
    expect_greek("vanna (d delta/d vol)", p.vanna, derivative(delta_bump_vol, m, o, hv), 0, tol * carry * n1 * (fabs(d2) + 1) / o.sigma + 1e-14, o);
    expect_greek("vanna (d vega/d S)", p.vanna, derivative(vega_bump_spot, m, o, hs), 0, tol * carry * n1 * (fabs(d2) + 1) / o.sigma + 1e-14, o);
    expect_greek("volga", p.volga, derivative(vega_bump_vol, m, o, hv), 0, tol * vega * (dd + 1) / o.sigma + 1e-14, o);
    expect_greek("charm", p.charm, -derivative(delta_bump_expiry, m, o, ht), 0,
                 tol * carry * (fabs(b - o.r) + n1 * (fabs(b) / s + (fabs(d2) + 1) / (2 * o.T))) + 1e-14, o);
    expect_greek("veta", p.veta, -derivative(vega_bump_expiry, m, o, ht), 0,
                 tol * vega * (fabs(b - o.r) + fabs(b * d1) / s + (1 + dd) / (2 * o.T)) + 1e-14, o);
    expect_greek("speed", p.speed, derivative(gamma_bump_spot, m, o, hs), 0, tol * gamma * (1 + fabs(d1) / s) / o.S + 1e-16, o);
    expect_greek("zomma", p.zomma, derivative(gamma_bump_vol, m, o, hv), 0, tol * gamma * (dd + 1) / o.sigma + 1e-16, o);
    expect_greek("color", p.color, -derivative(gamma_bump_expiry, m, o, ht), 0,
                 tol * gamma * (fabs(b - o.r) + fabs(b * d1) / s + (dd + 1) / (2 * o.T)) + 1e-16, o);
    expect_greek("dual delta", p.dual_delta, derivative(price_bump_strike, m, o, hk), 0, 1e-8 * D + 1e-14, o);
    expect_greek("dual gamma", p.dual_gamma, derivative(dual_delta_bump_strike, m, o, hk), 0, tol * D * n2 / (o.K * s) + 1e-16, o);
  }
}

static void test_second_order_symmetries(void **state) {
  (void)state;
  test_rng rng = {31};
  owned_batch b = owned_batch_make(1);
  for (size_t n = 0; n < 2000; n++) {
    fill_random_option(&b, 0, &rng);
    option call = {b.spot[0], b.strike[0], b.expiry[0], b.rate[0], b.yield[0], b.vol[0], GK_CALL};
    option put = call;
    put.type = GK_PUT;
    for (size_t m = 0; m < 3; m++) {
      priced c = price_one(models[m], call), p = price_one(models[m], put);
      /* Call and put share every Greek built on the density; dual deltas differ by e^{-rT}. */
      assert_true(close_enough(c.vanna, p.vanna, 1e-12, 1e-300) && close_enough(c.volga, p.volga, 1e-12, 1e-300));
      assert_true(close_enough(c.speed, p.speed, 1e-12, 1e-300) && close_enough(c.zomma, p.zomma, 1e-12, 1e-300));
      assert_true(close_enough(c.dual_gamma, p.dual_gamma, 1e-12, 1e-300));
      assert_true(close_enough(c.dual_delta - p.dual_delta, -exp(-call.r * call.T), 0, 1e-14));
      /* Homogeneity: S delta + K dual delta = price (the price is degree-1 homogeneous in S, K). */
      assert_true(close_enough(call.S * c.delta + call.K * c.dual_delta, c.price, 0, 1e-13 * (call.S + call.K)));
    }
  }
  owned_batch_free(&b);
}

int main(void) {
  skip_unless_active_isa_runs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_put_call_parity_and_bounds),
      cmocka_unit_test(test_monotonicity),
      cmocka_unit_test(test_greeks_match_finite_differences),
      cmocka_unit_test(test_second_order_greeks_match_finite_differences),
      cmocka_unit_test(test_second_order_symmetries),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
