/*
 * Internal to kernels/: American option pricing shared by the scalar reference,
 * the vector kernels (which fall back to it lane by lane) and the tests.
 */
#ifndef GREEKS_AMERICAN_INTERNAL_H
#define GREEKS_AMERICAN_INTERNAL_H

#include "greeks/american.h"
#include "kernel_internal.h"

/* Standard normal CDF, and the bivariate one: P(X < a, Y < b), corr(X, Y) = r. */
double gk_normal_cdf(double x);
double gk_bivariate_normal_cdf(double a, double b, double r);

/* One American option, the inputs every method reads. b is the cost of carry
 * (r - q; 0 for black76). omega = +1 call, -1 put. */
typedef struct gk_american_option {
  double S, K, T, r, b, sigma, omega;
} gk_american_option;

/* Below this sigma sqrt(T) an option is priced as its deterministic limit: BS2002's
 * exponents grow like (bT / sigma sqrt T)^2 and lose their last digits. */
#define GK_AMERICAN_TINY_STDDEV 1e-9

/* Most steps a tree may take (its working rows are thread-local arrays). */
#define GK_AMERICAN_TREE_MAX_STEPS 8192

/* Prices of one option by each method; finite for every option in the domain.
 * The tree models every exercise regime. BS2002 returns the European price
 * where the option is never exercised early and, where it has two boundaries
 * (which it does not model, and which the batch routes to the tree), the lower
 * bound max(European, intrinsic): continuous with the European price across
 * q = r, so that the Greeks' bumps of a never-exercised element stay right. */
double gk_bs2002_price(const gk_american_option *o);
double gk_american_tree_price(const gk_american_option *o);

/* The tree with an explicit step count (even, 2..GK_AMERICAN_TREE_MAX_STEPS) and
 * with or without the Richardson extrapolation: tests study its convergence. */
double gk_american_tree_price_steps(const gk_american_option *o, int steps, int richardson);

/* ---- Andersen-Lake-Offengelden fixed point (kernels/scalar/american_alo_scalar.c) ---- */

/* Most Chebyshev nodes (n) and points of the boundary's rule (l) a scheme may
 * use: the working arrays (thread-local) have these sizes. The price rule (p)
 * is not stored and has no limit. */
#define GK_ALO_MAX_NODES 48
#define GK_ALO_MAX_POINTS 64

/* A Gauss-Legendre rule mapped to theta in (0, pi/2), u = tau sin^2(theta):
 * int_0^tau g(u) du ~= tau sum_j weight[j] g(tau sin[j]^2). Static tables. */
typedef struct gk_alo_rule {
  int count;
  const double *sin, *cos, *weight;
} gk_alo_rule;

/* A scheme: n Chebyshev nodes of the boundary beyond tau = 0 (n + 1 points),
 * m Jacobi-Newton steps, the l-point rule of the fixed-point integrals and the
 * p-point rule of the price integral. */
/* The fixed-point equation of the Jacobi-Newton steps: the paper's FP-A or
 * FP-B, or (AUTO) FP-A where omega = 2 (r - q) / sigma^2 < fp_a_below_omega
 * and FP-B elsewhere. FP-A falls back to FP-B where its steps make the
 * value-matching residual grow (kernels/scalar/american_alo_scalar.c). */
typedef enum gk_alo_equation { GK_ALO_FP_B = 0, GK_ALO_FP_A = 1, GK_ALO_FP_AUTO = 2 } gk_alo_equation;

typedef struct gk_alo_scheme {
  int nodes, iterations;
  int newton_steps; /* full Newton steps after the m Jacobi-Newton ones, on the same equation */
  /* Where coarse_nodes > 0: a solve on that many nodes and the coarse rule
   * (its own steps) starts the fine one instead of QD+ (adr/0040). */
  int coarse_nodes, coarse_iterations, coarse_newton_steps;
  gk_alo_rule coarse_boundary;
  gk_alo_rule boundary, price;
  gk_alo_equation equation;
  double fp_a_below_omega;
} gk_alo_scheme;

/* The two accuracy levels (measured in docs/kernels.md). */
typedef enum gk_alo_level {
  GK_ALO_FAST = 0,     /* 6.3e-7 x K at most on the stored set; GK_AMERICAN_ALO_FAST's */
  GK_ALO_ACCURATE = 1, /* 7.0e-9 x K at most; the level of GK_AMERICAN_ALO */
  GK_ALO_LEVEL_COUNT
} gk_alo_level;

