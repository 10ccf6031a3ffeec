/*
 * The generalized Black-Scholes-Merton kernel body shared by every vector ISA.
 *
 * Included once per ISA translation unit after that ISA's simd_*.h, which supplies
 * vdouble, vmask, VLANES and the v_* operations. It follows the scalar reference
 * (kernels/scalar/bsm_scalar.c) formula by formula; it differs in how it gets
 * there (adr/0015; the cost model behind it on Zen 4: adr/0016, adr/0017): one
 * exp per option serves n(d1), n(d2) and both normal CDFs, which come out in
 * units of money, A N(d1) and B N(d2) (normal_vector.h);
 * exp(-rT), exp(-qT) and sqrt(T) are reused while consecutive vectors share
 * (T, r, q); divisions are traded for multiplies by 1/s and 1/S; and a block of
 * vectors goes through two passes, so that the core overlaps their long chains.
 */
#ifndef GREEKS_BSM_VECTOR_H
#define GREEKS_BSM_VECTOR_H

#include <math.h>

#include "kernel_internal.h"
#include "normal_vector.h"

typedef struct vector_inputs {
  vdouble spot, strike, expiry, rate, yield, vol;
  vdouble put_sign; /* -0.0 for puts, +0.0 for calls */
} vector_inputs;

/* Loads n <= VLANES elements starting at i. Lanes past n read as 0 (invalid). */
static inline vector_inputs load_inputs(gk_model model, const gk_option_batch *in, size_t i,
                                        size_t n, vmask *valid) {
  vector_inputs v;
  v.spot = v_load(in->spot + i, n);
  v.strike = v_load(in->strike + i, n);
  v.expiry = v_load(in->expiry + i, n);
  v.rate = v_load(in->rate + i, n);
  /* Black-76: b = 0, i.e. the future carries at the discount rate (q = r). */
  v.yield = model == GK_MODEL_BLACK76 ? v.rate : v_load(in->yield + i, n);
  v.vol = v_load(in->vol + i, n);
  v.put_sign = v_load_put_sign(in->type + i, n, valid);
  return v;
}

/* Lanes whose inputs lie inside the supported domain. Inputs sharing a range
 * are checked together through their min and max (compares cost more than
 * min/max on Zen 4). Comparisons with NaN are false, and the operand order
 * makes each min or max return a NaN input: min(K, S) and max(T, vol) return
 * their second operand when either is NaN, so every NaN reaches a compare.
 * r and q share |x| <= GK_MAX_ABS_RATE through max(|r|, |q|), which drops a
 * NaN, so one ordered compare catches theirs. T and sigma share one bound
 * (GK_MAX_EXPIRY = GK_MAX_VOL = 100; test_bsm_limits holds both edges). The
 * exact reason is found later, per lane, by the shared scalar classifier. */
static inline vmask inputs_in_domain(const vector_inputs *v, vmask type_valid) {
  vmask ok = v_ge_and(type_valid, v_min(v->strike, v->spot), v_set1(GK_MIN_PRICE_LEVEL));
  ok = v_le_and(ok, v_max(v->spot, v->strike), v_set1(GK_MAX_PRICE_LEVEL));
  ok = v_ge_and(ok, v_min(v->vol, v->expiry), v_set1(0.0));
  ok = v_le_and(ok, v_max(v->expiry, v->vol), v_set1(GK_MAX_EXPIRY));
  ok = v_ordered_and(ok, v->rate, v->yield);
  return v_le_and(ok, v_max_abs(v->rate, v->yield), v_set1(GK_MAX_ABS_RATE));
}

/* Replaces the inputs of invalid lanes by a harmless at-the-money element, so that
 * no lane computes on NaN or out-of-range data; their outputs are zeroed later. */
