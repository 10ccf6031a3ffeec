/*
 * American options, the vector body shared by every vector ISA: Bjerksund-
 * Stensland 2002 formula by formula as in kernels/scalar/american_scalar.c, and
 * its Greeks by the same bumps (kernels/src/american.c); ALO's in
 * american_alo_vector.h. The tree is inherently sequential per option and runs
 * the scalar reference on every ISA.
 *
 * Included once per ISA translation unit after that ISA's simd_*.h. BS2002 always
 * uses the correlations +-sqrt((sqrt 5 - 1)/2), below Genz's 0.925 threshold, so
 * the vector bivariate CDF is his 20-point asin-form rule with the sines
 * precomputed once per call. Lanes the vector path does not price (invalid,
 * expired, sigma sqrt(T) below GK_AMERICAN_TINY_STDDEV, or a non-finite vector
 * result) go to the scalar reference element by element; lanes with two
 * exercise boundaries (gk_american_routed_to_tree) to the tree, before the
 * vector pass (alo's in alo_vector_kernel).
 */
#ifndef GREEKS_AMERICAN_VECTOR_H
#define GREEKS_AMERICAN_VECTOR_H

#include <float.h>
#include <math.h>

#include "american_internal.h"

#define AV_NODES 20
#define AV_SQRT5_MINUS_1_HALF 0.61803398874989484820
#define AV_LOG_SQRT_2PI 0.91893853320467274178

/* Genz's moderate-correlation rule for one correlation: sin(asin(r)(1 + x_i)/2)
 * at the 20 Gauss-Legendre nodes, 1/(1 - sin^2), the weights, asin(r)/(4 pi). */
typedef struct bvn_rule {
  double sn[AV_NODES], inv[AV_NODES], w[AV_NODES], scale;
} bvn_rule;

static void bvn_rule_init(bvn_rule *rule, double r) {
  static const double x[10] = {-0.99312859918509492, -0.96397192727791379, -0.91223442825132591,
                               -0.83911697182221882, -0.74633190646015079, -0.63605368072651503,
                               -0.5108670019508271,  -0.37370608871541956, -0.22778585114164508,
                               -0.076526521133497334};
  static const double w[10] = {0.017614007139152118, 0.040601429800386941, 0.062672048334109064,
                               0.083276741576704749, 0.10193011981724044,  0.11819453196151842,
                               0.13168863844917663,  0.14209610931838205,  0.14917298647260375,
                               0.15275338713072585};
  double asr = asin(r);
  for (int i = 0; i < 10; i++)
    for (int side = 0; side < 2; side++) {
      int k = 2 * i + side;
      double sn = sin(asr * ((side ? 1.0 : -1.0) * x[i] + 1.0) * 0.5);
      rule->sn[k] = sn, rule->inv[k] = 1.0 / (1.0 - sn * sn), rule->w[k] = w[i];
    }
  rule->scale = asr / (4.0 * 3.14159265358979323846);
}

typedef struct bs2002_rules {
  bvn_rule plus, minus; /* rho and -rho */
} bs2002_rules;

static inline vdouble av_ncdf(vdouble x) {
  return v_mul(v_set1(0.5), v_erfc(v_mul(x, v_set1(-GK_INV_SQRT_2))));
}

/* log N(x): the Mills series below -30 as in the scalar reference. */
static inline vdouble av_log_ncdf(vdouble x) {
  vdouble direct = v_log(av_ncdf(v_max(x, v_set1(-30.0))));
  vdouble z = v_div(v_set1(1.0), v_mul(x, x));
  vdouble series = v_fma(z, v_set1(105.0), v_set1(-15.0));
  series = v_fma(z, series, v_set1(3.0));
  series = v_fma(z, series, v_set1(-1.0));
  series = v_fma(z, series, v_set1(1.0));
  vdouble tail = v_sub(v_sub(v_mul(v_set1(-0.5), v_mul(x, x)), v_log(v_abs(x))),
                       v_sub(v_set1(AV_LOG_SQRT_2PI), v_log(series)));
  return v_select(v_gt(x, v_set1(-30.0)), direct, tail);
}