/* Whether `method` is alo at one of its levels, and which level (accurate
 * for any other method: the level argument it ignores). */
static inline int gk_american_method_is_alo(gk_american_method method) {
  return method == GK_AMERICAN_ALO || method == GK_AMERICAN_ALO_FAST;
}
static inline gk_alo_level gk_alo_level_of(gk_american_method method) {
  return method == GK_AMERICAN_ALO_FAST ? GK_ALO_FAST : GK_ALO_ACCURATE;
}

/* The tabulated Gauss-Legendre rule of `points` points (8, 12, 16, 20, 24,
 * 32, 64 or 128; static), NULL for any other count: for schemes built by tests
 * and benchmarks. */
const gk_alo_rule *gk_alo_rule_with(int points);

/* The level's scheme (static), NULL for an unknown level. */
const gk_alo_scheme *gk_alo_scheme_of(gk_alo_level level);

/* alo's level grids resolve the boundary while the put's carry over the life,
 * (r - q) T (a call's: (q - r) T), is at most this. Past it the boundary falls
 * far below its start within the life (long-dated puts with a negative
 * yield, calls with a negative rate) and the level grids misprice by up to
 * tens of percent of K; such an option is priced, at either level and on
 * every ISA, by the scalar reference on the wide scheme (docs/kernels.md,
 * "alo's domain"). */
#define GK_ALO_MAX_CARRY 2.0

/* Whether `o` is past GK_ALO_MAX_CARRY (never black76, b = 0); the same for
 * element i of a batch. bs2002, whose flat boundary has the same trouble
 * there (a put worth 0.36 priced 3e-85, delta -0.5, gamma 100), hands such
 * elements to alo too. */
/* A spot a little above today's exercise boundary B: the premium's
 * S-derivatives (delta's, gamma's integrands; theta through the Black-Scholes
 * equation) peak at t ~ (ln(S/B))^2 / sigma^2 from now, inside the price
 * rule's first node, and gamma came out 9% low and theta positive (+0.447 a
 * year for -0.0014: the put S 80.883263, K 100, T 1, r 0.05, sigma 0.2, B
 * 80.875; found in review, 2026-12-06). Where zeta = ln(S/B) / (sigma
 * sqrt(T)) is below GK_ALO_PEAK_AT the premium is integrated in t = T
 * cos^(2 a)(theta), a = ln(zeta) / ln(GK_ALO_PEAK_AT) (at most
 * GK_ALO_MAX_POWER), which puts the peak at cos(theta) ~ GK_ALO_PEAK_AT;
 * a = 1 (the rule's own t = T cos^2) elsewhere, bit for bit. */
#define GK_ALO_PEAK_AT 0.1
#define GK_ALO_MAX_POWER 12.0

/* No American price is below the deterministic one (the best fixed exercise
 * time, gk_american_deterministic_price: by Jensen, at any vol) or above the
 * perpetual option's. Where the vol is tiny against a long life (sigma
 * sqrt(T) from 1e-9 to ~1e-3 over 20 to 100 years) the grids lose the
 * boundary: they priced a call 0.073 x K below the first, with delta -55 and
 * vega 1e5, and another 1.4e-5 x K above the second (found in review).
 * alo's prices are clamped to the two, and where a solve leaves them by more
 * than this x K its analytic Greeks are dropped for the bumps of the clamped
 * price (the vector kernels hand such lanes to the scalar element path). */
#define GK_ALO_FLOOR_SLACK 1e-9

/* Whether `price` lies within GK_ALO_FLOOR_SLACK x K of o's bounds: the
 * deterministic and European prices below, the perpetual option's above
 * (the put form's, r > 0). alo's prices are clamped to them; a solve outside
 * them gives its Greeks by bumps of the clamped price. */
int gk_alo_within_bounds(const gk_american_option *o, double price);
/* For an element past the levels' reach (the bracket's elements among
 * them, gk_alo_priced_as): gk_alo_within_bounds, and not below R(T), the
 * value of exercising at the first touch of the perpetual boundary by
 * expiry (adr/0065), by more than gk_alo_first_touch_slack(level); its price
 * is then raised to R(T) where that is the closer lower bound. 1 for any
 * other element: its solve's bounds are its own (gk_alo_price_greeks checks
 * them). */
