/*
 * ISA dispatch: the one piece of global mutable state in kernels/ (the active
 * kernel), chosen once from cpuid + xgetbv and GREEKS_ISA.
 */
#include <cpuid.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/bsm.h"
#include "kernel_internal.h"

static const gk_bsm_kernel bsm_kernels[GK_ISA_COUNT] = {
    [GK_ISA_SCALAR] = gk_bsm_kernel_scalar,
    [GK_ISA_AVX2] = gk_bsm_kernel_avx2,
    [GK_ISA_AVX512] = gk_bsm_kernel_avx512,
};

static const gk_bsm_kernel bachelier_kernels[GK_ISA_COUNT] = {
    [GK_ISA_SCALAR] = gk_bachelier_kernel_scalar,
    [GK_ISA_AVX2] = gk_bachelier_kernel_avx2,
    [GK_ISA_AVX512] = gk_bachelier_kernel_avx512,
};

static const gk_iv_kernel normal_iv_kernels[GK_ISA_COUNT] = {
    [GK_ISA_SCALAR] = gk_normal_iv_kernel_scalar,
    [GK_ISA_AVX2] = gk_normal_iv_kernel_avx2,
    [GK_ISA_AVX512] = gk_normal_iv_kernel_avx512,
};

static const gk_lognormal_iv_kernel lognormal_iv_kernels[GK_ISA_COUNT] = {
    [GK_ISA_SCALAR] = gk_lognormal_iv_kernel_scalar,
    [GK_ISA_AVX2] = gk_lognormal_iv_kernel_avx2,
    [GK_ISA_AVX512] = gk_lognormal_iv_kernel_avx512,
};

static const char *const isa_names[GK_ISA_COUNT] = {"scalar", "avx2", "avx512"};

/* XCR0 bits the OS sets when it saves a register file on context switch. */
#define XCR0_SSE_AVX 0x6u        /* XMM and YMM state */
#define XCR0_AVX512 0xe0u        /* opmask, ZMM0-15 upper halves, ZMM16-31 */

static unsigned long long read_xcr0(void) {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((unsigned long long)edx << 32) | eax;
}

static int probe_cpu_and_os(gk_isa isa) {
  unsigned eax, ebx, ecx, edx;
  if (isa == GK_ISA_SCALAR) return 1;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
  int has_osxsave = (ecx & bit_OSXSAVE) != 0;
  int has_fma = (ecx & bit_FMA) != 0;
  if (!has_osxsave || !has_fma) return 0;
  unsigned long long xcr0 = read_xcr0();
  if ((xcr0 & XCR0_SSE_AVX) != XCR0_SSE_AVX) return 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
  if (isa == GK_ISA_AVX2) return (ebx & bit_AVX2) != 0;
  /* The AVX-512 unit is built with -mavx512f -mavx512dq -mavx2 -mfma: DQ for
   * the exp's and log's 64-bit integer <-> double conversions. F alone, as on
   * Knights Landing, is not enough. */
  if (isa == GK_ISA_AVX512) {
    unsigned needed = bit_AVX512F | bit_AVX512DQ | bit_AVX2;
    return (ebx & needed) == needed && (xcr0 & XCR0_AVX512) == XCR0_AVX512;
  }
  return 0;
}


const char *gk_isa_name(gk_isa isa) {
  if ((unsigned)isa >= GK_ISA_COUNT) return "unknown";
  return isa_names[isa];
}