static inline void neutralize_invalid_lanes(vector_inputs *v, vmask valid) {
  vdouble one = v_set1(1.0), zero = v_set1(0.0);
  v->spot = v_select(valid, v->spot, one);
  v->strike = v_select(valid, v->strike, one);
  v->expiry = v_select(valid, v->expiry, zero);
  v->rate = v_select(valid, v->rate, zero);
  v->yield = v_select(valid, v->yield, zero);
  v->vol = v_select(valid, v->vol, zero);
}

/* +inf, -inf or 0 with the sign of x: d1 in the sigma sqrt(T) -> 0 limit. */
static inline vdouble signed_infinity_or_zero(vdouble x) {
  vdouble zero = v_set1(0.0);
  return v_select(v_gt(x, zero), v_set1(INFINITY),
                  v_select(v_lt(x, zero), v_set1(-INFINITY), zero));
}

/* Invalid lanes are stored as computed (on neutral inputs) and zeroed by
 * record_errors, which visits them anyway: no select per output for the
 * common all-valid vector. */
/* Stores lane values at column[at...] when `which` was asked for. An output not
 * asked for may have a NULL column, so column + at is formed only when it is
 * (pointer arithmetic on NULL is undefined even with nothing stored). */
static inline void store_output(double *column, size_t at, unsigned outputs, unsigned which, vdouble value, size_t n) {
  if (outputs & which) v_store(column + at, value, n);
}

/* Lanes whose value is inf or NaN. */
static inline vmask m_not_finite(vdouble x) {
  vdouble one = v_set1(1.0);
  return m_andnot(v_eq(one, one), v_le(v_abs(x), v_set1(1.7976931348623157e308)));
}

/* store_output, noting in *bad the lanes whose value asked for is not finite:
 * a second-order Greek can pass the double range (d1 d2 / sigma at a tiny
 * stddev), which the scalar reference reports as GK_ELEMENT_GREEK_OVERFLOW;
 * those lanes go to it (found in review: zomma -inf with error 0). */
static inline void keep(vmask *bad, double *column, size_t at, unsigned outputs, unsigned which, vdouble value,
                        size_t n) {
  if (!(outputs & which)) return;
  v_store(column + at, value, n);
  *bad = m_or(*bad, m_not_finite(value));
}

/* Factors that depend only on (T, r, q): an option chain shares them across many
 * strikes, so they are kept from one vector to the next while (T, r, q) repeat. */
typedef struct carry_factors {
  vdouble expiry, rate, yield;     /* the inputs they were computed for */
  vdouble sqrt_t, discount, carry; /* sqrt(T), e^{-rT}, e^{-qT} */
} carry_factors;

static inline void update_carry_factors(carry_factors *c, vdouble T, vdouble r, vdouble q) {
  if (v_same_bits3(T, c->expiry, r, c->rate, q, c->yield)) return;
  c->expiry = T, c->rate = r, c->yield = q;
  c->sqrt_t = v_sqrt(T);
  /* |r T|, |q T| <= GK_MAX_ABS_RATE GK_MAX_EXPIRY = 500 on valid and neutral lanes */
  c->discount = v_exp_normal_range_of_minus(v_mul(r, T));
  c->carry = v_exp_normal_range_of_minus(v_mul(q, T));
}

/* The nine second-order Greeks (formulas: kernels/scalar/bsm_scalar.c). Divisions
 * by sigma and T become multiplies: 1/sigma = sqrt(T)/s and 1/T = sigma^2/s^2. In
 * the collapsed limit the density terms are selected to 0 (d1 may be infinite). */
typedef struct second_order_inputs {
  vdouble S, K, T, r, q, sigma, omega, carry, discount, sqrt_t, inv_s;
  vdouble d1, d2, pdf1, pdf2, n1, n2; /* n(d1), n(d2), N(omega d1), N(omega d2) */
  vdouble vega, gamma; /* from the first-order pass; gamma not yet zeroed when collapsed */
  vmask collapsed;
} second_order_inputs;

