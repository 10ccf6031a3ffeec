/*
 * American options by the Andersen-Lake-Offengelden fixed point, the vector
 * body shared by every vector ISA: kernels/scalar/american_alo_scalar.c step
 * for step, VLANES options at a time in lock step.
 *
 * How: every lane runs the same scheme (its coarse and fine grids' nodes,
 * rules and steps, the p-point price rule), so the loops are the scalar ones with each double
 * replaced by a vector of VLANES options; the rules' constants (node
 * positions, sines, cosines, weights) are scalars broadcast to every lane.
 * What differs per lane is data, never control flow:
 *  - the QD+ Newton solve runs until every lane has converged, a converged
 *    lane keeping its value (so it gets what it would get alone);
 *  - FP-A or FP-B is a per-lane choice (sigma against the scheme's threshold,
 *    and the fallback where FP-A's residual grows): both steps are computed
 *    from the same integrals and the lane selects one;
 *  - the exercise test S <= B(T) is a select.
 * Per point of a node the scalar reference stores 1 / (sigma sqrt t); here it
 * is a per-node vector times the rule's 1 / cos, and only the two discounted
 * weights are stored (thread-local, like the scalar node tables). The normal
 * CDF is the rational tail of normal_tail_rational.h with one exp, as in the
 * scalar code; N(d+) and N(d-) share one division. Every Greek comes from
 * the same solve as the price (gk_alo_price_greeks): vega, rho and phi with
 * the adjoint solve of the linearised boundary equations, eliminated without
 * pivoting so that every lane runs the same operations; the full Newton steps
 * after the Jacobi-Newton ones solve the same linearised system, each lane
 * on its own equation (FP-A or FP-B), by the same elimination.
 * The interpolant's cardinal functions L_m (H(z) = sum_m L_m(z) H_m) at every
 * point of every node do not depend on the option: the plan tabulates them
 * once per process and level (alov_plan_of, barycentric formula), so H at a
 * point is one multiply-add per node value and its gradient in the node
 * values, which the Newton steps need, is the table itself (the scalar
 * reference takes the same numbers through the Chebyshev coefficients).
 * Results agree with the scalar reference to rounding (tests/test_american_alo.c
 * bounds the difference), not bit for bit: exp, log and the rational's
 * evaluation order differ.
 *
 * Elements the vector path does not price go to the scalar reference element
 * by element: invalid, expired, sigma sqrt(T) below GK_AMERICAN_TINY_STDDEV,
 * never exercised early (European), or a non-finite vector result (a
 * non-finite Greek included): those elements get the scalar element path,
 * every output, exactly as the scalar kernel prices them; the elements alo
 * hands to the tree (gk_american_routed_to_tree) to the tree, before any
 * lane is spent on them, as the scalar kernel routes; elements past the
 * wide scheme's own lines (gk_alo_beyond_levels) to its bracketed scalar
 * solve. The others are packed VLANES at a time (alov_pack), those past the
 * levels' reach apart, on that level's scheme past it (adr/0059), so no lane
 * of a solve is spent on an element priced elsewhere; since no lane's result
 * depends on another's, a price does not depend on its neighbours in the
 * batch (adr/0043).
 *
 * Why: the boundary's integrals are nearly all of the work (n l m points, two
 * normal CDFs each) and they vectorize across options without gathers.
 *
 * Included once per ISA translation unit after that ISA's simd_*.h and
 * american_vector.h (av_european, av_market).
 */
#ifndef GREEKS_AMERICAN_ALO_VECTOR_H
#define GREEKS_AMERICAN_ALO_VECTOR_H

#include <float.h>
#include <math.h>
#include <pthread.h>

#include "american_internal.h"
#include "normal_vector.h"
#include "scratch.h"

/* The largest scheme the vector path runs (the levels and the schemes past
 * their reach fit: the wide one has 32 nodes); a larger one goes to the
 * scalar reference. */
#define ALOV_MAX_NODES 32
#define ALOV_MAX_POINTS 32
#define ALOV_MAX_PRICE_POINTS 128

#define ALOV_PI 3.14159265358979323846

/* One grid of the boundary: n nodes and the l-point rule of their integrals. */
typedef struct alov_grid {
  const gk_alo_rule *rule;
  int n, l;
  double half2[ALOV_MAX_NODES + 1];   /* sqrt(tau_i / T) = sin^2(i pi / 2n) */
  double cosines[2 * ALOV_MAX_NODES]; /* cos(j pi / n) */
  double z[ALOV_MAX_NODES + 1][ALOV_MAX_POINTS]; /* z of u = tau_i sin_j^2 */
  double inv_cos[ALOV_MAX_POINTS];
  const double *cardinal; /* L_m(z[i][j]) at cardinal[(i * l + j) * ALOV_STRIDE + m] */
} alov_grid;

/* A scheme's constants, shared by every group of a batch call: the fine grid,
 * the coarse one where the scheme starts from it (adr/0040), the price rule's. */
typedef struct alov_plan {
  const gk_alo_scheme *scheme;
  gk_alo_level level;
  int past_reach; /* the plan past the levels' reach: its prices are floored at R(T) (gk_alo_first_touch_floor) */
  alov_grid fine, coarse;
  int has_coarse;
  const double *price_basis; /* T_k(2 sin_j^2 - 1) of the price rule at price_basis[j * ALOV_STRIDE + k] */
  double price_inv_cos[ALOV_MAX_PRICE_POINTS];
} alov_plan;

#define ALOV_STRIDE (ALOV_MAX_NODES + 1)

static const double *alov_cardinal_at(const alov_grid *p, int i, int j) {
  return p->cardinal + ((size_t)i * (size_t)p->l + (size_t)j) * ALOV_STRIDE;
}

/* L_m(z), m = 0..n, of the nodes z_m = -cos(m pi / n) by the barycentric
 * formula (weights (-1)^m, halved at the ends); on a node, 1 there and ~0
 * elsewhere. */
static void alov_cardinal_functions(const alov_grid *p, double z, double *L) {
  int n = p->n;
  double sum = 0.0;
  for (int m = 0; m <= n; m++) {
    double weight = ((m & 1) ? -1.0 : 1.0) * (m == 0 || m == n ? 0.5 : 1.0), gap = z + p->cosines[m];
    L[m] = weight / (gap != 0.0 ? gap : DBL_MIN);
    sum += L[m];
  }
  for (int m = 0; m <= n; m++) L[m] /= sum;
}

/* The plans, two per level (its own scheme, and the one past its reach:
 * gk_alo_scheme_for), built once and kept: the accurate level's cardinal
 * tables take ~30 us to build, and greeksd prices American batches 8 options
 * a kernel call (~90 us with Greeks). Every grid's table is carved from one
 * arena: (n + 1) l rows of ALOV_STRIDE, 2092 rows for the four plans. */
#define ALOV_ARENA_DOUBLES (3 * (ALOV_MAX_NODES + 1) * ALOV_MAX_POINTS * ALOV_STRIDE)

enum { ALOV_WITHIN_REACH, ALOV_PAST_REACH, ALOV_REACHES };

typedef struct alov_plans {
  alov_plan plan[ALOV_REACHES][GK_ALO_LEVEL_COUNT];
  int state[ALOV_REACHES][GK_ALO_LEVEL_COUNT]; /* 0 not built yet, 1 built, -1 not for the vector path */
  size_t arena_used;
  double price_basis[ALOV_REACHES][GK_ALO_LEVEL_COUNT][ALOV_MAX_PRICE_POINTS * ALOV_STRIDE];
  double arena[ALOV_ARENA_DOUBLES];
} alov_plans;

/* `doubles` of the arena, or NULL where it cannot hold them. */
static double *alov_arena_take(alov_plans *plans, size_t doubles) {
  if (doubles > ALOV_ARENA_DOUBLES - plans->arena_used) return NULL;
  double *taken = plans->arena + plans->arena_used;
  plans->arena_used += doubles;
  return taken;
}

/* A grid of n nodes on `rule`, its cardinal functions in the arena. Returns 0
 * where the grid's arrays or the arena cannot hold it. */
static int alov_grid_init(alov_grid *g, int n, const gk_alo_rule *rule, alov_plans *plans) {
  g->rule = rule, g->n = n, g->l = rule->count;
  if (g->n < 1 || g->n > ALOV_MAX_NODES || g->l < 1 || g->l > ALOV_MAX_POINTS) return 0;
  double *cardinal = alov_arena_take(plans, (size_t)(g->n + 1) * (size_t)g->l * ALOV_STRIDE);
  if (cardinal == NULL) return 0;
  g->cardinal = cardinal;
  for (int j = 0; j < 2 * g->n; j++) g->cosines[j] = cos(j * ALOV_PI / g->n);
  for (int i = 0; i <= g->n; i++) {
    double half = sin(i * ALOV_PI / (2.0 * g->n));
    g->half2[i] = half * half;
    for (int j = 0; j < g->l; j++) g->z[i][j] = 2.0 * g->half2[i] * rule->sin[j] - 1.0;
  }
  for (int j = 0; j < g->l; j++) g->inv_cos[j] = 1.0 / rule->cos[j];
  for (int i = 1; i <= g->n; i++)
    for (int j = 0; j < g->l; j++)
      alov_cardinal_functions(g, g->z[i][j], cardinal + ((size_t)i * (size_t)g->l + (size_t)j) * ALOV_STRIDE);
  return 1;
}

/* Level `level`'s plan on `scheme`, its price rule's table in price_basis. */
static int alov_plan_init(alov_plan *p, gk_alo_level level, const gk_alo_scheme *scheme, alov_plans *plans,
                          double *price_basis) {
  p->scheme = scheme, p->level = level;
  if (scheme == NULL || scheme->price.count < 1 || scheme->price.count > ALOV_MAX_PRICE_POINTS) return 0;
  if (!alov_grid_init(&p->fine, scheme->nodes, &scheme->boundary, plans)) return 0;
  p->has_coarse = scheme->coarse_nodes > 0;
  if (p->has_coarse && !alov_grid_init(&p->coarse, scheme->coarse_nodes, &scheme->coarse_boundary, plans)) return 0;
  for (int j = 0; j < scheme->price.count; j++) {
    double *T = price_basis + (size_t)j * ALOV_STRIDE, z = 2.0 * scheme->price.sin[j] - 1.0;
    T[0] = 1.0, T[1] = z;
    for (int k = 2; k <= p->fine.n; k++) T[k] = 2.0 * z * T[k - 1] - T[k - 2];
    p->price_inv_cos[j] = 1.0 / scheme->price.cos[j];
  }
  p->price_basis = price_basis;
  return 1;
}

/* The levels' plans, built once per process at the first call (~60 us) and
 * only read after: they do not depend on the option. They were thread-local,
 * and glibc zeroes every thread's static TLS at its creation, priced or not:
 * 800 KB of the kernels' 1.4 MB per thread, in every thread of a program
 * linking them (found in review; adr/0042, decision 7 amended). */
static _Alignas(64) alov_plans alov_shared_plans;
static pthread_once_t alov_plans_once = PTHREAD_ONCE_INIT;

static void alov_build_plans(void) {
  alov_plans *plans = &alov_shared_plans;
  for (int reach = 0; reach < ALOV_REACHES; reach++)
    for (int level = 0; level < GK_ALO_LEVEL_COUNT; level++) {
      const gk_alo_scheme *scheme = reach == ALOV_WITHIN_REACH ? gk_alo_scheme_of((gk_alo_level)level)
                                                               : gk_alo_scheme_past_reach((gk_alo_level)level);
      plans->state[reach][level] = alov_plan_init(&plans->plan[reach][level], (gk_alo_level)level, scheme, plans,
                                                  plans->price_basis[reach][level])
                                       ? 1
                                       : -1;
      plans->plan[reach][level].past_reach = reach == ALOV_PAST_REACH;
    }
}

