/* The avx2 instances of every vector kernel (compiled with the avx2 flags only):
 * the vocabulary of src/simd_avx2.h applied to the shared kernel bodies. */
#include "../src/simd_avx2.h"
#define ALOV_SCRATCH_SLOT GK_SCRATCH_ALO_AVX2 /* this ISA's block of the ALO solve (scratch.h) */
#include "../src/bsm_vector.h"
#include "../src/bachelier_vector.h"
#include "../src/normal_iv_vector.h"
#include "../src/black_iv_vector.h"
#include "../src/american_vector.h"

size_t gk_bsm_kernel_avx2(gk_model model, const gk_option_batch *in, unsigned outputs,
                           gk_greeks_batch *out) {
  return bsm_vector_kernel(model, in, outputs, out);
}

size_t gk_bachelier_kernel_avx2(gk_model model, const gk_option_batch *in, unsigned outputs,
                                 gk_greeks_batch *out) {
  return bachelier_vector_kernel(model, in, outputs, out);
}

size_t gk_normal_iv_kernel_avx2(const gk_iv_batch *in, double *vol, uint8_t *error) {
  return normal_iv_vector_kernel(in, vol, error);
}

size_t gk_lognormal_iv_kernel_avx2(gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error) {
  return black_iv_vector_kernel(model, in, vol, error);
}

size_t gk_american_kernel_avx2(gk_model model, gk_american_method method,
                               const gk_option_batch *in, unsigned outputs, gk_greeks_batch *out) {
  return american_vector_kernel(model, method, in, outputs, out);
}

size_t gk_alo_kernel_avx2(gk_model model, gk_alo_level level, const gk_option_batch *in, unsigned outputs,
                         gk_greeks_batch *out) {
  return alo_vector_kernel(model, level, in, outputs, out);
}

int gk_alo_scratch_ready_avx2(void) { return alov_scratch_of_thread() != NULL; }
