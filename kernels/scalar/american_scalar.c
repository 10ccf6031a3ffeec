/*
 * Scalar reference for American options: Bjerksund-Stensland (2002), the BBSR
 * binomial tree, and Greeks by bump-and-reprice. Formulas: docs/kernels.md and
 * adr/0011-american-options.md. The tree takes every sign of r and q (it
 * compares holding with exercise at every node, so two exercise boundaries are
 * no special case); BS2002 models one boundary (gk_american_exercise_of).
 */
#include <math.h>

#include "../src/american_internal.h"

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

static double discounted_intrinsic(const gk_american_option *o, double t) {
  return exp(-o->r * t) * fmax(o->omega * (o->S * exp(o->b * t) - o->K), 0.0);
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
  double bv = b / m.v2;
  double beta = (0.5 - bv) + sqrt((bv - 0.5) * (bv - 0.5) + 2.0 * r / m.v2);
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
 * for any carry, unlike Cox-Ross-Rubinstein's. */
static double bbs_tree(const gk_american_option *o, int steps) {
  /* Thread-local rows (2 x 64 KiB): too large for small thread stacks, and no
   * allocation that could fail mid-batch. */
  static _Thread_local double values[GK_AMERICAN_TREE_MAX_STEPS + 1];
  static _Thread_local double powers[GK_AMERICAN_TREE_MAX_STEPS + 1];
  double dt = o->T / steps, sd = o->sigma * sqrt(dt), drift = (o->b - 0.5 * o->sigma * o->sigma) * dt;
  double up = exp(drift + sd), down = exp(drift - sd);
  double p = (exp(o->b * dt) - down) / (up - down), disc = exp(-o->r * dt);
  double pu = disc * p, pd = disc * (1.0 - p), ratio = exp(2.0 * sd), w = o->omega;
  /* Node j of step i sits at S e^{i (drift - sd)} ratio^j: the powers once, so
   * the inner loop has no serial dependency and vectorizes. */
  powers[0] = 1.0;
  for (int j = 1; j < steps; j++) powers[j] = powers[j - 1] * ratio;
  /* Last step: the European value over one dt, or exercise. */
  int last = steps - 1;
  gk_american_option node = *o;
  node.T = dt;
  double base = o->S * exp(last * (drift - sd));
  for (int j = 0; j <= last; j++) {
    node.S = base * powers[j];
    values[j] = fmax(gk_american_european_price(&node), w * (node.S - o->K));
  }
  for (int i = last - 1; i >= 0; i--) {
    double w_spot0 = w * o->S * exp(i * (drift - sd)), wk = w * o->K;
    for (int j = 0; j <= i; j++) {
      double hold = pu * values[j + 1] + pd * values[j], exercise = w_spot0 * powers[j] - wk;
      values[j] = hold > exercise ? hold : exercise;
    }
  }
  return values[0];
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

double gk_american_tree_price(const gk_american_option *o) {
  return gk_american_tree_price_steps(o, GK_AMERICAN_TREE_STEPS, 1);
}