/* exp(log_scale) M(a, b; rule's rho), 0 where M is 0. */
static inline vdouble av_scaled_bvn(vdouble log_scale, vdouble a, vdouble b, const bvn_rule *rule) {
  vdouble hk = v_mul(a, b), hs = v_mul(v_set1(0.5), v_fma(a, a, v_mul(b, b))), sum = v_set1(0.0);
  for (int k = 0; k < AV_NODES; k++) {
    vdouble e = v_mul(v_fma(v_set1(rule->sn[k]), hk, v_sub(v_set1(0.0), hs)), v_set1(rule->inv[k]));
    sum = v_fma(v_set1(rule->w[k]), v_exp(e), sum);
  }
  vdouble m = v_fma(sum, v_set1(rule->scale), v_mul(av_ncdf(a), av_ncdf(b)));
  m = v_min(v_max(m, v_set1(0.0)), v_set1(1.0));
  vmask positive = v_gt(m, v_set1(0.0));
  vdouble safe = v_select(positive, m, v_set1(1.0));
  return v_select(positive, v_exp(v_add(log_scale, v_log(safe))), v_set1(0.0));
}

typedef struct av_model {
  vdouble ls, T, t1, r, b, v, v2, sqrt_t1, sqrt_T; /* ls = log(S / K) */
} av_model;

static inline vdouble av_lambda(const av_model *m, vdouble gamma) {
  vdouble half_gg1 = v_mul(v_mul(v_set1(0.5), gamma), v_sub(gamma, v_set1(1.0)));
  return v_fma(half_gg1, m->v2, v_fma(gamma, m->b, v_sub(v_set1(0.0), m->r)));
}

static inline vdouble av_kappa(const av_model *m, vdouble gamma) {
  return v_add(v_div(v_mul(v_set1(2.0), m->b), m->v2), v_fma(v_set1(2.0), gamma, v_set1(-1.0)));
}

/* phi(S, t1, gamma, H, I) times exp(log_scale); logs of H and I given. */
static inline vdouble av_phi(const av_model *m, vdouble gamma, vdouble lH, vdouble lI, vdouble log_scale) {
  vdouble sd = v_mul(m->v, m->sqrt_t1), mu = v_fma(v_sub(gamma, v_set1(0.5)), m->v2, m->b);
  vdouble d = v_div(v_sub(v_set1(0.0), v_fma(mu, m->t1, v_sub(m->ls, lH))), sd);
  vdouble lr = v_sub(lI, m->ls);
  vdouble base = v_add(log_scale, v_fma(av_lambda(m, gamma), m->t1, v_mul(gamma, m->ls)));
  vdouble d2 = v_sub(d, v_div(v_mul(v_set1(2.0), lr), sd));
  return v_sub(v_exp(v_add(base, av_log_ncdf(d))),
               v_exp(v_add(v_fma(av_kappa(m, gamma), lr, base), av_log_ncdf(d2))));
}

/* psi(S, T, gamma, H, I2, I1, t1) times exp(log_scale). */
static inline vdouble av_psi(const av_model *m, const bs2002_rules *rules, vdouble gamma, vdouble lh,
                             vdouble l2, vdouble l1, vdouble log_scale) {
  vdouble mu = v_fma(v_sub(gamma, v_set1(0.5)), m->v2, m->b), zero = v_set1(0.0);
  vdouble inv1 = v_div(v_set1(1.0), v_mul(m->v, m->sqrt_t1)), invT = v_div(v_set1(1.0), v_mul(m->v, m->sqrt_T));
  vdouble drift1 = v_mul(mu, m->t1), driftT = v_mul(mu, m->T), ls = m->ls;
  vdouble two_l2 = v_add(l2, l2), two_l1 = v_add(l1, l1);
  vdouble a1 = v_sub(ls, l1), a2 = v_sub(v_sub(two_l2, ls), l1);
  vdouble e1 = v_mul(v_add(a1, drift1), inv1), e2 = v_mul(v_add(a2, drift1), inv1);
  vdouble e3 = v_mul(v_sub(a1, drift1), inv1), e4 = v_mul(v_sub(a2, drift1), inv1);
  vdouble f1 = v_mul(v_add(v_sub(ls, lh), driftT), invT);
  vdouble f2 = v_mul(v_add(v_sub(v_sub(two_l2, ls), lh), driftT), invT);
  vdouble f3 = v_mul(v_add(v_sub(v_sub(two_l1, ls), lh), driftT), invT);
  vdouble f4 = v_mul(v_add(v_sub(v_sub(v_add(ls, two_l1), lh), two_l2), driftT), invT);
  vdouble kappa = av_kappa(m, gamma);
  vdouble base = v_add(log_scale, v_fma(av_lambda(m, gamma), m->T, v_mul(gamma, ls)));
  vdouble sum = av_scaled_bvn(base, v_sub(zero, e1), v_sub(zero, f1), &rules->plus);
  sum = v_sub(sum, av_scaled_bvn(v_fma(kappa, v_sub(l2, ls), base), v_sub(zero, e2), v_sub(zero, f2), &rules->plus));
  sum = v_sub(sum, av_scaled_bvn(v_fma(kappa, v_sub(l1, ls), base), v_sub(zero, e3), v_sub(zero, f3), &rules->minus));
  return v_add(sum, av_scaled_bvn(v_fma(kappa, v_sub(l1, l2), base), v_sub(zero, e4), v_sub(zero, f4), &rules->minus));
}

