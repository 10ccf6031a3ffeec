/* American options, vector body (placeholder: the scalar reference). */
#ifndef GREEKS_AMERICAN_VECTOR_H
#define GREEKS_AMERICAN_VECTOR_H
#include "american_internal.h"
static size_t american_vector_kernel(gk_model model, gk_american_method method,
                                     const gk_option_batch *in, unsigned outputs,
                                     gk_greeks_batch *out) {
  return gk_american_kernel_scalar(model, method, in, outputs, out);
}
#endif
