/*
 * Scalar reference of the Andersen-Lake-Offengelden (2016) fixed-point method
 * for American options ("High-performance American option pricing", Journal of
 * Computational Finance 20(1)): the early-exercise boundary of the put by a
 * fixed-point iteration on its integral equation, then the price by the
 * integral (early-exercise premium) representation. Calls by put-call symmetry.
 *
 * How, for the put (S, K, T, r, q, sigma), r > 0 (r <= 0 with q >= r never
 * exercises early: the European price):
 *  1. The boundary B(tau), tau = time to expiry, starts at B(0+) = xmax =
 *     K min(1, r/q) and falls. It is carried as H(sqrt tau) = ln(B / xmax)^2, a
 *     smooth function of sqrt(tau), interpolated by a Chebyshev polynomial of
 *     degree n through the n + 1 Chebyshev-Lobatto points sqrt(tau_i) =
 *     sqrt(T)/2 (1 + z_i), z_i = -cos(i pi / n); H(0) = 0.
 *  2. The start: Li's QD+ approximation of B at each node (a Newton solve per
 *     node of its smooth-pasting equation).
 *  3. m Jacobi-Newton steps on the value-matching equation "FP-B" of the paper,
 *     B(tau) = K e^{-(r-q) tau} N(tau, B) / D(tau, B) with
 *       N = Phi(d-(tau, B(tau)/K)) + r int_0^tau e^{r u} Phi(d-(tau-u, B(tau)/B(u))) du
 *       D = Phi(d+(tau, B(tau)/K)) + q int_0^tau e^{q u} Phi(d+(tau-u, B(tau)/B(u))) du,
 *     each step B <- B - (f - B) / (f' - 1) with f' the derivative of f in
 *     B(tau) through the terms outside the integrals (the paper's choice).
 *     Everything is discounted (e^{-r tau} N, e^{-q tau} D) so that no factor
 *     exceeds 1 over the whole domain.
 *  4. The price: European put + int_0^T [r K e^{-r(T-u)} Phi(-d-(T-u, S/B(u)))
 *     - q S e^{-q(T-u)} Phi(-d+(T-u, S/B(u)))] du; K - S where S <= B(T).
 * Every integral over u in [0, tau] is taken in theta with u = tau sin^2(theta),
 * theta in [0, pi/2], by Gauss-Legendre: sqrt(u) = sqrt(tau) sin(theta) is the
 * interpolant's own variable (smooth at u = 0, where B(u) is not smooth in u)
 * and sqrt(tau - u) = sqrt(tau) cos(theta) removes the square-root behaviour of
 * the integrand at u = tau, so the rule converges spectrally at both ends. The
 * ratios B(tau)/B(u) never need an exp or a log: ln(B(tau)/B(u)) =
 * sqrt(H(u)) - sqrt(H(tau)).
 *
 * Why this way: the paper's method reaches 1e-10 relative with a fixed amount
 * of work per option (n nodes, l points, m steps), which the vector kernels
 * will run in lock step across lanes. The scheme (n, m, l, p) is a parameter,
 * with two measured levels (american_internal.h, docs/kernels.md). The rules
 * are tabulated here (sin, cos and weight of each theta node, from 30-digit
 * Legendre roots) so that a price allocates nothing and computes no roots.
 */
#include <float.h>
#include <math.h>

#include "../src/american_internal.h"

#define PI 3.14159265358979323846

/* ---- Gauss-Legendre rules on theta in (0, pi/2): u = tau sin^2 theta, the
 * weight folds in du = tau 2 sin cos dtheta, so int_0^tau g(u) du ~=
 * tau sum_j weight_j g(tau sin_j^2). Printed by
 * `tests/reference/gen_alo_rules.py 16 32 128` (40-digit mpmath). ---- */
#define ALO_RULE_16_COUNT 16
static const double alo_rule_16_sin[] = {
    0.99996535166491185, 0.99905268976724537, 0.99443655854508228, 0.98160452545521415,
    0.95530122799744055, 0.91076118862166189, 0.84500208981660763, 0.75785614264529266,
    0.65242169419386864, 0.53476300190417592, 0.41293347805725034, 0.29563417222402116,
    0.19092552371499144, 0.10533722527678947, 0.043516928531689252, 0.0083243900478705574};