gk_rc gk_isa_from_name(const char *name, gk_isa *isa) {
  if (name == NULL || isa == NULL) return GK_RC_NULL_ARGUMENT;
  for (int i = 0; i < GK_ISA_COUNT; i++) {
    if (strcmp(name, isa_names[i]) == 0) {
      *isa = (gk_isa)i;
      return GK_RC_OK;
    }
  }
  return GK_RC_ISA_UNKNOWN;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static _Atomic int active_isa = GK_ISA_SCALAR;
static _Atomic int init_result = GK_RC_OK;
/* Bit i set when ISA i runs here. Probed once: cpuid traps to the hypervisor on
 * virtual machines and would cost microseconds on every batch. */
static _Atomic unsigned supported_isas = 1u << GK_ISA_SCALAR;

static int cpu_supports(gk_isa isa) {
  return (atomic_load(&supported_isas) >> isa) & 1u;
}

static gk_isa widest_supported_isa(void) {
  for (int i = GK_ISA_COUNT - 1; i > GK_ISA_SCALAR; i--)
    if (cpu_supports((gk_isa)i)) return (gk_isa)i;
  return GK_ISA_SCALAR;
}

static void choose_isa(void) {
  unsigned supported = 0;
  for (int i = 0; i < GK_ISA_COUNT; i++)
    if (probe_cpu_and_os((gk_isa)i)) supported |= 1u << i;
  atomic_store(&supported_isas, supported);

  const char *forced = getenv("GREEKS_ISA");
  gk_isa isa = widest_supported_isa();
  gk_rc rc = GK_RC_OK;
  if (forced != NULL && forced[0] != '\0') {
    rc = gk_isa_from_name(forced, &isa);
    if (rc == GK_RC_OK && !cpu_supports(isa)) rc = GK_RC_ISA_UNSUPPORTED;
    if (rc != GK_RC_OK) isa = GK_ISA_SCALAR;
  }
  atomic_store(&active_isa, isa);
  atomic_store(&init_result, rc);
}

gk_rc gk_isa_init(void) {
  pthread_once(&init_once, choose_isa);
  return (gk_rc)atomic_load(&init_result);
}

int gk_isa_supported(gk_isa isa) {
  if ((unsigned)isa >= GK_ISA_COUNT) return 0;
  gk_isa_init();
  return cpu_supports(isa);
}

gk_isa gk_isa_active(void) {
  gk_isa_init();
  return (gk_isa)atomic_load(&active_isa);
}

gk_rc gk_isa_force(gk_isa isa) {
  if ((unsigned)isa >= GK_ISA_COUNT) return GK_RC_ISA_UNKNOWN;
  gk_isa_init();
  if (!cpu_supports(isa)) return GK_RC_ISA_UNSUPPORTED;
  atomic_store(&active_isa, isa);
  atomic_store(&init_result, GK_RC_OK);
  return GK_RC_OK;
}

static gk_rc check_batch_arguments(gk_model model, const gk_option_batch *in,
                                   unsigned outputs, const gk_greeks_batch *out) {
  if (in == NULL || out == NULL || out->error == NULL) return GK_RC_NULL_ARGUMENT;
  if ((unsigned)model >= GK_MODEL_COUNT) return GK_RC_BAD_MODEL;
  if (outputs & ~(unsigned)GK_OUT_EVERYTHING) return GK_RC_BAD_OUTPUT_MASK;
  if (in->count == 0) return GK_RC_OK;
  if (!in->spot || !in->strike || !in->expiry || !in->rate || !in->vol || !in->type)
    return GK_RC_MISSING_INPUT;
  if (gk_model_uses_yield(model) && !in->yield) return GK_RC_MISSING_INPUT;
  double *const arrays[] = {out->price, out->delta, out->gamma, out->vega, out->theta,
                            out->rho, out->phi, out->vanna, out->volga, out->charm,
                            out->veta, out->speed, out->zomma, out->color, out->dual_delta,
                            out->dual_gamma};
  for (unsigned k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
    if ((outputs & (1u << k)) && arrays[k] == NULL) return GK_RC_MISSING_OUTPUT;
  return GK_RC_OK;
}

int gk_model_uses_yield(gk_model model) { return model == GK_MODEL_BSM || model == GK_MODEL_GK; }

const char *gk_model_name(gk_model model) {
  static const char *const names[GK_MODEL_COUNT] = {"bsm", "black76", "garman_kohlhagen", "bachelier"};
  return (unsigned)model < GK_MODEL_COUNT ? names[model] : "unknown";
}

gk_rc gk_bsm_check_batch(gk_model model, const gk_option_batch *in, unsigned outputs,
                         const gk_greeks_batch *out) {
  return check_batch_arguments(model, in, outputs, out);
}

gk_rc gk_bsm_price_batch_on(gk_isa isa, gk_model model, const gk_option_batch *in,
                            unsigned outputs, gk_greeks_batch *out, size_t *invalid_count) {
  if ((unsigned)isa >= GK_ISA_COUNT) return GK_RC_ISA_UNKNOWN;
  if (!gk_isa_supported(isa)) return GK_RC_ISA_UNSUPPORTED;
  gk_rc rc = check_batch_arguments(model, in, outputs, out);
  if (rc != GK_RC_OK) return rc;
  const gk_bsm_kernel *table = model == GK_MODEL_BACHELIER ? bachelier_kernels : bsm_kernels;
  size_t invalid = in->count == 0 ? 0 : table[isa](model, in, outputs, out);
  if (invalid_count) *invalid_count = invalid;
  return GK_RC_OK;
}

gk_rc gk_bsm_price_batch(gk_model model, const gk_option_batch *in, unsigned outputs,
                         gk_greeks_batch *out, size_t *invalid_count) {
  gk_rc rc = gk_isa_init();
  if (rc != GK_RC_OK) return rc;
  return gk_bsm_price_batch_on(gk_isa_active(), model, in, outputs, out, invalid_count);
}

gk_rc gk_implied_vol_batch_on(gk_isa isa, gk_model model, const gk_iv_batch *in, double *vol,
                              uint8_t *error, size_t *invalid_count) {
  if ((unsigned)isa >= GK_ISA_COUNT) return GK_RC_ISA_UNKNOWN;
  if (!gk_isa_supported(isa)) return GK_RC_ISA_UNSUPPORTED;
  if (in == NULL || vol == NULL || error == NULL) return GK_RC_NULL_ARGUMENT;
  if ((unsigned)model >= GK_MODEL_COUNT) return GK_RC_BAD_MODEL;
  if (in->count > 0 && (!in->spot || !in->strike || !in->expiry || !in->rate || !in->price || !in->type))
    return GK_RC_MISSING_INPUT;
  if (in->count > 0 && gk_model_uses_yield(model) && !in->yield) return GK_RC_MISSING_INPUT;
  size_t invalid = 0;
  if (in->count > 0)
    invalid = model == GK_MODEL_BACHELIER ? normal_iv_kernels[isa](in, vol, error)
                                          : lognormal_iv_kernels[isa](model, in, vol, error);
  if (model != GK_MODEL_BACHELIER) /* the vector kernels' own lanes; the scalar's are in range already */
    for (size_t i = 0; i < in->count; i++)
      if (error[i] == GK_ELEMENT_OK && gk_lognormal_iv_in_range(&vol[i]) != GK_ELEMENT_OK) {
        error[i] = GK_ELEMENT_IMPLIED_VOL_OUT_OF_RANGE;
        invalid++;
      }
  if (invalid_count) *invalid_count = invalid;
  return GK_RC_OK;
}

gk_rc gk_implied_vol_batch(gk_model model, const gk_iv_batch *in, double *vol, uint8_t *error,
                           size_t *invalid_count) {
  gk_rc rc = gk_isa_init();
  if (rc != GK_RC_OK) return rc;
  return gk_implied_vol_batch_on(gk_isa_active(), model, in, vol, error, invalid_count);
}