int gk_alo_within_bracket_bounds(const gk_american_option *o, gk_alo_level level, double price);
/* R(T) where it floors alo's price (past the levels' reach, the bracket's
 * elements among them: adr/0065, decision 4), else 0. */
double gk_alo_first_touch_floor(const gk_american_option *o);
/* x K: how far below R(T) a level's solve may be and keep its own Greeks
 * (the price floored): the level's accuracy there (1e-8 accurate, 1e-7
 * fast). At 1e-9 the vector kernels sent so many lanes of the past-reach
 * bench to the scalar path that it ran 18-46% slower. */
double gk_alo_first_touch_slack(gk_alo_level level);

int gk_alo_beyond_carry(const gk_american_option *o);
int gk_alo_beyond_carry_at(gk_model model, const gk_option_batch *in, size_t i);

/* bs2002's flat boundary I = B0 + (Binf - B0)(1 - e^h) needs h < 0, i.e.
 * b T + 2 sigma sqrt(T) > 0 for the call form's carry b: where the put form's
 * carry (r - q of a put, q - r of a call) passes 2 sigma / sqrt(T), I falls
 * below the strike and the formula collapses to the European price (a put at
 * S = K = 100, T 1, r 0.5, sigma 0.2: 0.0311 for 1.4415; a book's live risk
 * and its hedges ran on a delta 24x too small: found in review). Its error
 * grows well before: on 200,000 random contracts priced above 0.5 it stays
 * under 1.5% up to a carry sqrt(T) / sigma of 1.4, 2.4% at 1.5, 11% at 1.75.
 * Past GK_BS2002_MAX_CARRY_PER_VOL, bs2002 hands the element to alo's fast
 * level (1e-6 x K; ~20 us a price where bs2002 takes ~1-8 us, ~0.13 ms past
 * alo's reach, GK_ALO_LEVELS_REACH: element by element, the scalar
 * reference's, on every ISA). */
#define GK_BS2002_MAX_CARRY_PER_VOL 1.4

/* bs2002's error also grows with the vol over the life, sigma sqrt(T): on
 * 12,000 random contracts (S, K 50-150, r, q 0-0.1, sigma sqrt(T) 0.5-2.5,
 * against alo's fast level) its worst error / K was 1.6% at 0.5, 2.9% at 0.8,
 * 4.5% at 0.9, 6.6% at 1.0, 11% at 1.7, 21% at 2.2, and 34% between 5.6 and
 * 10 (deep in-the-money calls with a yield); at the perpetual limit it then
 * stepped by up to 16% of K onto the perpetual price (found in review,
 * 2026-12-07). Past GK_BS2002_MAX_STDDEV bs2002 hands the element to alo's
 * fast level too, any model (black76 included); the vector kernels price
 * the handed elements in alo's vector groups (american_vector.h). */
#define GK_BS2002_MAX_STDDEV 1.0

/* Whether bs2002 hands element i to alo's fast level: past
 * GK_BS2002_MAX_CARRY_PER_VOL or GK_BS2002_MAX_STDDEV. */
int gk_bs2002_beyond_flat_boundary_at(gk_model model, const gk_option_batch *in, size_t i);

/* Element i never exercised early (gk_american_exercise_of: NEVER) with T > 0
 * and sigma sqrt(T) above the deterministic limit (at T = 0 and in that limit
 * the documented limits apply to every element alike: theta 0 at expiry), and
 * its outputs there: the European price (gk_american_european_price) and the
 * closed-form Greeks of the scalar BSM kernel, on every method and ISA. The methods' bumps of the European price
 * were what they gave before: gamma 0.8% low for a q = 0 call an hour from
 * expiry at a vol of 0.03, 6.7% at 0.01 (found in review). */
int gk_american_never_exercised_at(gk_model model, const gk_option_batch *in, size_t i);
void gk_american_european_element(gk_model model, const gk_option_batch *in, size_t i, unsigned outputs,
                                  gk_greeks_batch *out);