/* The level's plan within its reach or past it, NULL where the scheme does
 * not fit the vector path (then the scalar reference prices those elements). */
static const alov_plan *alov_plan_of(gk_alo_level level, int reach) {
  if ((unsigned)level >= GK_ALO_LEVEL_COUNT) return NULL;
  pthread_once(&alov_plans_once, alov_build_plans);
  return alov_shared_plans.state[reach][level] > 0 ? &alov_shared_plans.plan[reach][level] : NULL;
}

/* N(x) and the density n(x) from one exp (the scalar normal_cdf_density). */
static inline vdouble alov_cdf_density(vdouble x, vdouble *density) {
  vdouble y = v_abs(x);
  vmask far = v_ge(y, v_set1(37.5)); /* N(-37.5) < 1e-300: 0 and 1 */
  y = v_min(y, v_set1(37.5));
  vdouble g = v_mul(v_set1(GK_INV_SQRT_2PI), v_exp_bounded(v_mul(v_mul(y, y), v_set1(-0.5))));
  g = v_select(far, v_set1(0.0), g);
  vdouble p, q;
  tail_rational_terms(y, &p, &q);
  vdouble tail = v_mul(g, v_div(p, q));
  *density = g;
  return v_select(v_lt(x, v_set1(0.0)), tail, v_sub(v_set1(1.0), tail));
}

static inline vdouble alov_cdf(vdouble x) {
  vdouble density;
  return alov_cdf_density(x, &density);
}

/* N and n of d+ and d- at once: the two rationals share one division,
 * P1/Q1 = P1 Q2 / (Q1 Q2) (Q <= 4e16 on [0, 37.5]: the product is finite). */
static inline void alov_cdf_density_pair(vdouble x1, vdouble x2, vdouble *N1, vdouble *n1, vdouble *N2,
                                         vdouble *n2) {
  vdouble cap = v_set1(37.5), zero = v_set1(0.0), one = v_set1(1.0);
  vdouble y1 = v_min(v_abs(x1), cap), y2 = v_min(v_abs(x2), cap);
  vdouble g1 = v_mul(v_set1(GK_INV_SQRT_2PI), v_exp_bounded(v_mul(v_mul(y1, y1), v_set1(-0.5))));
  vdouble g2 = v_mul(v_set1(GK_INV_SQRT_2PI), v_exp_bounded(v_mul(v_mul(y2, y2), v_set1(-0.5))));
  g1 = v_select(v_ge(y1, cap), zero, g1), g2 = v_select(v_ge(y2, cap), zero, g2);
  vdouble p1, q1, p2, q2;
  tail_rational_terms(y1, &p1, &q1);
  tail_rational_terms(y2, &p2, &q2);
  vdouble inv = v_div(one, v_mul(q1, q2));
  vdouble tail1 = v_mul(g1, v_mul(v_mul(p1, q2), inv)), tail2 = v_mul(g2, v_mul(v_mul(p2, q1), inv));
  *n1 = g1, *n2 = g2;
  *N1 = v_select(v_lt(x1, zero), tail1, v_sub(one, tail1));
  *N2 = v_select(v_lt(x2, zero), tail2, v_sub(one, tail2));
}

/* The put of each lane. */
typedef struct alov_put {
  vdouble S, K, T, r, q, sigma, xmax;
  vdouble kappa; /* (r - q) / sigma + sigma / 2: d+ = x / (sigma sqrt t) + kappa sqrt t */
  /* Derived once per group (alov_put_derive), not at every node: the nodes'
   * terms were a division or a log apiece. */
  vdouble log_xmax_over_K, inv_sigma, inv_xmax;
  vdouble kappa_sigma;  /* d kappa / d sigma = 1/2 - (r - q) / sigma^2 */
  vdouble by_r, by_q;   /* d ln(xmax) / dr and / dq */
  vdouble inv_r, inv_q; /* 1 / r and 1 / q, 1 where (nearly) 0 */
  vmask r_nonzero, q_nonzero;
} alov_put;

/* d ln(xmax) / dr and / dq (the scalar xmax_slopes). */
static inline void alov_xmax_slopes(const alov_put *m, vdouble *by_r, vdouble *by_q) {
  vmask above = v_gt(m->q, m->r);
  vdouble zero = v_set1(0.0), one = v_set1(1.0);
  *by_r = v_select(above, v_div(one, m->r), zero);
  *by_q = v_select(above, v_sub(zero, v_div(one, m->q)), zero);
}

/* m's derived constants from S, K, T, r, q, sigma and xmax. */
static void alov_put_derive(alov_put *m) {
  vdouble one = v_set1(1.0);
  m->kappa = v_fma(v_set1(0.5), m->sigma, v_div(v_sub(m->r, m->q), m->sigma));
  m->log_xmax_over_K = v_log(v_div(m->xmax, m->K));
  m->inv_sigma = v_div(one, m->sigma), m->inv_xmax = v_div(one, m->xmax);
  m->kappa_sigma = v_sub(v_set1(0.5), v_div(v_sub(m->r, m->q), v_mul(m->sigma, m->sigma)));
  alov_xmax_slopes(m, &m->by_r, &m->by_q);
  m->r_nonzero = v_gt(v_abs(m->r), v_set1(1e-200)), m->q_nonzero = v_gt(v_abs(m->q), v_set1(1e-200));
  m->inv_r = v_div(one, v_select(m->r_nonzero, m->r, one));
  m->inv_q = v_div(one, v_select(m->q_nonzero, m->q, one));
}

/* ---- QD+ start (qdplus_at, qdplus_residual, qdplus_step, qdplus_nodes) ---- */

/* A node's constants; every division a Newton step would repeat is a
 * reciprocal here (the steps were divider-bound: eight divisions each). */
typedef struct alov_qdplus {
  vdouble tau, sqrt_tau, v, dr, dq, alpha_dr, beta;
  vdouble inv_K, inv_v, drift_over_v, half_over_tau, half_sigma_over_sqrt_tau;
} alov_qdplus;

static inline alov_qdplus alov_qdplus_at(const alov_put *m, vdouble tau) {
  alov_qdplus g;
  vdouble one = v_set1(1.0), s2 = v_mul(m->sigma, m->sigma), rt = v_mul(m->r, tau);
  g.tau = tau, g.sqrt_tau = v_sqrt(tau), g.v = v_mul(m->sigma, g.sqrt_tau);
  g.dr = v_exp(v_sub(v_set1(0.0), rt)), g.dq = v_exp(v_sub(v_set1(0.0), v_mul(m->q, tau)));
  vdouble h = v_sub(v_set1(0.0), v_expm1(v_sub(v_set1(0.0), rt)));
  vdouble r_h = v_select(v_lt(rt, v_set1(1e-300)), v_div(one, tau), v_div(m->r, h));
  vdouble omega = v_div(v_mul(v_set1(2.0), v_sub(m->r, m->q)), s2), om1 = v_sub(omega, one);
  vdouble root = v_sqrt(v_fma(om1, om1, v_div(v_mul(v_set1(8.0), r_h), s2)));
  vdouble lambda = v_mul(v_set1(-0.5), v_add(om1, root));
  vdouble lambda_h = v_div(v_mul(v_set1(2.0), v_mul(r_h, r_h)), v_mul(s2, root));
  vdouble denom = v_add(v_mul(v_set1(2.0), lambda), om1);
  g.alpha_dr = v_div(v_set1(2.0), v_mul(s2, denom));
  g.beta = v_sub(v_mul(v_mul(g.alpha_dr, g.dr), v_add(r_h, v_div(lambda_h, denom))), lambda);
  g.inv_K = v_div(one, m->K), g.inv_v = v_div(one, g.v), g.drift_over_v = v_mul(v_sub(m->r, m->q), g.inv_v);
  g.half_over_tau = v_div(v_set1(0.5), tau);
  g.half_sigma_over_sqrt_tau = v_div(v_mul(v_set1(0.5), m->sigma), g.sqrt_tau);
  return g;
}

static inline vdouble alov_qdplus_residual(const alov_put *m, const alov_qdplus *g, vdouble S, vdouble *slope) {
  vdouble x = v_log(v_mul(S, g->inv_K));
  vdouble dp = v_fma(v_set1(0.5), g->v, v_mul(v_fma(v_sub(m->r, m->q), g->tau, x), g->inv_v)), dm = v_sub(dp, g->v);
  vdouble pdf, pdf_m, Nmdp, Nmdm;
  alov_cdf_density_pair(v_sub(v_set1(0.0), dp), v_sub(v_set1(0.0), dm), &Nmdp, &pdf, &Nmdm, &pdf_m);
  vdouble KdrN = v_mul(v_mul(m->K, g->dr), Nmdm), SdqN = v_mul(v_mul(S, g->dq), Nmdp);
  vdouble put = v_sub(KdrN, SdqN);
  vdouble theta = v_sub(v_sub(v_mul(m->r, KdrN), v_mul(m->q, SdqN)),
                        v_mul(g->half_sigma_over_sqrt_tau, v_mul(v_mul(S, g->dq), pdf)));
  vdouble exercise_delta = v_sub(v_set1(1.0), v_mul(g->dq, Nmdp));
  vdouble inner = v_sub(g->drift_over_v, v_mul(dm, g->half_over_tau));
  vdouble dtheta = v_mul(v_sub(v_set1(0.0), g->dq), v_fma(pdf, inner, v_mul(m->q, Nmdp)));
  *slope = v_add(v_add(v_mul(v_add(v_set1(1.0), g->beta), exercise_delta), v_mul(v_mul(g->dq, pdf), g->inv_v)),
                 v_mul(g->alpha_dr, dtheta));
  vdouble excess = v_sub(v_sub(m->K, S), put);
  return v_add(v_sub(v_mul(exercise_delta, S), v_mul(g->beta, excess)), v_mul(g->alpha_dr, theta));
}

/* One QD+ Newton step from S in (0, xmax]; *moved: the lanes it moved by
 * more than 1e-6 relative (the scalar qdplus_step's test: Newton
 * converges quadratically here, so a smaller step leaves ~1e-12). */
static inline vdouble alov_qdplus_step(const alov_put *m, const alov_qdplus *g, vdouble S, vmask *moved) {
  vdouble slope, residual = alov_qdplus_residual(m, g, S, &slope);
  vdouble next = v_sub(S, v_div(residual, slope));
  next = v_select(v_gt(next, v_set1(0.0)), next, v_mul(v_set1(0.5), S)); /* NaN, or past 0 */
  next = v_select(v_gt(next, m->xmax), m->xmax, next);
  *moved = v_gt(v_abs(v_sub(next, S)), v_mul(v_set1(1e-6), S));
  return next;
}

/* QD+ at every node of g into H[1..n] (the scalar qdplus_nodes): one step
 * per node, node after node, from its warm start (xmax at the first, then
 * the line through the last two nodes' H in sqrt(tau)); then the remaining
 * steps of all nodes interleaved, each lane of each node until its step is
 * below 1e-6 relative (or 64 steps in all). A step is a chain of ~75 ns per
 * 8 lanes but ~50 ns of throughput: node after node, the pipes waited. */
