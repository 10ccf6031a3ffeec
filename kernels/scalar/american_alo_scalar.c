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
 *  3. m Jacobi-Newton steps on one of the paper's two fixed-point equations,
 *     B(tau) = K e^{-(r-q) tau} N(tau, B) / D(tau, B). FP-B (value matching):
 *       N = Phi(d-(tau, B(tau)/K)) + r int_0^tau e^{r u} Phi(d-(tau-u, B(tau)/B(u))) du
 *       D = Phi(d+(tau, B(tau)/K)) + q int_0^tau e^{q u} Phi(d+(tau-u, B(tau)/B(u))) du;
 *     FP-A (smooth pasting): N = n(d-)/(sigma sqrt tau) + r int e^{r u} n(d-)/(sigma
 *     sqrt(tau-u)) du, D = n(d+)/(sigma sqrt tau) + Phi(d+) + q int e^{q u}
 *     [Phi(d+) + n(d+)/(sigma sqrt(tau-u))] du. Each step is B <- B - (f - B) /
 *     (f' - 1), f' the derivative of f in B(tau) through the terms outside the
 *     integrals (the paper's choice). FP-A where omega = 2 (r - q) / sigma^2 is
 *     below the scheme's threshold (it converges faster there and diverges
 *     above), FP-B elsewhere, with a fallback to FP-B inside the iteration
 *     (alo_put). One pass over a node's points gives both equations'
 *     integrals. Everything is discounted (e^{-r tau} N, e^{-q tau} D) so that
 *     no factor exceeds 1 over the whole domain.
 *  3'. Then full Newton steps on the same equation, F_i = K N_i - B_i D_i = 0
 *     at every node at once, with the whole Jacobian (each node's integrals
 *     depend on every other node through the interpolant): the Jacobi-Newton
 *     step's error shrinks only ~1.5x a step where the drift outweighs the
 *     vol, Newton's squares. One Jacobi-Newton step from QD+ and two Newton
 *     steps reach the discrete fixed point (newton_iteration, adr/0040). The
 *     levels save most of that work on a coarse grid: QD+ and the first steps
 *     on fewer nodes and a shorter rule, whose interpolant starts the fine
 *     grid, where one Newton step lands within 1e-9 x K of its fixed point
 *     (solve_boundary, alo_put).
 *  4. The price: European put + int_0^T [r K e^{-r(T-u)} Phi(-d-(T-u, S/B(u)))
 *     - q S e^{-q(T-u)} Phi(-d+(T-u, S/B(u)))] du; K - S where S <= B(T).
 *  5. The Greeks from the same solve: delta and gamma differentiate the
 *     premium integral at the converged boundary (it does not depend on S),
 *     theta is the Black-Scholes equation's; vega, rho and phi differentiate
 *     the price at the converged boundary and add the boundary's own move
 *     (the premium is not stationary in it) through one adjoint linear solve
 *     of the linearised value-matching equations at the nodes: one more pass
 *     over the points and an n x n elimination instead of six more solves.
 * Every integral over u in [0, tau] is taken in theta with u = tau sin^2(theta),
 * theta in [0, pi/2], by Gauss-Legendre: sqrt(u) = sqrt(tau) sin(theta) is the
 * interpolant's own variable (smooth at u = 0, where B(u) is not smooth in u)
 * and sqrt(tau - u) = sqrt(tau) cos(theta) removes the square-root behaviour of
 * the integrand at u = tau, so the rule converges spectrally at both ends. The
 * ratios B(tau)/B(u) never need an exp or a log: ln(B(tau)/B(u)) =
 * sqrt(H(u)) - sqrt(H(tau)).
 *
 * The normal CDF is N(-y) = e^{-y^2/2} R(y), R the rational of
 * normal_tail_rational.h: one exp gives the CDF and the density, as in the
 * vector kernels (kernels/src/american_alo_vector.h), which follow this file
 * step for step.
 *
 * Why this way: the paper's method reaches 1e-10 relative with a fixed amount
 * of work per option (n nodes, l points, m steps), which the vector kernels
 * run in lock step across lanes. The scheme (n, m, l, p) is a parameter,
 * with two measured levels (american_internal.h, docs/kernels.md). The rules
 * are tabulated here (sin, cos and weight of each theta node, from 30-digit
 * Legendre roots) so that a price allocates nothing and computes no roots.
 */
#include <float.h>
#include <math.h>

#include "../src/american_internal.h"
#include "../src/normal_tail_rational.h"
#include "../src/scratch.h"

#define PI 3.14159265358979323846

/* ---- Gauss-Legendre rules on theta in (0, pi/2): u = tau sin^2 theta, the
 * weight folds in du = tau 2 sin cos dtheta, so int_0^tau g(u) du ~=
 * tau sum_j weight_j g(tau sin_j^2). Printed by
 * `tests/reference/gen_alo_rules.py 8 12 16 20 24 32 64 128` (40-digit mpmath). ---- */
#define ALO_RULE_8_COUNT 8
static const double alo_rule_8_sin[] = {
    0.99951368521159001, 0.98727538820199978, 0.93136725805544407, 0.801301417664392,
    0.59826084448928762, 0.36408107699011749, 0.15901983477098247, 0.031183217838231431};
static const double alo_rule_8_cos[] = {
    0.031183217838231431, 0.15901983477098247, 0.36408107699011749, 0.59826084448928762,
    0.801301417664392, 0.93136725805544407, 0.98727538820199978, 0.99951368521159001};
static const double alo_rule_8_weight[] = {
    0.0049560138075432827, 0.054841235667607575, 0.16709469807274444, 0.27310805245210357,
    0.27310805245210357, 0.16709469807274444, 0.054841235667607575, 0.0049560138075432827};

#define ALO_RULE_12_COUNT 12
static const double alo_rule_12_sin[] = {
    0.99989513413726738, 0.99716583309892992, 0.98371489289616976, 0.94793144010730246,
    0.87925327694699151, 0.77312673647229901, 0.63425156629817825, 0.47635456854949665,
    0.31847446499852333, 0.17973594380167027, 0.075234973915839692, 0.01448173776229765};
static const double alo_rule_12_cos[] = {
    0.01448173776229765, 0.075234973915839692, 0.17973594380167027, 0.31847446499852333,
    0.47635456854949665, 0.63425156629817825, 0.77312673647229901, 0.87925327694699151,
    0.94793144010730246, 0.98371489289616976, 0.99716583309892992, 0.99989513413726738};
static const double alo_rule_12_weight[] = {
    0.0010730254348021401, 0.012602145332097331, 0.044458683765500481, 0.096344183713626894,
    0.1536162681691669, 0.19190569358480625, 0.19190569358480625, 0.1536162681691669,
    0.096344183713626894, 0.044458683765500481, 0.012602145332097331, 0.0010730254348021401};

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

#define ALO_RULE_24_COUNT 24
static const double alo_rule_24_sin[] = {
    0.99999285600289067, 0.99980303202201282, 0.99882512081521702, 0.99602351211252338,
    0.99002387749031284, 0.9792425858034397, 0.96204774570653784, 0.93694064689362611,
    0.90274082073631801, 0.85875357036340216, 0.80489741234965595, 0.74177174061060103,
    0.67065243221173754, 0.59341398331420192, 0.51238882246601491, 0.430184856284271,
    0.34948851797813529, 0.27288117373862347, 0.20269178115797667, 0.14089968771805708,
    0.089090758886844978, 0.048460066327515268, 0.01984684255971203, 0.0037799395738572043};
static const double alo_rule_24_cos[] = {
    0.0037799395738572043, 0.01984684255971203, 0.048460066327515268, 0.089090758886844978,
    0.14089968771805708, 0.20269178115797667, 0.27288117373862347, 0.34948851797813529,
    0.430184856284271, 0.51238882246601491, 0.59341398331420192, 0.67065243221173754,
    0.74177174061060103, 0.80489741234965595, 0.85875357036340216, 0.90274082073631801,
    0.93694064689362611, 0.96204774570653784, 0.9792425858034397, 0.99002387749031284,
    0.99602351211252338, 0.99882512081521702, 0.99980303202201282, 0.99999285600289067};
static const double alo_rule_24_weight[] = {
    7.3275716015691554e-05, 0.00088930075378265672, 0.0033664783772112974, 0.0082654490940382453,
    0.016071442592121454, 0.026872248240246591, 0.040255283030036906, 0.055264739761756845,
    0.070459794529400641, 0.084095600505289428, 0.094412199426717372, 0.099974187973382866,
    0.099974187973382866, 0.094412199426717372, 0.084095600505289428, 0.070459794529400641,
    0.055264739761756845, 0.040255283030036906, 0.026872248240246591, 0.016071442592121454,
    0.0082654490940382453, 0.0033664783772112974, 0.00088930075378265672, 7.3275716015691554e-05};

#define ALO_RULE_20_COUNT 20
static const double alo_rule_20_sin[] = {
    0.9999854373880469, 0.99959968409036082, 0.99762520475027328, 0.99202754053108799,
    0.98021917266265346, 0.95942436060840486, 0.92711201686940803, 0.88144175891503873,
    0.82165055216405603, 0.74830417954066919, 0.6633557528822418, 0.56999155268170576,
    0.47229273299592783, 0.37478434889458556, 0.28196612610587368, 0.197915066492026,
    0.12602126339566858, 0.068876344611014523, 0.02829260621524542, 0.0053967593828706771};
static const double alo_rule_20_cos[] = {
    0.0053967593828706771, 0.02829260621524542, 0.068876344611014523, 0.12602126339566858,
    0.197915066492026, 0.28196612610587368, 0.37478434889458556, 0.47229273299592783,
    0.56999155268170576, 0.6633557528822418, 0.74830417954066919, 0.82165055216405603,
    0.88144175891503873, 0.92711201686940803, 0.95942436060840486, 0.98021917266265346,
    0.99202754053108799, 0.99762520475027328, 0.99959968409036082, 0.9999854373880469};
static const double alo_rule_20_weight[] = {
    0.00014931545975041974, 0.0018036832407043527, 0.0067644309727544864, 0.016353516719622384,
    0.031061645666339781, 0.050225577761862858, 0.071875659245456094, 0.092919518105004428,
    0.10974017094932421, 0.11910648187918098, 0.11910648187918098, 0.10974017094932421,
    0.092919518105004428, 0.071875659245456094, 0.050225577761862858, 0.031061645666339781,
    0.016353516719622384, 0.0067644309727544864, 0.0018036832407043527, 0.00014931545975041974};

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

#define ALO_RULE_64_COUNT 64
static const double alo_rule_64_sin[] = {
    0.99999985104084366, 0.99999586872670077, 0.99997509184590982, 0.99991435759623348,
    0.99978057645771845, 0.99953113368042468, 0.99911441370728549, 0.99847044671957741,
    0.99753167564339285, 0.99622384085658933, 0.99446697841281495, 0.9921765258496601,
    0.98926452759474326, 0.98564092967178596, 0.98121495090490851, 0.97589651520951171,
    0.96959772694511936, 0.96223436880559221, 0.95372739945972773, 0.94400442625782943,
    0.93300112691132875, 0.92066259324685851, 0.90694457003048834, 0.89181456252628311,
    0.87525278794147721, 0.85725294823090858, 0.83782280486249994, 0.81698454002297505,
    0.79477489327176809, 0.77124506770085466, 0.74646040506984379, 0.72049983497782899,
    0.69345510871066562, 0.66542983376383469, 0.63653832999050741, 0.60690433267925314,
    0.57665957146608426, 0.5459422567015062, 0.51489550663160311, 0.48366574945996688,
    0.45240113402383758, 0.42124998147443593, 0.39035930806882202, 0.35987344606429428,
    0.3299327858907421, 0.30067265841739738, 0.27222237139754624, 0.24470440924277975,
    0.21823380031959116, 0.19291765113819406, 0.16885484226322203, 0.14613587664481789,
    0.1248428674490412, 0.10504964943533021, 0.086821995536527918, 0.070217918568446419,
    0.055288036930311729, 0.04207598272586404, 0.030618830864764843, 0.02094752820435437,
    0.013087301972203707, 0.007058022935941986, 0.0028744616071534109, 0.00054581891726086351};
static const double alo_rule_64_cos[] = {
    0.00054581891726086351, 0.0028744616071534109, 0.007058022935941986, 0.013087301972203707,
    0.02094752820435437, 0.030618830864764843, 0.04207598272586404, 0.055288036930311729,
    0.070217918568446419, 0.086821995536527918, 0.10504964943533021, 0.1248428674490412,
    0.14613587664481789, 0.16885484226322203, 0.19291765113819406, 0.21823380031959116,
    0.24470440924277975, 0.27222237139754624, 0.30067265841739738, 0.3299327858907421,
    0.35987344606429428, 0.39035930806882202, 0.42124998147443593, 0.45240113402383758,
    0.48366574945996688, 0.51489550663160311, 0.5459422567015062, 0.57665957146608426,
    0.60690433267925314, 0.63653832999050741, 0.66542983376383469, 0.69345510871066562,
    0.72049983497782899, 0.74646040506984379, 0.77124506770085466, 0.79477489327176809,
    0.81698454002297505, 0.83782280486249994, 0.85725294823090858, 0.87525278794147721,
    0.89181456252628311, 0.90694457003048834, 0.92066259324685851, 0.93300112691132875,
    0.94400442625782943, 0.95372739945972773, 0.96223436880559221, 0.96959772694511936,
    0.97589651520951171, 0.98121495090490851, 0.98564092967178596, 0.98926452759474326,
    0.9921765258496601, 0.99446697841281495, 0.99622384085658933, 0.99753167564339285,
    0.99847044671957741, 0.99911441370728549, 0.99953113368042468, 0.99978057645771845,
    0.99991435759623348, 0.99997509184590982, 0.99999586872670077, 0.99999985104084366};
static const double alo_rule_64_weight[] = {
    1.5289317893465647e-06, 1.8724581236221638e-05, 7.2111285298869491e-05, 0.00018185156454773136,
    0.00036739918152270417, 0.00064721443941457278, 0.0010384569147276765, 0.0015566544788873718,
    0.0022153499690034644, 0.003025730045360948, 0.0039962441712618549, 0.0051322250610973483,
    0.0064355251488503688, 0.00790418639727615, 0.0095321628544368167, 0.011309116531457466,
    0.013220307209733191, 0.015246595518323875, 0.017364575949504402, 0.019546852383958261,
    0.021762463258787307, 0.023977456922391577, 0.026155610280805944, 0.028259275950354198,
    0.0302503352708113, 0.032091227229759579, 0.033746017140744183, 0.03518146430974433,
    0.036368045342165221, 0.037280889491217689, 0.037900584678863897, 0.038213817506666137,
    0.038213817506666137, 0.037900584678863897, 0.037280889491217689, 0.036368045342165221,
    0.03518146430974433, 0.033746017140744183, 0.032091227229759579, 0.0302503352708113,
    0.028259275950354198, 0.026155610280805944, 0.023977456922391577, 0.021762463258787307,
    0.019546852383958261, 0.017364575949504402, 0.015246595518323875, 0.013220307209733191,
    0.011309116531457466, 0.0095321628544368167, 0.00790418639727615, 0.0064355251488503688,
    0.0051322250610973483, 0.0039962441712618549, 0.003025730045360948, 0.0022153499690034644,
    0.0015566544788873718, 0.0010384569147276765, 0.00064721443941457278, 0.00036739918152270417,
    0.00018185156454773136, 7.2111285298869491e-05, 1.8724581236221638e-05, 1.5289317893465647e-06};


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

/* Each level, measured against the converged reference in docs/kernels.md
 * (5000 contracts; adr/0040): a coarse solve (QD+ at its nodes, its steps)
 * starts the fine grid, whose Newton step lands on its discrete fixed point.
 * The coarse solve's rule is the 8-point one at both levels: the fine step
 * corrects its quadrature error along with its interpolation error, and 16
 * points there bought nothing measurable (adr/0042).
 * FP-A where omega = 2 (r - q) / sigma^2 < 4, FP-B above: where the drift
 * outweighs the vol, FP-A's Jacobi-Newton step oscillates and diverges (its
 * n(d) / (sigma sqrt tau) terms dominate its derivative), while FP-B
 * converges; below, FP-A's discretisation is the more accurate. */
static const gk_alo_scheme alo_schemes[GK_ALO_LEVEL_COUNT] = {
    [GK_ALO_FAST] = {.nodes = 10, .iterations = 0, .newton_steps = 1, .coarse_nodes = 6, .coarse_iterations = 1,
                     .coarse_newton_steps = 0, .coarse_boundary = ALO_RULE(8), .boundary = ALO_RULE(8),
                     .price = ALO_RULE(32), .equation = GK_ALO_FP_AUTO, .fp_a_below_omega = 4.0},
    [GK_ALO_ACCURATE] = {.nodes = 20, .iterations = 0, .newton_steps = 1, .coarse_nodes = 16, .coarse_iterations = 1,
                         .coarse_newton_steps = 1, .coarse_boundary = ALO_RULE(8), .boundary = ALO_RULE(20),
                         .price = ALO_RULE(128), .equation = GK_ALO_FP_AUTO, .fp_a_below_omega = 4.0},
};

const gk_alo_rule *gk_alo_rule_with(int points) {
  static const gk_alo_rule rules[] = {ALO_RULE(8),  ALO_RULE(12), ALO_RULE(16), ALO_RULE(20),
                                      ALO_RULE(24), ALO_RULE(32), ALO_RULE(64), ALO_RULE(128)};
  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
    if (rules[i].count == points) return &rules[i];
  return NULL;
}

const gk_alo_scheme *gk_alo_scheme_of(gk_alo_level level) {
  return (unsigned)level < GK_ALO_LEVEL_COUNT ? &alo_schemes[level] : NULL;
}

/* Past GK_ALO_MAX_CARRY the level grids' coarse start and single fine step
 * land far from the boundary; from QD+ on 32 nodes, the first step a
 * Jacobi-Newton one, three Newton steps reach QuantLib's high-precision
 * prices to ~1e-8 x K on the contracts of test_strong_carry_on_the_wide_scheme
 * (48 nodes and 64 points move them by 1.3e-8 x K at most). */
static const gk_alo_scheme alo_wide = {.nodes = 32, .iterations = 1, .newton_steps = 3, .coarse_nodes = 0,
                                       .boundary = ALO_RULE(32), .price = ALO_RULE(128),
                                       .equation = GK_ALO_FP_AUTO, .fp_a_below_omega = 4.0};

const gk_alo_scheme *gk_alo_wide_scheme(void) { return &alo_wide; }

/* The fast level past GK_ALO_LEVELS_REACH: on 800 random contracts
 * with r up to 1 and T up to 30 (r T from 0.5 to 15), 1.2e-7 x K at most
 * from a 48-node solve (16 nodes: 5.6e-7; 12 nodes on a 12-point rule:
 * 3.1e-6), ~0.13 ms a price against the wide scheme's ~0.7 ms. */
static const gk_alo_scheme alo_long_fast = {.nodes = 20, .iterations = 1, .newton_steps = 2, .coarse_nodes = 0,
                                            .boundary = ALO_RULE(16), .price = ALO_RULE(64),
                                            .equation = GK_ALO_FP_AUTO, .fp_a_below_omega = 4.0};

const gk_alo_scheme *gk_alo_long_fast_scheme(void) { return &alo_long_fast; }

int gk_alo_beyond_carry(const gk_american_option *o) {
  double put_carry = o->omega < 0.0 ? o->b : -o->b; /* b = r - q; a call is the put of (K, S, q, r) */
  return fabs(put_carry) * o->T > GK_ALO_MAX_CARRY;
}

/* T (r - q)^2 / sigma^2 of the put form where r > q; 0 elsewhere. */
static double put_pull(const gk_american_option *o) {
  double put_carry = o->omega < 0.0 ? o->b : -o->b;
  return put_carry > 0.0 ? o->T * put_carry * put_carry / (o->sigma * o->sigma) : 0.0;
}

/* As gk_alo_beyond_levels_at computes it, to the bit (a quotient here and a
 * product there differed within an ulp of 30, and the ISAs priced one
 * contract on two schemes; found in review). */
int gk_alo_beyond_levels(const gk_american_option *o) {
  double put_carry = o->omega < 0.0 ? o->b : -o->b, r_put = o->omega < 0.0 ? o->r : o->r - o->b;
  return gk_alo_beyond_carry(o) ||
         (put_carry > 0.0 && o->T * put_carry * put_carry > GK_ALO_MAX_PULL * o->sigma * o->sigma) ||
         r_put * o->T > GK_ALO_MAX_DISCOUNT;
}

int gk_alo_past_levels_reach(const gk_american_option *o) {
  double put_carry = o->omega < 0.0 ? o->b : -o->b, r_put = o->omega < 0.0 ? o->r : o->r - o->b;
  return r_put * o->T > GK_ALO_LEVELS_REACH || fabs(put_carry) * o->T > GK_ALO_LEVELS_REACH ||
         o->sigma * sqrt(o->T) > GK_ALO_LEVELS_STDDEV_REACH;
}

const gk_alo_scheme *gk_alo_scheme_past_reach(gk_alo_level level) {
  if ((unsigned)level >= GK_ALO_LEVEL_COUNT) return NULL;
  return level == GK_ALO_FAST ? &alo_long_fast : &alo_wide;
}

const gk_alo_scheme *gk_alo_scheme_for(const gk_american_option *o, gk_alo_level level) {
  if (gk_alo_beyond_levels(o)) return &alo_wide;
  if (gk_alo_past_levels_reach(o)) return gk_alo_scheme_past_reach(level);
  return gk_alo_scheme_of(level);
}

/* lambda, the negative root of sigma^2/2 l (l - 1) + (r - q) l - r = 0 (r > 0):
 * the perpetual put's exponent. */
static double perpetual_lambda(double r, double q, double sigma) {
  /* -2 r / (s - b) where b <= 0: (-b - s) / 2a cancels there at tiny vols */
  double a = 0.5 * sigma * sigma, b = r - q - a, s = sqrt(b * b + 4.0 * a * r);
  return b > 0.0 ? (-b - s) / (2.0 * a) : -2.0 * r / (s - b);
}

/* The perpetual put of (S, K, r, q), r > 0: K - S at or below its boundary
 * K lambda / (lambda - 1), (K - B)(S / B)^lambda above it. */
static double perpetual_put(double S, double K, double r, double q, double sigma) {
  double lambda = perpetual_lambda(r, q, sigma), B = K * lambda / (lambda - 1.0);
  return S <= B ? K - S : (K - B) * pow(S / B, lambda);
}

/* The put form of o: (S, K, r, q) of the put it is priced as. */
typedef struct put_form {
  double S, K, r, q;
  int put;
} put_form;

static put_form put_form_of(const gk_american_option *o) {
  double q = o->r - o->b;
  int put = o->omega < 0.0;
  return (put_form){put ? o->S : o->K, put ? o->K : o->S, put ? o->r : q, put ? q : o->r, put};
}

int gk_american_perpetual_limit(const gk_american_option *o) {
  put_form f = put_form_of(o);
  double v = o->sigma * sqrt(o->T);
  if (!(f.r > 0.0) || !(v >= GK_AMERICAN_TINY_STDDEV) || !(o->T > 0.0)) return 0;
  /* perpetual_lambda's root, its square root kept for l below */
  double a = 0.5 * o->sigma * o->sigma, b = f.r - f.q - a, root = sqrt(b * b + 4.0 * a * f.r);
  double lambda = b > 0.0 ? (-b - root) / (2.0 * a) : -2.0 * f.r / (root - b), B = f.K * lambda / (lambda - 1.0);
  if (!(B > 0.0)) return 0;
  if (f.S <= B) return 1; /* at or below B*, below every finite life's boundary: exercised now */
  /* z = ln(B* / S) / v + l v, l = sqrt(b^2 + 2 sigma^2 r) / sigma^2
   * (american_internal.h); ln(B* / S) < 0 above B*, so l v alone has to
   * reach Z (every ordinary contract stops here, without a log) */
  double reach = root / (2.0 * a) * v;
  if (!(reach >= GK_AMERICAN_PERPETUAL_Z)) return 0;
  return log(B / f.S) / v + reach >= GK_AMERICAN_PERPETUAL_Z;
}

void gk_american_perpetual_greeks(const gk_american_option *o, gk_alo_greeks *out) {
  put_form f = put_form_of(o);
  double sigma = o->sigma, lambda = perpetual_lambda(f.r, f.q, sigma), B = f.K * lambda / (lambda - 1.0);
  if (f.S <= B) { /* exercised: the payoff, which moves with S alone */
    *out = (gk_alo_greeks){.price = f.K - f.S, .delta = f.put ? -1.0 : 1.0};
    return;
  }
  double log_ratio = log(f.S / B), value = (f.K - B) * exp(lambda * log_ratio);
  /* B is optimal for lambda (smooth pasting), so a parameter moves the value
   * through lambda alone: dV = V ln(S / B) dlambda, and lambda moves along
   * f(l) = sigma^2 / 2 l (l - 1) + (r - q) l - r = 0. */
  double f_lambda = sigma * sigma * (lambda - 0.5) + (f.r - f.q), by_lambda = value * log_ratio;
  double vega = by_lambda * (-sigma * lambda * (lambda - 1.0) / f_lambda);
  double rho = by_lambda * (-(lambda - 1.0) / f_lambda), phi = by_lambda * (lambda / f_lambda);
  double delta = lambda * value / f.S, gamma = lambda * (lambda - 1.0) * value / (f.S * f.S);
  out->price = value, out->theta = 0.0, out->vega = vega;
  if (f.put) {
    out->delta = delta, out->gamma = gamma, out->rho = rho, out->phi = phi;
  } else { /* the call is the put with S and K swapped (gk_alo_price_greeks) */
    out->delta = (value - f.S * delta) / f.K;
    out->gamma = f.S * f.S * gamma / (f.K * f.K);
    out->rho = phi, out->phi = rho;
  }
}

static double alo_price_unbounded(const gk_american_option *o, const gk_alo_scheme *scheme);

/* The longest expiry the wide scheme is trusted at for o's market (its
 * carry and pull lines); INFINITY where none binds. Past it o is priced by
 * the bracket (gk_alo_priced_as), on the scalar reference on every ISA. */
static double wide_trusted_expiry(const gk_american_option *o, double *carry_trusted, double *pull_trusted) {
  double put_carry = o->omega < 0.0 ? o->b : -o->b;
  *carry_trusted = fabs(put_carry) > 0.0 ? GK_ALO_WIDE_MAX_CARRY / fabs(put_carry) : INFINITY;
  double pull = put_pull(o);
  *pull_trusted = pull > 0.0 ? o->T * GK_ALO_WIDE_MAX_PULL / pull : INFINITY;
  return fmin(*carry_trusted, *pull_trusted);
}

static int bracketed(const gk_american_option *o) {
  double carry_trusted, pull_trusted;
  return o->T > wide_trusted_expiry(o, &carry_trusted, &pull_trusted);
}

gk_american_option gk_alo_priced_as(const gk_american_option *o) {
  double carry_trusted, pull_trusted, trusted = wide_trusted_expiry(o, &carry_trusted, &pull_trusted);
  if (!(o->T > trusted)) return *o;
  double q = o->r - o->b;
  int put = o->omega < 0.0;
  double S = put ? o->S : o->K, K = put ? o->K : o->S, r_put = put ? o->r : q, q_put = put ? q : o->r;
  if (!(r_put > 0.0)) return *o; /* European or two boundaries: no grid is solved */
  /* Up the expiries from the trusted one, doubling, to T: a solve is kept
   * while it stays in the bracket of the last kept price and the perpetual's
   * (each within 1e-7 x K, the solves' own error); the first that leaves it
   * has failed, and the last kept expiry's price is the nearest lower bound. */
  /* Past the pull the price has all but reached the perpetual's, and can be
   * far below 1e-7 x K (9.2e-5 at sigma = 0.001): a solve 9e-8 x K above the
   * perpetual passed that slack. The wide solves there hold to ~1e-10 x K. */
  double slack = (pull_trusted < carry_trusted ? 1e-9 : 1e-7) * K;
  double cap = perpetual_put(S, K, r_put, q_put, o->sigma) + slack;
  gk_american_option kept = *o;
  kept.T = trusted;
  double floor_value = alo_price_unbounded(&kept, &alo_wide);
  double failed = INFINITY;
  for (double T = 2.0 * kept.T; kept.T < o->T; T *= 2.0) {
    gk_american_option next = *o;
    next.T = fmin(T, o->T);
    double price = alo_price_unbounded(&next, &alo_wide);
    if (!(price >= floor_value - slack && price <= cap)) {
      failed = next.T;
      break;
    }
    kept = next, floor_value = price;
  }
  /* Four halvings of the gap between the last kept expiry and the failed one
   * bring the lower bound within a sixteenth of it. */
  for (int k = 0; k < 4 && failed < INFINITY; k++) {
    gk_american_option mid = *o;
    mid.T = 0.5 * (kept.T + failed);
    double price = alo_price_unbounded(&mid, &alo_wide);
    if (price >= floor_value - slack && price <= cap) kept = mid, floor_value = price;
    else failed = mid.T;
  }
  return kept;
}

/* ---- the normal distribution: N(-y) = exp(-y^2/2) R(y) for y >= 0, R the
 * rational of normal_tail_rational.h on [0, 40], as the
 * vector kernels evaluate it; relative accuracy ~6e-16 in the tails. ---- */

static double polynomial(const double *c, int degree, double y) {
  double sum = c[degree];
  for (int k = degree - 1; k >= 0; k--) sum = sum * y + c[k];
  return sum;
}

/* R(y) sqrt(2 pi) = P(y) / Q(y), 0 <= y <= 40. */
static double tail_ratio(double y) {
  return polynomial(gk_tail_p, GK_TAIL_P_DEGREE, y) / polynomial(gk_tail_q, GK_TAIL_Q_DEGREE, y);
}

/* N(x) and the density n(x) from one exp. */
static double normal_cdf_density(double x, double *density) {
  double y = fabs(x);
  if (!(y < 37.5)) { /* N(-37.5) < 1e-300: 0 and 1 without an underflowing exp */
    *density = 0.0;
    return x < 0.0 ? 0.0 : 1.0;
  }
  *density = GK_INV_SQRT_2PI * exp(-0.5 * y * y);
  double tail = *density * tail_ratio(y);
  return x < 0.0 ? tail : 1.0 - tail;
}

static double normal_cdf(double x) {
  double density;
  return normal_cdf_density(x, &density);
}

/* ---- the market of the put ---- */

typedef struct put_market {
  double S, K, T, r, q, sigma;
  double xmax; /* B(0+) */
} put_market;

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
  double pdf, Nmdp = normal_cdf_density(-dp, &pdf), Nmdm = normal_cdf(-dm);
  double put = m->K * g->dr * Nmdm - S * g->dq * Nmdp;
  double theta = m->r * m->K * g->dr * Nmdm - m->q * S * g->dq * Nmdp -
                 0.5 * m->sigma * S * g->dq * pdf / g->sqrt_tau;
  double exercise_delta = 1.0 - g->dq * Nmdp;
  double dtheta = -g->dq * (pdf * ((m->r - m->q) / g->v - dm / (2.0 * g->tau)) + m->q * Nmdp);
  *slope = (1.0 + g->beta) * exercise_delta + g->dq * pdf / g->v + g->alpha_dr * dtheta;
  return exercise_delta * S - g->beta * (m->K - S - put) + g->alpha_dr * theta;
}