static inline unsigned store_second_order(const second_order_inputs *v, unsigned outputs,
                                      gk_greeks_batch *out, size_t i, size_t n) {
  vmask bad = v_lt(v->S, v_set1(0.0)); /* none */
  const vdouble zero = v_set1(0.0), one = v_set1(1.0), half = v_set1(0.5);
  vdouble pdf1 = v->pdf1, pdf2 = v->pdf2;
  /* b - r is -q exactly: (r - q) - r lost a q far below |r| (the scalar
   * second_order) */
  vdouble b = v_sub(v->r, v->q), b_minus_r = v_sub(zero, v->q);
  vdouble inv_sigma = v_mul(v->sqrt_t, v->inv_s);
  vdouble sigma_over_s = v_mul(v->sigma, v->inv_s);
  vdouble half_inv_t = v_mul(half, v_mul(sigma_over_s, sigma_over_s));
  vdouble vega = v->vega, gamma = v->gamma;
  vdouble d1d2 = v_mul(v->d1, v->d2);
  vdouble b_d1_over_s = v_mul(v_mul(b, v->d1), v->inv_s);
  vmask c = v->collapsed;

  keep(&bad, out->vanna, i, outputs, GK_OUT_VANNA,
               v_select(c, zero, v_mul(v_mul(v_sub(zero, v->carry), pdf1), v_mul(v->d2, inv_sigma))), n);
  keep(&bad, out->volga, i, outputs, GK_OUT_VOLGA,
               v_select(c, zero, v_mul(vega, v_mul(d1d2, inv_sigma))), n);
  vdouble charm_drift = v_mul(v_mul(v->omega, b_minus_r), v->n1);
  vdouble charm_density = v_mul(pdf1, v_sub(v_mul(b, v->inv_s), v_mul(v->d2, half_inv_t)));
  vdouble charm = v_mul(v_sub(zero, v->carry), v_add(charm_drift, v_select(c, zero, charm_density)));
  keep(&bad, out->charm, i, outputs, GK_OUT_CHARM, charm, n);
  vdouble veta = v_mul(vega, v_sub(v_add(v_sub(zero, b_minus_r), b_d1_over_s), v_mul(v_add(one, d1d2), half_inv_t)));
  keep(&bad, out->veta, i, outputs, GK_OUT_VETA, v_select(c, zero, veta), n);
  vdouble speed = v_div(v_mul(v_sub(zero, gamma), v_add(one, v_mul(v->d1, v->inv_s))), v->S);
  keep(&bad, out->speed, i, outputs, GK_OUT_SPEED, v_select(c, zero, speed), n);
  vdouble zomma = v_mul(gamma, v_mul(v_sub(d1d2, one), inv_sigma));
  keep(&bad, out->zomma, i, outputs, GK_OUT_ZOMMA, v_select(c, zero, zomma), n);
  vdouble color = v_mul(v_sub(zero, gamma),
                        v_add(v_sub(b_minus_r, b_d1_over_s), v_mul(v_sub(d1d2, one), half_inv_t)));
  keep(&bad, out->color, i, outputs, GK_OUT_COLOR, v_select(c, zero, color), n);
  keep(&bad, out->dual_delta, i, outputs, GK_OUT_DUAL_DELTA,
               v_mul(v_sub(zero, v->omega), v_mul(v->discount, v->n2)), n);
  vdouble dual_gamma = v_div(v_mul(v_mul(v->discount, pdf2), v->inv_s), v->K);
  keep(&bad, out->dual_gamma, i, outputs, GK_OUT_DUAL_GAMMA, v_select(c, zero, dual_gamma), n);
  return m_bits(bad);
}

/* What the first pass over a block hands to the second, per vector: only the
 * terms that cost a division, a log or an exp to redo. The inputs are loaded
 * again instead (a 64-byte store costs two cycles on Zen 4, a load one). */