static void alov_qdplus_nodes(const alov_grid *g, const alov_put *m, vdouble sqrt_T, vdouble *H) {
  alov_qdplus at[ALOV_MAX_NODES + 1];
  vdouble S[ALOV_MAX_NODES + 1], zero = v_set1(0.0);
  vmask active[ALOV_MAX_NODES + 1];
  int n = g->n;
  H[0] = zero;
  for (int i = 1; i <= n; i++) {
    vdouble sqrt_tau = v_mul(sqrt_T, v_set1(g->half2[i])), start = m->xmax;
    if (i >= 2) { /* H is smooth in sqrt(tau) */
      double f = (g->half2[i] - g->half2[i - 1]) / (g->half2[i - 1] - g->half2[i - 2]);
      vdouble guess = v_max(v_fma(v_sub(H[i - 1], H[i - 2]), v_set1(f), H[i - 1]), H[i - 1]);
      start = v_mul(m->xmax, v_exp(v_sub(zero, v_sqrt(guess))));
    }
    at[i] = alov_qdplus_at(m, v_mul(sqrt_tau, sqrt_tau));
    S[i] = alov_qdplus_step(m, &at[i], start, &active[i]);
    vdouble lg = v_log(v_mul(S[i], m->inv_xmax));
    H[i] = v_mul(lg, lg);
  }
  for (int it = 1; it < 64; it++) {
    unsigned any = 0;
    for (int i = 1; i <= n; i++) {
      if (!m_bits(active[i])) continue;
      vmask moved;
      vdouble next = alov_qdplus_step(m, &at[i], S[i], &moved);
      S[i] = v_select(active[i], next, S[i]);
      active[i] = m_and(active[i], moved);
      any |= m_bits(active[i]);
    }
    if (!any) break;
  }
  for (int i = 1; i <= n; i++) {
    vdouble lg = v_log(v_mul(S[i], m->inv_xmax));
    H[i] = v_mul(lg, lg);
  }
}

/* ---- the boundary: Chebyshev coefficients per lane ---- */

static void alov_fit(const alov_grid *p, const vdouble *H, vdouble *a) {
  int n = p->n;
  for (int k = 0; k <= n; k++) {
    vdouble sum = v_mul(v_set1(0.5), v_add((k & 1) ? v_sub(v_set1(0.0), H[0]) : H[0], H[n]));
    for (int i = 1, at = k; i < n; i++, at = at + k >= 2 * n ? at + k - 2 * n : at + k) {
      double t = p->cosines[at]; /* cos(i k pi / n): at = i k mod 2n */
      sum = v_fma(H[i], v_set1((k & 1) ? -t : t), sum);
    }
    a[k] = v_mul(sum, v_set1(2.0 / n));
  }
  a[0] = v_mul(a[0], v_set1(0.5));
  a[n] = v_mul(a[n], v_set1(0.5));
}

static inline vdouble alov_boundary_h(const vdouble *a, int n, double z) {
  vdouble b1 = v_set1(0.0), b2 = v_set1(0.0), z2 = v_set1(2.0 * z);
  for (int k = n; k >= 1; k--) {
    vdouble t = v_fma(z2, b1, v_sub(a[k], b2));
    b2 = b1, b1 = t;
  }
  return v_max(v_fma(v_set1(z), b1, v_sub(a[0], b2)), v_set1(0.0));
}

/* H at a point from its tabulated Chebyshev polynomials: sum_k a_k T_k,
 * floored at 0, in four partial sums (a Clenshaw recurrence is one chain). */
static inline vdouble alov_chebyshev_sum(const vdouble *a, int n, const double *T) {
  vdouble zero = v_set1(0.0), h[4] = {a[0], zero, zero, zero};
  int k = 1;
  for (; k + 3 <= n; k += 4)
    for (int c = 0; c < 4; c++) h[c] = v_fma(a[k + c], v_set1(T[k + c]), h[c]);
  for (; k <= n; k++) h[0] = v_fma(a[k], v_set1(T[k]), h[0]);
  return v_max(v_add(v_add(h[0], h[1]), v_add(h[2], h[3])), zero);
}

/* H at a point from its tabulated cardinal functions: sum_m L_m H_m (H_0 =
 * 0), floored at 0. Four partial sums: one chain of n multiply-adds would
 * make every point wait n FMA latencies. */
static inline vdouble alov_boundary_h_at(const vdouble *H, int n, const double *L) {
  vdouble zero = v_set1(0.0), h[4] = {zero, zero, zero, zero};
  int m = 1;
  for (; m + 3 <= n; m += 4)
    for (int c = 0; c < 4; c++) h[c] = v_fma(H[m + c], v_set1(L[m + c]), h[c]);
  for (; m <= n; m++) h[0] = v_fma(H[m], v_set1(L[m]), h[0]);
  return v_max(v_add(v_add(h[0], h[1]), v_add(h[2], h[3])), zero);
}

/* The transpose of alov_fit (the scalar fit_boundary_transpose): out_m =
 * sum_k g_k da_k/dH_m. */
static void alov_fit_transpose(const alov_grid *p, const vdouble *g, vdouble *out) {
  int n = p->n;
  vdouble scaled[ALOV_MAX_NODES + 1];
  for (int k = 0; k <= n; k++)
    scaled[k] = v_mul(g[k], v_set1((2.0 / n) * (k == 0 || k == n ? 0.5 : 1.0) * ((k & 1) ? -1.0 : 1.0)));
  for (int m = 0; m <= n; m++) {
    vdouble sum = v_set1(0.0);
    for (int k = 0, at = 0; k <= n; k++, at = at + m >= 2 * n ? at + m - 2 * n : at + m)
      sum = v_fma(scaled[k], v_set1(p->cosines[at]), sum); /* at = m k mod 2n */
    out[m] = v_mul(sum, v_set1(m == 0 || m == n ? 0.5 : 1.0));
  }
}

/* ---- the fixed point ---- */

/* A node's per-lane constants; the points' discounted weights r tau w_j e^{-r t}
 * and q tau w_j e^{-q t} live in the caller's arrays. */
typedef struct alov_node {
  vdouble tau, sqrt_tau, dr, dq, v, inv_v, kappa_sqrt_tau;
} alov_node;

static void alov_tabulate_node(const alov_put *m, const gk_alo_rule *rule, vdouble sqrt_tau, alov_node *t,
                               vdouble *wr, vdouble *wq) {
  t->sqrt_tau = sqrt_tau, t->tau = v_mul(sqrt_tau, sqrt_tau);
  t->dr = v_exp(v_sub(v_set1(0.0), v_mul(m->r, t->tau)));
  t->dq = v_exp(v_sub(v_set1(0.0), v_mul(m->q, t->tau)));
  t->v = v_mul(m->sigma, sqrt_tau), t->inv_v = v_div(v_set1(1.0), t->v);
  t->kappa_sqrt_tau = v_mul(m->kappa, sqrt_tau);
  vdouble r_tau = v_mul(m->r, t->tau), q_tau = v_mul(m->q, t->tau);
  for (int j = 0; j < rule->count; j++) {
    double c2 = rule->cos[j] * rule->cos[j];
    vdouble time_to_go = v_mul(t->tau, v_set1(c2)), w = v_set1(rule->weight[j]);
    wr[j] = v_mul(v_mul(r_tau, w), v_exp(v_sub(v_set1(0.0), v_mul(m->r, time_to_go))));
    wq[j] = v_mul(v_mul(q_tau, w), v_exp(v_sub(v_set1(0.0), v_mul(m->q, time_to_go))));
  }
}

typedef struct alov_sums {
  vdouble nb, db, na, da;
} alov_sums;


/* The points' normal CDFs and densities, a stage at a time: every point's
 * arguments first, then N and n of all of them in one short loop, then the
 * sums. A point's chain (its H, sqrt, exp, rational, division) is ~200
 * cycles long; done point by point, the out-of-order window held little more
 * than one point, and the FMA pipes idled. In a loop of CDFs alone several
 * points are in flight at once. Thread-local: too large for small stacks. */
typedef struct alov_points {
  vdouble x[2 * ALOV_MAX_POINTS], N[2 * ALOV_MAX_POINTS], density[2 * ALOV_MAX_POINTS];
  vdouble root_h[ALOV_MAX_POINTS], slope[ALOV_MAX_POINTS]; /* sqrt(H) at the point; c_ij / sqrt(H) (the price pass: c^power, adr/0057) */
} alov_points;

/* One set of points per thread for the three users (the Jacobi-Newton sums,
 * the linearisation, the price pass: never two at once); the price pass's
 * p points take several blocks. In this thread's scratch (alov_scratch,
 * below): alov_put_price points this at it before any of them runs (one
 * thread-local load where they run, per node and iteration). */
static _Thread_local alov_points *alov_points_now;

static void alov_cdf_density_many(alov_points *pts, int count) {
  for (int k = 0; k < count; k += 2)
    alov_cdf_density_pair(pts->x[k], pts->x[k + 1], &pts->N[k], &pts->density[k], &pts->N[k + 1],
                          &pts->density[k + 1]);
}

static alov_sums alov_integrate_node(const alov_grid *p, int i, const vdouble *H, const alov_node *t,
                                     const vdouble *wr, const vdouble *wq, vdouble root_h) {
  alov_points *pts = alov_points_now;
  const gk_alo_rule *rule = p->rule;
  int l = rule->count;
  alov_sums s = {v_set1(0.0), v_set1(0.0), v_set1(0.0), v_set1(0.0)};
  for (int j = 0; j < l; j++) {
    vdouble inv_v = v_mul(t->inv_v, v_set1(p->inv_cos[j]));
    vdouble h = alov_boundary_h_at(H, p->n, alov_cardinal_at(p, i, j));
    vdouble ep = v_fma(v_sub(v_sqrt(h), root_h), inv_v, v_mul(t->kappa_sqrt_tau, v_set1(rule->cos[j])));
    pts->x[2 * j] = ep, pts->x[2 * j + 1] = v_sub(ep, v_mul(t->v, v_set1(rule->cos[j])));
  }
  alov_cdf_density_many(pts, 2 * l);
  for (int j = 0; j < l; j++) {
    vdouble inv_v = v_mul(t->inv_v, v_set1(p->inv_cos[j]));
    vdouble Np = pts->N[2 * j], np = pts->density[2 * j], Nm = pts->N[2 * j + 1], nm = pts->density[2 * j + 1];
    s.nb = v_fma(wr[j], Nm, s.nb);
    s.db = v_fma(wq[j], Np, s.db);
    s.na = v_fma(wr[j], v_mul(nm, inv_v), s.na);
    s.da = v_fma(wq[j], v_fma(np, inv_v, Np), s.da);
  }
  return s;
}

static inline vdouble alov_newton_step(vdouble K, vdouble B, vdouble N, vdouble D, vdouble dN, vdouble dD,
                                       vdouble *residual) {
  vdouble inv_D = v_div(v_set1(1.0), D), N_over_D = v_mul(N, inv_D);
  vdouble f = v_mul(K, N_over_D);
  vdouble slope = v_mul(v_mul(K, inv_D), v_sub(dN, v_mul(dD, N_over_D)));
  *residual = v_sub(f, B);
  vdouble next = v_sub(B, v_div(*residual, v_sub(slope, v_set1(1.0))));
  vmask ok = v_le_and(v_gt(next, v_set1(0.0)), next, v_set1(DBL_MAX));
  return v_select(ok, next, f);
}

/* ln(next / xmax)^2, 0 at or above xmax, NaN where next is not in (0, DBL_MAX]. */
static inline vdouble alov_h_of(const alov_put *m, vdouble next) {
  vmask ok = v_le_and(v_gt(next, v_set1(0.0)), next, v_set1(DBL_MAX));
  vdouble l = v_log(v_select(v_lt(next, m->xmax), v_mul(next, m->inv_xmax), v_set1(1.0))); /* exactly 0 at xmax */
  return v_select(ok, v_mul(l, l), v_set1(NAN));
}

