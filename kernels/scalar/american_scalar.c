/*
 * Scalar reference for American options: Bjerksund-Stensland (2002), the BBSR
 * binomial tree, and Greeks by bump-and-reprice. Formulas: docs/kernels.md and
 * adr/0011-american-options.md. The tree takes every sign of r and q (it
 * compares holding with exercise at every node, so two exercise boundaries are
 * no special case); BS2002 models one boundary (gk_american_exercise_of).
 */
#include <float.h>
#include <math.h>

#include "../src/american_internal.h"
#include "../src/scratch.h"

#define SQRT5_MINUS_1_HALF 0.61803398874989484820 /* t1 / T of BS2002 */
#define LOG_SQRT_2PI 0.91893853320467274178

/* log N(x), finite down to the far left tail, where N(x) underflows. Products
 * of a huge power and a tiny probability are formed as exp(log a + log N). */
static double log_normal_cdf(double x) {
  if (x > -30.0) return log(gk_normal_cdf(x));
  /* Mills ratio series: N(x) = n(x)/|x| (1 - 1/x^2 + 3/x^4 - 15/x^6 + 105/x^8 ...) */
  double z = 1.0 / (x * x);
  double series = 1.0 - z * (1.0 - z * (3.0 - z * (15.0 - z * 105.0)));
  return -0.5 * x * x - log(-x) - LOG_SQRT_2PI + log(series);
}

/* exp(a) N2(x, y; rho) without overflowing exp(a) first. */
static double scaled_bivariate(double log_scale, double x, double y, double rho) {
  double m = gk_bivariate_normal_cdf(x, y, rho);
  return m > 0.0 ? exp(log_scale + log(m)) : 0.0;
}

double gk_american_european_price(const gk_american_option *o) {
  double s = o->sigma * sqrt(o->T), w = o->omega;
  double A = o->S * exp((o->b - o->r) * o->T), B = o->K * exp(-o->r * o->T);
  double floor_value = fmax(w * (A - B), 0.0);
  if (s < GK_TINY_STDDEV) return floor_value;
  double d1 = log(A / B) / s + 0.5 * s, d2 = d1 - s;
  return fmax(w * (A * gk_normal_cdf(w * d1) - B * gk_normal_cdf(w * d2)), floor_value);
}

/* e^{-rt} omega (S e^{bt} - K), formed as omega (S e^{(b-r)t} - K e^{-rt}): S e^{bt}
 * alone overflows where bt > 709 though the discounted value is finite (a
 * call with r = 5, q = -5, T = 100 was priced inf). */
static double discounted_intrinsic(const gk_american_option *o, double t) {
  return fmax(o->omega * (o->S * exp((o->b - o->r) * t) - o->K * exp(-o->r * t)), 0.0);
}

double gk_american_deterministic_price(const gk_american_option *o) {
  /* The discounted payoff e^{-rt} omega (S e^{bt} - K) is stationary at most
   * once, where (r - b) S e^{bt} = r K; the best time is there or at an end. */
  double best = fmax(discounted_intrinsic(o, 0.0), discounted_intrinsic(o, o->T));
  if (o->b != 0.0 && o->r != o->b && o->r * (o->r - o->b) > 0.0) {
    double t = log(o->r * o->K / ((o->r - o->b) * o->S)) / o->b;
    if (t > 0.0 && t < o->T) best = fmax(best, discounted_intrinsic(o, t));
  }
  return best;
}

/* ---- Bjerksund-Stensland 2002, call on strike 1 (the price is homogeneous of
 * degree one in S and K). Names follow Haug (2007), section 3.3.3. ---- */

typedef struct bs2002 {
  double s, T, t1, r, b, v2, sqrt_t1, sqrt_T;
} bs2002;

/* phi(S, t1, gamma, H, I) times exp(log_scale). */
static double bs_phi(const bs2002 *m, double gamma, double H, double I, double log_scale) {
  double sd = sqrt(m->v2) * m->sqrt_t1, t = m->t1;
  double lambda = (-m->r + gamma * m->b + 0.5 * gamma * (gamma - 1.0) * m->v2) * t;
  double d = -(log(m->s / H) + (m->b + (gamma - 0.5) * m->v2) * t) / sd;
  double kappa = 2.0 * m->b / m->v2 + 2.0 * gamma - 1.0;
  double log_ratio = log(I / m->s);
  double base = log_scale + lambda + gamma * log(m->s);
  return exp(base + log_normal_cdf(d)) -
         exp(base + kappa * log_ratio + log_normal_cdf(d - 2.0 * log_ratio / sd));
}