typedef struct vector_state {
  vdouble d1, inv_s;                /* d1, 1/(sigma sqrt T) */
  vdouble sqrt_t, carry, discount;  /* sqrt(T), e^{-qT}, e^{-rT} */
  vmask valid, collapsed;
  unsigned scalar_lanes; /* invalid, or 0 < s < GK_TINY_STDDEV: the scalar reference's */
} vector_state;

/* Pass 1: load, validate, and everything up to d1. */
static inline __attribute__((always_inline)) void prepare_vector(gk_model model, const gk_option_batch *in, size_t i,
                                                                 size_t n, carry_factors *c, vector_state *st) {
  vmask type_valid;
  vector_inputs v = load_inputs(model, in, i, n, &type_valid);
  vmask valid = inputs_in_domain(&v, type_valid);
  st->valid = valid;
  st->scalar_lanes = ~m_bits(valid) & ((1u << n) - 1u);
  if (st->scalar_lanes != 0 || n < VLANES) neutralize_invalid_lanes(&v, valid);
  update_carry_factors(c, v.expiry, v.rate, v.yield);
  st->sqrt_t = c->sqrt_t, st->carry = c->carry, st->discount = c->discount;

  vdouble s = v_mul(v.vol, c->sqrt_t);
  /* S/K lies in [min/max, max/min] price level: positive, normal, finite. */
  vdouble x = v_fma(v_sub(v.rate, v.yield), v.expiry, v_log_normal_positive(v_div(v.spot, v.strike)));
  vmask collapsed = v_lt(s, v_set1(GK_TINY_STDDEV));
  /* collapsed lanes divide by 1, not by s: sigma = 0 is valid input, and a
   * division by zero would raise FE_DIVBYZERO (a trap where a caller enables it) */
  vdouble inv_s = v_div(v_set1(1.0), v_select(collapsed, v_set1(1.0), s));
  vdouble d1 = v_fma(x, inv_s, v_mul(v_set1(0.5), s));
  /* rare: s < GK_TINY_STDDEV. s = 0 is the limit (d2 = d1 - s stays d1);
   * 0 < s < GK_TINY_STDDEV, i.e. sigma > 0 and T > 0 there, goes to the scalar
   * reference, which prices it in long double: record_errors visits it. */
  if (m_bits(collapsed)) {
    d1 = v_select(collapsed, signed_infinity_or_zero(x), d1);
    vmask positive = m_and(collapsed, m_and(v_gt(v.vol, v_set1(0.0)), v_gt(v.expiry, v_set1(0.0))));
    st->scalar_lanes |= m_bits(positive) & ((1u << n) - 1u);
  }
  /* rare: past GK_WIDE_CARRY, also the scalar reference's long double
   * (gk_wide_carry, the same double products) */
  vmask wide = m_and(v_gt(v.vol, v_set1(0.0)),
                     v_gt(v_max_abs(v_mul(v.rate, v.expiry), v_mul(v.yield, v.expiry)), v_set1(GK_WIDE_CARRY)));
  st->scalar_lanes |= m_bits(wide) & ((1u << n) - 1u);
  st->inv_s = inv_s, st->d1 = d1, st->collapsed = collapsed;
}

/* Pass 2: the densities, the two normal CDFs and every requested output.
 * omega (+-1) multiplies by a sign flip. The products A N(omega d1) and
 * B N(omega d2) serve price, theta, rho and phi. */