typedef struct alov_steps {
  vdouble h_a, h_b, residual;
} alov_steps;

static alov_steps alov_node_step(const alov_grid *p, int i, const alov_put *m, const vdouble *H,
                                 const alov_node *t, const vdouble *wr, const vdouble *wq) {
  vdouble zero = v_set1(0.0), h = H[i];
  vdouble root_h = v_sqrt(h), B = v_mul(m->xmax, v_exp(v_sub(zero, root_h)));
  vdouble x = v_sub(m->log_xmax_over_K, root_h);
  vdouble dp = v_fma(v_set1(0.5), t->v, v_mul(v_fma(v_sub(m->r, m->q), t->tau, x), t->inv_v)), dm = v_sub(dp, t->v);
  vdouble np, nm, Np, Nm;
  alov_cdf_density_pair(dp, dm, &Np, &np, &Nm, &nm);
  alov_sums s = alov_integrate_node(p, i, H, t, wr, wq, root_h);
  alov_steps out;
  vdouble residual, inv_Bv = v_div(v_set1(1.0), v_mul(B, t->v)), inv_Bs2t = v_mul(inv_Bv, t->inv_v); /* B sigma^2 tau */
  {
    vdouble N = v_add(v_mul(v_mul(t->dr, nm), t->inv_v), s.na);
    vdouble D = v_add(v_mul(t->dq, v_fma(np, t->inv_v, Np)), s.da);
    vdouble dN = v_mul(v_mul(v_sub(zero, v_mul(t->dr, nm)), dm), inv_Bs2t);
    vdouble dD = v_mul(v_mul(t->dq, np), v_sub(inv_Bv, v_mul(dp, inv_Bs2t)));
    out.h_a = alov_h_of(m, alov_newton_step(m->K, B, N, D, dN, dD, &residual));
  }
  {
    vdouble N = v_fma(t->dr, Nm, s.nb), D = v_fma(t->dq, Np, s.db);
    vdouble dN = v_mul(v_mul(t->dr, nm), inv_Bv), dD = v_mul(v_mul(t->dq, np), inv_Bv);
    vdouble h_b = alov_h_of(m, alov_newton_step(m->K, B, N, D, dN, dD, &residual));
    out.residual = v_abs(residual);
    out.h_b = v_select(v_eq(h_b, h_b), h_b, h);
    out.residual = v_select(v_eq(out.h_a, out.h_a), out.residual, v_set1(INFINITY));
  }
  return out;
}

/* ---- the put ---- */

/* The premium and its S-derivatives at the fixed boundary (the scalar
 * exercise_premium), and where `sens` is not NULL its derivatives in sigma, r
 * and q at a fixed boundary shape and its gradient in the node unknowns
 * l_m = sqrt(H_m). */
typedef struct alov_premium {
  vdouble value, delta, gamma;
} alov_premium;

enum { ALOV_SIGMA, ALOV_RATE, ALOV_YIELD, ALOV_PARAMS };

typedef struct alov_sensitivity {
  vdouble param[ALOV_PARAMS];
  vdouble shape[ALOV_MAX_NODES + 1];
} alov_sensitivity;

/* The premium's variable at price point j for each lane (the scalar
 * exercise_premium's): t = T c^(2 power), c = cos theta_j, so that where the
 * spot sits a little above today's boundary the S-derivatives' peak lands on
 * the rule. Lanes at power 1 keep the rule's own t = T c^2, bit for bit. */
typedef struct alov_mapped {
  vdouble c;      /* c^power */
  vdouble inv_v;  /* 1 / (sigma sqrt(T) c^power) */
  vdouble weight; /* the rule's weight x power c^(2 power - 2) */
} alov_mapped;

/* c^power at point j (the first pass stores it: the exp is taken once). */
static inline vdouble alov_mapped_cos(const gk_alo_rule *rule, int j, vdouble power, vmask plain) {
  double c = rule->cos[j];
  return v_select(plain, v_set1(c), v_exp(v_mul(power, v_set1(log(c)))));
}

/* The rest of the point's map from its c^power. */
static inline alov_mapped alov_map_point(const alov_plan *p, const gk_alo_rule *rule, int j, vdouble power,
                                         vmask plain, vdouble ca, vdouble inv_sigma_sqrt_T) {
  double c = rule->cos[j];
  vdouble ratio = v_mul(ca, v_set1(1.0 / c));
  alov_mapped out;
  out.c = ca;
  out.inv_v = v_select(plain, v_mul(inv_sigma_sqrt_T, v_set1(p->price_inv_cos[j])), v_div(inv_sigma_sqrt_T, ca));
  out.weight = v_select(plain, v_set1(rule->weight[j]), v_mul(v_mul(v_set1(rule->weight[j]), power), v_mul(ratio, ratio)));
  return out;
}

/* The boundary's coordinate at point j: 2 sqrt(1 - c^(2 power)) - 1 (1 -
 * c^(2 power) by expm1: no cancellation near c = 1). */
static inline vdouble alov_mapped_z(const gk_alo_rule *rule, int j, vdouble power, vmask plain) {
  double lc = log(rule->cos[j]);
  vdouble z = v_sub(v_mul(v_set1(2.0), v_sqrt(v_sub(v_set1(0.0), v_expm1(v_mul(power, v_set1(2.0 * lc)))))),
                    v_set1(1.0));
  return v_select(plain, v_set1(2.0 * rule->sin[j] - 1.0), z);
}

/* sum_k a_k T_k(z) floored at 0, z per lane (alov_boundary_h's Clenshaw). */
static inline vdouble alov_boundary_h_lanes(const vdouble *a, int n, vdouble z) {
  vdouble b1 = v_set1(0.0), b2 = v_set1(0.0), z2 = v_add(z, z);
  for (int k = n; k >= 1; k--) {
    vdouble t = v_fma(z2, b1, v_sub(a[k], b2));
    b2 = b1, b1 = t;
  }
  return v_max(v_fma(z, b1, v_sub(a[0], b2)), v_set1(0.0));
}

static alov_premium alov_exercise_premium(const alov_plan *p, const alov_put *m, const vdouble *a, const vdouble *H,
                                          const gk_alo_rule *rule, vdouble power, alov_sensitivity *sens) {
  int n = p->fine.n;
  vdouble sqrt_T = v_sqrt(m->T), x0 = v_log(v_div(m->S, m->xmax)), zero = v_set1(0.0), one = v_set1(1.0);
  vdouble rK = v_mul(m->r, m->K), qS = v_mul(m->q, m->S), by_r = m->by_r, by_q = m->by_q;
  vdouble kappa_sigma = m->kappa_sigma;
  vdouble l[ALOV_MAX_NODES + 1];
  alov_premium sum = {zero, zero, zero};
  vdouble shape_basis[ALOV_MAX_NODES + 1];
  for (int k = 0; k <= n; k++) shape_basis[k] = zero;
  if (sens) {
    for (int k = 0; k < ALOV_PARAMS; k++) sens->param[k] = zero;
    for (int k = 0; k <= n; k++) sens->shape[k] = zero, l[k] = v_sqrt(H[k]);
  }
  vdouble inv_sigma_sqrt_T = v_div(one, v_mul(m->sigma, sqrt_T)), inv_S = v_div(one, m->S);
  vdouble inv_sigma = m->inv_sigma;
  vmask plain = v_eq(power, one);
  int mapped = m_bits(plain) != (1u << VLANES) - 1u; /* a lane near its boundary: the per-lane map */
  /* a stage at a time (alov_points): the arguments, the CDFs, the sums */
  alov_points *pts = alov_points_now;
  for (int j = 0; j < rule->count; j++) {
    alov_points *at = &pts[j / ALOV_MAX_POINTS];
    int k = j % ALOV_MAX_POINTS;
    vdouble sqrt_t = v_mul(sqrt_T, v_set1(rule->cos[j])), inv_v = v_mul(inv_sigma_sqrt_T, v_set1(p->price_inv_cos[j]));
    vdouble root_h = v_sqrt(alov_chebyshev_sum(a, n, p->price_basis + (size_t)j * ALOV_STRIDE));
    if (mapped) { /* c^power kept in the point's slope slot, unused by this pass */
      vdouble ca = at->slope[k] = alov_mapped_cos(rule, j, power, plain);
      alov_mapped map = alov_map_point(p, rule, j, power, plain, ca, inv_sigma_sqrt_T);
      sqrt_t = v_mul(sqrt_T, map.c), inv_v = map.inv_v;
      root_h = v_select(plain, root_h, v_sqrt(alov_boundary_h_lanes(a, n, alov_mapped_z(rule, j, power, plain))));
    }
    vdouble dp = v_fma(m->kappa, sqrt_t, v_mul(v_add(x0, root_h), inv_v));
    at->root_h[k] = root_h, at->x[2 * k] = v_sub(zero, dp), at->x[2 * k + 1] = v_sub(v_mul(m->sigma, sqrt_t), dp);
  }
  for (int j = 0; j < rule->count; j += ALOV_MAX_POINTS) {
    int left = rule->count - j;
    alov_cdf_density_many(&pts[j / ALOV_MAX_POINTS], 2 * (left < ALOV_MAX_POINTS ? left : ALOV_MAX_POINTS));
  }
  for (int j = 0; j < rule->count; j++) {
    const alov_points *at = &pts[j / ALOV_MAX_POINTS];
    int i = j % ALOV_MAX_POINTS;
    double c = rule->cos[j];
    const double *T = p->price_basis + (size_t)j * ALOV_STRIDE;
    vdouble t = v_mul(m->T, v_set1(c * c)), sqrt_t = v_mul(sqrt_T, v_set1(c));
    vdouble inv_v = v_mul(inv_sigma_sqrt_T, v_set1(p->price_inv_cos[j]));
    vdouble w = v_set1(rule->weight[j]), z = v_set1(2.0 * rule->sin[j] - 1.0);
    if (mapped) {
      alov_mapped map = alov_map_point(p, rule, j, power, plain, at->slope[i], inv_sigma_sqrt_T);
      t = v_select(plain, t, v_mul(m->T, v_mul(map.c, map.c))), sqrt_t = v_mul(sqrt_T, map.c);
      inv_v = map.inv_v, w = map.weight;
      if (sens) z = alov_mapped_z(rule, j, power, plain); /* the shape basis only */
    }
    vdouble inv_Sv = v_mul(inv_S, inv_v);
    vdouble root_h = at->root_h[i], x = v_add(x0, root_h);
    vdouble dp = v_sub(zero, at->x[2 * i]);
    vdouble Np = at->N[2 * i], np = at->density[2 * i], Nm = at->N[2 * i + 1], nm = at->density[2 * i + 1];
    vdouble er = v_exp(v_sub(zero, v_mul(m->r, t))), eq = v_exp(v_sub(zero, v_mul(m->q, t)));
    vdouble B = v_mul(m->xmax, v_exp(v_sub(zero, root_h)));
    vdouble edge = v_mul(v_mul(v_mul(v_sub(v_mul(m->q, B), rK), er), nm), inv_Sv);
    sum.value = v_fma(w, v_sub(v_mul(v_mul(rK, er), Nm), v_mul(v_mul(qS, eq), Np)), sum.value);
    sum.delta = v_fma(w, v_sub(edge, v_mul(v_mul(m->q, eq), Np)), sum.delta);
    sum.gamma = v_fma(w, v_mul(v_sub(v_mul(v_mul(m->q, eq), np), v_mul(edge, dp)), inv_Sv), sum.gamma);
    if (!sens) continue;
    vdouble rKn = v_mul(v_mul(rK, er), nm), qSn = v_mul(v_mul(qS, eq), np), spread = v_sub(qSn, rKn);
    vdouble dp_sigma = v_fma(kappa_sigma, sqrt_t, v_sub(zero, v_mul(v_mul(x, inv_v), inv_sigma)));
    vdouble dm_sigma = v_sub(dp_sigma, sqrt_t), t_sigma = v_mul(sqrt_t, inv_sigma);
    vdouble dp_r = v_sub(t_sigma, v_mul(by_r, inv_v)), dp_q = v_sub(v_sub(zero, v_mul(by_q, inv_v)), t_sigma);
    vdouble rate_term = v_mul(v_mul(v_mul(m->K, er), v_sub(one, v_mul(m->r, t))), Nm);
    vdouble yield_term = v_mul(v_mul(v_mul(m->S, eq), v_sub(one, v_mul(m->q, t))), Np);
    sens->param[ALOV_SIGMA] = v_fma(w, v_sub(v_mul(qSn, dp_sigma), v_mul(rKn, dm_sigma)), sens->param[ALOV_SIGMA]);
    sens->param[ALOV_RATE] = v_fma(w, v_fma(spread, dp_r, rate_term), sens->param[ALOV_RATE]);
    sens->param[ALOV_YIELD] = v_fma(w, v_sub(v_mul(spread, dp_q), yield_term), sens->param[ALOV_YIELD]);
    /* d sqrt(H(z)) / d l_m = l_m L_m(z) / sqrt(H), L_m = sum_k T_k(z) da_k/dH_m;
     * 0 where H is floored at 0 */
    vdouble g_x = v_mul(w, v_div(v_mul(edge, m->S), root_h));
    g_x = v_select(v_gt(root_h, zero), g_x, zero);
    if (!mapped) {
      for (int k = 0; k <= n; k++) shape_basis[k] = v_fma(g_x, v_set1(T[k]), shape_basis[k]);
      continue;
    }
    /* T_k at each lane's own z (the tabulated ones where plain) */
    vdouble before = one, now = z, z2 = v_add(z, z);
    for (int k = 0; k <= n; k++) {
      vdouble Tk = k == 0 ? one : now;
      if (k >= 1) {
        vdouble next = v_sub(v_mul(z2, now), before);
        before = now, now = next;
      }
      shape_basis[k] = v_fma(g_x, v_select(plain, v_set1(T[k]), Tk), shape_basis[k]);
    }
  }
  sum.value = v_mul(m->T, sum.value), sum.delta = v_mul(m->T, sum.delta), sum.gamma = v_mul(m->T, sum.gamma);
  if (sens) {
    vdouble A[ALOV_MAX_NODES + 1];
    alov_fit_transpose(&p->fine, shape_basis, A);
    for (int k = 1; k <= n; k++) sens->shape[k] = v_mul(A[k], l[k]);
    for (int k = 0; k < ALOV_PARAMS; k++) sens->param[k] = v_mul(m->T, sens->param[k]);
    for (int k = 1; k <= n; k++) sens->shape[k] = v_mul(m->T, sens->shape[k]);
  }
  return sum;
}

