/*
 * The lognormal implied-vol body shared by every vector ISA (algorithm:
 * kernels/scalar/black_iv_scalar.c). Placeholder: per-element scalar.
 */
#ifndef GREEKS_BLACK_IV_VECTOR_H
#define GREEKS_BLACK_IV_VECTOR_H

static size_t black_iv_vector_kernel(gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error) {
  size_t invalid = 0;
  for (size_t i = 0; i < in->count; i++) {
    gk_element_error e = gk_lognormal_iv_element(model, in, i, &vol[i]);
    error[i] = (uint8_t)e;
    invalid += e != GK_ELEMENT_OK;
  }
  return invalid;
}

#endif /* GREEKS_BLACK_IV_VECTOR_H */