/* The put form's carry against its vol over the life, T (r - q)^2 / sigma^2
 * with r > q: where it is large the boundary falls to the perpetual one in a
 * sliver of the life (a low vol: sigma = 0.001, r = 0.3, q = 0.1), which the
 * levels' grids in sqrt(tau) cannot resolve. The stored set reaches 20; past
 * 30 the accurate level left 2e-8 to 5e-6 x K, priced above the perpetual
 * put, fell as T grew, and at T = 1 said "exercise now" for a put worth
 * 9.2e-5 (found in review). Such an option goes to the wide scheme, which
 * holds to ~1e-8 x K up to a pull of several thousand (GK_ALO_WIDE_MAX_PULL
 * is where its bracket starts). Never black76 (no carry). */
#define GK_ALO_MAX_PULL 30.0
#define GK_ALO_WIDE_MAX_PULL 1000.0

/* The put form's r T past which the levels' grids lose the boundary to the
 * discounting over a long life: at r T 15 to 37 (r and q near 0.45, carry
 * and pull small) they priced up to 7.9e-7 x K above the perpetual put, an
 * upper bound, and the fast level 4e-4 x K off; the wide scheme is within
 * 1e-9 x K of it there (found in review). Never reached with r <= 0.15. */
#define GK_ALO_MAX_DISCOUNT 15.0

/* The reach of the levels' bounds (1e-8 x K accurate, 1e-6 x K fast): the
 * put form's r T and its carry |r - q| T up to 0.5 each, as far as the stored
 * set goes (r, q <= 0.1, T <= 5). Past it the levels' grids missed them, at
 * rates of 0.2 to 0.5 over years (high-rate currencies under gk) or a yield
 * of -0.5 to 0 (a hard-to-borrow stock's borrow cost): up to 6.3e-8 x K
 * accurate and 1.3e-5 x K fast, against QuantLib's QdFp on 48 nodes (whose
 * 24-node reference was itself 3e-8 x K off there; measured 2026-12-07,
 * docs/kernels.md, "alo's domain", adr/0058). The boundary bends onto its
 * perpetual level early in the life, and 20 (10) nodes in sqrt(tau) do not
 * follow the bend. Past it, below GK_ALO_MAX_CARRY and GK_ALO_MAX_DISCOUNT,
 * the accurate level prices on the wide scheme and the fast level on the
 * long fast scheme: within 4.4e-9 and 1.3e-7 x K there, at ~36 and ~8 us a
 * price on AVX-512 (the vector kernels' groups of their own, adr/0059), ~0.7
 * and ~0.13 ms on the scalar ISA. */
#define GK_ALO_LEVELS_REACH 0.5

/* The same reach in the vol over the life, sigma sqrt(T): past ~5 the
 * boundary falls most of the way to the perpetual one early in the life and
 * the levels' grids miss their bounds (2,400 random puts, sigma sqrt(T) 3 to
 * 20, r, q <= 0.1, r T and carry within GK_ALO_LEVELS_REACH, against 48
 * nodes on 64 points: accurate 3.3e-8 x K, fast 2.7e-6 at 6 to 15; within
 * their bounds, 7.7e-9 and 8.2e-7, below 5). Past it the levels price on
 * their schemes past the reach, the wide one 8e-10 and the long fast one
 * 4e-8 x K there (measured 2026-12-07). Up to the perpetual limit
 * (GK_AMERICAN_PERPETUAL_Z, from sigma sqrt(T) ~ 15). */
#define GK_ALO_LEVELS_STDDEV_REACH 4.0

/* Past this sigma sqrt(T) (below the perpetual limit) the schemes past the
 * reach hug the perpetual cap so closely that their solves often leave it by
 * more than GK_ALO_FLOOR_SLACK, and the element's Greeks are bumps on the
 * scalar element path: ~0.5-6 ms an element on every ISA, where a vector
 * lane takes ~10 us below it (measured in review, 2026-12-07). Such elements
 * are priced at length by the paced batch, one at a time with a pause after
 * each, on every ISA, alo's and bs2002's handoffs alike. */
#define GK_ALO_SLOW_STDDEV 10.0

/* Whether `o` (element i) is past GK_ALO_LEVELS_REACH; the two compute the
 * put form's r T and carry as gk_alo_beyond_levels(_at) do, to the bit. */
int gk_alo_past_levels_reach(const gk_american_option *o);
int gk_alo_past_levels_reach_at(gk_model model, const gk_option_batch *in, size_t i);