/* ---- the linearised boundary equations: the Newton steps and vega, rho and
 * phi's adjoint (the scalar linearise_node, lu_*, linearise_system,
 * newton_iteration, premium_parameter_slopes) ---- */

/* F_i of FP-B, or of FP-A where fp_a, row i of its J and, where F_p is not
 * NULL (FP-B only), F_i's parameter slopes (the scalar linearise_node). */
static vdouble alov_linearise_node(const alov_grid *p, int i, const alov_put *m, const vdouble *H, const vdouble *roots,
                                   const alov_node *t, const vdouble *wr, const vdouble *wq, vmask fp_a,
                                   vdouble *row, vdouble *F_p) {
  const gk_alo_rule *rule = p->rule;
  int n = p->n, l = rule->count;
  vdouble zero = v_set1(0.0), half = v_set1(0.5), one = v_set1(1.0), by_r = m->by_r, by_q = m->by_q;
  vdouble li = roots[i], B = v_mul(m->xmax, v_exp(v_sub(zero, li)));
  vdouble x = v_sub(m->log_xmax_over_K, li), inv_sigma = m->inv_sigma, kappa_sigma = m->kappa_sigma;
  vdouble dp = v_fma(half, t->v, v_mul(v_fma(v_sub(m->r, m->q), t->tau, x), t->inv_v)), dm = v_sub(dp, t->v);
  vdouble np, nm, Np, Nm;
  alov_cdf_density_pair(dp, dm, &Np, &np, &Nm, &nm);
  vdouble dp_sigma = v_fma(half, t->sqrt_tau, v_mul(v_sub(zero, v_fma(v_set1(-0.5), t->v, dp)), inv_sigma));
  vdouble dm_sigma = v_sub(dp_sigma, t->sqrt_tau);
  vdouble dp_r = v_mul(v_add(by_r, t->tau), t->inv_v), dp_q = v_mul(v_sub(by_q, t->tau), t->inv_v);
  vdouble drn = v_mul(t->dr, nm), dqn = v_mul(t->dq, np);
  vdouble N_p[ALOV_PARAMS] = {v_mul(drn, dm_sigma), v_sub(v_mul(drn, dp_r), v_mul(v_mul(t->tau, t->dr), Nm)),
                              v_mul(drn, dp_q)};
  vdouble D_p[ALOV_PARAMS] = {v_mul(dqn, dp_sigma), v_mul(dqn, dp_r),
                              v_sub(v_mul(dqn, dp_q), v_mul(v_mul(t->tau, t->dq), Np))};
  /* the node's own terms: FP-B K dr N(d-) - B dq N(d+), FP-A K dr n(d-)/v - B dq (n(d+)/v + N(d+)) */
  vdouble N = v_select(fp_a, v_mul(drn, t->inv_v), v_mul(t->dr, Nm));
  vdouble D = v_select(fp_a, v_mul(t->dq, v_fma(np, t->inv_v, Np)), v_mul(t->dq, Np));
  vdouble diag_b = v_mul(v_sub(v_mul(B, dqn), v_mul(m->K, drn)), t->inv_v);
  vdouble diag_a = v_mul(v_sub(v_mul(v_mul(m->K, drn), v_mul(dm, t->inv_v)),
                               v_mul(v_mul(B, dqn), v_fma(dp, t->inv_v, v_set1(-1.0)))),
                         t->inv_v);
  vdouble diag = v_select(fp_a, diag_a, diag_b);
  if (F_p) { /* FP-A's node terms: its densities move too, n'(d) = -d n(d) */
    vdouble a_n = v_mul(drn, t->inv_v), a_p = v_mul(dqn, t->inv_v), spread = v_sub(dqn, v_mul(a_p, dp));
    vdouble A_N[ALOV_PARAMS] = {v_mul(a_n, v_sub(v_mul(v_sub(zero, dm), dm_sigma), inv_sigma)),
                                v_mul(a_n, v_sub(v_mul(v_sub(zero, dm), dp_r), t->tau)),
                                v_mul(v_sub(zero, a_n), v_mul(dm, dp_q))};
    vdouble A_D[ALOV_PARAMS] = {v_fma(dqn, dp_sigma, v_mul(a_p, v_sub(v_mul(v_sub(zero, dp), dp_sigma), inv_sigma))),
                                v_mul(spread, dp_r), v_fma(spread, dp_q, v_mul(v_sub(zero, t->tau), D))};
    for (int k = 0; k < ALOV_PARAMS; k++)
      N_p[k] = v_select(fp_a, A_N[k], N_p[k]), D_p[k] = v_select(fp_a, A_D[k], D_p[k]);
  }
  vmask r_nonzero = m->r_nonzero, q_nonzero = m->q_nonzero;
  vdouble inv_r = m->inv_r, inv_q = m->inv_q;
  alov_points *pts = alov_points_now;
  for (int j = 0; j < l; j++) { /* the points' arguments */
    vdouble cc = v_set1(rule->cos[j]), inv_v = v_mul(t->inv_v, v_set1(p->inv_cos[j]));
    vdouble root_h = v_sqrt(alov_boundary_h_at(H, n, alov_cardinal_at(p, i, j)));
    vdouble ep = v_fma(v_sub(root_h, li), inv_v, v_mul(t->kappa_sqrt_tau, cc));
    pts->root_h[j] = root_h, pts->x[2 * j] = ep, pts->x[2 * j + 1] = v_sub(ep, v_mul(t->v, cc));
  }
  alov_cdf_density_many(pts, 2 * l);
  for (int j = 0; j < l; j++) {
    double c = rule->cos[j];
    vdouble cc = v_set1(c);
    vdouble inv_v = v_mul(t->inv_v, v_set1(p->inv_cos[j]));
    vdouble root_h = pts->root_h[j], gap = v_sub(root_h, li), ep = pts->x[2 * j], em = pts->x[2 * j + 1];
    vdouble Npj = pts->N[2 * j], npj = pts->density[2 * j], Nmj = pts->N[2 * j + 1], nmj = pts->density[2 * j + 1];
    vdouble wrn = v_mul(wr[j], nmj), wqn = v_mul(wq[j], npj), Kwrn = v_mul(m->K, wrn), Bwqn = v_mul(B, wqn);
    vdouble c_b = v_mul(inv_v, v_sub(Kwrn, Bwqn));
    vdouble c_a = v_mul(inv_v, v_sub(v_mul(v_sub(zero, Kwrn), v_mul(em, inv_v)),
                                     v_mul(Bwqn, v_sub(one, v_mul(ep, inv_v)))));
    vdouble cij = v_select(fp_a, c_a, c_b);
    N = v_add(N, v_select(fp_a, v_mul(wrn, inv_v), v_mul(wr[j], Nmj)));
    D = v_add(D, v_select(fp_a, v_fma(wqn, inv_v, v_mul(wq[j], Npj)), v_mul(wq[j], Npj)));
    diag = v_sub(diag, cij);
    if (F_p) {
      vdouble sqrt_t = v_mul(t->sqrt_tau, cc), time_to_go = v_mul(t->tau, v_set1(c * c));
      vdouble ep_sigma = v_fma(kappa_sigma, sqrt_t, v_mul(v_sub(zero, v_mul(gap, inv_v)), inv_sigma));
      vdouble ep_r = v_mul(sqrt_t, inv_sigma), w = v_set1(rule->weight[j]), em_sigma = v_sub(ep_sigma, sqrt_t);
      /* d(r tau w e^{-r t}) / dr = tau w e^{-r t} - t wr = wr (1/r - t), and the
       * same in q; tau w where the rate is (nearly) 0 */
      vdouble tau_w = v_mul(t->tau, w);
      vdouble wr_r = v_select(r_nonzero, v_mul(wr[j], v_sub(inv_r, time_to_go)), tau_w);
      vdouble wq_q = v_select(q_nonzero, v_mul(wq[j], v_sub(inv_q, time_to_go)), tau_w);
      /* FP-B's integrands N(e-), N(e+); FP-A's n(e-)/v_j, N(e+) + n(e+)/v_j */
      vdouble an = v_mul(wrn, inv_v), ap = v_mul(wqn, inv_v), spread = v_sub(wqn, v_mul(ap, ep));
      vdouble b_n[ALOV_PARAMS] = {v_mul(wrn, em_sigma), v_fma(wrn, ep_r, v_mul(wr_r, Nmj)),
                                  v_sub(zero, v_mul(wrn, ep_r))};
      vdouble b_d[ALOV_PARAMS] = {v_mul(wqn, ep_sigma), v_mul(wqn, ep_r), v_sub(v_mul(wq_q, Npj), v_mul(wqn, ep_r))};
      vdouble a_n[ALOV_PARAMS] = {v_mul(an, v_sub(v_mul(v_sub(zero, em), em_sigma), inv_sigma)),
                                  v_sub(v_mul(v_mul(wr_r, nmj), inv_v), v_mul(an, v_mul(em, ep_r))),
                                  v_mul(an, v_mul(em, ep_r))};
      vdouble a_d[ALOV_PARAMS] = {v_fma(wqn, ep_sigma, v_mul(ap, v_sub(v_mul(v_sub(zero, ep), ep_sigma), inv_sigma))),
                                  v_mul(spread, ep_r),
                                  v_sub(v_mul(wq_q, v_fma(npj, inv_v, Npj)), v_mul(spread, ep_r))};
      for (int k = 0; k < ALOV_PARAMS; k++) {
        N_p[k] = v_add(N_p[k], v_select(fp_a, a_n[k], b_n[k]));
        D_p[k] = v_add(D_p[k], v_select(fp_a, a_d[k], b_d[k]));
      }
    }
    pts->slope[j] = v_select(v_gt(root_h, zero), v_div(cij, root_h), zero);
  }
  /* A_m = sum_j c_ij L_m(z_ij) / sqrt(H(z_ij)), four m at a time */
  vdouble A[ALOV_MAX_NODES + 4];
  for (int k = 1; k <= n; k += 4) {
    vdouble acc[4] = {zero, zero, zero, zero};
    for (int j = 0; j < l; j++) {
      const double *L = alov_cardinal_at(p, i, j) + k;
      for (int c = 0; c < 4; c++) acc[c] = v_fma(pts->slope[j], v_set1(L[c]), acc[c]);
    }
    for (int c = 0; c < 4; c++) A[k + c] = acc[c];
  }
  diag = v_fma(B, D, diag);
  for (int k = 1; k <= n; k++) row[k] = v_mul(A[k], roots[k]);
  row[i] = v_add(row[i], diag);
  if (F_p) {
    F_p[ALOV_SIGMA] = v_sub(v_mul(m->K, N_p[ALOV_SIGMA]), v_mul(B, D_p[ALOV_SIGMA]));
    F_p[ALOV_RATE] = v_sub(v_mul(m->K, N_p[ALOV_RATE]), v_mul(B, v_fma(by_r, D, D_p[ALOV_RATE])));
    F_p[ALOV_YIELD] = v_sub(v_mul(m->K, N_p[ALOV_YIELD]), v_mul(B, v_fma(by_q, D, D_p[ALOV_YIELD])));
  }
  return v_sub(v_mul(m->K, N), v_mul(B, D));
}