/* psi(S, T, gamma, H, I2, I1, t1) times exp(log_scale). */
static double bs_psi(const bs2002 *m, double gamma, double H, double I2, double I1,
                     double log_scale) {
  double v = sqrt(m->v2), mu = m->b + (gamma - 0.5) * m->v2;
  double sd1 = v * m->sqrt_t1, sdT = v * m->sqrt_T, drift1 = mu * m->t1, driftT = mu * m->T;
  double ls = log(m->s), l1 = log(I1), l2 = log(I2), lh = log(H);
  double e1 = (ls - l1 + drift1) / sd1, e2 = (2.0 * l2 - ls - l1 + drift1) / sd1;
  double e3 = (ls - l1 - drift1) / sd1, e4 = (2.0 * l2 - ls - l1 - drift1) / sd1;
  double f1 = (ls - lh + driftT) / sdT, f2 = (2.0 * l2 - ls - lh + driftT) / sdT;
  double f3 = (2.0 * l1 - ls - lh + driftT) / sdT, f4 = (ls + 2.0 * l1 - lh - 2.0 * l2 + driftT) / sdT;
  double rho = sqrt(SQRT5_MINUS_1_HALF);
  double lambda = -m->r + gamma * m->b + 0.5 * gamma * (gamma - 1.0) * m->v2;
  double kappa = 2.0 * m->b / m->v2 + 2.0 * gamma - 1.0;
  double base = log_scale + lambda * m->T + gamma * ls;
  return scaled_bivariate(base, -e1, -f1, rho) -
         scaled_bivariate(base + kappa * (l2 - ls), -e2, -f2, rho) -
         scaled_bivariate(base + kappa * (l1 - ls), -e3, -f3, -rho) +
         scaled_bivariate(base + kappa * (l1 - l2), -e4, -f4, -rho);
}

/* Flat exercise boundary I(t) = B0 + (Binf - B0)(1 - e^{h(t)}). h > 0 would put
 * the boundary below B0, where no call is ever exercised: clamp it. */
static double bs_boundary(double B0, double Binf, double b, double v, double t) {
  double h = -(b * t + 2.0 * v * sqrt(t)) / ((Binf - B0) * B0);
  return B0 - (Binf - B0) * expm1(fmin(h, 0.0));
}

static double bs2002_call_unit_strike(double s, double T, double r, double b, double sigma) {
  bs2002 m = {s, T, SQRT5_MINUS_1_HALF * T, r, b, sigma * sigma, 0.0, sqrt(T)};
  m.sqrt_t1 = sqrt(m.t1);
  /* beta = (1/2 - b/v2) + sqrt((b/v2 - 1/2)^2 + 2r/v2); where b/v2 is large
   * (sigma -> 0, b > 0) the sum cancels to nothing: its conjugate form,
   * (2r/v2) / (sqrt(...) - (1/2 - b/v2)), then. */
  double half_minus = 0.5 - b / m.v2, root = sqrt(half_minus * half_minus + 2.0 * r / m.v2);
  double beta = half_minus >= 0.0 ? half_minus + root : (2.0 * r / m.v2) / (root - half_minus);
  double Binf = beta / (beta - 1.0), B0 = fmax(1.0, r / (r - b));
  if (!(Binf > B0)) return s >= B0 ? s - 1.0 : NAN; /* cannot happen for sigma > 0 */
  double I1 = bs_boundary(B0, Binf, b, sigma, m.t1), I2 = bs_boundary(B0, Binf, b, sigma, T);
  if (s >= I2) return s - 1.0;
  double log_alpha1 = log(I1 - 1.0) - beta * log(I1), log_alpha2 = log(I2 - 1.0) - beta * log(I2);
  double price = exp(log_alpha2 + beta * log(s)) - bs_phi(&m, beta, I2, I2, log_alpha2);
  price += bs_phi(&m, 1.0, I2, I2, 0.0) - bs_phi(&m, 1.0, I1, I2, 0.0);
  price += -bs_phi(&m, 0.0, I2, I2, 0.0) + bs_phi(&m, 0.0, I1, I2, 0.0);
  price += bs_phi(&m, beta, I1, I2, log_alpha1) - bs_psi(&m, beta, I1, I2, I1, log_alpha1);
  price += bs_psi(&m, 1.0, I1, I2, I1, 0.0) - bs_psi(&m, 1.0, 1.0, I2, I1, 0.0);
  price += -bs_psi(&m, 0.0, I1, I2, I1, 0.0) + bs_psi(&m, 0.0, 1.0, I2, I1, 0.0);
  return price;
}