/* The long fast scheme (static): 20 nodes and a 16-point rule from QD+, one
 * Jacobi-Newton and two Newton steps, the 64-point price rule. */
const gk_alo_scheme *gk_alo_long_fast_scheme(void);

/* Past GK_ALO_MAX_CARRY, GK_ALO_MAX_PULL or GK_ALO_MAX_DISCOUNT: priced by
 * the scalar reference on the wide scheme (alo's levels, on every ISA); the
 * same for element i, computed with the same operations, to the bit. */
int gk_alo_beyond_levels(const gk_american_option *o);
int gk_alo_beyond_levels_at(gk_model model, const gk_option_batch *in, size_t i);

/* The wide scheme (static): 32 nodes and a 32-point rule from QD+, one
 * Jacobi-Newton and three Newton steps, the 128-point price rule. */
const gk_alo_scheme *gk_alo_wide_scheme(void);

/* The scheme alo prices `o` on at `level`: the level's; the wide one past
 * GK_ALO_MAX_CARRY, GK_ALO_MAX_PULL or GK_ALO_MAX_DISCOUNT; past
 * GK_ALO_LEVELS_REACH below that, the wide one (accurate) or the long
 * fast one (fast). */
const gk_alo_scheme *gk_alo_scheme_for(const gk_american_option *o, gk_alo_level level);

/* The scheme of `level` past GK_ALO_LEVELS_REACH (and within the levels'
 * domain): the wide one (accurate) or the long fast one (fast); NULL for an
 * unknown level. The vector kernels price those elements on it too. */
const gk_alo_scheme *gk_alo_scheme_past_reach(gk_alo_level level);

/* Up to this carry over the life the wide scheme is trusted as it is. Past
 * it, where the drift outweighs the vol, its grid can fail too (a put of
 * r = 0.01, q = -0.5, sigma = 0.1 at 0.36 up to T = 30, 0.0009 at T = 100).
 * An American price never falls as T grows and never passes the perpetual
 * option's, so a solve at T is checked against that bracket: the price at the
 * expiry where the carry is this, and the perpetual's. */
#define GK_ALO_WIDE_MAX_CARRY 10.0

/* `o` as alo solves it: itself, or past GK_ALO_WIDE_MAX_CARRY or
 * GK_ALO_WIDE_MAX_PULL (the trusted expiry: the shorter of the two), where the
 * wide solves at the expiries from the trusted one, doubling up to T, leave
 * the bracket (by more than 1e-7 x K), `o` at the longest expiry whose solve
 * stayed in it: a lower bound of the price, which there has all but reached
 * the perpetual's. */
gk_american_option gk_alo_priced_as(const gk_american_option *o);

/* The American put (S, K, T, r, q, sigma) by the fixed point, for r > 0,
 * sigma sqrt(T) >= GK_AMERICAN_TINY_STDDEV and T > 0; NaN for the two-boundary
 * case q < r < 0, which it does not model (the batch routes it to the tree). */
double gk_alo_put_price(double S, double K, double T, double r, double q, double sigma,
                        const gk_alo_scheme *scheme);

/* One option, any type, every limit routed (T = 0, deterministic, European):
 * with a scheme, at a level, and at GK_ALO_ACCURATE (the method's pricer). */
double gk_alo_price_scheme(const gk_american_option *o, const gk_alo_scheme *scheme);
double gk_alo_price_level(const gk_american_option *o, gk_alo_level level);
double gk_alo_price(const gk_american_option *o);
double gk_alo_price_fast(const gk_american_option *o); /* at GK_ALO_FAST */

/* Price and first-order Greeks of one option from one boundary solve: delta
 * and gamma differentiate the premium integral at the converged boundary
 * (which does not depend on S), theta is the Black-Scholes equation's (the
 * American price obeys it outside the exercise region; 0 inside); vega, rho
 * and phi differentiate the price at the converged boundary and add the
 * boundary's own move through one adjoint linear solve of the linearised
 * value-matching equations (kernels/scalar/american_alo_scalar.c). rho is
 * dP/dr at fixed q, phi dP/dq at fixed r (black76: the caller adds them).
 * Returns 1, or 0 (*out untouched) where the method prices a limit instead
 * (T = 0, the deterministic limit, the European case) or a result is not
 * finite. */