static const double alo_rule_16_cos[] = {
    0.0083243900478705574, 0.043516928531689252, 0.10533722527678947, 0.19092552371499144,
    0.29563417222402116, 0.41293347805725034, 0.53476300190417592, 0.65242169419386864,
    0.75785614264529266, 0.84500208981660763, 0.91076118862166189, 0.95530122799744055,
    0.98160452545521415, 0.99443655854508228, 0.99905268976724537, 0.99996535166491185};
static const double alo_rule_16_weight[] = {
    0.00035503112097767017, 0.0042513850940796329, 0.015657646148953673, 0.036689300323055569,
    0.066364342243320135, 0.099929387812074416, 0.12961280457896754, 0.14714010267857136,
    0.14714010267857136, 0.12961280457896754, 0.099929387812074416, 0.066364342243320135,
    0.036689300323055569, 0.015657646148953673, 0.0042513850940796329, 0.00035503112097767017};

#define ALO_RULE_32_COUNT 32
static const double alo_rule_32_sin[] = {
    0.99999769099090741, 0.99993614785509544, 0.999617053372721, 0.998693419787124,
    0.99668647634863916, 0.99300995658084223, 0.98700133409730617, 0.9779592151231683,
    0.9651855711609203, 0.94803089599811008, 0.92593978519030373, 0.898493972882348,
    0.86544963231780103, 0.82676584421406685, 0.78262161039989786, 0.73341962879297273,
    0.67977617500260923, 0.62249772283524907, 0.56254621040497754, 0.50099594202047482,
    0.43898585477677354, 0.37767117205544581, 0.31817828372316781, 0.2615660781194078,
    0.20879600943427204, 0.1607120608110596, 0.11803061522890508, 0.081339214796637763,
    0.051102380315394894, 0.02767212688678997, 0.011300451880904738, 0.0021489562242308561};
static const double alo_rule_32_cos[] = {
    0.0021489562242308561, 0.011300451880904738, 0.02767212688678997, 0.051102380315394894,
    0.081339214796637763, 0.11803061522890508, 0.1607120608110596, 0.20879600943427204,
    0.2615660781194078, 0.31817828372316781, 0.37767117205544581, 0.43898585477677354,
    0.50099594202047482, 0.56254621040497754, 0.62249772283524907, 0.67977617500260923,
    0.73341962879297273, 0.78262161039989786, 0.82676584421406685, 0.86544963231780103,
    0.898493972882348, 0.92593978519030373, 0.94803089599811008, 0.9651855711609203,
    0.9779592151231683, 0.98700133409730617, 0.99300995658084223, 0.99668647634863916,
    0.998693419787124, 0.999617053372721, 0.99993614785509544, 0.99999769099090741};
static const double alo_rule_32_weight[] = {
    2.3691772536610374e-05, 0.00028886358798179817, 0.0011033012250881195, 0.0027476173526597308,
    0.0054548937292253977, 0.0093890532079867837, 0.014621990150482817, 0.021112290764035695,
    0.028689660344079944, 0.037049790292287985, 0.045763962746435322, 0.05430600590651314,
    0.062096384391800381, 0.068559708859003324, 0.073188565544715117, 0.075604220125167834,
    0.075604220125167834, 0.073188565544715117, 0.068559708859003324, 0.062096384391800381,
    0.05430600590651314, 0.045763962746435322, 0.037049790292287985, 0.028689660344079944,
    0.021112290764035695, 0.014621990150482817, 0.0093890532079867837, 0.0054548937292253977,
    0.0027476173526597308, 0.0011033012250881195, 0.00028886358798179817, 2.3691772536610374e-05};

