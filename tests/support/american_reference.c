/*
 * The stored American reference and its exact corrections
 * (american_reference.h): one CSV reader and one correction for the tests and
 * the accuracy report, which each had their own copy.
 */
#include "support/american_reference.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "greeks/batch.h"

size_t american_reference_load(const char *path, american_row *rows, size_t max, size_t stride) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return (size_t)-1;
  char line[512], type[8];
  size_t n = 0;
  int ok = fgets(line, sizeof line, f) != NULL; /* the header */
  for (size_t row = 0; ok && n < max && fgets(line, sizeof line, f); row++) {
    if (row % (stride ? stride : 1) != 0) continue;
    american_row *x = &rows[n++];
    ok = sscanf(line, "%7[^,],%lf,%lf,%lf,%lf,%lf,%lf,%lf", type, &x->S, &x->K, &x->T, &x->r, &x->q, &x->sigma,
                &x->reference) == 8;
    x->type = strcmp(type, "put") == 0 ? GK_PUT : GK_CALL;
  }
  fclose(f);
  return ok ? n : (size_t)-1;
}

double american_intrinsic(const american_row *c) {
  return fmax(c->type == GK_PUT ? c->K - c->S : c->S - c->K, 0.0);
}

double american_reference_corrected(const american_row *c) {
  int put = c->type == GK_PUT;
  double S = put ? c->S : c->K, K = put ? c->K : c->S, r = put ? c->r : c->q, q = put ? c->q : c->r;
  double s2 = c->sigma * c->sigma, b = r - q - 0.5 * s2;
  double lambda = (-b - sqrt(b * b + 2.0 * s2 * r)) / s2;
  if (S <= K * lambda / (lambda - 1.0)) return american_intrinsic(c);
  return fmax(c->reference, american_intrinsic(c));
}