/* One QD+ Newton step from S, kept in (0, xmax]; *converged where it moved
 * S by at most 1e-6 S: Newton converges quadratically here, so such a step
 * leaves ~1e-12 S, and another would only confirm that. */
static double qdplus_step(const qdplus *g, double S, int *converged) {
  double slope, residual = qdplus_residual(g, S, &slope);
  double next = S - residual / slope;
  if (!(next > 0.0)) next = 0.5 * S; /* NaN, or a step past 0 */
  if (next > g->m->xmax) next = g->m->xmax;
  *converged = fabs(next - S) <= 1e-6 * S;
  return next;
}

/* The QD+ boundary at every node into H[1..n] (sqrt(tau_i / T) = half2[i]),
 * in two phases:
 *  1. node after node, one step from a warm start: xmax at the first node,
 *     then the line through the last two nodes' H (H(0) = 0; H is smooth in
 *     sqrt(tau)) after their first steps;
 *  2. each node's remaining steps until one converges (64 steps in all).
 * The vector kernels interleave phase 2's nodes (their steps are long
 * chains); the phases make the starts, and so the results, the same. A node
 * that does not converge keeps its last iterate, which the iteration's
 * steps then correct: QD+ only starts it. */
static void qdplus_nodes(const put_market *m, int n, double sqrt_T, const double *half2, double *H) {
  qdplus g[GK_ALO_MAX_NODES + 1];
  double S[GK_ALO_MAX_NODES + 1];
  int converged[GK_ALO_MAX_NODES + 1];
  H[0] = 0.0;
  for (int i = 1; i <= n; i++) {
    double sqrt_tau = sqrt_T * half2[i], start = m->xmax;
    if (i >= 2) {
      double f = (half2[i] - half2[i - 1]) / (half2[i - 1] - half2[i - 2]);
      start = m->xmax * exp(-sqrt(fmax(H[i - 1] + f * (H[i - 1] - H[i - 2]), H[i - 1])));
    }
    g[i] = qdplus_at(m, sqrt_tau * sqrt_tau);
    S[i] = qdplus_step(&g[i], start, &converged[i]);
    double l = log(S[i] / m->xmax);
    H[i] = l * l;
  }
  for (int i = 1; i <= n; i++) {
    for (int it = 1; it < 64 && !converged[i]; it++) S[i] = qdplus_step(&g[i], S[i], &converged[i]);
    double l = log(S[i] / m->xmax);
    H[i] = l * l;
  }
}