#define ALO_RULE_128_COUNT 128
static const double alo_rule_128_sin[] = {
    0.99999999054238031, 0.99999973750551663, 0.99999841526216071, 0.99999454060838922,
    0.99998597701310354, 0.9999699410466395, 0.99994301077966341, 0.99990113615689102,
    0.99983965134493491, 0.99975328905196648, 0.99963619681519478, 0.99948195525003658,
    0.99928359825216928, 0.99903363514037957, 0.9987240747242051, 0.99834645127578947,
    0.99789185238011202, 0.99735094863182339, 0.99671402514029528, 0.99597101479722461,
    0.99511153325321833, 0.99412491554128446, 0.99300025427610483, 0.99172643934843041,
    0.99029219902399757, 0.98868614234608043, 0.98689680273028191, 0.98491268262950393,
    0.98272229913635223, 0.98031423037962306, 0.97767716256112092, 0.97479993746898852,
    0.9716716002941217, 0.96828144756722656, 0.9646190750257817, 0.96067442521273139,
    0.95643783460227005, 0.95190008004272053, 0.94705242430236558, 0.94188666050126779,
    0.9363951552107127, 0.93057089000201232, 0.92440750122808191, 0.91789931782451628,
    0.9110413969218748, 0.90382955706756729, 0.89626040886412106, 0.88833138284068802,
    0.88004075438638918, 0.87138766558744785, 0.86237214382494554, 0.85299511700638353,
    0.84325842532191198, 0.83316482943499504, 0.82271801503726594, 0.81192259371822761,
    0.80078410012211521, 0.7893089853864671, 0.77750460687956113, 0.76537921427666855,
    0.75294193203784798, 0.74020273837255146, 0.72717244079842203, 0.71386264842313951,
    0.70028574109880393, 0.68645483561794907, 0.6723837491386716, 0.65808696004336131,
    0.64357956645097858, 0.62887724261660083, 0.61399619346392198, 0.59895310750643416,
    0.58376510842107199, 0.56844970554407104, 0.55302474356266895, 0.53750835167800826,
    0.52191889251421619, 0.50627491104613065, 0.49059508381358474, 0.47489816868359791,
    0.45920295541334555, 0.44352821725648806, 0.4278926638434517, 0.41231489555270617,
    0.39681335957511271, 0.38140630785719032, 0.36611175709182403, 0.35094745090669244,
    0.33593082438170152, 0.32107897100715288, 0.30640861217443327, 0.29193606927086058,
    0.2776772384301387, 0.26364756796982863, 0.24986203852749692, 0.23633514588791169,
    0.22308088647496471, 0.2101127454640378, 0.19744368745342872, 0.18508614961731135,
    0.17305203724762702, 0.16135272157837027, 0.14999903977301307, 0.13900129694436394,
    0.1283692700660248, 0.11811221362581964, 0.10823886686414466, 0.09875746243413229,
    0.089675736315831839, 0.081000938813267656, 0.072739846461220253, 0.064898774667852072,
    0.057483590919825071, 0.050499728378282649, 0.043952199696932349, 0.037845610897395451,
    0.032184175141889468, 0.026971726249041327, 0.022211731804953887, 0.017907305728080764,
    0.014061220151840588, 0.010675916490023441, 0.0077535155368633384, 0.005295826389595565,
    0.0033043537063285997, 0.0017803014259623225, 0.00072456117603183524, 0.00013753268427777398};
