/*
 * scratch.h - the American kernels' per-thread working memory, on the heap
 * (internal to kernels/; scratch.c).
 */
#ifndef GREEKS_KERNELS_SCRATCH_H
#define GREEKS_KERNELS_SCRATCH_H

#include <stddef.h>

/* One block per user and thread: a user may run inside another on one
 * thread (the vector ALO solve hands a lane to the scalar element path). */
typedef enum gk_scratch_slot {
  GK_SCRATCH_ALO,        /* the scalar ALO solve's node tables and system */
  GK_SCRATCH_TREE,       /* the binomial tree's rows */
  GK_SCRATCH_ALO_AVX2,   /* the vector ALO solve's points, tables and system, per ISA */
  GK_SCRATCH_ALO_AVX512,
  GK_SCRATCH_SLOTS
} gk_scratch_slot;

/* This thread's block for `slot`: `bytes` long (every call for a slot asks
 * the same), 64-byte aligned, zeroed when it was allocated, kept until the
 * thread exits. NULL where it cannot be allocated, or a slot is asked for
 * more than it was given (a caller's bug). */
void *gk_thread_scratch(gk_scratch_slot slot, size_t bytes);

#endif
