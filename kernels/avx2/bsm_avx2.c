/* AVX2+FMA instance of the vector BSM kernel (compiled with GREEKS_AVX2_FLAGS). */
#include "../src/simd_avx2.h"
#include "../src/bsm_vector.h"

size_t gk_bsm_kernel_avx2(gk_model model, const gk_option_batch *in, unsigned outputs,
                          gk_greeks_batch *out) {
  return bsm_vector_kernel(model, in, outputs, out);
}
