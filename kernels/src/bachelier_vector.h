/*
 * The Bachelier kernel body shared by every vector ISA (formulas and limits:
 * kernels/scalar/bachelier_scalar.c). Included after an ISA's simd_*.h and after
 * bsm_vector.h, whose loading, neutralizing, storing and error helpers it reuses.
 * One exp per option: n(d), N(omega d) and h(omega d) all come from the Gaussian
 * factor and the tail ratio R of normal_vector.h.
 */
#ifndef GREEKS_BACHELIER_VECTOR_H
#define GREEKS_BACHELIER_VECTOR_H

/* Lanes inside the normal model's domain (NaN fails every compare). */
static inline vmask bachelier_in_domain(const vector_inputs *v, vmask type_valid) {
  vdouble max_level = v_set1(GK_MAX_PRICE_LEVEL), zero = v_set1(0.0);
  vmask ok = m_and(type_valid, v_le(v_abs(v->spot), max_level));
  ok = m_and(ok, v_le(v_abs(v->strike), max_level));
  ok = m_and(ok, m_and(v_ge(v->expiry, zero), v_le(v->expiry, v_set1(GK_MAX_EXPIRY))));
  ok = m_and(ok, v_le(v_abs(v->rate), v_set1(GK_MAX_ABS_RATE)));
  ok = m_and(ok, m_and(v_ge(v->vol, zero), v_le(v->vol, max_level)));
  return ok;
}

static inline unsigned price_bachelier_vector(const vector_inputs *v, unsigned outputs,
                                          gk_greeks_batch *out, size_t i, size_t n) {
  const vdouble zero = v_set1(0.0), one = v_set1(1.0), half = v_set1(0.5);
  vmask bad; /* lanes the scalar element prices: an output past the double range, or far in the tail */
  vdouble F = v->spot, K = v->strike, T = v->expiry, r = v->rate, sigma = v->vol, omega = v_xor(v->put_sign, one);
  vdouble D = v_exp(v_mul(v_sub(zero, r), T)), sqrt_t = v_sqrt(T), s = v_mul(sigma, sqrt_t);
  vdouble gap = v_sub(F, K);
  vdouble level = v_max(one, v_max(v_abs(F), v_abs(K)));
  vmask collapsed = v_le(s, v_mul(v_set1(GK_TINY_STDDEV), level));
  vdouble inv_s = v_div(one, v_select(collapsed, one, s));
  vdouble d = v_select(collapsed, signed_infinity_or_zero(gap), v_mul(gap, inv_s));
  /* Past 37 standard deviations n(d) nears the subnormals, where D (up to
   * e^500) would bring D n(d) back into range: such lanes go to the scalar
   * element, which takes one exp of -rT - d^2/2 (found in review: a call
   * 38 standard deviations out came out 42% off here, 0 on the scalar). */
  bad = m_andnot(v_gt(v_abs(d), v_set1(37.0)), collapsed);
  vdouble g = gaussian_factor(d), y = v_abs(d);
  vdouble pdf = v_mul(v_set1(GK_INV_SQRT_2PI), g);
  vdouble tail = v_mul(g, normal_tail_ratio(y));     /* N(-|d|) */
  vdouble z = v_mul(omega, d);
  vmask in_money = v_gt(z, zero);
  vdouble cdf = v_select(in_money, v_sub(one, tail), tail); /* N(omega d) */
  /* h(z) = n(z) + z N(z): out of the money n(y) - y N(-y), in the money z + that. */
  vdouble h_otm = v_sub(pdf, v_mul(y, tail));
  vdouble h = v_select(in_money, v_add(z, h_otm), h_otm);
  vdouble intrinsic = v_mul(D, v_max(v_mul(omega, gap), zero));
  vdouble price = v_select(collapsed, intrinsic, v_max(v_mul(v_mul(D, s), h), intrinsic));
  vdouble delta = v_mul(v_mul(omega, D), cdf);
  vdouble vega = v_mul(v_mul(D, sqrt_t), pdf);
  vdouble gamma = v_select(collapsed, zero, v_mul(v_mul(D, pdf), inv_s));
  /* D sigma n(d) / (2 sqrt T) = D n(d) sigma^2 / (2 s). */
  /* Collapsed lanes as the scalar: D sigma n(d) / (2 sqrt T), n(d) = 0 off the
   * forward and n(0) at it (F = K: the vector had 0 where the scalar has
   * -3.7e10 at T = 2.9e-47; found in review); 0 at T = 0. */
  vdouble collapsed_decay = v_div(v_mul(v_mul(D, pdf), v_mul(half, sigma)), v_select(v_gt(T, zero), sqrt_t, one));
  collapsed_decay = v_select(v_gt(T, zero), collapsed_decay, zero);
  vdouble decay = v_select(collapsed, collapsed_decay, v_mul(v_mul(v_mul(D, pdf), v_mul(sigma, sigma)), v_mul(half, inv_s)));
  keep(&bad, out->price, i, outputs, GK_OUT_PRICE, price, n);
  keep(&bad, out->delta, i, outputs, GK_OUT_DELTA, delta, n);
  keep(&bad, out->gamma, i, outputs, GK_OUT_GAMMA, gamma, n);
  keep(&bad, out->vega, i, outputs, GK_OUT_VEGA, vega, n);
  keep(&bad, out->theta, i, outputs, GK_OUT_THETA, v_sub(v_mul(r, price), decay), n);
  keep(&bad, out->rho, i, outputs, GK_OUT_RHO, v_mul(v_sub(zero, T), price), n);
  keep(&bad, out->phi, i, outputs, GK_OUT_PHI, zero, n);
  if (!(outputs & GK_OUT_SECOND_ORDER)) return m_bits(bad);
  vdouble inv_sigma = v_mul(sqrt_t, inv_s), sigma_over_s = v_mul(sigma, inv_s);
  vdouble half_inv_t = v_mul(half, v_mul(sigma_over_s, sigma_over_s)); /* 1/(2T) */
  vdouble d2 = v_mul(d, d), d_pdf = v_mul(D, v_mul(pdf, d));
  vmask c = collapsed;
  keep(&bad, out->vanna, i, outputs, GK_OUT_VANNA, v_select(c, zero, v_sub(zero, v_mul(d_pdf, inv_sigma))), n);
  keep(&bad, out->volga, i, outputs, GK_OUT_VOLGA, v_select(c, zero, v_mul(vega, v_mul(d2, inv_sigma))), n);
  keep(&bad, out->charm, i, outputs, GK_OUT_CHARM,
               v_add(v_mul(r, delta), v_select(c, zero, v_mul(d_pdf, half_inv_t))), n);
  keep(&bad, out->veta, i, outputs, GK_OUT_VETA,
               v_select(c, zero, v_mul(vega, v_sub(r, v_mul(v_add(one, d2), half_inv_t)))), n);
  keep(&bad, out->speed, i, outputs, GK_OUT_SPEED,
               v_select(c, zero, v_sub(zero, v_mul(gamma, v_mul(d, inv_s)))), n);
  keep(&bad, out->zomma, i, outputs, GK_OUT_ZOMMA,
               v_select(c, zero, v_mul(gamma, v_mul(v_sub(d2, one), inv_sigma))), n);
  keep(&bad, out->color, i, outputs, GK_OUT_COLOR,
               v_select(c, zero, v_mul(gamma, v_sub(r, v_mul(v_sub(d2, one), half_inv_t)))), n);
  keep(&bad, out->dual_delta, i, outputs, GK_OUT_DUAL_DELTA, v_sub(zero, delta), n);
  keep(&bad, out->dual_gamma, i, outputs, GK_OUT_DUAL_GAMMA, gamma, n);
  return m_bits(bad);
}

