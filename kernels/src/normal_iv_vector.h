/*
 * The implied-normal-vol body shared by every vector ISA (algorithm:
 * kernels/scalar/normal_iv_scalar.c). Included after an ISA's simd_*.h and
 * normal_vector.h. Branch-free: every lane runs the same fixed iterations. Lanes
 * the quick domain test rejects, or whose price is at or below intrinsic, are
 * solved by the scalar reference, so every ISA reports the same codes.
 */
#ifndef GREEKS_NORMAL_IV_VECTOR_H
#define GREEKS_NORMAL_IV_VECTOR_H

static inline vdouble normal_iv_solve(vdouble c) {
  const vdouble one = v_set1(1.0), half = v_set1(0.5), two = v_set1(2.0), n0 = v_set1(GK_INV_SQRT_2PI);
  vdouble small = v_div(n0, v_add(c, half));
  vdouble u = v_set1(1.5), log_ratio = v_log(v_div(n0, c));
  for (int k = 0; k < 4; k++) {
    vdouble a = v_sub(log_ratio, v_mul(v_set1(3.0), v_log(u)));
    u = v_select(v_gt(a, half), v_sqrt(v_mul(two, a)), one);
  }
  u = v_select(v_gt(c, v_set1(0.25)), small, u);
  vdouble target = v_log(c);
  for (int k = 0; k < GK_NORMAL_IV_ITERATIONS; k++) {
    vdouble g = gaussian_factor(u);
    vdouble tail = v_mul(g, normal_tail_ratio(u)), n = v_mul(n0, g);
    vdouble h = v_sub(n, v_mul(u, tail));
    vdouble inv_u = v_div(one, u), inv_u2 = v_mul(inv_u, inv_u);
    vdouble gg = v_mul(h, inv_u);
    vdouble g1 = v_mul(v_sub(v_mul(v_set1(-1.0), v_mul(u, tail)), h), inv_u2);
    vdouble g2 = v_mul(v_add(v_mul(v_mul(u, u), n), v_mul(two, v_add(v_mul(u, tail), h))), v_mul(inv_u2, inv_u));
    vdouble L = v_sub(v_log(gg), target), L1 = v_div(g1, gg), L2 = v_sub(v_div(g2, gg), v_mul(L1, L1));
    vdouble newton = v_div(v_sub(v_set1(0.0), L), L1);
    vdouble denom = v_sub(one, v_div(v_mul(v_mul(half, newton), L2), L1));
    vdouble next = v_add(u, v_select(v_gt(denom, half), v_div(newton, denom), newton));
    u = v_min(v_max(next, v_mul(v_set1(0.25), u)), v_min(v_mul(v_set1(4.0), u), v_set1(GK_NORMAL_IV_MAX_U)));
  }
  return u;
}

static size_t normal_iv_vector_kernel(const gk_iv_batch *in, double *vol, uint8_t *error) {
  size_t invalid = 0;
  const vdouble zero = v_set1(0.0), one = v_set1(1.0), max_level = v_set1(GK_MAX_PRICE_LEVEL);
  for (size_t i = 0; i < in->count; i += VLANES) {
    size_t n = in->count - i < VLANES ? in->count - i : VLANES;
    vmask type_ok;
    vdouble F = v_load(in->spot + i, n), K = v_load(in->strike + i, n), T = v_load(in->expiry + i, n);
    vdouble r = v_load(in->rate + i, n), price = v_load(in->price + i, n);
    vdouble omega = v_load_omega(in->type + i, n, &type_ok);
    vmask ok = m_and(type_ok, m_and(v_le(v_abs(F), max_level), v_le(v_abs(K), max_level)));
    ok = m_and(ok, m_and(v_gt(T, zero), v_le(T, v_set1(GK_MAX_EXPIRY))));
    ok = m_and(ok, m_and(v_le(v_abs(r), v_set1(GK_MAX_ABS_RATE)), v_le(v_abs(price), v_set1(1.7976931348623157e308))));
    /* Neutral values for rejected lanes: no lane may compute on NaN or 0 time. */
    F = v_select(ok, F, one), K = v_select(ok, K, zero), T = v_select(ok, T, one);
    r = v_select(ok, r, zero), price = v_select(ok, price, one);
    vdouble D = v_exp(v_mul(v_sub(zero, r), T)), m = v_sub(F, K);
    vdouble p = v_div(price, D), v = v_sub(p, v_max(v_mul(omega, m), zero));
    vdouble a = v_abs(m), sqrt_t = v_sqrt(T);
    /* A time value within a few ulps of zero depends on how exp rounded e^{-rT};
     * such lanes go to the scalar reference so that every ISA gives one answer. */
    vdouble band = v_mul(v_set1(2.0 * GK_IV_INTRINSIC_ULPS * 2.220446049250313e-16),
                         v_max(v_abs(p), v_max(v_mul(omega, m), zero)));
    band = v_fma(v_mul(v_set1(2.0 * 2.220446049250313e-16), v_add(v_set1(2.0), v_abs(v_mul(r, T)))), v_abs(p), band);
    vmask solvable = m_and(ok, v_gt(v, band));
    vdouble c = v_div(v, v_select(v_gt(a, zero), a, one));
    /* Off the money the solver runs; at the money v = s n(0) gives sigma directly. */
    vmask off_money = m_and(v_gt(a, zero), v_le(c, v_set1(GK_NORMAL_IV_ATM_RATIO)));
    /* A time value under 1e-130 of |F - K| has its root past u ~ 24.6, where the
     * scalar reference solves in logs: such lanes go there. */
    solvable = m_andnot(solvable, m_and(off_money, v_lt(c, v_set1(GK_NORMAL_IV_VECTOR_MIN_RATIO))));
    vmask iterate = m_and(solvable, off_money);
    vdouble u = normal_iv_solve(v_select(iterate, c, one));
    vdouble atm_vol = v_div(v, v_mul(v_set1(GK_INV_SQRT_2PI), sqrt_t));
    vdouble sigma = v_select(off_money, v_div(a, v_mul(u, sqrt_t)), atm_vol);
    solvable = m_and(solvable, v_le(sigma, max_level)); /* past the model's vol: the scalar's error */
    v_store(vol + i, v_select(solvable, sigma, zero), n);
    /* Everything not solved here (rejected, or at / below intrinsic) goes to the
     * scalar reference, which also gives the reason. */
    unsigned scalar_lanes = ~m_bits(solvable) & ((1u << n) - 1u);
    memset(error + i, GK_ELEMENT_OK, n);
    for (size_t lane = 0; lane < n; lane++) {
      if (!(scalar_lanes & (1u << lane))) continue;
      gk_element_error e = gk_normal_iv_element(in, i + lane, &vol[i + lane]);
      error[i + lane] = (uint8_t)e;
      invalid += e != GK_ELEMENT_OK;
    }
  }
  return invalid;
}

#endif /* GREEKS_NORMAL_IV_VECTOR_H */