/* J = L U in place, rows and columns 1..n of the W-wide A, without pivoting,
 * every lane at once (the scalar lu_factor): U on and above the diagonal, L's
 * multipliers below it. */
enum { ALOV_W = ALOV_MAX_NODES + 1 };

static void alov_lu_factor(int n, vdouble *A) {
  for (int c = 1; c <= n; c++) {
    vdouble inv_pivot = v_div(v_set1(1.0), A[c * ALOV_W + c]);
    for (int r = c + 1; r <= n; r++) {
      vdouble f = v_mul(A[r * ALOV_W + c], inv_pivot);
      A[r * ALOV_W + c] = f;
      for (int k = c + 1; k <= n; k++) A[r * ALOV_W + k] = v_sub(A[r * ALOV_W + k], v_mul(f, A[c * ALOV_W + k]));
    }
  }
}

/* J x = y with the factors (the scalar lu_solve); x overwrites y. */
static void alov_lu_solve(int n, const vdouble *A, vdouble *y) {
  for (int c = 1; c <= n; c++)
    for (int r = c + 1; r <= n; r++) y[r] = v_sub(y[r], v_mul(A[r * ALOV_W + c], y[c]));
  for (int c = n; c >= 1; c--) {
    vdouble sum = y[c];
    for (int k = c + 1; k <= n; k++) sum = v_sub(sum, v_mul(A[c * ALOV_W + k], y[k]));
    y[c] = v_div(sum, A[c * ALOV_W + c]);
  }
}

/* J^T x = y (the scalar lu_solve_transposed); x overwrites y. */
static void alov_lu_solve_transposed(int n, const vdouble *A, vdouble *y) {
  for (int c = 1; c <= n; c++) {
    vdouble sum = y[c];
    for (int k = 1; k < c; k++) sum = v_sub(sum, v_mul(A[k * ALOV_W + c], y[k]));
    y[c] = v_div(sum, A[c * ALOV_W + c]);
  }
  for (int c = n; c >= 1; c--)
    for (int r = c + 1; r <= n; r++) y[c] = v_sub(y[c], v_mul(A[r * ALOV_W + c], y[r]));
}

/* A linearised system of every lane (the scalar linear_system): J's factors
 * and, for the adjoint, F_p. */
typedef struct alov_system {
  vdouble LU[ALOV_W * ALOV_W];
  vdouble F_p[ALOV_W][ALOV_PARAMS];
} alov_system;

/* J (factored) and where with_slopes F_p at every node, F into F[1..n] (the
 * scalar linearise_system), each lane on its equation (fp_a). */
static void alov_linearise_system(const alov_grid *p, const alov_put *m, const vdouble *H, const alov_node *nodes,
                                  const vdouble *wr, const vdouble *wq, vmask fp_a, int with_slopes,
                                  alov_system *system, vdouble *F) {
  int n = p->n, l = p->l;
  vdouble row[ALOV_W], roots[ALOV_W]; /* l_k = sqrt(H_k) */
  for (int k = 0; k <= n; k++) roots[k] = v_sqrt(H[k]);
  for (int i = 1; i <= n; i++) {
    F[i] = alov_linearise_node(p, i, m, H, roots, &nodes[i], &wr[i * l], &wq[i * l], fp_a, row,
                               with_slopes ? system->F_p[i] : NULL);
    for (int k = 1; k <= n; k++) system->LU[i * ALOV_W + k] = row[k];
  }
  alov_lu_factor(n, system->LU);
}

/* One Newton step l <- l - J^{-1} F at every node (the scalar
 * newton_iteration): where a lane's step leaves l non-finite or negative,
 * half its l. */
static void alov_newton_iteration(const alov_grid *p, const alov_put *m, vdouble *H, const alov_node *nodes,
                                  const vdouble *wr, const vdouble *wq, vmask fp_a, alov_system *system) {
  int n = p->n;
  vdouble F[ALOV_W];
  alov_linearise_system(p, m, H, nodes, wr, wq, fp_a, 0, system, F);
  alov_lu_solve(n, system->LU, F);
  for (int i = 1; i <= n; i++) {
    vdouble li = v_sqrt(H[i]), next = v_sub(li, F[i]);
    vmask ok = v_le_and(v_ge(next, v_set1(0.0)), next, v_set1(DBL_MAX));
    next = v_select(ok, next, v_mul(v_set1(0.5), li));
    H[i] = v_mul(next, next);
  }
}

/* d P / d(sigma, r, q) of the premium with the boundary's move: P_p - lambda . F_p,
 * J^T lambda = P_l (the scalar premium_parameter_slopes). */
static void alov_premium_parameter_slopes(int n, const alov_system *system, const alov_sensitivity *sens,
                                          vdouble *slopes) {
  vdouble y[ALOV_W];
  for (int i = 1; i <= n; i++) y[i] = sens->shape[i];
  alov_lu_solve_transposed(n, system->LU, y);
  for (int q = 0; q < ALOV_PARAMS; q++) {
    slopes[q] = sens->param[q];
    for (int i = 1; i <= n; i++) slopes[q] = v_sub(slopes[q], v_mul(y[i], system->F_p[i][q]));
  }
}

/* Price, delta, gamma, theta, vega, rho and phi of each lane (the scalar
 * put_value). */
typedef struct alov_value {
  vdouble price, delta, gamma, theta, vega, rho, phi;
} alov_value;

/* The American put of every lane: r > 0, sigma sqrt(T) >= the tiny limit;
 * vega, rho and phi where with_slopes (else 0). */
/* The boundary on grid g (the scalar solve_boundary): from QD+ (coarse ==
 * NULL) or from the coarse grid's coefficients at g's nodes, then m
 * Jacobi-Newton and N Newton steps. Fills H, a and the node tables; *fp_a in
 * and out. */
static void alov_solve_boundary(const alov_grid *g, const alov_put *m, int iterations, int newton_steps,
                                const alov_grid *coarse, const vdouble *coarse_a, vdouble *H, vdouble *a,
                                alov_node *nodes, vdouble *wr, vdouble *wq, vmask *fp_a, alov_system *system) {
  int n = g->n, l = g->l;
  vdouble sqrt_T = v_sqrt(m->T), fallback[ALOV_MAX_NODES + 1];
  H[0] = fallback[0] = v_set1(0.0);
  if (!coarse) alov_qdplus_nodes(g, m, sqrt_T, H);
  for (int i = 1; i <= n; i++) {
    vdouble sqrt_tau = v_mul(sqrt_T, v_set1(g->half2[i]));
    if (coarse) H[i] = alov_boundary_h(coarse_a, coarse->n, 2.0 * g->half2[i] - 1.0);
    alov_tabulate_node(m, g->rule, sqrt_tau, &nodes[i], &wr[i * l], &wq[i * l]);
  }
  alov_fit(g, H, a);
  vdouble last = v_set1(INFINITY), floor = v_mul(v_set1(1e-13), m->K);
  for (int k = 0; k < iterations; k++) {
    vdouble worst = v_set1(0.0), h_a[ALOV_MAX_NODES + 1], h_b[ALOV_MAX_NODES + 1];
    for (int i = 1; i <= n; i++) {
      alov_steps st = alov_node_step(g, i, m, H, &nodes[i], &wr[i * l], &wq[i * l]);
      h_a[i] = st.h_a, h_b[i] = st.h_b;
      worst = v_max(st.residual, worst); /* a NaN residual leaves worst (fmax) */
    }
    vmask revert = m_and(*fp_a, m_and(v_gt(worst, v_mul(v_set1(2.0), last)), v_gt(worst, floor)));
    vmask keep_a = m_andnot(m_and(*fp_a, v_lt(worst, v_set1(INFINITY))), revert);
    for (int i = 1; i <= n; i++) {
      vdouble step = v_select(keep_a, h_a[i], h_b[i]);
      H[i] = v_select(revert, fallback[i], step);
      fallback[i] = v_select(revert, fallback[i], h_b[i]);
    }
    *fp_a = keep_a;
    last = worst;
    alov_fit(g, H, a);
  }
  for (int k = 0; k < newton_steps; k++) {
    alov_newton_iteration(g, m, H, nodes, wr, wq, *fp_a, system);
    alov_fit(g, H, a);
  }
}

/* The solve's working memory, too large for small stacks: this thread's
 * block (scratch.h; ALOV_SCRATCH_SLOT, one per ISA translation unit),
 * reserved by the batch entry points. The coarse solve's tables are done
 * with before the fine one fills them. */
typedef struct alov_scratch {
  alov_points points[ALOV_MAX_PRICE_POINTS / ALOV_MAX_POINTS];
  vdouble wr[(ALOV_MAX_NODES + 1) * ALOV_MAX_POINTS], wq[(ALOV_MAX_NODES + 1) * ALOV_MAX_POINTS];
  alov_system system;
} alov_scratch;