static size_t bachelier_vector_kernel(gk_model model, const gk_option_batch *in, unsigned outputs,
                                      gk_greeks_batch *out) {
  size_t invalid = 0;
  for (size_t i = 0; i < in->count; i += VLANES) {
    size_t n = in->count - i < VLANES ? in->count - i : VLANES;
    vmask type_valid;
    vector_inputs v = load_inputs(GK_MODEL_BLACK76, in, i, n, &type_valid); /* no yield */
    vmask valid = bachelier_in_domain(&v, type_valid);
    unsigned invalid_lanes = ~m_bits(valid) & ((1u << n) - 1u);
    if (invalid_lanes != 0 || n < VLANES) neutralize_invalid_lanes(&v, valid);
    unsigned overflowed = price_bachelier_vector(&v, outputs, out, i, n) & ~invalid_lanes & ((1u << n) - 1u);
    invalid += record_errors(model, in, i, n, invalid_lanes, outputs, out);
    for (size_t lane = 0; overflowed && lane < n; lane++) /* the scalar's element: GREEK_OVERFLOW, the far tail */
      if (overflowed & (1u << lane)) {
        gk_element_error e = gk_bachelier_element(model, in, i + lane, outputs, out);
        out->error[i + lane] = (uint8_t)e;
        invalid += e != GK_ELEMENT_OK;
      }
  }
  return invalid;
}

#endif /* GREEKS_BACHELIER_VECTOR_H */