static inline vdouble av_boundary(vdouble B0, vdouble Binf, vdouble b, vdouble v, vdouble t) {
  vdouble h = v_div(v_sub(v_set1(0.0), v_fma(v_set1(2.0), v_mul(v, v_sqrt(t)), v_mul(b, t))),
                    v_mul(v_sub(Binf, B0), B0));
  vdouble one_minus_exp = v_sub(v_set1(1.0), v_exp(v_min(h, v_set1(0.0))));
  return v_fma(v_sub(Binf, B0), one_minus_exp, B0);
}

/* The call on strike 1 at s = e^ls; lanes at or past the boundary I2 get s - 1. */
static inline vdouble av_call_unit_strike(vdouble ls, vdouble T, vdouble r, vdouble b, vdouble sigma,
                                          const bs2002_rules *rules) {
  const vdouble one = v_set1(1.0), zero = v_set1(0.0);
  av_model m;
  m.ls = ls, m.T = T, m.t1 = v_mul(v_set1(AV_SQRT5_MINUS_1_HALF), T), m.r = r, m.b = b;
  m.v = sigma, m.v2 = v_mul(sigma, sigma), m.sqrt_t1 = v_sqrt(m.t1), m.sqrt_T = v_sqrt(T);
  /* beta as the scalar's: the conjugate form where 1/2 - b/v2 < 0, which
   * otherwise cancels to nothing as sigma -> 0 */
  vdouble half_minus = v_sub(v_set1(0.5), v_div(b, m.v2)), c = v_div(v_add(r, r), m.v2);
  vdouble root = v_sqrt(v_fma(half_minus, half_minus, c));
  vdouble beta = v_select(v_ge(half_minus, zero), v_add(half_minus, root), v_div(c, v_sub(root, half_minus)));
  vdouble Binf = v_div(beta, v_sub(beta, one)), B0 = v_max(one, v_div(r, v_sub(r, b)));
  vdouble I1 = av_boundary(B0, Binf, b, sigma, m.t1), I2 = av_boundary(B0, Binf, b, sigma, T);
  vdouble l1 = v_log(I1), l2 = v_log(I2);
  vdouble log_alpha1 = v_sub(v_log(v_sub(I1, one)), v_mul(beta, l1));
  vdouble log_alpha2 = v_sub(v_log(v_sub(I2, one)), v_mul(beta, l2));
  vdouble price = v_sub(v_exp(v_fma(beta, ls, log_alpha2)), av_phi(&m, beta, l2, l2, log_alpha2));
  price = v_add(price, v_sub(av_phi(&m, one, l2, l2, zero), av_phi(&m, one, l1, l2, zero)));
  price = v_add(price, v_sub(av_phi(&m, zero, l1, l2, zero), av_phi(&m, zero, l2, l2, zero)));
  price = v_add(price, v_sub(av_phi(&m, beta, l1, l2, log_alpha1), av_psi(&m, rules, beta, l1, l2, l1, log_alpha1)));
  price = v_add(price, v_sub(av_psi(&m, rules, one, l1, l2, l1, zero), av_psi(&m, rules, one, zero, l2, l1, zero)));
  price = v_add(price, v_sub(av_psi(&m, rules, zero, zero, l2, l1, zero), av_psi(&m, rules, zero, l1, l2, l1, zero)));
  vdouble s = v_exp(ls);
  price = v_select(v_ge(s, I2), v_sub(s, one), price);
  /* The scalar's guard: no boundary above B0 (not for sigma > 0 in exact
   * arithmetic): s - 1 at or past B0, else NaN, which the caller's max with
   * the European and intrinsic values drops. */
  return v_select(v_gt(Binf, B0), price, v_select(v_ge(s, B0), v_sub(s, one), v_set1(NAN)));
}