static const double alo_rule_128_cos[] = {
    0.00013753268427777398, 0.00072456117603183524, 0.0017803014259623225, 0.0033043537063285997,
    0.005295826389595565, 0.0077535155368633384, 0.010675916490023441, 0.014061220151840588,
    0.017907305728080764, 0.022211731804953887, 0.026971726249041327, 0.032184175141889468,
    0.037845610897395451, 0.043952199696932349, 0.050499728378282649, 0.057483590919825071,
    0.064898774667852072, 0.072739846461220253, 0.081000938813267656, 0.089675736315831839,
    0.09875746243413229, 0.10823886686414466, 0.11811221362581964, 0.1283692700660248,
    0.13900129694436394, 0.14999903977301307, 0.16135272157837027, 0.17305203724762702,
    0.18508614961731135, 0.19744368745342872, 0.2101127454640378, 0.22308088647496471,
    0.23633514588791169, 0.24986203852749692, 0.26364756796982863, 0.2776772384301387,
    0.29193606927086058, 0.30640861217443327, 0.32107897100715288, 0.33593082438170152,
    0.35094745090669244, 0.36611175709182403, 0.38140630785719032, 0.39681335957511271,
    0.41231489555270617, 0.4278926638434517, 0.44352821725648806, 0.45920295541334555,
    0.47489816868359791, 0.49059508381358474, 0.50627491104613065, 0.52191889251421619,
    0.53750835167800826, 0.55302474356266895, 0.56844970554407104, 0.58376510842107199,
    0.59895310750643416, 0.61399619346392198, 0.62887724261660083, 0.64357956645097858,
    0.65808696004336131, 0.6723837491386716, 0.68645483561794907, 0.70028574109880393,
    0.71386264842313951, 0.72717244079842203, 0.74020273837255146, 0.75294193203784798,
    0.76537921427666855, 0.77750460687956113, 0.7893089853864671, 0.80078410012211521,
    0.81192259371822761, 0.82271801503726594, 0.83316482943499504, 0.84325842532191198,
    0.85299511700638353, 0.86237214382494554, 0.87138766558744785, 0.88004075438638918,
    0.88833138284068802, 0.89626040886412106, 0.90382955706756729, 0.9110413969218748,
    0.91789931782451628, 0.92440750122808191, 0.93057089000201232, 0.9363951552107127,
    0.94188666050126779, 0.94705242430236558, 0.95190008004272053, 0.95643783460227005,
    0.96067442521273139, 0.9646190750257817, 0.96828144756722656, 0.9716716002941217,
    0.97479993746898852, 0.97767716256112092, 0.98031423037962306, 0.98272229913635223,
    0.98491268262950393, 0.98689680273028191, 0.98868614234608043, 0.99029219902399757,
    0.99172643934843041, 0.99300025427610483, 0.99412491554128446, 0.99511153325321833,
    0.99597101479722461, 0.99671402514029528, 0.99735094863182339, 0.99789185238011202,
    0.99834645127578947, 0.9987240747242051, 0.99903363514037957, 0.99928359825216928,
    0.99948195525003658, 0.99963619681519478, 0.99975328905196648, 0.99983965134493491,
    0.99990113615689102, 0.99994301077966341, 0.9999699410466395, 0.99998597701310354,
    0.99999454060838922, 0.99999841526216071, 0.99999973750551663, 0.99999999054238031};
static const double alo_rule_128_weight[] = {
    9.7082390196459611e-08, 1.1902788741970564e-06, 4.5932375323454646e-06, 1.1617698060162008e-05,
    2.35643790522535e-05, 4.1718891198555595e-05, 6.7347514374593148e-05, 0.00010169283881151894,
    0.00014596925143460111, 0.0002013582504460008, 0.00026900357544310666, 0.00035000614533453497,
    0.00044541880182360458, 0.00055624086218872715, 0.00068341249143090204, 0.0008278089105057399,
    0.000990234464229267, 0.0011714165794533503, 0.0013719996511502312, 0.0015925389010211959,
    0.0018334942600399327, 0.0020952243328389241, 0.0023779805079250167, 0.0026819012832428185,
    0.0030070068814651652, 0.0033531942334528277, 0.0037202324114680367, 0.0041077585958311106,
    0.0045152746596673152, 0.0049421444561039141, 0.0053875918906606786, 0.0058506998585629985,
    0.0063304101222463952, 0.0068255241983877458, 0.0073347053163889137, 0.0078564815013758994,
    0.0083892498245115958, 0.0089312818518321388, 0.0094807303100137939, 0.010035636973596867,
    0.010593941763400359, 0.011153493030348443, 0.011712058982913489, 0.012267340200098667,
    0.012816983155591736, 0.013358594662690312, 0.013889757134106001, 0.014408044536082231,
    0.014911038902688457, 0.015396347263953223, 0.015861618830928299, 0.016304562272073515,
    0.016722962908728805, 0.017114699653077162, 0.01747776151004431, 0.017810263465131898,
    0.018110461583301537, 0.018376767149730557, 0.018607759691513348, 0.018802198730101829,
    0.018959034127334632, 0.019077414903121329, 0.019156696420005132, 0.019196445848667559,
    0.019196445848667559, 0.019156696420005132, 0.019077414903121329, 0.018959034127334632,
    0.018802198730101829, 0.018607759691513348, 0.018376767149730557, 0.018110461583301537,
    0.017810263465131898, 0.01747776151004431, 0.017114699653077162, 0.016722962908728805,
    0.016304562272073515, 0.015861618830928299, 0.015396347263953223, 0.014911038902688457,
    0.014408044536082231, 0.013889757134106001, 0.013358594662690312, 0.012816983155591736,
    0.012267340200098667, 0.011712058982913489, 0.011153493030348443, 0.010593941763400359,
    0.010035636973596867, 0.0094807303100137939, 0.0089312818518321388, 0.0083892498245115958,
    0.0078564815013758994, 0.0073347053163889137, 0.0068255241983877458, 0.0063304101222463952,
    0.0058506998585629985, 0.0053875918906606786, 0.0049421444561039141, 0.0045152746596673152,
    0.0041077585958311106, 0.0037202324114680367, 0.0033531942334528277, 0.0030070068814651652,
    0.0026819012832428185, 0.0023779805079250167, 0.0020952243328389241, 0.0018334942600399327,
    0.0015925389010211959, 0.0013719996511502312, 0.0011714165794533503, 0.000990234464229267,
    0.0008278089105057399, 0.00068341249143090204, 0.00055624086218872715, 0.00044541880182360458,
    0.00035000614533453497, 0.00026900357544310666, 0.0002013582504460008, 0.00014596925143460111,
    0.00010169283881151894, 6.7347514374593148e-05, 4.1718891198555595e-05, 2.35643790522535e-05,
    1.1617698060162008e-05, 4.5932375323454646e-06, 1.1902788741970564e-06, 9.7082390196459611e-08};