static inline __attribute__((always_inline)) unsigned finish_vector(gk_model model, const gk_option_batch *in,
                                                                    const vector_state *st, unsigned outputs,
                                                                    gk_greeks_batch *out, size_t i, size_t n) {
  unsigned overflowed = 0; /* lanes with a second-order output past the double range */
  const vdouble zero = v_set1(0.0);
  vmask type_valid;
  vector_inputs v = load_inputs(model, in, i, n, &type_valid);
  if (st->scalar_lanes != 0 || n < VLANES) neutralize_invalid_lanes(&v, st->valid);
  vdouble S = v.spot, T = v.expiry, sign = v.put_sign, inv_s = st->inv_s;
  vdouble A = v_mul(S, st->carry), B = v_mul(v.strike, st->discount);
  vmask collapsed = st->collapsed;

  vdouble d1 = st->d1, d2 = v_sub(d1, v_mul(v.vol, st->sqrt_t));
  /* G = A n(d1) = B n(d2); a_n1 = A N(omega d1), b_n2 = B N(omega d2). */
  vdouble G, a_n1, b_n2;
  normal_cdf_pair_in_money(v_xor(d1, sign), v_xor(d2, sign), A, B, &G, &a_n1, &b_n2);
  vdouble inv_spot = v_div(v_set1(1.0), S);

  /* omega A N(omega d1) and omega B N(omega d2): the sign applied once, for
   * price, delta, theta, rho and phi alike. */
  vdouble signed_a_n1 = v_xor(a_n1, sign), signed_b_n2 = v_xor(b_n2, sign);

  vdouble price = zero;
  if (outputs & (GK_OUT_PRICE | GK_OUT_RHO)) {
    vdouble floor_value = v_max(v_xor(v_sub(A, B), sign), zero);
    price = v_max(v_sub(signed_a_n1, signed_b_n2), floor_value);
    store_output(out->price, i, outputs, GK_OUT_PRICE, price, n);
  }
  store_output(out->delta, i, outputs, GK_OUT_DELTA, v_mul(signed_a_n1, inv_spot), n);

  /* The density terms, computed once for first- and second-order outputs. */
  vdouble vega = zero, gamma_raw = zero;
  if (outputs & (GK_OUT_GAMMA | GK_OUT_VEGA | GK_OUT_THETA | GK_OUT_SECOND_ORDER)) {
    vdouble a_pdf1 = G; /* A n(d1) */
    vdouble a_pdf1_over_s = v_mul(a_pdf1, inv_s);
    gamma_raw = v_mul(a_pdf1_over_s, v_mul(inv_spot, inv_spot));
    vega = v_mul(a_pdf1, st->sqrt_t);
    store_output(out->gamma, i, outputs, GK_OUT_GAMMA, v_select(collapsed, zero, gamma_raw), n);
    store_output(out->vega, i, outputs, GK_OUT_VEGA, vega, n);
    if (outputs & GK_OUT_THETA) {
      /* A n(d1) sigma / (2 sqrt T) = A n(d1) / s * sigma^2 / 2: no division by sqrt T. */
      vdouble half_sigma = v_mul(v_set1(0.5), v.vol);
      vdouble decay = v_select(collapsed, zero, a_pdf1_over_s);
      vdouble drift = v_fnma(v.rate, signed_b_n2, v_mul(v.yield, signed_a_n1));
      store_output(out->theta, i, outputs, GK_OUT_THETA, v_fnma(decay, v_mul(half_sigma, v.vol), drift), n);
    }
  }

  if (outputs & GK_OUT_SECOND_ORDER) {
    /* Back from money to probabilities: G <= min(A, B) n(0). */
    vdouble inv_a = v_div(v_set1(1.0), A), inv_b = v_div(v_set1(1.0), B);
    vdouble pdf1 = v_mul(G, inv_a), pdf2 = v_mul(G, inv_b), n1 = v_mul(a_n1, inv_a), n2 = v_mul(b_n2, inv_b);
    vdouble omega = v_xor(sign, v_set1(1.0));
    second_order_inputs so = {S,         v.strike,     T,          v.rate, v.yield, v.vol, omega,
                              st->carry, st->discount, st->sqrt_t, inv_s,  d1,      d2,     pdf1,
                              pdf2,      n1,           n2,         vega,   gamma_raw, collapsed};
    overflowed = store_second_order(&so, outputs, out, i, n) & ((1u << n) - 1u);
  }

  if (model == GK_MODEL_BLACK76) {
    store_output(out->rho, i, outputs, GK_OUT_RHO, v_mul(v_sub(zero, T), price), n);
    store_output(out->phi, i, outputs, GK_OUT_PHI, zero, n);
  } else {
    store_output(out->rho, i, outputs, GK_OUT_RHO, v_mul(T, signed_b_n2), n);
    store_output(out->phi, i, outputs, GK_OUT_PHI, v_fnma(T, signed_a_n1, zero), n);
  }
  return overflowed;
}