typedef struct gk_alo_greeks {
  double price, delta, gamma, theta, vega, rho, phi;
} gk_alo_greeks;
int gk_alo_price_greeks(const gk_american_option *o, const gk_alo_scheme *scheme, gk_alo_greeks *out);

/* Where the put form's spot, S, all but surely reaches the perpetual put's
 * boundary B* = K lambda / (lambda - 1) before expiry or else never (adr/0065),
 * the American price is the perpetual's. Exercising at the first touch of
 * B* if it comes by T (and at expiry otherwise) is a strategy the American
 * holder has, worth at least R(T) = (K - B*) E[e^{-r tau}; tau <= T], tau
 * the first touch; the perpetual is worth P_perp = (K - B*) E[e^{-r tau}],
 * and no finite life is worth more. So P_perp - P(T) <= (K - B*)
 * E[e^{-r tau}; T < tau < inf] <= P_perp N(-z), by the first-passage
 * formula R(T) = (K - B*) [(B* / S)^(mu + l) N(z) + (B* / S)^(mu - l) N(z - 2 l v)]
 * (Reiner-Rubinstein's rebate), with v = sigma sqrt(T), mu = (r - q -
 * sigma^2 / 2) / sigma^2, l = sqrt(mu^2 + 2 r / sigma^2) = -lambda - mu and
 * z = ln(B* / S) / v + l v. With z >= GK_AMERICAN_PERPETUAL_Z the gap is
 * below 3.2e-14 x K. Two kinds of contract get there: the spot drifts or
 * diffuses onto B* within the life (a vol huge over it, sigma sqrt(T) from
 * ~15 up; a vol tiny against a negative put-form carry), or a strong
 * positive carry over a long life carries it so far up that a touch after T
 * is worth nothing (|r - q| T above ~25 over decades: the solves there
 * priced up to 1e-7 x K below the perpetual, their thetas positive and
 * rho and phi up to 8e-4 relative off; found in review, 2026-12-07). The
 * first bound, K N((ln(S / B*) + (r - q - sigma^2 / 2) T) / v), took only
 * the first kind; this one implies it. In the first kind the grids in
 * sqrt(tau) lose the boundary, which
 * falls to B* within a sliver of the life: alo priced a put at sigma 94
 * over 11 years 2.97 (4.6% of K) below it, with vega 0.06 for 5.2, and its
 * fast level 9e-5 x K off at sigma sqrt(T) 30 (found in review,
 * 2026-12-07). Every method prices such an element as the perpetual put
 * (the call by put-call symmetry), its Greeks analytic, theta 0. At or below
 * B* the option is exercised now whatever its life (a finite life's boundary
 * lies above B*): the payoff, delta -1 (a call's 1) and every other Greek 0;
 * the methods' own Greeks there were bumps of a payoff or of a solve that
 * lost the boundary (gamma 9.2e10, theta 38 for the put S 1e-6, K 100, T
 * 10, r 5, q -5, sigma 100; the tree's delta -0.9999999975; found in
 * review). */
#define GK_AMERICAN_PERPETUAL_Z 7.5
int gk_american_perpetual_limit(const gk_american_option *o);
void gk_american_perpetual_greeks(const gk_american_option *o, gk_alo_greeks *out);
int gk_american_perpetual_at(gk_model model, const gk_option_batch *in, size_t i);
void gk_american_perpetual_element(gk_model model, const gk_option_batch *in, size_t i, unsigned outputs,
                                   gk_greeks_batch *out);

/* Whether o's price at `level` is held at the perpetual put's by the clamp
 * of gk_alo_price_level (the solve passed that cap: a long life against a
 * strong carry, where the boundary falls to B* early in the life). Then
 * *out is that price with the perpetual's analytic Greeks (theta 0) and 1 is
 * returned; else 0, *out untouched. Bumps of a clamped price are not
 * Greeks: within a bump the solve crosses the cap and the price jumps by
 * ~1e-8 x K, which left rho 4% and phi 8% off, and theta +2.4e-4 where no
 * American put's theta is positive (the puts S 110.5, K 100, T 82.2,
 * r 0.219, q -0.278, sigma 0.305 and S = K = 100, T 81, r 0.01, q -0.3,
 * sigma 0.2, since taken by the perpetual limit; found in review,
 * 2026-12-07). The true price sits within the
 * levels' error of the cap there; differences of the price whose bumps both
 * stay on the cap agree with the perpetual's Greeks to ~1e-7 relative. */