/* ---- the boundary as a Chebyshev polynomial in z = 2 sqrt(tau / T) - 1 ---- */

typedef struct boundary {
  int n;
  double a[GK_ALO_MAX_NODES + 1];       /* Chebyshev coefficients of H */
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

/* ---- full Newton steps on the discretised value matching ----
 * The Jacobi-Newton step differentiates each node's equation in its own
 * B(tau_i) only; where the drift outweighs the vol (FP-B's regime) the
 * other nodes' pull through the integrals is strong and the error shrinks
 * only ~1.5x a step. A Newton step on the whole system F_i(l) = K N_i -
 * B_i D_i = 0, l_m = sqrt(H_m), uses the Jacobian J_im of the adjoint
 * (linearise_node's row without the parameter terms): from the QD+ start
 * and a few Jacobi-Newton steps it converges quadratically. J's coupling
 * term needs dH(z)/dH_m at every point; instead of the cardinal functions
 * (n + 1 divisions a point) it is accumulated in the Chebyshev basis,
 * g_k = sum_j e_j T_k(z_j), and taken back to the nodes by the transpose of
 * fit_boundary: n multiply-adds a point, no division. */

/* out_m = sum_k g_k da_k/dH_m, a the coefficients fit_boundary makes of H:
 * da_k/dH_m = (2/n) c_k c_m (-1)^k cos(m k pi / n), c halving the ends. */
static void fit_boundary_transpose(const boundary *b, const double *g, double *out) {
  int n = b->n;
  double scaled[GK_ALO_MAX_NODES + 1];
  for (int k = 0; k <= n; k++)
    scaled[k] = g[k] * (2.0 / n) * (k == 0 || k == n ? 0.5 : 1.0) * ((k & 1) ? -1.0 : 1.0);
  for (int m = 0; m <= n; m++) {
    double sum = 0.0;
    for (int k = 0; k <= n; k++) sum += scaled[k] * b->cosines[(m * k) % (2 * n)];
    out[m] = sum * (m == 0 || m == n ? 0.5 : 1.0);
  }
}

/* H(z) and T_0..T_n(z) by the three-term recurrence (|T_k| <= 1 on [-1, 1]:
 * the direct sum is as stable as Clenshaw's here), H floored at 0. */
static double boundary_h_and_basis(const boundary *b, double z, double *T) {
  int n = b->n;
  T[0] = 1.0, T[1] = z;
  for (int k = 2; k <= n; k++) T[k] = 2.0 * z * T[k - 1] - T[k - 2];
  double h = 0.0;
  for (int k = n; k >= 0; k--) h += b->a[k] * T[k];
  return h > 0.0 ? h : 0.0;
}

/* ---- the fixed point ---- */

/* What a node's integrals need that no iteration changes: per node the
 * discount factors, v = sigma sqrt tau, kappa sqrt tau (d+ = ln(B(tau)/B(u)) /
 * (sigma sqrt t) + kappa sqrt t, kappa = (r - q)/sigma + sigma/2) and the
 * interpolant's scale 1 + z(tau); per point j of the rule (time to go
 * t = tau cos_j^2) 1 / (sigma sqrt t) and the weights r tau w_j e^{-r t} and
 * q tau w_j e^{-q t}. */
typedef struct node_table {
  double tau, sqrt_tau, dr, dq, v, kappa_sqrt_tau, scale;
  double inv_v[GK_ALO_MAX_POINTS], wr[GK_ALO_MAX_POINTS], wq[GK_ALO_MAX_POINTS];
} node_table;

static void tabulate_node(const put_market *m, const gk_alo_rule *rule, double sqrt_tau, double scale,
                          node_table *t) {
  t->sqrt_tau = sqrt_tau, t->tau = sqrt_tau * sqrt_tau, t->scale = scale;
  t->dr = exp(-m->r * t->tau), t->dq = exp(-m->q * t->tau), t->v = m->sigma * sqrt_tau;
  t->kappa_sqrt_tau = ((m->r - m->q) / m->sigma + 0.5 * m->sigma) * sqrt_tau;
  for (int j = 0; j < rule->count; j++) {
    double c = rule->cos[j], time_to_go = t->tau * c * c;
    t->inv_v[j] = 1.0 / (t->v * c);
    t->wr[j] = m->r * t->tau * rule->weight[j] * exp(-m->r * time_to_go);
    t->wq[j] = m->q * t->tau * rule->weight[j] * exp(-m->q * time_to_go);
  }
}

/* The integrals of both fixed-point equations at one node from the current
 * boundary: FP-B's int e^{-rt} N(d-) and int e^{-qt} N(d+), FP-A's
 * int e^{-rt} n(d-)/(sigma sqrt t) and int e^{-qt} [N(d+) + n(d+)/(sigma sqrt t)],
 * each times r tau or q tau. One pass shares the boundary, the ratios and
 * the Gaussian factors. */
typedef struct node_sums {
  double nb, db, na, da;
} node_sums;

static node_sums integrate_node(const boundary *b, const gk_alo_rule *rule, const node_table *t,
                                double root_h) {
  /* The interpolant first, in a loop of its own: its Clenshaw chains are
   * independent across points and overlap there. */
  double h_at[GK_ALO_MAX_POINTS];
  for (int j = 0; j < rule->count; j++) h_at[j] = boundary_h(b, t->scale * rule->sin[j] - 1.0);
  node_sums s = {0.0, 0.0, 0.0, 0.0};
  for (int j = 0; j < rule->count; j++) {
    /* ln(B(tau) / B(u)) = sqrt(H(u)) - sqrt(H(tau)) */
    double c = rule->cos[j];
    double ep = (sqrt(h_at[j]) - root_h) * t->inv_v[j] + t->kappa_sqrt_tau * c, em = ep - t->v * c;
    double np, nm, Np = normal_cdf_density(ep, &np), Nm = normal_cdf_density(em, &nm);
    s.nb += t->wr[j] * Nm;
    s.db += t->wq[j] * Np;
    s.na += t->wr[j] * nm * t->inv_v[j];
    s.da += t->wq[j] * (Np + np * t->inv_v[j]);
  }
  return s;
}

/* One Jacobi-Newton step B - (f - B) / (f' - 1), f' the derivative of f in
 * B(tau) through the terms outside the integrals (the paper's Jacobi-Newton;
 * with the integrals' terms as well the simultaneous update of every node
 * overshoots: the B(u) move with B(tau), which the ratio cancels). Returns
 * the new B; *residual = f - B. */
static double newton_step(double K, double B, double N, double D, double dN, double dD, double *residual) {
  double f = K * N / D, slope = K * (dN / D - dD * N / (D * D));
  *residual = f - B;
  double next = B - (f - B) / (slope - 1.0);
  if (!(next > 0.0 && next < DBL_MAX)) next = f; /* the plain fixed-point step */
  return next;
}

/* h = ln(B / xmax)^2 after a step to `next`; NaN where the step failed. */
static double h_of(const put_market *m, double next) {
  if (!(next > 0.0 && next < DBL_MAX)) return NAN;
  if (next >= m->xmax) return 0.0;
  double l = log(next / m->xmax);
  return l * l;
}

/* One Jacobi-Newton step of each equation at a node from h = ln(B / xmax)^2:
 * the new h of FP-A and of FP-B, and FP-B's residual |f - B| (value
 * matching), +inf where the FP-A step failed. */
typedef struct node_steps {
  double h_a, h_b, residual;
} node_steps;

static node_steps node_step(const put_market *m, const boundary *b, const gk_alo_rule *rule,
                            const node_table *t, double h) {
  double root_h = sqrt(h), B = m->xmax * exp(-root_h);
  double x = log(m->xmax / m->K) - root_h; /* ln(B / K) */
  double dp = (x + (m->r - m->q) * t->tau) / t->v + 0.5 * t->v, dm = dp - t->v;
  double np, nm, Np = normal_cdf_density(dp, &np), Nm = normal_cdf_density(dm, &nm);
  node_sums s = integrate_node(b, rule, t, root_h);
  node_steps out;
  double residual;
  {
    double N = t->dr * nm / t->v + s.na, D = t->dq * (np / t->v + Np) + s.da;
    double s2t = m->sigma * m->sigma * t->tau;
    double dN = -t->dr * nm * dm / (B * s2t), dD = t->dq * np * (1.0 / (B * t->v) - dp / (B * s2t));
    out.h_a = h_of(m, newton_step(m->K, B, N, D, dN, dD, &residual));
  }
  {
    double N = t->dr * Nm + s.nb, D = t->dq * Np + s.db;
    double dN = t->dr * nm / (B * t->v), dD = t->dq * np / (B * t->v);
    out.h_b = h_of(m, newton_step(m->K, B, N, D, dN, dD, &residual));
    out.residual = fabs(residual);
    if (isnan(out.h_b)) out.h_b = h;
    if (isnan(out.h_a)) out.residual = INFINITY;
  }
  return out;
}

/* ---- the put ---- */

static double european_put(const put_market *m) {
  gk_american_option o = {m->S, m->K, m->T, m->r, m->r - m->q, m->sigma, -1.0};
  return gk_american_european_price(&o);
}

/* The early-exercise premium int_0^T g du, g = r K e^{-r t} Phi(-d-(t, S/B(u))) -
 * q S e^{-q t} Phi(-d+(t, S/B(u))), t = T - u, and its first and second
 * derivatives in S at the fixed boundary (B does not depend on S):
 *   g_S  = -q e^{-q t} Phi(-d+) + e^{-r t} n(d-) (q B - r K) / (S v),
 *   g_SS = q e^{-q t} n(d+) / (S v) - (q B - r K) e^{-r t} n(d-) d+ / (S v)^2,
 * v = sigma sqrt t (S e^{-q t} n(d+) = B e^{-r t} n(d-) folds the terms).
 * Where `sens` is not NULL also the derivatives in sigma, r and q at a fixed
 * boundary shape l_m = sqrt(H_m) (B(u) = xmax e^{-sqrt H(u)} still moves with
 * xmax = K r/q where q > r), and the gradient in l_m (m = 1..n) through
 * ln(S/B(u)) = ln(S/xmax) + sqrt(H(u)): g_x = (q B - r K) e^{-r t} n(d-) / v. */
typedef struct premium_terms {
  double value, delta, gamma;
} premium_terms;

/* d/dsigma, d/dr, d/dq of one quantity (the three parameters' order). */
enum { SIGMA, RATE, YIELD, PARAMS };

typedef struct premium_sensitivity {
  double param[PARAMS];                /* at fixed l */
  double shape[GK_ALO_MAX_NODES + 1]; /* d / d l_m */
} premium_sensitivity;

/* d ln(xmax) / dr and / dq: xmax = K r / q where q > r, else K. */
static void xmax_slopes(const put_market *m, double *by_r, double *by_q) {
  *by_r = m->q > m->r ? 1.0 / m->r : 0.0;
  *by_q = m->q > m->r ? -1.0 / m->q : 0.0;
}

static premium_terms exercise_premium(const put_market *m, const boundary *b, const double *H,
                                      const gk_alo_rule *rule, double power, premium_sensitivity *sens) {
  double sqrt_T = sqrt(m->T), x0 = log(m->S / m->xmax);
  double kappa = (m->r - m->q) / m->sigma + 0.5 * m->sigma;
  double kappa_sigma = 0.5 - (m->r - m->q) / (m->sigma * m->sigma), by_r, by_q; /* d kappa / d sigma */
  xmax_slopes(m, &by_r, &by_q);
  premium_terms sum = {0.0, 0.0, 0.0};
  int n = b->n;
  if (sens) *sens = (premium_sensitivity){{0.0, 0.0, 0.0}, {0.0}};
  double shape_basis[GK_ALO_MAX_NODES + 1] = {0.0};
  for (int j = 0; j < rule->count; j++) {
    double s = rule->sin[j], c = rule->cos[j], w = rule->weight[j];
    if (power != 1.0) { /* t = T c^(2 power): the peak onto the rule (GK_ALO_PEAK_AT) */
      double lc = log(c), ca = exp(power * lc);
      w *= power * (ca / c) * (ca / c);
      s = sqrt(-expm1(2.0 * power * lc)), c = ca;
    }
    double t = m->T * c * c, sqrt_t = sqrt_T * c, v = m->sigma * sqrt_t;
    double root_h = sqrt(boundary_h(b, 2.0 * s - 1.0)), x = x0 + root_h; /* ln(S / B(u)) */
    double dp = x / v + kappa * sqrt_t, dm = dp - v;
    double np, nm, Np = normal_cdf_density(-dp, &np), Nm = normal_cdf_density(-dm, &nm);
    double er = exp(-m->r * t), eq = exp(-m->q * t), B = m->xmax * exp(-root_h);
    double edge = (m->q * B - m->r * m->K) * er * nm / (m->S * v);
    sum.value += w * (m->r * m->K * er * Nm - m->q * m->S * eq * Np);
    sum.delta += w * (edge - m->q * eq * Np);
    sum.gamma += w * (m->q * eq * np / (m->S * v) - edge * dp / (m->S * v));
    if (!sens) continue;
    /* g_p = (r K e^{-rt})_p Phi(-d-) - (q S e^{-qt})_p Phi(-d+) - r K e^{-rt} n(d-) d-_p + q S e^{-qt} n(d+) d+_p */
    double rKn = m->r * m->K * er * nm, qSn = m->q * m->S * eq * np;
    double dp_sigma = -x / (m->sigma * v) + kappa_sigma * sqrt_t, dm_sigma = dp_sigma - sqrt_t;
    double dp_r = -by_r / v + sqrt_t / m->sigma, dp_q = -by_q / v - sqrt_t / m->sigma;
    sens->param[SIGMA] += w * (qSn * dp_sigma - rKn * dm_sigma);
    sens->param[RATE] += w * (m->K * er * (1.0 - m->r * t) * Nm + (qSn - rKn) * dp_r);
    sens->param[YIELD] += w * ((qSn - rKn) * dp_q - m->S * eq * (1.0 - m->q * t) * Np);
    if (!(root_h > 0.0)) continue; /* H floored at 0: it does not move */
    /* d sqrt(H(z)) / d l_m = l_m L_m(z) / sqrt(H), L_m = sum_k T_k(z) da_k/dH_m */
    double T[GK_ALO_MAX_NODES + 2], g_x = edge * m->S / root_h * w;
    boundary_h_and_basis(b, 2.0 * s - 1.0, T);
    for (int k = 0; k <= n; k++) shape_basis[k] += g_x * T[k];
  }
  if (sens) {
    double A[GK_ALO_MAX_NODES + 1];
    fit_boundary_transpose(b, shape_basis, A);
    for (int k = 1; k <= n; k++) sens->shape[k] = A[k] * sqrt(H[k]);
  }
  sum.value *= m->T, sum.delta *= m->T, sum.gamma *= m->T;
  if (sens) {
    for (int p = 0; p < PARAMS; p++) sens->param[p] *= m->T;
    for (int k = 1; k <= n; k++) sens->shape[k] *= m->T;
  }
  return sum;
}

/* ---- the linearised boundary equations: the Newton steps and the Greeks ----
 * The price is not stationary in the boundary (g_x above is not 0), so
 * dP/dp = P_p + sum_m P_{l_m} dl_m/dp for p = sigma, r, q, l_m = sqrt(H_m) =
 * ln(xmax / B_m) the node unknowns. The converged nodes solve the option's
 * equation F_i = K N_i - B_i D_i = 0 (FP-B's value matching or FP-A's smooth
 * pasting, N, D discounted as in node_step), so J dl/dp = -F_p with J_im =
 * dF_i/dl_m, and with the adjoint J^T lambda = P_l one solve serves all three:
 *   dP/dp = P_p - lambda . F_p.
 * For FP-B, J_im = delta_im [(B_i e^{-q tau} n(d+) - K e^{-r tau} n(d-)) / v +
 * B_i D_i - sum_j c_ij] + l_m sum_j c_ij L_m(z_ij) / sqrt(H(z_ij)), c_ij = (K
 * wr_ij n(d-_ij) - B_i wq_ij n(d+_ij)) / (sigma sqrt t_ij), L_m the cardinal
 * functions of the interpolant (B(u) moves with every node); FP-A's the same
 * with its own integrands (linearise_node). The Newton steps solve J dl = -F
 * with the same J. One pass over the n l points builds J, F and F_p; J is
 * factored without pivoting (it is dominated by its diagonal, the
 * Jacobi-Newton step's denominator; a zero pivot gives a non-finite result
 * and the caller's bumps). */

/* F_i = K N_i - B_i D_i of FP-B (value matching) or, where fp_a, of FP-A
 * (smooth pasting), row i of its J (row[1..n]) and, where F_p is not NULL,
 * dF_i/d(sigma, r, q) at fixed l, at node i from the current boundary. FP-A's
 * parameter slopes differentiate its densities too: n'(d) = -d n(d), and
 * 1 / (sigma sqrt t) moves with sigma. With G_j(e+) each point's integrand of K N - B D, c_ij =
 * dG_j/de+ / (sigma sqrt t): FP-B K wr n(e-) - B wq n(e+), FP-A (n' = -d n)
 * -K wr e- n(e-) / v_j - B wq n(e+) (1 - e+ / v_j), v_j = sigma sqrt t. */
static double linearise_node(const put_market *m, const boundary *b, const gk_alo_rule *rule, const node_table *t,
                             const double *H, int i, int fp_a, double *row, double *F_p) {
  int n = b->n;
  double li = sqrt(H[i]), B = m->xmax * exp(-li), x = log(m->xmax / m->K) - li, by_r, by_q;
  xmax_slopes(m, &by_r, &by_q);
  double dp = (x + (m->r - m->q) * t->tau) / t->v + 0.5 * t->v, dm = dp - t->v;
  double np, nm, Np = normal_cdf_density(dp, &np), Nm = normal_cdf_density(dm, &nm);
  double kappa_sigma = 0.5 - (m->r - m->q) / (m->sigma * m->sigma);
  double dp_sigma = -(dp - 0.5 * t->v) / m->sigma + 0.5 * t->sqrt_tau, dm_sigma = dp_sigma - t->sqrt_tau;
  double dp_r = (by_r + t->tau) / t->v, dp_q = (by_q - t->tau) / t->v;
  /* N_p and D_p: the node's own terms, then the integrals' */
  double N_p[PARAMS] = {t->dr * nm * dm_sigma, t->dr * (nm * dp_r - t->tau * Nm), t->dr * nm * dp_q};
  double D_p[PARAMS] = {t->dq * np * dp_sigma, t->dq * np * dp_r, t->dq * (np * dp_q - t->tau * Np)};
  double N = t->dr * Nm, D = t->dq * Np, diag = (B * t->dq * np - m->K * t->dr * nm) / t->v;
  double inv_sigma = 1.0 / m->sigma;
  if (fp_a) {
    double a_n = t->dr * nm / t->v, a_p = t->dq * np / t->v;
    N = a_n, D = t->dq * (np / t->v + Np);
    diag = (m->K * t->dr * dm * nm / t->v - B * t->dq * np * (dp / t->v - 1.0)) / t->v;
    N_p[SIGMA] = a_n * (-dm * dm_sigma - inv_sigma);
    N_p[RATE] = a_n * (-t->tau - dm * dp_r);
    N_p[YIELD] = -a_n * dm * dp_q;
    D_p[SIGMA] = a_p * (-dp * dp_sigma - inv_sigma) + t->dq * np * dp_sigma;
    D_p[RATE] = (t->dq * np - a_p * dp) * dp_r;
    D_p[YIELD] = -t->tau * D + (t->dq * np - a_p * dp) * dp_q;
  }
  double g[GK_ALO_MAX_NODES + 1] = {0.0}, T[GK_ALO_MAX_NODES + 2], A[GK_ALO_MAX_NODES + 1];
  for (int j = 0; j < rule->count; j++) {
    double c = rule->cos[j], sqrt_t = t->sqrt_tau * c, time_to_go = t->tau * c * c, inv_v = t->inv_v[j];
    double root_h = sqrt(boundary_h_and_basis(b, t->scale * rule->sin[j] - 1.0, T));
    double ep = (root_h - li) * inv_v + t->kappa_sqrt_tau * c, em = ep - t->v * c;
    double npj, nmj, Npj = normal_cdf_density(ep, &npj), Nmj = normal_cdf_density(em, &nmj);
    double wr = t->wr[j], wq = t->wq[j], cij;
    if (fp_a) {
      cij = inv_v * (-m->K * wr * em * nmj * inv_v - B * wq * npj * (1.0 - ep * inv_v));
      N += wr * nmj * inv_v, D += wq * (Npj + npj * inv_v);
    } else {
      cij = inv_v * (m->K * wr * nmj - B * wq * npj);
      N += wr * Nmj, D += wq * Npj;
    }
    diag -= cij;
    if (F_p) {
      /* e-'s slopes: sigma e+_sigma - sqrt t, r and q those of e+ (e+_q = -e+_r) */
      double ep_sigma = -(root_h - li) * inv_v * inv_sigma + kappa_sigma * sqrt_t, ep_r = sqrt_t * inv_sigma;
      double em_sigma = ep_sigma - sqrt_t;
      double wr_r = t->tau * rule->weight[j] * exp(-m->r * time_to_go) - time_to_go * wr;
      double wq_q = t->tau * rule->weight[j] * exp(-m->q * time_to_go) - time_to_go * wq;
      if (fp_a) {
        double an = wr * nmj * inv_v, ap = wq * npj * inv_v;
        N_p[SIGMA] += an * (-em * em_sigma - inv_sigma);
        N_p[RATE] += wr_r * nmj * inv_v - an * em * ep_r;
        N_p[YIELD] += an * em * ep_r;
        D_p[SIGMA] += wq * npj * ep_sigma + ap * (-ep * ep_sigma - inv_sigma);
        D_p[RATE] += (wq * npj - ap * ep) * ep_r;
        D_p[YIELD] += wq_q * (Npj + npj * inv_v) - (wq * npj - ap * ep) * ep_r;
      } else {
        N_p[SIGMA] += wr * nmj * em_sigma, D_p[SIGMA] += wq * npj * ep_sigma;
        N_p[RATE] += wr_r * Nmj + wr * nmj * ep_r, D_p[RATE] += wq * npj * ep_r;
        N_p[YIELD] -= wr * nmj * ep_r, D_p[YIELD] += wq_q * Npj - wq * npj * ep_r;
      }
    }
    if (!(root_h > 0.0)) continue; /* H floored at 0: it does not move */
    double e = cij / root_h;
    for (int k = 0; k <= n; k++) g[k] += e * T[k];
  }
  fit_boundary_transpose(b, g, A);
  diag += B * D;
  for (int k = 1; k <= n; k++) row[k] = A[k] * sqrt(H[k]) + (k == i ? diag : 0.0);
  if (F_p) {
    F_p[SIGMA] = m->K * N_p[SIGMA] - B * D_p[SIGMA];
    F_p[RATE] = m->K * N_p[RATE] - B * (by_r * D + D_p[RATE]);
    F_p[YIELD] = m->K * N_p[YIELD] - B * (by_q * D + D_p[YIELD]);
  }
  return m->K * N - B * D;
}

/* J = L U in place, rows and columns 1..n, without pivoting (J is dominated by
 * its diagonal, the Jacobi-Newton step's denominator; a zero pivot gives a
 * non-finite result, which the caller replaces): U on and above the
 * diagonal, L's multipliers below it. */
static void lu_factor(int n, double A[][GK_ALO_MAX_NODES + 1]) {
  for (int c = 1; c <= n; c++) {
    double inv_pivot = 1.0 / A[c][c];
    for (int r = c + 1; r <= n; r++) {
      double f = A[r][c] * inv_pivot;
      A[r][c] = f;
      for (int k = c + 1; k <= n; k++) A[r][k] -= f * A[c][k];
    }
  }
}

/* Solves J x = y with lu_factor's factors; x overwrites y. */
static void lu_solve(int n, double A[][GK_ALO_MAX_NODES + 1], double *y) {
  for (int c = 1; c <= n; c++)
    for (int r = c + 1; r <= n; r++) y[r] -= A[r][c] * y[c];
  for (int c = n; c >= 1; c--) {
    double sum = y[c];
    for (int k = c + 1; k <= n; k++) sum -= A[c][k] * y[k];
    y[c] = sum / A[c][c];
  }
}

/* Solves J^T x = y (U^T w = y, then L^T x = w); x overwrites y. */
static void lu_solve_transposed(int n, double A[][GK_ALO_MAX_NODES + 1], double *y) {
  for (int c = 1; c <= n; c++) {
    double sum = y[c];
    for (int k = 1; k < c; k++) sum -= A[k][c] * y[k];
    y[c] = sum / A[c][c];
  }
  for (int c = n; c >= 1; c--)
    for (int r = c + 1; r <= n; r++) y[c] -= A[r][c] * y[r];
}

/* A linearised system: J's factors and, for the Greeks' adjoint, F_p at every
 * node. */
typedef struct linear_system {
  double LU[GK_ALO_MAX_NODES + 1][GK_ALO_MAX_NODES + 1];
  double F_p[GK_ALO_MAX_NODES + 1][PARAMS];
} linear_system;

/* J (factored) and where with_slopes F_p at every node into `system`, F into
 * F[1..n]. */
static void linearise_system(const put_market *m, const boundary *b, const gk_alo_rule *rule,
                             const node_table *nodes, int fp_a, const double *H, int with_slopes,
                             linear_system *system, double *F) {
  int n = b->n;
  for (int i = 1; i <= n; i++)
    F[i] = linearise_node(m, b, rule, &nodes[i], H, i, fp_a, system->LU[i], with_slopes ? system->F_p[i] : NULL);
  lu_factor(n, system->LU);
}

/* d P / d(sigma, r, q) of the premium with the boundary's move: P_p - lambda . F_p. */
static void premium_parameter_slopes(int n, linear_system *system, const premium_sensitivity *sens,
                                     double *slopes) {
  double lambda[GK_ALO_MAX_NODES + 1];
  for (int i = 1; i <= n; i++) lambda[i] = sens->shape[i];
  lu_solve_transposed(n, system->LU, lambda);
  for (int p = 0; p < PARAMS; p++) {
    slopes[p] = sens->param[p];
    for (int i = 1; i <= n; i++) slopes[p] -= lambda[i] * system->F_p[i][p];
  }
}

/* One Newton step l <- l - J^{-1} F at every node. A step that leaves l
 * non-finite or negative (B above xmax) at a node halves l there instead;
 * the next step, or the Jacobi-Newton ones before, have brought the
 * boundary close enough that this is a safeguard, not a path. */
static void newton_iteration(const put_market *m, const boundary *b, const gk_alo_rule *rule,
                             const node_table *nodes, int fp_a, double *H, linear_system *system) {
  int n = b->n;
  double F[GK_ALO_MAX_NODES + 1];
  linearise_system(m, b, rule, nodes, fp_a, H, 0, system, F);
  lu_solve(n, system->LU, F);
  for (int i = 1; i <= n; i++) {
    double l = sqrt(H[i]), next = l - F[i];
    if (!(next >= 0.0 && next < DBL_MAX)) next = 0.5 * l;
    H[i] = next * next;
  }
}

/* The American put for r > 0, sigma sqrt(T) > 0: price, delta, gamma and theta
 * (-dP/dT, from the Black-Scholes equation, which the American price obeys
 * where it is not exercised: theta = r P - (r - q) S delta - sigma^2 S^2 gamma / 2),
 * and where asked vega, rho (d/dr at fixed q) and phi (d/dq at fixed r). */
typedef struct put_value {
  double price, delta, gamma, theta, vega, rho, phi;
} put_value;

/* The boundary at n nodes on `rule`: from QD+ (coarse == NULL) or from the
 * coarse grid's interpolant at the nodes, then m Jacobi-Newton and N Newton
 * steps. Fills b (its n set by the caller), H and the node tables; *fp_a is
 * the option's equation in and out (the safeguard may switch it to FP-B). */
static void solve_boundary(const put_market *m, const gk_alo_rule *rule, int iterations, int newton_steps,
                           const boundary *coarse, boundary *b, double *H, node_table *nodes, int *fp_a,
                           linear_system *system) {
  int n = b->n;
  for (int j = 0; j < 2 * n; j++) b->cosines[j] = cos(j * PI / n);
  double sqrt_T = sqrt(m->T);
  H[0] = 0.0;
  double half2[GK_ALO_MAX_NODES + 1] = {0.0}; /* sqrt(tau_i / T) */
  for (int i = 1; i <= n; i++) {
    /* 1 + z_i = 1 - cos(i pi / n) = 2 sin^2(i pi / 2n), without cancellation */
    double half = sin(i * PI / (2.0 * n));
    half2[i] = half * half;
  }
  if (!coarse) qdplus_nodes(m, n, sqrt_T, half2, H);
  for (int i = 1; i <= n; i++) {
    if (coarse) H[i] = boundary_h(coarse, 2.0 * half2[i] - 1.0);
    tabulate_node(m, rule, sqrt_T * half2[i], 2.0 * half2[i], &nodes[i]);
  }
  fit_boundary(b, H);
  /* The FP-A safeguard inside the iteration: where an FP-A step fails (no
   * positive finite boundary) or the largest value-matching residual
   * max_i |f_B - B| more than doubles from one step to the next (a blow-up),
   * the last FP-A step is undone, replaced by the FP-B step from the same
   * boundary, and FP-B continues. A slowly growing oscillation (FP-A where
   * omega is large, a few tens of percent a step) passes this test: the
   * omega gate of GK_ALO_FP_AUTO keeps FP-A out of that regime. (Any growth
   * as the test would switch converging FP-A runs too: their FP-B residual
   * can rise for a few steps.) */
  double last = INFINITY, floor = 1e-13 * m->K, fallback[GK_ALO_MAX_NODES + 1];
  for (int k = 0; k < iterations; k++) {
    double worst = 0.0;
    node_steps step[GK_ALO_MAX_NODES + 1];
    for (int i = 1; i <= n; i++) {
      step[i] = node_step(m, b, rule, &nodes[i], H[i]);
      worst = fmax(worst, step[i].residual);
    }
    if (*fp_a && worst > 2.0 * last && worst > floor) { /* the last FP-A step did harm */
      *fp_a = 0;
      for (int i = 1; i <= n; i++) H[i] = fallback[i];
    } else {
      if (!(worst < INFINITY)) *fp_a = 0; /* an FP-A step failed: FP-B's instead */
      for (int i = 1; i <= n; i++) {
        H[i] = *fp_a ? step[i].h_a : step[i].h_b;
        fallback[i] = step[i].h_b;
      }
    }
    last = worst;
    fit_boundary(b, H);
  }
  for (int k = 0; k < newton_steps; k++) {
    newton_iteration(m, b, rule, nodes, *fp_a, H, system);
    fit_boundary(b, H);
  }
}

/* The solve's working memory, too large for small thread stacks: this
 * thread's block (scratch.h), reserved by the batch entry points. */
typedef struct alo_scratch {
  node_table nodes[GK_ALO_MAX_NODES + 1], coarse_nodes[GK_ALO_MAX_NODES + 1];
  linear_system system;
} alo_scratch;

int gk_alo_scalar_scratch_ready(void) { return gk_thread_scratch(GK_SCRATCH_ALO, sizeof(alo_scratch)) != NULL; }

static put_value alo_put(const put_market *m, const gk_alo_scheme *scheme, int with_slopes) {
  alo_scratch *scratch = gk_thread_scratch(GK_SCRATCH_ALO, sizeof *scratch);
  if (scratch == NULL) return (put_value){NAN, NAN, NAN, NAN, NAN, NAN, NAN}; /* not reserved: no memory */
  node_table *nodes = scratch->nodes;
  linear_system *system = &scratch->system;
  boundary b = {.n = scheme->nodes};
  int n = b.n;
  double sqrt_T = sqrt(m->T), H[GK_ALO_MAX_NODES + 1];
  int fp_a = scheme->equation == GK_ALO_FP_A ||
             (scheme->equation == GK_ALO_FP_AUTO &&
              2.0 * (m->r - m->q) < scheme->fp_a_below_omega * m->sigma * m->sigma);
  if (scheme->coarse_nodes > 0) {
    /* The coarse grid's solve starts the fine one (adr/0040). */
    boundary coarse = {.n = scheme->coarse_nodes};
    double coarse_H[GK_ALO_MAX_NODES + 1];
    solve_boundary(m, &scheme->coarse_boundary, scheme->coarse_iterations, scheme->coarse_newton_steps, NULL,
                   &coarse, coarse_H, scratch->coarse_nodes, &fp_a, system);
    solve_boundary(m, &scheme->boundary, scheme->iterations, scheme->newton_steps, &coarse, &b, H, nodes, &fp_a,
                   system);
  } else {
    solve_boundary(m, &scheme->boundary, scheme->iterations, scheme->newton_steps, NULL, &b, H, nodes, &fp_a,
                   system);
  }
  /* The adjoint's system at the converged boundary, each option on its own
   * equation. (Taking J and F_p from the last Newton step instead saves this
   * pass, ~15% of the time with Greeks, but that boundary is ~1e-6 away in
   * FP-B's regime and vega, rho and phi then miss their finite differences by
   * 1.1e-7 relative instead of 2e-9: adr/0040.) */
  if (with_slopes) {
    double F[GK_ALO_MAX_NODES + 1];
    linearise_system(m, &b, &scheme->boundary, nodes, fp_a, H, 1, system, F);
  }
  double exercise = m->K - m->S;
  /* B(T) = xmax e^{-sqrt H(1)}: at or below it the put is exercised now. */
  if (log(m->S / m->xmax) <= -sqrt(boundary_h(&b, 1.0)))
    return (put_value){exercise, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  premium_sensitivity sens;
  double zeta = (log(m->S / m->xmax) + sqrt(boundary_h(&b, 1.0))) / (m->sigma * sqrt_T);
  double power = zeta < GK_ALO_PEAK_AT ? fmin(log(fmax(zeta, 1e-300)) * (1.0 / log(GK_ALO_PEAK_AT)), GK_ALO_MAX_POWER)
                                        : 1.0;
  premium_terms premium = exercise_premium(m, &b, H, &scheme->price, power, with_slopes ? &sens : NULL);
  double v = m->sigma * sqrt_T, dq = exp(-m->q * m->T);
  double d1 = (log(m->S / m->K) + (m->r - m->q) * m->T) / v + 0.5 * v, n1, N1 = normal_cdf_density(-d1, &n1);
  put_value out;
  out.price = fmax(european_put(m) + fmax(premium.value, 0.0), exercise);
  /* An American put's delta lies in [-1, 0]; where the boundary sits within
   * a hair of S and sigma sqrt(T) is extreme (S 0.001, K 100, sigma 100,
   * T 100) the premium's quadrature can leave it 1% past -1. */
  out.delta = fmin(fmax(-dq * N1 + premium.delta, -1.0), 0.0);
  out.gamma = dq * n1 / (m->S * v) + premium.gamma;
  out.theta = m->r * out.price - (m->r - m->q) * m->S * out.delta - 0.5 * v * v / m->T * m->S * m->S * out.gamma;
  out.vega = out.rho = out.phi = 0.0;
  if (with_slopes) {
    /* the European put's, then the premium's with the boundary's move */
    double d2 = d1 - v, slopes[PARAMS];
    premium_parameter_slopes(n, system, &sens, slopes);
    out.vega = m->S * dq * n1 * sqrt_T + slopes[SIGMA];
    out.rho = -m->K * m->T * exp(-m->r * m->T) * normal_cdf(-d2) + slopes[RATE];
    out.phi = m->S * m->T * dq * N1 + slopes[YIELD];
  }
  return out;
}

double gk_alo_put_price(double S, double K, double T, double r, double q, double sigma,
                        const gk_alo_scheme *scheme) {
  if (scheme == NULL || scheme->nodes < 1 || scheme->nodes > GK_ALO_MAX_NODES || scheme->iterations < 0 ||
      scheme->boundary.count < 1 || scheme->boundary.count > GK_ALO_MAX_POINTS || scheme->price.count < 1)
    return NAN; /* a scheme the working arrays cannot hold: a caller's bug */
  if (r < 0.0 && q < r) return NAN; /* two boundaries: not modelled */
  put_market m = {S, K, T, r, q, sigma, q > r ? K * (r / q) : K};
  return alo_put(&m, scheme, 0).price;
}

/* R(T), the value of exercising at the first touch of the perpetual put's
 * boundary B* if it comes by T (nothing otherwise), for the put form of o
 * (adr/0065): (K - B*) [(B* / S)^(mu + l) N(z) + (B* / S)^(mu - l)
 * N(z - 2 l v)], a lower bound of the American price. 0 where there is no
 * B* (r <= 0) or a term leaves the tail rational's range (0 is a bound too). */
static double first_touch_by_expiry(const gk_american_option *o) {
  put_form f = put_form_of(o);
  double sigma = o->sigma, v = sigma * sqrt(o->T);
  if (!(f.r > 0.0) || !(v >= GK_AMERICAN_TINY_STDDEV)) return 0.0;
  double a = 0.5 * sigma * sigma, b = f.r - f.q - a, root = sqrt(b * b + 4.0 * a * f.r);
  double lambda = b > 0.0 ? (-b - root) / (2.0 * a) : -2.0 * f.r / (root - b), B = f.K * lambda / (lambda - 1.0);
  if (!(B > 0.0)) return 0.0;
  if (f.S <= B) return f.K - f.S;
  double mu = b / (2.0 * a), l = root / (2.0 * a), x = log(B / f.S); /* x < 0 */
  double z = x / v + l * v, y = l * v - x / v;                       /* y = 2 l v - z > 0 */
  if (!(y < 37.5)) return 0.0;
  /* the second term's power and N(-y)'s exp in one exponent: (B* / S)^(mu - l) may pass the double range */
  double second = exp((mu - l) * x - 0.5 * y * y) * GK_INV_SQRT_2PI * tail_ratio(y);
  double value = (f.K - B) * (exp((mu + l) * x) * normal_cdf(z) + second);
  return isfinite(value) && value > 0.0 ? value : 0.0;
}

/* Where R(T) floors alo's price: past the levels' reach (the bracket's
 * elements among them), on the wide and the long fast schemes. There the
 * solves missed it by up to 1.3e-7 x K at sigma sqrt(T) ~ 10 (found in
 * review); within the reach they hold their levels' accuracy and the floor
 * is not spent. */
static int floored_at_first_touch(const gk_american_option *o) { return gk_alo_past_levels_reach(o) || bracketed(o); }

double gk_alo_first_touch_floor(const gk_american_option *o) {
  return floored_at_first_touch(o) ? first_touch_by_expiry(o) : 0.0;
}

double gk_alo_first_touch_slack(gk_alo_level level) { return level == GK_ALO_FAST ? 1e-7 : 1e-8; }

int gk_alo_within_bracket_bounds(const gk_american_option *o, gk_alo_level level, double price) {
  return !floored_at_first_touch(o) ||
         (gk_alo_within_bounds(o, price) && price >= first_touch_by_expiry(o) - gk_alo_first_touch_slack(level) * o->K);
}

/* The bounds every American price lies in (GK_ALO_FLOOR_SLACK): at least
 * the deterministic and the European price, at most the perpetual option's
 * (the put form's, r > 0); *cap INFINITY where there is none. */
static void alo_bounds(const gk_american_option *o, double *floor, double *cap) {
  put_form f = put_form_of(o);
  *floor = fmax(gk_american_deterministic_price(o), gk_american_european_price(o)); /* >= intrinsic */
  *cap = f.r > 0.0 && o->sigma > 0.0 ? fmax(perpetual_put(f.S, f.K, f.r, f.q, o->sigma), *floor) : INFINITY;
}

int gk_alo_within_bounds(const gk_american_option *o, double price) {
  double floor, cap;
  alo_bounds(o, &floor, &cap);
  return price >= floor - GK_ALO_FLOOR_SLACK * o->K && price <= cap + GK_ALO_FLOOR_SLACK * o->K;
}

double gk_alo_price_scheme(const gk_american_option *o, const gk_alo_scheme *scheme) {
  double price = alo_price_unbounded(o, scheme), floor, cap;
  if (o->T == 0.0 || o->sigma * sqrt(o->T) < GK_AMERICAN_TINY_STDDEV) return price; /* the limits' own */
  alo_bounds(o, &floor, &cap);
  floor = fmax(floor, gk_alo_first_touch_floor(o));
  return fmin(fmax(price, floor), cap);
}

static double alo_price_unbounded(const gk_american_option *o, const gk_alo_scheme *scheme) {
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
  /* Two boundaries (q < r <= 0 for the put), which alo does not model: the batch
   * routes such elements to the tree; a direct caller gets the lower bound. */
  if (r_put <= 0.0 && q_put < r_put) return fmax(gk_american_european_price(o), fmax(o->omega * (o->S - o->K), 0.0));
  double price = gk_alo_put_price(S, K, o->T, r_put, q_put, o->sigma, scheme);
  return fmax(price, fmax(gk_american_european_price(o), fmax(o->omega * (o->S - o->K), 0.0)));
}

int gk_alo_price_greeks(const gk_american_option *o, const gk_alo_scheme *scheme, gk_alo_greeks *out) {
  if (o->T == 0.0 || !(o->sigma * sqrt(o->T) >= GK_AMERICAN_TINY_STDDEV)) return 0;
  double q = o->r - o->b;
  int put = o->omega < 0.0;
  double S = put ? o->S : o->K, K = put ? o->K : o->S;
  double r_put = put ? o->r : q, q_put = put ? q : o->r;
  if (r_put <= 0.0 && q_put >= r_put) return 0; /* European */
  if (r_put <= 0.0 && q_put < r_put) return 0;   /* two boundaries: the tree's (the batch routes them) */
  if (scheme == NULL || scheme->nodes < 1 || scheme->nodes > GK_ALO_MAX_NODES || scheme->iterations < 0 ||
      scheme->boundary.count < 1 || scheme->boundary.count > GK_ALO_MAX_POINTS || scheme->price.count < 1)
    return 0;
  put_market m = {S, K, o->T, r_put, q_put, o->sigma, q_put > r_put ? K * (r_put / q_put) : K};
  put_value p = alo_put(&m, scheme, 1);
  double all = p.price + p.delta + p.gamma + p.theta + p.vega + p.rho + p.phi;
  if (!isfinite(all)) return 0;
  double floor, cap;
  alo_bounds(o, &floor, &cap);
  double slack = GK_ALO_FLOOR_SLACK * o->K;
  if (!(p.price >= floor - slack && p.price <= cap + slack)) return 0; /* the grid lost the boundary: bumps */
  out->price = fmin(fmax(p.price, floor), cap);
  out->theta = p.theta, out->vega = p.vega;
  if (put) {
    out->delta = p.delta, out->gamma = p.gamma, out->rho = p.rho, out->phi = p.phi;
  } else {
    /* The call is the put with S and K swapped: by homogeneity P = S P_S + K P_K,
     * so dC/dS = P_K = (P - S_p P_S) / K_p and d2C/dS2 = S_p^2 P_SS / K_p^2;
     * the call's r is the put's q and the other way round. */
    out->delta = (p.price - S * p.delta) / K;
    out->gamma = S * S * p.gamma / (K * K);
    out->rho = p.phi, out->phi = p.rho;
  }
  return 1;
}

double gk_alo_price_level(const gk_american_option *o, gk_alo_level level) {
  if (gk_american_perpetual_limit(o)) {
    gk_alo_greeks perpetual;
    gk_american_perpetual_greeks(o, &perpetual);
    return perpetual.price;
  }
  gk_american_option as = gk_alo_priced_as(o);
  double price = gk_alo_price_scheme(&as, gk_alo_scheme_for(o, level)), floor, cap;
  if (o->T == 0.0 || o->sigma * sqrt(o->T) < GK_AMERICAN_TINY_STDDEV) return price;
  alo_bounds(o, &floor, &cap); /* o's: `as` may be shorter */
  /* past the wide scheme's lines the bracket's price is a lower bound; so
   * is R(T), which can be the closer one (a solve the bracket kept priced
   * 4.9e-6 x K below it: found in review); past the reach too */
  floor = fmax(floor, gk_alo_first_touch_floor(o));
  return fmin(fmax(price, floor), cap);
}

int gk_alo_held_at_perpetual(const gk_american_option *o, gk_alo_level level, gk_alo_greeks *out) {
  put_form f = put_form_of(o);
  if (!(f.r > 0.0) || !(o->sigma > 0.0)) return 0; /* no perpetual cap */
  double price = gk_alo_price_level(o, level), perpetual = perpetual_put(f.S, f.K, f.r, f.q, o->sigma);
  if (price != perpetual) return 0;
  gk_american_perpetual_greeks(o, out); /* at or below B*, the payoff's (as the limit's route) */
  out->price = price; /* bit for bit the price-only answer */
  return 1;
}

double gk_alo_price(const gk_american_option *o) { return gk_alo_price_level(o, GK_ALO_ACCURATE); }

double gk_alo_price_fast(const gk_american_option *o) { return gk_alo_price_level(o, GK_ALO_FAST); }
