/* AVX-512F instance of the vector BSM kernel (compiled with GREEKS_AVX512_FLAGS). */
#include "../src/simd_avx512.h"
#include "../src/bsm_vector.h"

size_t gk_bsm_kernel_avx512(gk_model model, const gk_option_batch *in, unsigned outputs,
                            gk_greeks_batch *out) {
  return bsm_vector_kernel(model, in, outputs, out);
}