int gk_alo_held_at_perpetual(const gk_american_option *o, gk_alo_level level, gk_alo_greeks *out);

/* Element i of `in` (classified valid) by ALO at `level`: every output by
 * gk_alo_price_greeks, or, where it declines (returns 0), the perpetual's
 * where the price is held at its cap (gk_alo_held_at_perpetual), else by the
 * bumps of gk_american_price_element. */
void gk_alo_price_element(gk_model model, gk_alo_level level, const gk_option_batch *in, size_t i, unsigned outputs,
                          gk_greeks_batch *out);

/* ALO batches at a level on an ISA: GK_AMERICAN_ALO is GK_ALO_ACCURATE; this
 * reaches the fast level too (tests, benchmarks). The contract of
 * gk_american_price_batch_on with method GK_AMERICAN_ALO; GK_RC_BAD_METHOD
 * for an unknown level. */
gk_rc gk_alo_price_batch_on(gk_isa isa, gk_model model, gk_alo_level level, const gk_option_batch *in,
                            unsigned outputs, gk_greeks_batch *out, size_t *invalid_count);

/* The ALO kernels per ISA: price in->count elements at `level`, return the
 * invalid count (the vector ones run american_alo_vector.h). */
typedef size_t (*gk_alo_kernel)(gk_model model, gk_alo_level level, const gk_option_batch *in, unsigned outputs,
                                gk_greeks_batch *out);
size_t gk_alo_kernel_scalar(gk_model model, gk_alo_level level, const gk_option_batch *in, unsigned outputs,
                            gk_greeks_batch *out);
size_t gk_alo_kernel_avx2(gk_model model, gk_alo_level level, const gk_option_batch *in, unsigned outputs,
                          gk_greeks_batch *out);
size_t gk_alo_kernel_avx512(gk_model model, gk_alo_level level, const gk_option_batch *in, unsigned outputs,
                            gk_greeks_batch *out);

/* The American kernels' working memory on this thread (scratch.h): each
 * user's block, allocated on the thread's first use (1 when it is there). */
int gk_alo_scalar_scratch_ready(void);
int gk_tree_scratch_ready(void);
int gk_alo_scratch_ready_avx2(void);
int gk_alo_scratch_ready_avx512(void);
/* Every block a batch on `isa` can use (the scalar ALO solve, the tree and
 * the ISA's vector ALO solve), reserved before the batch runs: 1, or 0 out
 * of memory (the entry points answer GK_RC_OUT_OF_MEMORY). */
int gk_american_scratch_ready(gk_isa isa);

/* Shared limits: the European (Black-Scholes-Merton) price, and the deterministic
 * (sigma = 0) American price, max over t in [0, T] of e^{-rt} (omega (S e^{bt} - K))+. */
double gk_american_european_price(const gk_american_option *o);
double gk_american_deterministic_price(const gk_american_option *o);

/* The first American domain rule element i breaks (the European ones first). */
gk_element_error gk_classify_american_element(gk_model model, const gk_option_batch *in, size_t i);

/* ---- Early exercise by the sign of the rates (docs/kernels.md, "Negative rates") ----
 * The one predicate every method, ISA and the implied vol use. For the put
 * (r, q) (Battauz, De Donno and Sbuelz 2015); a call by the symmetry
 * C(S, K, r, q) = P(K, S, q, r), so the call's r plays the put's q:
 *  - NEVER: r <= 0 and q >= r. Holding the strike earns nothing, the stock's
 *    carry costs nothing more: never exercised early, the European price.
 *  - ONE_BOUNDARY: r > 0 (q of either sign): one boundary below
 *    K min(1, r/q) (K where q <= r), the case every method models.
 *  - TWO_BOUNDARIES: q < r <= 0: exercise pays only in a band between two
 *    boundaries (at r = 0 the lower one is 0), which only the tree models. */
typedef enum gk_american_exercise {
  GK_EXERCISE_NEVER = 0,
  GK_EXERCISE_ONE_BOUNDARY = 1,
  GK_EXERCISE_TWO_BOUNDARIES = 2
} gk_american_exercise;