double gk_bs2002_price(const gk_american_option *o) {
  if (o->T == 0.0) return fmax(o->omega * (o->S - o->K), 0.0);
  if (o->sigma * sqrt(o->T) < GK_AMERICAN_TINY_STDDEV) return gk_american_deterministic_price(o);
  /* Never exercised early (for the call: q <= 0 and r >= q; not merely b >= r,
   * which also holds for the two-boundary calls r < q < 0): European. */
  gk_american_exercise regime = gk_american_exercise_of(o);
  if (regime == GK_EXERCISE_NEVER) return gk_american_european_price(o);
  /* BS2002 is a lower bound of the American price, as are these two; the max only
   * removes rounding below them. Two boundaries, which one flat boundary cannot
   * model: the bound alone (american_internal.h; the batch routes them to the tree). */
  double floor_value = fmax(gk_american_european_price(o), fmax(o->omega * (o->S - o->K), 0.0));
  if (regime == GK_EXERCISE_TWO_BOUNDARIES) return floor_value;
  /* A put is the call with S and K swapped, rate r - b and carry -b. */
  int put = o->omega < 0.0;
  double S = put ? o->K : o->S, K = put ? o->S : o->K;
  double r = put ? o->r - o->b : o->r, b = put ? -o->b : o->b;
  return fmax(K * bs2002_call_unit_strike(S / K, o->T, r, b, o->sigma), floor_value);
}

/* ---- Binomial tree, Black-Scholes last step, Richardson extrapolation ---- */

/* One tree of `steps` steps. Nodes are centred on the forward (log step
 * (b - sigma^2/2) dt +- sigma sqrt(dt)), so the branch probability stays near 1/2
 * for any carry, unlike Cox-Ross-Rubinstein's. Node j of step i sits at
 * S e^{i drift + (2j - i) sd}. */
typedef struct tree_lattice {
  double dt, sd, drift, pu, pd;
} tree_lattice;

static tree_lattice lattice_of(const gk_american_option *o, int steps) {
  tree_lattice t;
  t.dt = o->T / steps, t.sd = o->sigma * sqrt(t.dt), t.drift = (o->b - 0.5 * o->sigma * o->sigma) * t.dt;
  double up = exp(t.drift + t.sd), down = exp(t.drift - t.sd);
  double p = (exp(o->b * t.dt) - down) / (up - down), disc = exp(-o->r * t.dt);
  t.pu = disc * p, t.pd = disc * (1.0 - p);
  return t;
}

/* Whether every node's spot is a row's lowest node, S e^{i (drift - sd)}, times
 * a power e^{2 j sd} of one table with both factors normal doubles: then the
 * product is the spot to rounding. Past that (sigma sqrt(T steps) above ~350,
 * or a drift of hundreds of log units over T) the table overflows where the
 * lowest node underflows, and 0 x inf is no spot; and a call's top node
 * must not overflow (its +inf value would reach the root). */
static int lattice_products_finite(const gk_american_option *o, int steps, const tree_lattice *t) {
  double lowest = log(o->S) + (steps - 1) * (t->drift - t->sd), highest = lowest + 2.0 * t->sd * (steps - 1);
  return 2.0 * t->sd * (steps - 1) < 700.0 && lowest > -700.0 && highest < 700.0;
}

/* The value at a node one dt from expiry: the European value over dt, or
 * exercise. A spot the lattice saturated (0 or +inf) is the limit's. */
static double last_step_value(const gk_american_option *o, double spot, double dt) {
  if (!(spot > 0.0)) return o->omega < 0.0 ? fmax(o->K, o->K * exp(-o->r * dt)) : 0.0;
  if (!(spot <= DBL_MAX)) return o->omega < 0.0 ? 0.0 : INFINITY;
  gk_american_option node = *o;
  node.S = spot, node.T = dt;
  return fmax(gk_american_european_price(&node), o->omega * (spot - o->K));
}

/* The tree's rows (2 x 64 KiB; the two lattices never run at once): too
 * large for small thread stacks, and no allocation that could fail
 * mid-batch: this thread's block (scratch.h), reserved by the batch entry
 * points. */