#define ALO_RULE(n) {ALO_RULE_##n##_COUNT, alo_rule_##n##_sin, alo_rule_##n##_cos, alo_rule_##n##_weight}

/* (n, m, l, p) of each level, measured against the converged reference in
 * docs/kernels.md: the price rule is generous because the price integrand turns
 * steep near u = T when S sits just above the boundary B(T). */
static const gk_alo_scheme alo_schemes[GK_ALO_LEVEL_COUNT] = {
    [GK_ALO_FAST] = {.nodes = 12, .iterations = 6, .boundary = ALO_RULE(16), .price = ALO_RULE(32)},
    [GK_ALO_ACCURATE] = {.nodes = 24, .iterations = 16, .boundary = ALO_RULE(32), .price = ALO_RULE(128)},
};

const gk_alo_scheme *gk_alo_scheme_of(gk_alo_level level) {
  return (unsigned)level < GK_ALO_LEVEL_COUNT ? &alo_schemes[level] : NULL;
}

/* ---- the market of the put ---- */

typedef struct put_market {
  double S, K, T, r, q, sigma;
  double xmax; /* B(0+) */
} put_market;

static double normal_pdf(double x) { return GK_INV_SQRT_2PI * exp(-0.5 * x * x); }

/* d+ of time t and log-moneyness x (ln of spot over strike). */
static double d_plus(const put_market *m, double x, double t, double sqrt_t) {
  double v = m->sigma * sqrt_t;
  return (x + (m->r - m->q) * t) / v + 0.5 * v;
}

/* ---- QD+ (Li 2010), the start of the iteration: the boundary at tau solves
 * g(S) = (1 - e^{-q tau} Phi(-d+)) S - beta (K - S - p(S)) + (alpha/dr) Theta(S)
 * = 0, p the European put and Theta its calendar-time theta. It is the smooth
 * pasting condition of the QD+ value with c0 multiplied out, so g has no pole
 * where K - S = p. ---- */

typedef struct qdplus {
  const put_market *m;
  double tau, sqrt_tau, v, dr, dq, alpha_dr, beta;
} qdplus;

static qdplus qdplus_at(const put_market *m, double tau) {
  qdplus g = {m, tau, sqrt(tau), 0.0, exp(-m->r * tau), exp(-m->q * tau), 0.0, 0.0};
  double s2 = m->sigma * m->sigma, h = -expm1(-m->r * tau);
  double r_h = m->r * tau < 1e-300 ? 1.0 / tau : m->r / h; /* r / h -> 1/tau as r tau -> 0 */
  double omega = 2.0 * (m->r - m->q) / s2;
  double root = sqrt((omega - 1.0) * (omega - 1.0) + 8.0 * r_h / s2);
  double lambda = -0.5 * ((omega - 1.0) + root);
  double lambda_h = 2.0 * r_h * r_h / (s2 * root); /* r d lambda / dh */
  double denom = 2.0 * lambda + omega - 1.0;          /* = -root < 0 */
  g.v = m->sigma * g.sqrt_tau;
  g.alpha_dr = 2.0 / (s2 * denom);
  g.beta = g.alpha_dr * g.dr * (r_h + lambda_h / denom) - lambda;
  return g;
}