/* One group of options, every lane priced by BS2002 (sigma sqrt(T) at least
 * GK_AMERICAN_TINY_STDDEV, T > 0). b is the carry. */
typedef struct av_option {
  vdouble S, K, T, r, b, sigma, omega;
} av_option;

static inline vdouble av_european(const av_option *o) {
  vdouble s = v_mul(o->sigma, v_sqrt(o->T)), w = o->omega;
  vdouble A = v_mul(o->S, v_exp(v_mul(v_sub(o->b, o->r), o->T)));
  vdouble B = v_mul(o->K, v_exp(v_mul(v_sub(v_set1(0.0), o->r), o->T)));
  vdouble d1 = v_fma(v_set1(0.5), s, v_div(v_log(v_div(A, B)), s)), d2 = v_sub(d1, s);
  vdouble value = v_mul(w, v_sub(v_mul(A, av_ncdf(v_mul(w, d1))), v_mul(B, av_ncdf(v_mul(w, d2)))));
  vdouble floor_value = v_max(v_mul(w, v_sub(A, B)), v_set1(0.0));
  return v_max(value, floor_value);
}

static vdouble av_bs2002_price(const av_option *o, const bs2002_rules *rules) {
  vmask put = v_lt(o->omega, v_set1(0.0));
  vdouble S = v_select(put, o->K, o->S), K = v_select(put, o->S, o->K);
  vdouble r = v_select(put, v_sub(o->r, o->b), o->r), b = v_select(put, v_sub(v_set1(0.0), o->b), o->b);
  /* gk_american_exercise_of in the call's terms (r, b): its symmetric put has
   * rate r - b and yield r, so never exercised early is b >= r and b >= 0, two
   * boundaries b >= r and b < 0 (the put's q < r <= 0); the formula runs where
   * b < r. */
  vmask no_formula = v_ge(b, r), european = m_and(no_formula, v_ge(b, v_set1(0.0)));
  /* Those lanes run the formula on a harmless carry; their result is replaced. */
  vdouble safe_b = v_select(no_formula, v_sub(r, v_set1(0.05)), b);
  vdouble unit = av_call_unit_strike(v_log(v_div(S, K)), o->T, r, safe_b, o->sigma, rules);
  vdouble eur = av_european(o);
  vdouble intrinsic = v_max(v_mul(o->omega, v_sub(o->S, o->K)), v_set1(0.0));
  vdouble floor_value = v_max(eur, intrinsic);
  /* Two boundaries: the lower bound alone, as gk_bs2002_price. */
  vdouble price = v_select(no_formula, floor_value, v_max(v_mul(K, unit), floor_value));
  return v_select(european, eur, price);
}

/* Lanes whose vector price is not finite, and lanes below the tiny stddev (a
 * bump of sigma may land there, where the scalar takes the deterministic
 * limit and the formula has no meaning): priced again by the scalar
 * reference. */
static vdouble av_repair_lanes(vdouble price, const av_option *o) {
  vmask finite = v_le(v_abs(price), v_set1(DBL_MAX));
  vmask tiny = v_lt(v_mul(o->sigma, v_sqrt(o->T)), v_set1(GK_AMERICAN_TINY_STDDEV));
  unsigned bad = (~m_bits(finite) | m_bits(tiny)) & ((1u << VLANES) - 1u);
  if (!bad) return price;
  double p[VLANES], S[VLANES], K[VLANES], T[VLANES], r[VLANES], b[VLANES], s[VLANES], w[VLANES];
  v_store(p, price, VLANES), v_store(S, o->S, VLANES), v_store(K, o->K, VLANES);
  v_store(T, o->T, VLANES), v_store(r, o->r, VLANES), v_store(b, o->b, VLANES);
  v_store(s, o->sigma, VLANES), v_store(w, o->omega, VLANES);
  for (int k = 0; k < VLANES; k++)
    if (bad >> k & 1u) {
      gk_american_option one = {S[k], K[k], T[k], r[k], b[k], s[k], w[k]};
      p[k] = gk_bs2002_price(&one);
    }
  return v_load(p, VLANES);
}