typedef struct tree_scratch {
  double values[GK_AMERICAN_TREE_MAX_STEPS + 1], powers[GK_AMERICAN_TREE_MAX_STEPS + 1];
} tree_scratch;

int gk_tree_scratch_ready(void) { return gk_thread_scratch(GK_SCRATCH_TREE, sizeof(tree_scratch)) != NULL; }

static double bbs_tree_by_table(const gk_american_option *o, int steps, const tree_lattice *t) {
  tree_scratch *scratch = gk_thread_scratch(GK_SCRATCH_TREE, sizeof *scratch);
  if (scratch == NULL) return NAN; /* not reserved: no memory */
  double *values = scratch->values, *powers = scratch->powers;
  double ratio = exp(2.0 * t->sd), w = o->omega, pu = t->pu, pd = t->pd;
  /* The powers once, so the inner loop has no serial dependency and vectorizes. */
  powers[0] = 1.0;
  for (int j = 1; j < steps; j++) powers[j] = powers[j - 1] * ratio;
  int last = steps - 1;
  double base = o->S * exp(last * (t->drift - t->sd));
  for (int j = 0; j <= last; j++) values[j] = last_step_value(o, base * powers[j], t->dt);
  for (int i = last - 1; i >= 0; i--) {
    double w_spot0 = w * o->S * exp(i * (t->drift - t->sd)), wk = w * o->K;
    for (int j = 0; j <= i; j++) {
      double hold = pu * values[j + 1] + pd * values[j], exercise = w_spot0 * powers[j] - wk;
      values[j] = hold > exercise ? hold : exercise;
    }
  }
  return values[0];
}

/* A put's tree with each node's spot from its own exp, saturating to 0 or +inf
 * far from the centre, where the put is worth K and 0: the lattices whose
 * products would not be finite (extreme sigma sqrt(T) or carry). Several
 * times slower than the table, and only there. */
static double bbs_put_tree_by_exp(const gk_american_option *o, int steps, const tree_lattice *t) {
  tree_scratch *scratch = gk_thread_scratch(GK_SCRATCH_TREE, sizeof *scratch);
  if (scratch == NULL) return NAN; /* not reserved: no memory */
  double *values = scratch->values;
  double log_S = log(o->S), pu = t->pu, pd = t->pd;
  int last = steps - 1;
  for (int j = 0; j <= last; j++)
    values[j] = last_step_value(o, exp(log_S + last * t->drift + (2 * j - last) * t->sd), t->dt);
  for (int i = last - 1; i >= 0; i--) {
    double row = log_S + i * t->drift - i * t->sd;
    for (int j = 0; j <= i; j++) {
      double hold = pu * values[j + 1] + pd * values[j], exercise = o->K - exp(row + 2 * j * t->sd);
      values[j] = hold > exercise ? hold : exercise;
    }
  }
  return values[0];
}

static double bbs_tree(const gk_american_option *o, int steps) {
  tree_lattice t = lattice_of(o, steps);
  if (lattice_products_finite(o, steps, &t)) return bbs_tree_by_table(o, steps, &t);
  if (o->omega < 0.0) return bbs_put_tree_by_exp(o, steps, &t);
  /* A call's values grow with the spot, so a saturated node would carry +inf
   * to the root: price the put it equals by symmetry, C(S, K, r, q) =
   * P(K, S, q, r), whose values stay in [0, K]. */
  double q = o->r - o->b;
  gk_american_option put = {o->K, o->S, o->T, q, q - o->r, o->sigma, -1.0};
  tree_lattice tp = lattice_of(&put, steps);
  return bbs_put_tree_by_exp(&put, steps, &tp);
}

double gk_american_tree_price_steps(const gk_american_option *o, int steps, int richardson) {
  /* Internal callers only; a step count the rows cannot hold is a bug, not data. */
  if (steps < 2 || steps > GK_AMERICAN_TREE_MAX_STEPS || steps % 2 != 0) return NAN;
  if (o->T == 0.0) return fmax(o->omega * (o->S - o->K), 0.0);
  if (o->sigma * sqrt(o->T) < GK_AMERICAN_TINY_STDDEV) return gk_american_deterministic_price(o);
  double fine = bbs_tree(o, steps);
  if (!richardson) return fine;
  /* BBS converges like 1/n: 2 P(n) - P(n/2) cancels that term. */
  double price = 2.0 * fine - bbs_tree(o, steps / 2);
  return fmax(price, fmax(o->omega * (o->S - o->K), 0.0));
}