/* g(S) and g'(S). */
static double qdplus_residual(const qdplus *g, double S, double *slope) {
  const put_market *m = g->m;
  double dp = d_plus(m, log(S / m->K), g->tau, g->sqrt_tau), dm = dp - g->v;
  double Nmdp = gk_normal_cdf(-dp), Nmdm = gk_normal_cdf(-dm), pdf = normal_pdf(dp);
  double put = m->K * g->dr * Nmdm - S * g->dq * Nmdp;
  double theta = m->r * m->K * g->dr * Nmdm - m->q * S * g->dq * Nmdp -
                 0.5 * m->sigma * S * g->dq * pdf / g->sqrt_tau;
  double exercise_delta = 1.0 - g->dq * Nmdp;
  double dtheta = -g->dq * (pdf * ((m->r - m->q) / g->v - dm / (2.0 * g->tau)) + m->q * Nmdp);
  *slope = (1.0 + g->beta) * exercise_delta + g->dq * pdf / g->v + g->alpha_dr * dtheta;
  return exercise_delta * S - g->beta * (m->K - S - put) + g->alpha_dr * theta;
}

/* The QD+ boundary at tau by Newton from xmax, kept in (0, xmax]. The result
 * only starts the iteration: a step that fails to converge leaves the last
 * iterate, which the Jacobi-Newton steps then correct. */
static double qdplus_boundary(const put_market *m, double tau) {
  qdplus g = qdplus_at(m, tau);
  double S = m->xmax;
  for (int it = 0; it < 64; it++) {
    double slope, residual = qdplus_residual(&g, S, &slope);
    double next = S - residual / slope;
    if (!(next > 0.0)) next = 0.5 * S; /* NaN, or a step past 0 */
    if (next > m->xmax) next = m->xmax;
    if (fabs(next - S) <= 1e-12 * S) return next;
    S = next;
  }
  return S;
}

/* ---- the boundary as a Chebyshev polynomial in z = 2 sqrt(tau / T) - 1 ---- */

typedef struct boundary {
  int n;
  double a[GK_ALO_MAX_NODES + 1];     /* Chebyshev coefficients of H */
  double cosines[2 * GK_ALO_MAX_NODES]; /* cos(j pi / n) */
} boundary;

/* Coefficients of the degree-n interpolant through H_i at z_i = -cos(i pi/n):
 * a_k = (2/n) sum''_i H_i T_k(z_i), T_k(z_i) = (-1)^k cos(i k pi / n), with the
 * first and last coefficient halved so that H(z) = sum_k a_k T_k(z). */
static void fit_boundary(boundary *b, const double *H) {
  int n = b->n;
  for (int k = 0; k <= n; k++) {
    /* H[0] sits at z = -1, T_k(-1) = (-1)^k; H[n] at z = 1, T_k(1) = 1. */
    double sum = 0.5 * (((k & 1) ? -H[0] : H[0]) + H[n]);
    for (int i = 1; i < n; i++) {
      double t = b->cosines[(i * k) % (2 * n)];
      sum += H[i] * ((k & 1) ? -t : t);
    }
    b->a[k] = sum * 2.0 / n;
  }
  b->a[0] *= 0.5;
  b->a[n] *= 0.5;
}

/* H(z) by Clenshaw's recurrence, floored at 0 (ln^2 is never negative). */
static double boundary_h(const boundary *b, double z) {
  double b1 = 0.0, b2 = 0.0, z2 = 2.0 * z;
  for (int k = b->n; k >= 1; k--) {
    double t = b->a[k] + z2 * b1 - b2;
    b2 = b1, b1 = t;
  }
  double h = b->a[0] + z * b1 - b2;
  return h > 0.0 ? h : 0.0;
}

/* ---- the fixed point ---- */

/* What a node's integrals need that no iteration changes: for each point of
 * the rule, the discount factors of the time to go t = tau c^2 times the
 * rule's weight, and z of u = tau s^2 on the interpolant's axis. */
typedef struct node_table {
  double tau, sqrt_tau, dr, dq;
  double z[GK_ALO_MAX_POINTS], wr[GK_ALO_MAX_POINTS], wq[GK_ALO_MAX_POINTS];
} node_table;