/* The element's market with r and q apart (as the scalar market_point). */
typedef struct av_market {
  vdouble S, K, T, r, q, sigma, omega;
  int futures;
} av_market;

static inline vdouble av_price_at(const av_market *m, const bs2002_rules *rules) {
  av_option o = {m->S, m->K, m->T, m->r, m->futures ? v_set1(0.0) : v_sub(m->r, m->q), m->sigma, m->omega};
  return av_repair_lanes(av_bs2002_price(&o, rules), &o);
}

/* The scalar slope(): central where x - h >= lower, else second-order forward. */
static inline vdouble av_slope(const av_market *m, vdouble *x, vdouble h, double lower, vdouble price,
                               const bs2002_rules *rules) {
  vdouble x0 = *x;
  vmask central = v_ge(v_sub(x0, h), v_set1(lower));
  *x = v_add(x0, h);
  vdouble up = av_price_at(m, rules);
  *x = v_select(central, v_sub(x0, h), v_add(x0, v_add(h, h)));
  vdouble other = av_price_at(m, rules);
  *x = x0;
  vdouble central_slope = v_div(v_sub(up, other), v_add(h, h));
  vdouble forward_slope = v_div(v_sub(v_fma(v_set1(4.0), up, v_mul(v_set1(-3.0), price)), other), v_add(h, h));
  return v_select(central, central_slope, forward_slope);
}

/* The market of elements [i, i + n) of `in`, one per lane. Lanes past n and
 * lanes the scalar path owns (overwritten later) price a harmless option
 * instead of invalid or limiting inputs. Shared by the bs2002 and alo groups. */
static av_market av_load_group(gk_model model, const gk_option_batch *in, size_t i, size_t n,
                               unsigned scalar_lanes) {
  vmask type_ok;
  av_market m;
  m.futures = model == GK_MODEL_BLACK76;
  m.S = v_load(in->spot + i, n), m.K = v_load(in->strike + i, n), m.T = v_load(in->expiry + i, n);
  m.r = v_load(in->rate + i, n), m.sigma = v_load(in->vol + i, n);
  m.q = m.futures ? m.r : v_load(in->yield + i, n);
  m.omega = v_load_omega(in->type + i, n, &type_ok);
  double flags[VLANES];
  for (size_t k = 0; k < VLANES; k++) flags[k] = k < n && !(scalar_lanes >> k & 1u) ? 1.0 : 0.0;
  vmask live = v_gt(v_load(flags, VLANES), v_set1(0.0));
  m.S = v_select(live, m.S, v_set1(1.0)), m.K = v_select(live, m.K, v_set1(1.0));
  m.sigma = v_select(live, m.sigma, v_set1(0.2)), m.T = v_select(live, m.T, v_set1(1.0));
  m.r = v_select(live, m.r, v_set1(0.05)), m.q = v_select(live, m.q, v_set1(0.02));
  return m;
}

/* Returns the lanes whose theta bump moved the price by less than its
 * rounding (T of ~1e-12 years, not exercised): the scalar element path
 * grows that bump (price_element_paced) and prices them again; theta was 0
 * here where it is qS - rK (-2.8 a year; found in review). */