static alov_scratch *alov_scratch_of_thread(void) {
  return gk_thread_scratch(ALOV_SCRATCH_SLOT, sizeof(alov_scratch));
}

static alov_value alov_put_price(const alov_plan *p, const alov_put *m, int with_slopes) {
  const gk_alo_scheme *scheme = p->scheme;
  const alov_grid *g = &p->fine;
  int n = g->n;
  alov_scratch *scratch = alov_scratch_of_thread();
  if (scratch == NULL) { /* not reserved: no memory; a NaN lane goes to the scalar element path */
    vdouble nan = v_set1(NAN);
    return (alov_value){nan, nan, nan, nan, nan, nan, nan};
  }
  vdouble *wr = scratch->wr, *wq = scratch->wq;
  alov_system *system = &scratch->system;
  alov_points_now = scratch->points;
  alov_node nodes[ALOV_MAX_NODES + 1];
  vdouble H[ALOV_MAX_NODES + 1], a[ALOV_MAX_NODES + 1];
  vdouble sqrt_T = v_sqrt(m->T);
  vmask fp_a = scheme->equation == GK_ALO_FP_A ? v_eq(m->T, m->T)
               : scheme->equation == GK_ALO_FP_AUTO
                   ? v_lt(v_mul(v_set1(2.0), v_sub(m->r, m->q)),
                          v_mul(v_set1(scheme->fp_a_below_omega), v_mul(m->sigma, m->sigma)))
                                                    : v_lt(m->T, v_set1(0.0));
  if (p->has_coarse) {
    vdouble coarse_H[ALOV_MAX_NODES + 1], coarse_a[ALOV_MAX_NODES + 1];
    alov_solve_boundary(&p->coarse, m, scheme->coarse_iterations, scheme->coarse_newton_steps, NULL, NULL,
                        coarse_H, coarse_a, nodes, wr, wq, &fp_a, system);
    alov_solve_boundary(g, m, scheme->iterations, scheme->newton_steps, &p->coarse, coarse_a, H, a, nodes, wr, wq,
                        &fp_a, system);
  } else {
    alov_solve_boundary(g, m, scheme->iterations, scheme->newton_steps, NULL, NULL, H, a, nodes, wr, wq, &fp_a,
                        system);
  }
  if (with_slopes) { /* the adjoint's system at the converged boundary (the scalar alo_put) */
    vdouble F[ALOV_W];
    alov_linearise_system(g, m, H, nodes, wr, wq, fp_a, 1, system, F);
  }
  vdouble exercise = v_sub(m->K, m->S), zero = v_set1(0.0);
  vmask exercised = v_le(v_log(v_div(m->S, m->xmax)), v_sub(zero, v_sqrt(alov_boundary_h(a, n, 1.0))));
  av_option put = {m->S, m->K, m->T, m->r, v_sub(m->r, m->q), m->sigma, v_set1(-1.0)};
  alov_sensitivity sens;
  /* a spot a little above today's boundary B: the S-derivatives' integrands
   * peak at t ~ (ln(S/B))^2 / sigma^2, inside the rule's first node; the map
   * puts the peak near c = GK_ALO_PEAK_AT (the scalar alo_put's) */
  vdouble zeta = v_div(v_add(v_log(v_div(m->S, m->xmax)), v_sqrt(alov_boundary_h(a, n, 1.0))), v_mul(m->sigma, sqrt_T));
  vdouble power = v_min(v_mul(v_log(v_max(zeta, v_set1(1e-300))), v_set1(1.0 / log(GK_ALO_PEAK_AT))), v_set1(GK_ALO_MAX_POWER));
  power = v_select(v_lt(zeta, v_set1(GK_ALO_PEAK_AT)), power, v_set1(1.0));
  alov_premium premium = alov_exercise_premium(p, m, a, H, &scheme->price, power, with_slopes ? &sens : NULL);
  vdouble v = v_mul(m->sigma, sqrt_T), dq = v_exp(v_sub(zero, v_mul(m->q, m->T)));
  vdouble d1 = v_fma(v_set1(0.5), v, v_div(v_fma(v_sub(m->r, m->q), m->T, v_log(v_div(m->S, m->K))), v));
  vdouble n1, N1 = alov_cdf_density(v_sub(zero, d1), &n1);
  alov_value out;
  out.price = v_max(v_add(av_european(&put), v_max(premium.value, zero)), exercise);
  out.delta = v_min(v_max(v_fma(v_sub(zero, dq), N1, premium.delta), v_set1(-1.0)), zero); /* [-1, 0] */
  out.gamma = v_add(v_div(v_mul(dq, n1), v_mul(m->S, v)), premium.gamma);
  vdouble half_s2S2 = v_mul(v_mul(v_set1(0.5), v_mul(m->sigma, m->sigma)), v_mul(m->S, m->S));
  out.theta = v_sub(v_sub(v_mul(m->r, out.price), v_mul(v_mul(v_sub(m->r, m->q), m->S), out.delta)),
                    v_mul(half_s2S2, out.gamma));
  out.vega = out.rho = out.phi = zero;
  if (with_slopes) {
    vdouble slopes[ALOV_PARAMS], d2 = v_sub(d1, v), T_dq = v_mul(m->T, dq);
    alov_premium_parameter_slopes(n, system, &sens, slopes);
    out.vega = v_fma(v_mul(v_mul(m->S, dq), n1), sqrt_T, slopes[ALOV_SIGMA]);
    vdouble KTdr = v_mul(v_mul(m->K, m->T), v_exp(v_sub(zero, v_mul(m->r, m->T))));
    out.rho = v_sub(slopes[ALOV_RATE], v_mul(KTdr, alov_cdf(v_sub(zero, d2))));
    out.phi = v_fma(v_mul(m->S, T_dq), N1, slopes[ALOV_YIELD]);
    out.vega = v_select(exercised, zero, out.vega), out.rho = v_select(exercised, zero, out.rho);
    out.phi = v_select(exercised, zero, out.phi);
  }
  out.price = v_select(exercised, exercise, out.price);
  out.delta = v_select(exercised, v_set1(-1.0), out.delta);
  out.gamma = v_select(exercised, zero, out.gamma), out.theta = v_select(exercised, zero, out.theta);
  return out;
}

/* The put's deterministic price, max over t in [0, T] of K e^{-rt} - S e^{-qt}
 * (and 0): at t = 0, T, and where it is stationary, e^{(q - r) t} = q S / (r K)
 * (the scalar gk_american_deterministic_price; GK_ALO_FLOOR_SLACK). */
static vdouble alov_deterministic_put(const alov_put *m) {
  vdouble zero = v_set1(0.0), carry = v_sub(m->r, m->q);
  vmask stationary = m_and(v_gt(v_mul(m->r, m->q), zero), v_gt(v_abs(carry), zero));
  vdouble ratio = v_select(stationary, v_div(v_mul(m->r, m->K), v_mul(m->q, m->S)), v_set1(1.0));
  vdouble t = v_div(v_log(ratio), v_select(stationary, carry, v_set1(1.0)));
  t = v_select(m_and(stationary, m_and(v_gt(t, zero), v_lt(t, m->T))), t, m->T);
  vdouble at_t = v_sub(v_mul(m->K, v_exp(v_sub(zero, v_mul(m->r, t)))), v_mul(m->S, v_exp(v_sub(zero, v_mul(m->q, t)))));
  vdouble at_T = v_sub(v_mul(m->K, v_exp(v_sub(zero, v_mul(m->r, m->T)))),
                       v_mul(m->S, v_exp(v_sub(zero, v_mul(m->q, m->T)))));
  return v_max(v_max(v_sub(m->K, m->S), zero), v_max(at_t, at_T));
}

/* The perpetual put (the scalar perpetual_put): K - S at or below K lambda /
 * (lambda - 1), (K - B)(S / B)^lambda above, lambda the negative root of
 * sigma^2/2 l (l - 1) + (r - q) l - r = 0, without cancellation (r > 0). */
static vdouble alov_perpetual_put(const alov_put *m) {
  vdouble zero = v_set1(0.0), one = v_set1(1.0), a = v_mul(v_set1(0.5), v_mul(m->sigma, m->sigma));
  vdouble b = v_sub(v_sub(m->r, m->q), a), s = v_sqrt(v_fma(b, b, v_mul(v_set1(4.0), v_mul(a, m->r))));
  vdouble lambda = v_select(v_gt(b, zero), v_div(v_sub(v_sub(zero, b), s), v_add(a, a)),
                            v_div(v_mul(v_set1(-2.0), m->r), v_sub(s, b)));
  vdouble B = v_div(v_mul(m->K, lambda), v_sub(lambda, one));
  vdouble above = v_mul(v_sub(m->K, B), v_exp(v_mul(lambda, v_log(v_div(m->S, B)))));
  return v_select(v_le(m->S, B), v_sub(m->K, m->S), above);
}

/* The price of each lane of `o` (T > 0), and where `greeks` is not NULL its
 * delta, gamma, theta, vega, rho (d/dr at fixed q) and phi (d/dq at fixed r)
 * (gk_alo_price_greeks). Lanes outside the vector domain
 * and lanes whose result is not finite get the scalar reference's price and
 * are flagged in *scalar_lanes (their Greeks are left to the caller). */
