/*
 * greeks/isa.h - which instruction set the kernels run on.
 *
 * On first use the dispatcher picks the widest ISA that both the CPU (cpuid) and
 * the operating system (xgetbv: the OS saves the wide registers) support. The
 * environment variable GREEKS_ISA=scalar|avx2|avx512 forces one instead; naming an
 * unknown or unsupported ISA is an error reported by gk_isa_init() and by every
 * kernel call, never a silent fallback.
 */
#ifndef GREEKS_ISA_H
#define GREEKS_ISA_H

#include "greeks/batch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gk_isa {
  GK_ISA_SCALAR = 0, /* portable C, the readable reference */
  GK_ISA_AVX2 = 1,   /* AVX2 + FMA, 4 doubles per vector */
  GK_ISA_AVX512 = 2, /* AVX-512F, 8 doubles per vector */
  GK_ISA_COUNT
} gk_isa;

/* Chooses the active ISA (once per process; later calls return the first result).
 * Honours GREEKS_ISA. Returns GK_RC_ISA_UNKNOWN or GK_RC_ISA_UNSUPPORTED when the
 * variable names something unusable; kernels then refuse to run with that code.
 * Thread-safe. */
gk_rc gk_isa_init(void);

/* The ISA kernels run on (calls gk_isa_init() if needed; GK_ISA_SCALAR if it
 * failed). */
gk_isa gk_isa_active(void);

/* Forces the ISA for the rest of the process, e.g. from a --isa flag. Returns
 * GK_RC_ISA_UNSUPPORTED (and changes nothing) if this machine cannot run it. */
gk_rc gk_isa_force(gk_isa isa);

/* Whether this CPU and OS can run `isa`. */
int gk_isa_supported(gk_isa isa);

/* "scalar", "avx2", "avx512"; "unknown" for anything else. */
const char *gk_isa_name(gk_isa isa);

/* Parses an ISA name as above. Returns GK_RC_ISA_UNKNOWN for other names. */
gk_rc gk_isa_from_name(const char *name, gk_isa *isa);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_ISA_H */