static unsigned av_price_group(gk_model model, const gk_option_batch *in, size_t i, size_t n,
                               unsigned scalar_lanes, unsigned outputs, gk_greeks_batch *out,
                               const bs2002_rules *rules) {
  const gk_american_bumps *bump = gk_american_bumps_of(GK_AMERICAN_BS2002);
  av_market m = av_load_group(model, in, i, n, scalar_lanes);
  vdouble price = av_price_at(&m, rules), zero = v_set1(0.0);
  if (outputs & GK_OUT_PRICE) v_store(out->price + i, price, n);
  if (outputs & (GK_OUT_DELTA | GK_OUT_GAMMA)) {
    /* gk_american_spot_bump: S x min(1e-4, max(1e-2 sigma sqrt(T), 1e-10)) */
    vdouble stddev = v_mul(m.sigma, v_sqrt(m.T));
    vdouble cap = v_max(v_mul(v_set1(bump->spot_stddevs), stddev), v_set1(GK_AMERICAN_SPOT_BUMP_FLOOR));
    vdouble h = v_mul(m.S, v_min(v_set1(bump->spot_relative), cap)), S0 = m.S;
    m.S = v_add(S0, h);
    vdouble up = av_price_at(&m, rules);
    m.S = v_sub(S0, h);
    vdouble down = av_price_at(&m, rules);
    m.S = S0;
    if (outputs & GK_OUT_DELTA) v_store(out->delta + i, v_div(v_sub(up, down), v_add(h, h)), n);
    vdouble second = v_add(v_fma(v_set1(-2.0), price, up), down);
    if (outputs & GK_OUT_GAMMA) v_store(out->gamma + i, v_div(second, v_mul(h, h)), n);
  }
  if (outputs & GK_OUT_VEGA) v_store(out->vega + i, av_slope(&m, &m.sigma, v_set1(bump->vol), 0.0, price, rules), n);
  unsigned thin = 0;
  if (outputs & GK_OUT_THETA) {
    vdouble h = v_mul(m.T, v_set1(bump->expiry_relative)), theta = v_sub(zero, av_slope(&m, &m.T, h, 0.0, price, rules));
    v_store(out->theta + i, theta, n);
    vdouble exercise = v_mul(m.omega, v_sub(m.S, m.K)); /* as price_element_paced: within 4 ulps of max(S, K) */
    vmask exercised = m_and(v_gt(exercise, zero), v_le(v_abs(v_sub(price, exercise)),
                                                       v_mul(v_set1(4.0 * DBL_EPSILON), v_max(m.S, m.K))));
    vmask below = v_lt(v_abs(v_mul(theta, h)), v_mul(v_set1(0x1p20 * DBL_EPSILON), v_abs(price)));
    thin = m_bits(m_andnot(below, exercised)) & ((1u << n) - 1u) & ~scalar_lanes;
  }
  /* Rates of any sign: central. */
  vdouble rate_h = v_set1(bump->rate);
  if (outputs & GK_OUT_RHO) v_store(out->rho + i, av_slope(&m, &m.r, rate_h, -INFINITY, price, rules), n);
  if (outputs & GK_OUT_PHI)
    v_store(out->phi + i, m.futures ? zero : av_slope(&m, &m.q, rate_h, -INFINITY, price, rules), n);
  return thin;
}

/* The ALO method's vector body (alo_vector_kernel). */
#include "american_alo_vector.h"

/* The elements bs2002 hands to alo's fast level (gk_bs2002_beyond_flat_boundary_at),
 * gathered and priced AV_HANDOFF_CHUNK at a time by alo's vector kernel: one
 * by one on the scalar reference they took ~20 us each where a vector group
 * takes ~2 us, and past GK_BS2002_MAX_STDDEV a long-dated high-vol chain is
 * mostly such elements. A lane's result does not depend on its neighbours
 * (alo_vector_kernel), so the outputs are those of the element path. */
enum { AV_HANDOFF_CHUNK = 64 };

typedef struct av_handoff {
  size_t count, at[AV_HANDOFF_CHUNK];
} av_handoff;

static void av_handoff_flush(gk_model model, const gk_option_batch *in, unsigned outputs, gk_greeks_batch *out,
                             av_handoff *h) {
  if (h->count == 0) return;
  double S[AV_HANDOFF_CHUNK], K[AV_HANDOFF_CHUNK], T[AV_HANDOFF_CHUNK], r[AV_HANDOFF_CHUNK], q[AV_HANDOFF_CHUNK];
  double vol[AV_HANDOFF_CHUNK], got[7][AV_HANDOFF_CHUNK];
  uint8_t type[AV_HANDOFF_CHUNK], error[AV_HANDOFF_CHUNK];
  for (size_t k = 0; k < h->count; k++) {
    size_t i = h->at[k];
    S[k] = in->spot[i], K[k] = in->strike[i], T[k] = in->expiry[i], r[k] = in->rate[i];
    q[k] = in->yield ? in->yield[i] : 0.0, vol[k] = in->vol[i], type[k] = in->type[i];
  }
  double *const to[7] = {out->price, out->delta, out->gamma, out->vega, out->theta, out->rho, out->phi};
  double *from[7];
  for (int g = 0; g < 7; g++) from[g] = to[g] ? got[g] : NULL;
  gk_option_batch part = {h->count, S, K, T, r, in->yield ? q : NULL, vol, type};
  gk_greeks_batch part_out = {from[0], from[1], from[2], from[3], from[4], from[5], from[6], error};
  alo_vector_kernel(model, GK_ALO_FAST, &part, outputs, &part_out);
  for (size_t k = 0; k < h->count; k++)
    for (int g = 0; g < 7; g++)
      if (to[g] && (outputs & (1u << g))) to[g][h->at[k]] = got[g][k];
  h->count = 0;
}

