/*
 * engine_internal.h - what the engine's own modules share; not installed.
 */
#ifndef GREEKS_ENGINE_INTERNAL_H
#define GREEKS_ENGINE_INTERNAL_H

#include "greeks/batch.h"
#include "greeks/status.h"

/* A GREEKS_ISA the dispatcher refused (rc GK_RC_ISA_UNKNOWN or
 * GK_RC_ISA_UNSUPPORTED) as every engine entry point answers it:
 * GK_FAILED_PRECONDITION, field "GREEKS_ISA", its value (pricing.c). */
gk_code gk_engine_isa_refused(gk_rc rc, gk_status *status);

#endif /* GREEKS_ENGINE_INTERNAL_H */
