/*
 * Writes tests/data/american_qdfp_quantlib.csv: random American options (fixed
 * seed) priced by QuantLib's QdFpAmericanEngine with its high-precision scheme
 * rule (tanh-sinh 1e-10) run to 20 fixed-point steps on 24 Chebyshev nodes
 * instead of its 10 on 30 (quantlib_american.cc says why), the independent
 * reference of tests/test_american_alo.c. Built beside the test when QuantLib is
 * found (tests/CMakeLists.txt, target gen_american_quantlib); about 0.1 s per
 * option. Run: build/tests/gen_american_quantlib 5000 > tests/data/american_qdfp_quantlib.csv
 * (ROWS [SKIP]: ROWS data lines; SKIP leading ones drawn but not written or priced,
 * to resume an interrupted run: ... 5000 4000 | tail -n +2 >> the file).
 *
 * Contracts: S, K uniform in [50, 150], T in [0.01, 5], sigma in [0.05, 1],
 * r in (0, 0.1], q in [0, 0.1] (one in ten with q = r, the black76 case; one in
 * ten with q = 0), puts and calls alternately. Calls with q = 0 are European and
 * are not asked of QuantLib: the test checks them against the closed form.
 *
 * With `--long` first (tests/data/american_qdfp_quantlib_long.csv): r in
 * [0, 0.5], q in [-0.5, 0.5] and T in [0.01, 10] instead, kept only where
 * the put form's r is positive and its r T or carry |r - q| T passes 0.5
 * while the carry and the pull stay inside alo's levels (|r - q| T <= 2,
 * T (r - q)^2 / sigma^2 <= 30 where r > q), and priced on QuantLib's 48-node
 * scheme (4): the region past GK_ALO_LEVELS_REACH, where the 24-node one is
 * up to 3e-8 x K off. Run: build/tests/gen_american_quantlib --long 240 >
 * tests/data/american_qdfp_quantlib_long.csv (~2 min).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double quantlib_qdfp_american(int type, double S, double K, double T, double r, double q,
                              double sigma, int scheme);

static uint64_t next_random(uint64_t *state) { /* splitmix64 */
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double uniform(uint64_t *state, double lo, double hi) {
  return lo + (hi - lo) * ((double)(next_random(state) >> 11) * 0x1.0p-53);
}

/* The --long set: see above. */
static int write_long_set(int rows) {
  uint64_t seed = 20261207;
  printf("type,S,K,T,r,q,sigma,price\n");
  for (int i = 0, written = 0; written < rows; i++) {
    int type = i % 2; /* 0 call, 1 put */
    double S = uniform(&seed, 50, 150), K = uniform(&seed, 50, 150), T = uniform(&seed, 0.01, 10);
    double sigma = uniform(&seed, 0.05, 1), r = uniform(&seed, 0.0, 0.5), q = uniform(&seed, -0.5, 0.5);
    if (uniform(&seed, 0, 1) < 0.1) q = r;
    double r_put = type ? r : q, q_put = type ? q : r, carry = r_put - q_put;
    int past_reach = r_put * T > 0.5 || fabs(carry) * T > 0.5;
    if (!(r_put > 0.0) || !past_reach || fabs(carry) * T > 2.0 ||
        (carry > 0.0 && T * carry * carry > 30.0 * sigma * sigma))
      continue;
    written++;
    double price = quantlib_qdfp_american(type, S, K, T, r, q, sigma, 4);
    printf("%s,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", type ? "put" : "call", S, K, T, r, q, sigma,
           price);
    fflush(stdout);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--long") == 0) return write_long_set(argc > 2 ? atoi(argv[2]) : 200);
  int rows = argc > 1 ? atoi(argv[1]) : 5000, skip = argc > 2 ? atoi(argv[2]) : 0;
  uint64_t seed = 20160101;
  printf("type,S,K,T,r,q,sigma,price\n");
  for (int i = 0, written = 0; written < rows; i++) {
    int type = i % 2; /* 0 call, 1 put */
    double S = uniform(&seed, 50, 150), K = uniform(&seed, 50, 150), T = uniform(&seed, 0.01, 5);
    double sigma = uniform(&seed, 0.05, 1), r = uniform(&seed, 0.0, 0.1), q = uniform(&seed, 0.0, 0.1);
    double mix = uniform(&seed, 0, 1);
    if (r == 0.0) r = 0.05;
    if (mix < 0.1) q = r;
    else if (mix < 0.2) q = 0.0;
    if (type == 0 && q == 0.0) continue; /* European: the closed form */
    if (written++ < skip) continue;
    double price = quantlib_qdfp_american(type, S, K, T, r, q, sigma, 3);
    printf("%s,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", type ? "put" : "call", S, K, T, r, q, sigma,
           price);
    fflush(stdout);
  }
  return 0;
}