static size_t american_vector_kernel(gk_model model, gk_american_method method,
                                     const gk_option_batch *in, unsigned outputs,
                                     gk_greeks_batch *out) {
  if (gk_american_method_is_alo(method))
    return alo_vector_kernel(model, gk_alo_level_of(method), in, outputs, out); /* routes as the scalar kernel */
  if (method != GK_AMERICAN_BS2002) return gk_american_kernel_scalar(model, method, in, outputs, out);
  bs2002_rules rules;
  double rho = sqrt(AV_SQRT5_MINUS_1_HALF);
  bvn_rule_init(&rules.plus, rho);
  bvn_rule_init(&rules.minus, -rho);
  size_t invalid = 0;
  av_handoff handoff = {.count = 0};
  for (size_t i = 0; i < in->count; i += VLANES) {
    size_t n = in->count - i < VLANES ? in->count - i : VLANES;
    /* The shared classifier: every ISA agrees on what is invalid. */
    unsigned scalar_lanes = 0;
    for (size_t k = 0; k < n; k++) {
      gk_element_error error = gk_classify_american_element(model, in, i + k);
      out->error[i + k] = (uint8_t)error;
      if (error != GK_ELEMENT_OK) {
        invalid++;
        scalar_lanes |= 1u << k;
      } else if (in->expiry[i + k] == 0.0 ||
                 in->vol[i + k] * sqrt(in->expiry[i + k]) < GK_AMERICAN_TINY_STDDEV ||
                 gk_american_routed_to_tree(model, in, i + k) || gk_american_never_exercised_at(model, in, i + k) ||
                 gk_american_perpetual_at(model, in, i + k) ||
                 gk_alo_beyond_carry_at(model, in, i + k) || gk_bs2002_beyond_flat_boundary_at(model, in, i + k)) {
        scalar_lanes |= 1u << k;
      }
    }
    unsigned thin = 0;
    if (scalar_lanes != (1u << n) - 1u) thin = av_price_group(model, in, i, n, scalar_lanes, outputs, out, &rules);
    for (size_t k = 0; k < n; k++) {
      if (thin >> k & 1u) gk_american_price_element(model, GK_AMERICAN_BS2002, gk_bs2002_price, in, i + k, outputs, out);
      if (!(scalar_lanes >> k & 1u)) continue;
      if (out->error[i + k] != GK_ELEMENT_OK) gk_zero_element_outputs(outputs, out, i + k);
      else if (gk_american_perpetual_at(model, in, i + k)) /* first, as the scalar kernel */
        gk_american_perpetual_element(model, in, i + k, outputs, out);
      else if (gk_american_routed_to_tree(model, in, i + k))
        gk_american_price_routed_element(model, in, i + k, outputs, out);
      else if (gk_american_never_exercised_at(model, in, i + k))
        gk_american_european_element(model, in, i + k, outputs, out);
      else if (gk_alo_beyond_carry_at(model, in, i + k)) /* as the scalar kernel: alo's wide scheme */
        gk_alo_price_element(model, GK_ALO_ACCURATE, in, i + k, outputs, out);
      else if (gk_bs2002_beyond_flat_boundary_at(model, in, i + k)) { /* as the scalar kernel, in groups */
        handoff.at[handoff.count++] = i + k;
        if (handoff.count == AV_HANDOFF_CHUNK) av_handoff_flush(model, in, outputs, out, &handoff);
      } else gk_american_price_element(model, GK_AMERICAN_BS2002, gk_bs2002_price, in, i + k, outputs, out);
    }
  }
  av_handoff_flush(model, in, outputs, out, &handoff);
  return invalid;
}

#endif /* GREEKS_AMERICAN_VECTOR_H */