gk_american_exercise gk_american_exercise_of(const gk_american_option *o);

/* Width of the one-boundary strip next to the two-boundary region (0 <= r < this
 * for the put, with q < r) that is routed with it: no Greek bump of bs2002 or alo
 * (rates by 1e-5) then crosses from their domain into the tree's. */
#define GK_AMERICAN_ROUTE_MARGIN 1e-4

/* Whether element i (classified valid) is priced by the tree whatever the method
 * asked: two boundaries, or within GK_AMERICAN_ROUTE_MARGIN of them (never
 * black76, where q = r). Its price and Greeks are then the tree's, with the
 * tree's accuracy. */
int gk_american_routed_to_tree(gk_model model, const gk_option_batch *in, size_t i);

/* Prices element i (classified valid, routed) by the tree: price and Greeks
 * as GK_AMERICAN_TREE's. */
void gk_american_price_routed_element(gk_model model, const gk_option_batch *in, size_t i, unsigned outputs,
                                      gk_greeks_batch *out);

/* A price function of one option: the method, or a vector kernel's own. */
typedef double (*gk_american_pricer)(const gk_american_option *o);

/* Prices element i of `in` (already classified valid) with `pricer` and writes the
 * requested outputs, the Greeks by the method's bump-and-reprice rules. */
void gk_american_price_element(gk_model model, gk_american_method method, gk_american_pricer pricer,
                               const gk_option_batch *in, size_t i, unsigned outputs,
                               gk_greeks_batch *out);

/* Kernels: price in->count elements with method, return the invalid count. */
typedef size_t (*gk_american_kernel)(gk_model model, gk_american_method method,
                                     const gk_option_batch *in, unsigned outputs,
                                     gk_greeks_batch *out);
size_t gk_american_kernel_scalar(gk_model model, gk_american_method method,
                                 const gk_option_batch *in, unsigned outputs, gk_greeks_batch *out);
size_t gk_american_kernel_avx2(gk_model model, gk_american_method method,
                               const gk_option_batch *in, unsigned outputs, gk_greeks_batch *out);
size_t gk_american_kernel_avx512(gk_model model, gk_american_method method,
                                 const gk_option_batch *in, unsigned outputs, gk_greeks_batch *out);

/* Bump sizes of the Greeks (docs/kernels.md): relative for S and T, absolute for
 * sigma, r and q. A sigma bump that would leave the domain (below 0) is taken
 * one-sided, forward; r and q bumps are central at any sign. */
typedef struct gk_american_bumps {
  double spot_relative, expiry_relative, vol, rate;
  /* The tree's price wiggles in S with the period of its node spacing,
   * sigma sqrt(T / steps) in log S: its spot bump spans this many spacings so
   * that delta and gamma average the wiggle out. 0 for BS2002. */
  double spot_node_spacings;
  /* The smooth methods' spot bump is at most this share of one standard
   * deviation of log S to expiry, sigma sqrt(T), and at least 1e-10 of S
   * (GK_AMERICAN_SPOT_BUMP_FLOOR): near expiry S x 1e-4 spans the whole
   * distribution (a put a minute from expiry at a vol of 0.05: delta 93% off,
   * gamma 16%; found in review). 0: no cap (the tree's bump must span its
   * nodes). */
  double spot_stddevs;
} gk_american_bumps;

#define GK_AMERICAN_SPOT_BUMP_FLOOR 1e-10

/* The spot bump h of an option (S, sigma, T) under `bump`. */
static inline double gk_american_spot_bump(const gk_american_bumps *bump, double S, double sigma, double T) {
  double node_spacing = sigma * sqrt(T / GK_AMERICAN_TREE_STEPS), stddev = sigma * sqrt(T);
  /* Capped at S/2: at sigma sqrt(T) >= 8 the node-spacing bump would reach S
   * and S - h leave the domain. */
  double relative = fmin(0.5, fmax(bump->spot_relative, bump->spot_node_spacings * node_spacing));
  if (bump->spot_stddevs > 0.0)
    relative = fmin(relative, fmax(bump->spot_stddevs * stddev, GK_AMERICAN_SPOT_BUMP_FLOOR));
  return S * relative;
}

const gk_american_bumps *gk_american_bumps_of(gk_american_method method);

#endif /* GREEKS_AMERICAN_INTERNAL_H */