/* Writes each element's error code; the scalar reference (gk_bsm_element)
 * classifies, and prices or zeroes, the lanes in scalar_lanes, overwriting what
 * the vector stored there. Returns how many of the n were invalid. */
static inline size_t record_errors(gk_model model, const gk_option_batch *in, size_t i, size_t n,
                                   unsigned scalar_lanes, unsigned outputs, gk_greeks_batch *out) {
  if (scalar_lanes == 0) {
    memset(out->error + i, GK_ELEMENT_OK, n);
    return 0;
  }
  size_t invalid = 0;
  for (size_t lane = 0; lane < n; lane++) {
    gk_element_error error = GK_ELEMENT_OK;
    if (scalar_lanes & (1u << lane)) error = gk_bsm_element(model, in, i + lane, outputs, out);
    out->error[i + lane] = (uint8_t)error;
    invalid += error != GK_ELEMENT_OK;
  }
  return invalid;
}

/* Vectors per block. The two passes run one after the other over a block
 * rather than both per vector: one vector's chain from the loads to the
 * prices (a division, the log, an exp, a division, the CDFs) is longer than
 * the out-of-order window can hide, while the vectors of one pass are
 * independent, so the core overlaps them. A block's state (6 KB) and its
 * inputs, read again by the second pass, stay in L1. 16 measured 2-4%
 * faster than 8 and than 32 (adr/0017). */
enum { BLOCK_VECTORS = 16 };

/* always_inline: each caller below must get its own copy with outputs folded. */
static inline __attribute__((always_inline)) size_t bsm_vector_loop(gk_model model, const gk_option_batch *in,
                                                                    unsigned outputs, gk_greeks_batch *out) {
  size_t invalid = 0;
  carry_factors factors;
  factors.expiry = v_set1(NAN); /* matches nothing: the first vector computes them */
  factors.rate = factors.yield = factors.sqrt_t = factors.discount = factors.carry = v_set1(0.0);
  vector_state state[BLOCK_VECTORS];
  for (size_t start = 0; start < in->count; start += BLOCK_VECTORS * VLANES) {
    size_t remaining = in->count - start;
    size_t vectors = remaining >= BLOCK_VECTORS * VLANES ? BLOCK_VECTORS : (remaining + VLANES - 1) / VLANES;
#pragma GCC unroll 1
    for (size_t k = 0; k < vectors; k++) {
      size_t i = start + k * VLANES, n = in->count - i < VLANES ? in->count - i : VLANES;
      prepare_vector(model, in, i, n, &factors, &state[k]);
    }
#pragma GCC unroll 1
    for (size_t k = 0; k < vectors; k++) {
      size_t i = start + k * VLANES, n = in->count - i < VLANES ? in->count - i : VLANES;
      unsigned overflowed = finish_vector(model, in, &state[k], outputs, out, i, n);
      invalid += record_errors(model, in, i, n, state[k].scalar_lanes | overflowed, outputs, out);
    }
  }
  return invalid;
}

/* The two common masks get their own instance, with the output tests folded
 * away; any other mask takes the general one. */
static size_t bsm_vector_kernel(gk_model model, const gk_option_batch *in, unsigned outputs,
                                gk_greeks_batch *out) {
  if (outputs == GK_OUT_ALL) return bsm_vector_loop(model, in, GK_OUT_ALL, out);
  if (outputs == GK_OUT_PRICE) return bsm_vector_loop(model, in, GK_OUT_PRICE, out);
  return bsm_vector_loop(model, in, outputs, out);
}

#endif /* GREEKS_BSM_VECTOR_H */