static void tabulate_node(const put_market *m, const gk_alo_rule *rule, double sqrt_tau,
                          node_table *t) {
  double scale = 2.0 * sqrt_tau / sqrt(m->T); /* 1 + z of the node */
  t->sqrt_tau = sqrt_tau, t->tau = sqrt_tau * sqrt_tau;
  t->dr = exp(-m->r * t->tau), t->dq = exp(-m->q * t->tau);
  for (int j = 0; j < rule->count; j++) {
    double c = rule->cos[j], time_to_go = t->tau * c * c;
    t->z[j] = scale * rule->sin[j] - 1.0;
    t->wr[j] = rule->weight[j] * exp(-m->r * time_to_go);
    t->wq[j] = rule->weight[j] * exp(-m->q * time_to_go);
  }
}

/* One Jacobi-Newton step of FP-B at a node, from the current boundary; returns
 * the new ln(B / xmax)^2 of the node. */
static double jacobi_newton_step(const put_market *m, const boundary *b, const gk_alo_rule *rule,
                                 const node_table *t, double h_node) {
  double root_h = sqrt(h_node), B = m->xmax * exp(-root_h);
  double x = log(m->xmax / m->K) - root_h; /* ln(B / K) */
  double v = m->sigma * t->sqrt_tau, dp = d_plus(m, x, t->tau, t->sqrt_tau), dm = dp - v;
  double int_n = 0.0, int_d = 0.0;
  for (int j = 0; j < rule->count; j++) {
    double sqrt_t = t->sqrt_tau * rule->cos[j], time_to_go = sqrt_t * sqrt_t;
    /* ln(B(tau) / B(u)) = sqrt(H(u)) - sqrt(H(tau)) */
    double ratio = sqrt(boundary_h(b, t->z[j])) - root_h;
    double ep = d_plus(m, ratio, time_to_go, sqrt_t), em = ep - m->sigma * sqrt_t;
    int_n += t->wr[j] * gk_normal_cdf(em);
    int_d += t->wq[j] * gk_normal_cdf(ep);
  }
  double N = t->dr * gk_normal_cdf(dm) + m->r * t->tau * int_n;
  double D = t->dq * gk_normal_cdf(dp) + m->q * t->tau * int_d;
  double f = m->K * N / D;
  /* f' through the terms outside the integrals: the paper's Jacobi-Newton.
   * (With the integrals' terms as well the simultaneous update of every node
   * overshoots: the B(u) move with B(tau), which the ratio cancels.) */
  double dN = t->dr * normal_pdf(dm) / (B * v), dD = t->dq * normal_pdf(dp) / (B * v);
  double slope = m->K * (dN / D - dD * N / (D * D));
  double next = B - (f - B) / (slope - 1.0);
  if (!(next > 0.0 && next < DBL_MAX)) next = f; /* the plain fixed-point step */
  if (!(next > 0.0 && next < DBL_MAX)) return h_node;
  if (next >= m->xmax) return 0.0;
  double l = log(next / m->xmax);
  return l * l;
}

/* ---- the put ---- */

static double european_put(const put_market *m) {
  gk_american_option o = {m->S, m->K, m->T, m->r, m->r - m->q, m->sigma, -1.0};
  return gk_american_european_price(&o);
}

/* The early-exercise premium: int_0^T [r K e^{-r t} Phi(-d-(t, S/B(u))) -
 * q S e^{-q t} Phi(-d+(t, S/B(u)))] du, t = T - u. */
static double exercise_premium(const put_market *m, const boundary *b, const gk_alo_rule *rule) {
  double sqrt_T = sqrt(m->T), x0 = log(m->S / m->xmax), sum = 0.0;
  for (int j = 0; j < rule->count; j++) {
    double s = rule->sin[j], c = rule->cos[j];
    double t = m->T * c * c, sqrt_t = sqrt_T * c;
    double x = x0 + sqrt(boundary_h(b, 2.0 * s - 1.0)); /* ln(S / B(u)) */
    double dp = d_plus(m, x, t, sqrt_t), dm = dp - m->sigma * sqrt_t;
    double value = m->r * m->K * exp(-m->r * t) * gk_normal_cdf(-dm) -
                   m->q * m->S * exp(-m->q * t) * gk_normal_cdf(-dp);
    sum += rule->weight[j] * value;
  }
  return m->T * sum;
}

