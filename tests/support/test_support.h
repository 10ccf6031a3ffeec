/*
 * Shared test helpers: owned SoA batches, a seeded random source, reference-file
 * reading and tolerance checks that report what failed.
 */
#ifndef GREEKS_TEST_SUPPORT_H
#define GREEKS_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "greeks/bsm.h"

/* Exit code ctest treats as "skipped" (SKIP_RETURN_CODE). */
#define TEST_SKIP_EXIT 77

/* Exits with TEST_SKIP_EXIT, saying why, when GREEKS_ISA names an ISA this
 * machine cannot run (ctest runs each kernel suite once per ISA). */
void skip_unless_active_isa_runs(void);

/* A batch that owns its arrays (64-byte aligned, zeroed). */
typedef struct owned_batch {
  size_t count;
  double *spot, *strike, *expiry, *rate, *yield, *vol;
  uint8_t *type;
  double *price, *delta, *gamma, *vega, *theta, *rho, *phi;
  uint8_t *error;
  double *vanna, *volga, *charm, *veta, *speed, *zomma, *color, *dual_delta, *dual_gamma;
} owned_batch;

owned_batch owned_batch_make(size_t count);
void owned_batch_free(owned_batch *b);
gk_option_batch owned_batch_inputs(const owned_batch *b);
gk_greeks_batch owned_batch_outputs(owned_batch *b);
/* Prices b on the active ISA with every output, first and second order; fails
 * the test on a bad rc. */
void owned_batch_price(owned_batch *b, gk_model model);

/* splitmix64: small, seedable, good enough for test inputs. */
typedef struct test_rng { uint64_t state; } test_rng;
uint64_t rng_next(test_rng *rng);
double rng_uniform(test_rng *rng, double lo, double hi);     /* [lo, hi) */
double rng_log_uniform(test_rng *rng, double lo, double hi); /* log-uniform */

/* Fills element i with a random option from a wide but valid domain. */
void fill_random_option(owned_batch *b, size_t i, test_rng *rng);

/* The size of the terms each second-order formula sums (vanna, volga, charm, veta,
 * speed, zomma, color, dual delta, dual gamma), computed from element i's inputs:
 * cancellation makes a tiny result legitimately differ by a fraction of these, not
 * of itself. 1e300 for elements at the sigma sqrt(T) -> 0 or T = 0 limits. */
void second_order_scales(gk_model model, const owned_batch *b, size_t i, double scale[9]);

/* |got - want| <= max(rel * |want|, abs). */
int close_enough(double got, double want, double rel, double abs);

/* Path of a file under tests/data (set by the build). */
const char *test_data_path(const char *file_name);

/* Parses a model name (bsm, black76, gk); -1 on anything else. */
int parse_model_name(const char *name, gk_model *model);

#endif