/* A step moves the log spot by drift +- sd, drift = (b - sigma^2/2) dt and
 * sd = sigma sqrt(dt): where the drift is not well under sd the lattice
 * barely moves against it, and a call under a strongly negative carry is
 * worth 0 on it (r = -0.5, q = 0.01, sigma = 0.05, T = 10: 0 at 1024 steps
 * for 0.0903). (drift / sd)^2 = (b - sigma^2/2)^2 T / (sigma^2 steps): the
 * steps keep it at 1/32 at most, up to GK_AMERICAN_TREE_MAX_STEPS; for large
 * sigma that is sigma sqrt(dt) <= 0.35 (at 0.7 a put of sigma = 3, T = 100
 * was 1.2e-3 x K off). Where even twice the most steps would not do (sigma
 * sqrt(T) beyond ~45; beyond ~90 the branch probability leaves [0, 1] and
 * the tree priced a put at 0 for 99.89), returns 0. */
static int tree_steps_for(const gk_american_option *o) {
  double pull = o->b - 0.5 * o->sigma * o->sigma, wanted = 32.0 * pull * pull * o->T / (o->sigma * o->sigma);
  if (!(wanted > GK_AMERICAN_TREE_STEPS)) return GK_AMERICAN_TREE_STEPS;
  if (!(wanted < 2.0 * GK_AMERICAN_TREE_MAX_STEPS)) return 0;
  if (!(wanted < GK_AMERICAN_TREE_MAX_STEPS)) return GK_AMERICAN_TREE_MAX_STEPS;
  return 2 * ((int)ceil(wanted) / 2 + 1);
}

/* An American price's no-arbitrage limits: at least the European price and
 * the payoff now; at most K (a put) or S (a call), or what holding that cash
 * or stock to expiry is worth where a negative rate or yield makes it more. */
static double american_upper_bound(const gk_american_option *o) {
  double q = o->r - o->b;
  return o->omega < 0.0 ? o->K * fmax(1.0, exp(-o->r * o->T)) : o->S * fmax(1.0, exp(-q * o->T));
}

/* Where the limits meet, to this fraction of the upper one, the price is
 * the lower (within 1e-13 x K of any price a lattice could give): two
 * boundaries at sigma sqrt(T) from ~15 up (the European put at K e^{-rT})
 * took 0.5 s a price on the lattice's exp path, through libm's overflow
 * path, and 5 s with the Greeks' bumps (found in review). */
#define BOUNDS_PINNED 1e-13

/* Lattices the tree cannot resolve: one exercise boundary goes to alo
 * (accurate; its wide scheme where the carry is strong), which resolves them
 * (QuantLib's high-precision QdFp within 3e-6 x K at sigma = 30 and 100,
 * T = 100). Two boundaries, which only the tree models: where even its most
 * steps leave the branch probability outside [0, 1] (sigma sqrt(dt) above
 * ~2: p does not depend on the carry) the lattice means
 * nothing (a call worth twice its bound, delta 2190; found in review), and
 * there sigma sqrt(T) is so large that the European price has reached the
 * bound: max(European, payoff now). Every tree price is kept within the
 * limits: an unconverged lattice once priced below the European. */
double gk_american_tree_price(const gk_american_option *o) {
  int steps = tree_steps_for(o);
  int resolvable = o->T == 0.0 || o->sigma * sqrt(o->T) < GK_AMERICAN_TINY_STDDEV;
  if (steps == 0 && !resolvable && gk_american_exercise_of(o) == GK_EXERCISE_ONE_BOUNDARY) return gk_alo_price(o);
  double lower = fmax(gk_american_european_price(o), fmax(o->omega * (o->S - o->K), 0.0));
  double upper = american_upper_bound(o);
  if (!resolvable && upper - lower <= BOUNDS_PINNED * upper) return lower;
  if (steps == 0 && !resolvable) {
    tree_lattice t = lattice_of(o, GK_AMERICAN_TREE_MAX_STEPS);
    if (!(t.pu >= 0.0 && t.pd >= 0.0)) return lower;
  }
  double price = gk_american_tree_price_steps(o, steps ? steps : GK_AMERICAN_TREE_MAX_STEPS, 1);
  if (resolvable) return price;
  return fmin(fmax(price, lower), upper);
}