/* The American put for r > 0, sigma sqrt(T) > 0. */
static double alo_put(const put_market *m, const gk_alo_scheme *scheme) {
  boundary b = {.n = scheme->nodes};
  int n = b.n;
  for (int j = 0; j < 2 * n; j++) b.cosines[j] = cos(j * PI / n);
  double sqrt_T = sqrt(m->T), tau[GK_ALO_MAX_NODES + 1], sqrt_tau[GK_ALO_MAX_NODES + 1];
  double H[GK_ALO_MAX_NODES + 1], next[GK_ALO_MAX_NODES + 1];
  for (int i = 0; i <= n; i++) {
    /* 1 + z_i = 1 - cos(i pi / n) = 2 sin^2(i pi / 2n), without cancellation */
    double half = sin(i * PI / (2.0 * n));
    sqrt_tau[i] = sqrt_T * half * half;
    tau[i] = sqrt_tau[i] * sqrt_tau[i];
  }
  /* Thread-local like the tree's rows: too large for small thread stacks. */
  static _Thread_local node_table nodes[GK_ALO_MAX_NODES + 1];
  H[0] = next[0] = 0.0;
  for (int i = 1; i <= n; i++) {
    double l = log(qdplus_boundary(m, tau[i]) / m->xmax);
    H[i] = l * l;
    tabulate_node(m, &scheme->boundary, sqrt_tau[i], &nodes[i]);
  }
  fit_boundary(&b, H);
  for (int k = 0; k < scheme->iterations; k++) {
    for (int i = 1; i <= n; i++) next[i] = jacobi_newton_step(m, &b, &scheme->boundary, &nodes[i], H[i]);
    for (int i = 1; i <= n; i++) H[i] = next[i];
    fit_boundary(&b, H);
  }
  double exercise = m->K - m->S;
  /* B(T) = xmax e^{-sqrt H(1)}: at or below it the put is exercised now. */
  if (log(m->S / m->xmax) <= -sqrt(boundary_h(&b, 1.0))) return exercise;
  double premium = exercise_premium(m, &b, &scheme->price);
  double price = european_put(m) + fmax(premium, 0.0);
  return fmax(price, exercise);
}

double gk_alo_put_price(double S, double K, double T, double r, double q, double sigma,
                        const gk_alo_scheme *scheme) {
  if (scheme == NULL || scheme->nodes < 1 || scheme->nodes > GK_ALO_MAX_NODES || scheme->iterations < 0 ||
      scheme->boundary.count < 1 || scheme->boundary.count > GK_ALO_MAX_POINTS || scheme->price.count < 1)
    return NAN; /* a scheme the working arrays cannot hold: a caller's bug */
  if (r < 0.0 && q < r) return NAN; /* two boundaries: not modelled */
  put_market m = {S, K, T, r, q, sigma, q > r ? K * (r / q) : K};
  return alo_put(&m, scheme);
}

double gk_alo_price_scheme(const gk_american_option *o, const gk_alo_scheme *scheme) {
  if (o->T == 0.0) return fmax(o->omega * (o->S - o->K), 0.0);
  if (o->sigma * sqrt(o->T) < GK_AMERICAN_TINY_STDDEV) return gk_american_deterministic_price(o);
  /* The put of (S, K, r, q); a call is the put of (K, S, q, r). */
  double q = o->r - o->b;
  int put = o->omega < 0.0;
  double S = put ? o->S : o->K, K = put ? o->K : o->S;
  double r_put = put ? o->r : q, q_put = put ? q : o->r;
  /* A put is never exercised early when money earns nothing (r <= 0 <= ... ,
   * q >= r): European. For the call this is q <= 0 with r >= q, b >= r. */
  if (r_put <= 0.0 && q_put >= r_put) return gk_american_european_price(o);
  double price = gk_alo_put_price(S, K, o->T, r_put, q_put, o->sigma, scheme);
  return fmax(price, fmax(gk_american_european_price(o), fmax(o->omega * (o->S - o->K), 0.0)));
}

double gk_alo_price_level(const gk_american_option *o, gk_alo_level level) {
  return gk_alo_price_scheme(o, gk_alo_scheme_of(level));
}

double gk_alo_price(const gk_american_option *o) { return gk_alo_price_level(o, GK_ALO_ACCURATE); }