static vdouble alov_price(const alov_plan *p, const av_option *o, alov_value *greeks, unsigned *scalar_lanes) {
  vdouble zero = v_set1(0.0), one = v_set1(1.0);
  vmask put = v_lt(o->omega, zero);
  vdouble q = v_sub(o->r, o->b);
  alov_put m;
  m.S = v_select(put, o->S, o->K), m.K = v_select(put, o->K, o->S);
  m.r = v_select(put, o->r, q), m.q = v_select(put, q, o->r);
  m.T = o->T, m.sigma = o->sigma;
  /* Outside the vector domain: the deterministic limit and the European case. */
  vmask tiny = v_lt(v_mul(o->sigma, v_sqrt(o->T)), v_set1(GK_AMERICAN_TINY_STDDEV));
  vmask european = m_and(v_le(m.r, zero), v_ge(m.q, m.r));
  unsigned scalar = m_bits(m_or(tiny, european));
  if (scalar) {
    vmask s = m_or(tiny, european);
    m.S = v_select(s, one, m.S), m.K = v_select(s, one, m.K), m.T = v_select(s, one, m.T);
    m.r = v_select(s, v_set1(0.05), m.r), m.q = v_select(s, v_set1(0.02), m.q);
    m.sigma = v_select(s, v_set1(0.2), m.sigma);
  }
  m.xmax = v_select(v_gt(m.q, m.r), v_mul(m.K, v_div(m.r, m.q)), m.K);
  alov_put_derive(&m);
  alov_value value = alov_put_price(p, &m, greeks != NULL);
  vdouble intrinsic = v_max(v_mul(o->omega, v_sub(o->S, o->K)), zero), deterministic = alov_deterministic_put(&m);
  vdouble floor = v_max(deterministic, av_european(o)), cap = v_max(alov_perpetual_put(&m), floor);
  vdouble price = v_min(v_max(value.price, v_max(floor, intrinsic)), cap);
  /* outside gk_alo_within_bounds: the grid lost the boundary (a tiny vol over
   * a long life): the scalar element path clamps it, Greeks by bumps */
  vdouble slack = v_mul(v_set1(GK_ALO_FLOOR_SLACK), o->K);
  scalar |= m_bits(m_or(v_lt(value.price, v_sub(floor, slack)), v_gt(value.price, v_add(cap, slack))));
  vmask finite = v_le(v_abs(price), v_set1(DBL_MAX));
  if (greeks) {
    /* Calls: the put with S and K swapped; by homogeneity dC/dS = (P - S_p P_S) / K_p
     * and d2C/dS2 = S_p^2 P_SS / K_p^2. Theta is the put's. */
    vdouble call_delta = v_div(v_sub(value.price, v_mul(m.S, value.delta)), m.K);
    vdouble call_gamma = v_div(v_mul(v_mul(m.S, m.S), value.gamma), v_mul(m.K, m.K));
    greeks->price = price;
    greeks->delta = v_select(put, value.delta, call_delta);
    greeks->gamma = v_select(put, value.gamma, call_gamma);
    greeks->theta = value.theta, greeks->vega = value.vega;
    /* the call's r is the put's q and the other way round */
    greeks->rho = v_select(put, value.rho, value.phi), greeks->phi = v_select(put, value.phi, value.rho);
    vdouble all = v_add(v_add(v_add(greeks->delta, greeks->gamma), greeks->theta),
                        v_add(v_add(greeks->vega, greeks->rho), greeks->phi));
    finite = m_and(finite, v_le(v_abs(all), v_set1(DBL_MAX)));
  }
  scalar |= ~m_bits(finite) & ((1u << VLANES) - 1u);
  if (p->past_reach) { /* R(T) floors the price there (adr/0065, decision 4): a solve below it by more than
                          the level's slack gets the scalar element path, which floors it with bumped Greeks */
    double lane_price[VLANES], floor_at[VLANES], S[VLANES], K[VLANES], T[VLANES], r[VLANES], b[VLANES], s[VLANES],
        w[VLANES];
    v_store(lane_price, value.price, VLANES), v_store(S, o->S, VLANES), v_store(K, o->K, VLANES);
    v_store(T, o->T, VLANES), v_store(r, o->r, VLANES), v_store(b, o->b, VLANES);
    v_store(s, o->sigma, VLANES), v_store(w, o->omega, VLANES);
    for (int k = 0; k < VLANES; k++) {
      gk_american_option lane = {S[k], K[k], T[k], r[k], b[k], s[k], w[k]};
      floor_at[k] = gk_alo_first_touch_floor(&lane);
      if (!(scalar >> k & 1u) && !(lane_price[k] >= floor_at[k] - gk_alo_first_touch_slack(p->level) * K[k]))
        scalar |= 1u << k;
    }
    price = v_max(price, v_load(floor_at, VLANES));
    if (greeks) greeks->price = price;
  }
  if (scalar_lanes) *scalar_lanes = scalar;
  if (!scalar) return price;
  double out[VLANES], S[VLANES], K[VLANES], T[VLANES], r[VLANES], b[VLANES], s[VLANES], w[VLANES];
  v_store(out, price, VLANES), v_store(S, o->S, VLANES), v_store(K, o->K, VLANES);
  v_store(T, o->T, VLANES), v_store(r, o->r, VLANES), v_store(b, o->b, VLANES);
  v_store(s, o->sigma, VLANES), v_store(w, o->omega, VLANES);
  for (int k = 0; k < VLANES; k++)
    if (scalar >> k & 1u) {
      gk_american_option one_option = {S[k], K[k], T[k], r[k], b[k], s[k], w[k]};
      out[k] = gk_alo_price_scheme(&one_option, p->scheme);
    }
  price = v_load(out, VLANES);
  if (greeks) greeks->price = price;
  return price;
}

static inline vdouble alov_price_at(const alov_plan *p, const av_market *m) {
  av_option o = {m->S, m->K, m->T, m->r, m->futures ? v_set1(0.0) : v_sub(m->r, m->q), m->sigma, m->omega};
  return alov_price(p, &o, NULL, NULL);
}

/* One group: the price and every Greek from one solve (as
 * gk_alo_price_element). */
static void alov_price_group(const alov_plan *p, gk_model model, const gk_option_batch *in, size_t i, size_t n,
                             unsigned scalar_lanes, unsigned outputs, gk_greeks_batch *out) {
  av_market m = av_load_group(model, in, i, n, scalar_lanes);
  vdouble zero = v_set1(0.0), price;
  unsigned redo = 0; /* lanes the scalar element path prices again, every output */
  if (outputs & ~(unsigned)GK_OUT_PRICE) {
    av_option o = {m.S, m.K, m.T, m.r, m.futures ? zero : v_sub(m.r, m.q), m.sigma, m.omega};
    alov_value value;
    price = alov_price(p, &o, &value, &redo);
    if (outputs & GK_OUT_DELTA) v_store(out->delta + i, value.delta, n);
    if (outputs & GK_OUT_GAMMA) v_store(out->gamma + i, value.gamma, n);
    if (outputs & GK_OUT_THETA) v_store(out->theta + i, value.theta, n);
    if (outputs & GK_OUT_VEGA) v_store(out->vega + i, value.vega, n);
    /* black76: q follows r (b = 0), so rho moves both and there is no phi */
    if (outputs & GK_OUT_RHO) v_store(out->rho + i, m.futures ? v_add(value.rho, value.phi) : value.rho, n);
    if (outputs & GK_OUT_PHI) v_store(out->phi + i, m.futures ? zero : value.phi, n);
  } else {
    price = alov_price_at(p, &m);
  }
  if (outputs & GK_OUT_PRICE) v_store(out->price + i, price, n);
  for (size_t k = 0; k < n; k++)
    if ((redo >> k & 1u) && !(scalar_lanes >> k & 1u)) gk_alo_price_element(model, p->level, in, i + k, outputs, out);
}

/* Whether valid element i lies outside the vector domain (alov_price): the
 * deterministic limit (sigma sqrt(T) tiny) or a put never exercised early
 * (r <= 0, q >= r; a call on q = 0 is one). The scalar reference prices
 * those in closed form; classed here, they take no lane of the vector solve,
 * which ran on stand-in values for them and threw the lanes away (an implied
 * vol's first batch is all at sigma = 0: it cost as much as a solve). And
 * an element past the levels' domain (GK_ALO_MAX_CARRY and the like), which
 * the scalar reference prices on the wide scheme within its bracket
 * (gk_alo_priced_as); those merely past the levels' reach take the vector
 * solve on the plan past it (adr/0059). */
static int alov_priced_alone(gk_model model, const gk_option_batch *in, size_t i) {
  double r = in->rate[i], q = model == GK_MODEL_BLACK76 ? r : in->yield[i];
  double r_put = in->type[i] == GK_PUT ? r : q, q_put = in->type[i] == GK_PUT ? q : r;
  return in->vol[i] * sqrt(in->expiry[i]) < GK_AMERICAN_TINY_STDDEV || (r_put <= 0.0 && q_put >= r_put) ||
         gk_alo_beyond_levels_at(model, in, i); /* the wide scheme's, bracketed (gk_alo_priced_as) */
}

/* VLANES elements of `in` that the vector solve prices, gathered into one
 * full group: a group's cost is the same whatever share of its lanes is
 * live, and a chain that alternates calls on q = 0 (priced alone) with puts
 * would otherwise solve every group for half its lanes. A lane's result does
 * not depend on its neighbours (every per-lane decision is masked), so the
 * packing changes no output. */
typedef struct alov_pack {
  size_t count, at[VLANES];
  double S[VLANES], K[VLANES], T[VLANES], r[VLANES], q[VLANES], vol[VLANES];
  uint8_t type[VLANES], error[VLANES];
  double price[VLANES], delta[VLANES], gamma[VLANES], vega[VLANES], theta[VLANES], rho[VLANES], phi[VLANES];
} alov_pack;

static void alov_pack_add(alov_pack *k, const gk_option_batch *in, size_t i) {
  size_t n = k->count++;
  k->at[n] = i;
  k->S[n] = in->spot[i], k->K[n] = in->strike[i], k->T[n] = in->expiry[i], k->r[n] = in->rate[i];
  k->q[n] = in->yield ? in->yield[i] : 0.0, k->vol[n] = in->vol[i], k->type[n] = in->type[i];
}

/* Prices the pack's elements as one group and writes their outputs back. */
static void alov_pack_price(const alov_plan *p, gk_model model, alov_pack *k, unsigned outputs,
                            gk_greeks_batch *out) {
  if (k->count == 0) return;
  gk_option_batch in = {k->count, k->S, k->K, k->T, k->r, k->q, k->vol, k->type};
  gk_greeks_batch packed = {.price = k->price, .delta = k->delta, .gamma = k->gamma, .vega = k->vega,
                            .theta = k->theta, .rho = k->rho, .phi = k->phi, .error = k->error};
  alov_price_group(p, model, &in, 0, k->count, 0, outputs, &packed);
  double *const from[] = {k->price, k->delta, k->gamma, k->vega, k->theta, k->rho, k->phi};
  double *const to[] = {out->price, out->delta, out->gamma, out->vega, out->theta, out->rho, out->phi};
  const unsigned bits[] = {GK_OUT_PRICE, GK_OUT_DELTA, GK_OUT_GAMMA, GK_OUT_VEGA, GK_OUT_THETA, GK_OUT_RHO, GK_OUT_PHI};
  for (size_t o = 0; o < sizeof bits / sizeof bits[0]; o++)
    if (outputs & bits[o])
      for (size_t j = 0; j < k->count; j++) to[o][k->at[j]] = from[o][j];
  k->count = 0;
}

/* Elements within the levels' reach go to one pack, those past it (on the
 * level's scheme past its reach, gk_alo_scheme_for) to another: a group's
 * lanes share one scheme. */
static size_t alo_vector_kernel(gk_model model, gk_alo_level level, const gk_option_batch *in, unsigned outputs,
                                gk_greeks_batch *out) {
  const alov_plan *plan = alov_plan_of(level, ALOV_WITHIN_REACH), *past = alov_plan_of(level, ALOV_PAST_REACH);
  if (plan == NULL) return gk_alo_kernel_scalar(model, level, in, outputs, out);
  size_t invalid = 0;
  alov_pack pack = {.count = 0}, past_pack = {.count = 0};
  for (size_t i = 0; i < in->count; i++) {
    gk_element_error error = gk_classify_american_element(model, in, i);
    out->error[i] = (uint8_t)error;
    if (error != GK_ELEMENT_OK) {
      invalid++;
      gk_zero_element_outputs(outputs, out, i);
    } else if (gk_american_perpetual_at(model, in, i)) { /* first, as the scalar kernel */
      gk_american_perpetual_element(model, in, i, outputs, out);
    } else if (gk_american_routed_to_tree(model, in, i)) {
      gk_american_price_routed_element(model, in, i, outputs, out); /* two boundaries: the tree's */
    } else if (in->expiry[i] == 0.0 || alov_priced_alone(model, in, i) ||
               (past == NULL && gk_alo_past_levels_reach_at(model, in, i))) {
      gk_alo_price_element(model, level, in, i, outputs, out);
    } else if (gk_alo_past_levels_reach_at(model, in, i)) {
      alov_pack_add(&past_pack, in, i);
      if (past_pack.count == VLANES) alov_pack_price(past, model, &past_pack, outputs, out);
    } else {
      alov_pack_add(&pack, in, i);
      if (pack.count == VLANES) alov_pack_price(plan, model, &pack, outputs, out);
    }
  }
  alov_pack_price(plan, model, &pack, outputs, out);
  if (past) alov_pack_price(past, model, &past_pack, outputs, out);
  return invalid;
}

#endif /* GREEKS_AMERICAN_ALO_VECTOR_H */
