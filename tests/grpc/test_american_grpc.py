"""American exercise on greeksd's PricingService (PriceBatch and PriceChain),
end to end: the real server on a free loopback port, called from Python's
grpcio.

References, none of them the server's own output captured once:
  - theory: an American option is worth at least the European one and its
    intrinsic value; an American call without dividends is the European call
    (Merton 1973), so both methods must return the European price;
  - a Cox-Ross-Rubinstein binomial tree written here (2000 and 2001 steps,
    averaged to damp the odd-even oscillation), independent of the kernels;
  - the offline CLI (`greeks price` / `greeks chain` with a style column,
    `greeks iv --style american`).
Then: mixed styles in one chain, element errors, the validation messages, and
latency isolation: small European calls complete while a large American
request is still running, and a cancelled American request stops.
ImpliedVol with American contracts (style, american_method, flags): American
prices back to the vols they were priced at, European ones untouched beside
them, the offline CLI's vols and notes, the price bounds as element errors.

Environment (tests/CMakeLists.txt): that of test_grpc.py.
"""
import math
import os
import random
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_grpc import SLOWDOWN, Server, close, read_csv, run_cli, stub, write_rows  # noqa: E402
from test_grpc import grpc, pb  # noqa: E402  (the generated stubs, found by test_grpc)

FIRST_ORDER = ["price", "delta", "gamma", "vega", "theta", "rho", "phi"]
CALL, PUT = "call", "put"
# The tree's own error (kernels/include/greeks/american.h): at most 3e-4 at
# K = 100 against an 8192-step tree, in either direction, so it may land that
# far below the European price where early exercise is worth nothing.
# Bjerksund-Stensland 2002 takes the European price as a floor.
TREE_ERROR = 3e-4


def crr_american(S, K, T, r, q, sigma, kind, steps):
    """American option on a Cox-Ross-Rubinstein tree: the continuation value
    against immediate exercise at every node. q is the yield (black76: q = r)."""
    dt = T / steps
    u = math.exp(sigma * math.sqrt(dt))
    d = 1.0 / u
    p = (math.exp((r - q) * dt) - d) / (u - d)
    disc = math.exp(-r * dt)
    pu, pd = disc * p, disc * (1.0 - p)
    sign = 1.0 if kind == CALL else -1.0
    # The spot after i steps, j of them down, is S u^(i - 2j); power[k + steps] = S u^k.
    power = [S * u ** k for k in range(-steps, steps + 1)]
    values = [max(sign * (power[2 * steps - 2 * j] - K), 0.0) for j in range(steps + 1)]
    for i in range(steps - 1, -1, -1):
        spots = power[steps - i: steps + i + 1: 2][::-1]  # j = 0..i
        values = [max(pu * a + pd * b, sign * (s - K)) for a, b, s in zip(values, values[1:], spots)]
    return values[0]


def crr_reference(S, K, T, r, q, sigma, kind):
    return 0.5 * (crr_american(S, K, T, r, q, sigma, kind, 2000) + crr_american(S, K, T, r, q, sigma, kind, 2001))


def norm_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def european_bsm(S, K, T, r, q, sigma, kind):
    d1 = (math.log(S / K) + (r - q + 0.5 * sigma * sigma) * T) / (sigma * math.sqrt(T))
    d2 = d1 - sigma * math.sqrt(T)
    if kind == CALL:
        return S * math.exp(-q * T) * norm_cdf(d1) - K * math.exp(-r * T) * norm_cdf(d2)
    return K * math.exp(-r * T) * norm_cdf(-d2) - S * math.exp(-q * T) * norm_cdf(-d1)


def option_type(kind):
    return pb.CALL if kind == CALL else pb.PUT


def batch(rows, styles, method=pb.AMERICAN_METHOD_UNSPECIFIED, model=pb.MODEL_BSM, outputs=()):
    """A PriceBatchRequest from rows of dicts (S, K, T, r, q, sigma, type)."""
    return pb.PriceBatchRequest(
        model=model, spot=[r["S"] for r in rows], strike=[r["K"] for r in rows], expiry=[r["T"] for r in rows],
        rate=[r["r"] for r in rows], vol=[r["sigma"] for r in rows], type=[option_type(r["type"]) for r in rows],
        style=list(styles), american_method=method, outputs=list(outputs), **{"yield": [r["q"] for r in rows]})


def random_rows(n, seed, negative_rates=False):
    rng = random.Random(seed)
    return [dict(id="r%d" % i, type=rng.choice([CALL, PUT]), S=rng.uniform(60, 140), K=rng.uniform(60, 140),
                 T=rng.uniform(0.05, 2.0), r=rng.uniform(-0.01 if negative_rates else 0.0, 0.08),
                 q=rng.uniform(0.0, 0.06), sigma=rng.uniform(0.08, 0.6)) for i in range(n)]


def american_threads(server):
    """The ids of greeksd's gk-american threads (its American pool)."""
    threads = set()
    for task in os.listdir("/proc/%d/task" % server.proc.pid):
        try:
            with open("/proc/%d/task/%s/comm" % (server.proc.pid, task)) as f:
                if f.read().startswith("gk-american"):
                    threads.add(int(task))
        except FileNotFoundError:  # a thread that ended while listed
            pass
    return threads


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class ServedOnce(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.channel, cls.stub = stub(cls.server.target)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code = cls.server.stop()
        log = cls.server.stderr()
        cls.server.close()
        if code != 0:
            raise AssertionError("greeksd exited %d on SIGTERM:\n%s" % (code, log))

    def refused(self, call, request):
        with self.assertRaises(grpc.RpcError) as caught:
            call(request, timeout=30)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, caught.exception.details())
        return caught.exception.details()


class AmericanAgainstReferences(ServedOnce):
    def test_american_put_is_worth_at_least_the_european_put_and_its_intrinsic_value(self):
        # Exactly so for bs2002; within the tree's error for the tree.
        rng = random.Random(5)
        rows = [dict(type=PUT, S=100.0, K=rng.uniform(70, 140), T=rng.uniform(0.05, 3), r=rng.uniform(0, 0.1),
                     q=rng.uniform(0, 0.05), sigma=rng.uniform(0.1, 0.6)) for _ in range(200)]
        twice = [row for row in rows for _ in (0, 1)]  # each contract European, then American
        styles = [pb.EUROPEAN, pb.AMERICAN] * len(rows)
        for method in (pb.AMERICAN_METHOD_BS2002, pb.AMERICAN_METHOD_TREE):
            reply = self.stub.PriceBatch(batch(twice, styles, method, outputs=[pb.PRICE]), timeout=120)
            self.assertEqual(len(reply.errors), 0)
            prices = reply.greeks.price
            premium = 0.0
            for i, row in enumerate(rows):
                european, american = prices[2 * i], prices[2 * i + 1]
                self.assertAlmostEqual(european, european_bsm(row["S"], row["K"], row["T"], row["r"], row["q"],
                                                              row["sigma"], PUT), places=9)
                slack = 1e-12 if method == pb.AMERICAN_METHOD_BS2002 else TREE_ERROR * row["K"] / 100
                self.assertGreaterEqual(american, european - slack, (method, row))
                self.assertGreaterEqual(american, row["K"] - row["S"] - 1e-12, (method, row))
                premium = max(premium, american - european)
            self.assertGreater(premium, 0.5, "the grid must hold puts worth exercising early")

    def test_american_call_without_dividends_is_the_european_call(self):
        # Never exercised early (Merton 1973): bs2002 returns the European
        # price itself; the tree (which has no such shortcut) within its error.
        rows = [dict(type=CALL, S=100.0, K=K, T=T, r=r, q=0.0, sigma=s)
                for K in (70.0, 100.0, 130.0) for T in (0.1, 1.0, 3.0) for r in (0.0, 0.05) for s in (0.15, 0.5)]
        european = self.stub.PriceBatch(batch(rows, [], outputs=[pb.PRICE]), timeout=30).greeks.price
        for method, rel, absolute in ((pb.AMERICAN_METHOD_BS2002, 1e-9, 1e-12),
                                      (pb.AMERICAN_METHOD_TREE, 0.0, TREE_ERROR)):
            reply = self.stub.PriceBatch(batch(rows, [pb.AMERICAN] * len(rows), method, outputs=[pb.PRICE]),
                                         timeout=60)
            for i, row in enumerate(rows):
                self.assertTrue(math.isclose(reply.greeks.price[i], european[i], rel_tol=rel, abs_tol=absolute),
                                (method, row, reply.greeks.price[i], european[i]))

    def test_prices_agree_with_an_independent_binomial_tree(self):
        # (model, S, K, T, r, q, sigma, type): q is the foreign rate under
        # garman-kohlhagen; black76 has no yield (the tree takes q = r).
        cases = [(pb.MODEL_BSM, 100.0, 110.0, 1.0, 0.08, 0.0, 0.25, PUT),
                 (pb.MODEL_BSM, 100.0, 100.0, 0.5, 0.05, 0.02, 0.30, PUT),
                 (pb.MODEL_BSM, 100.0, 90.0, 1.0, 0.03, 0.08, 0.20, CALL),
                 (pb.MODEL_BLACK76, 100.0, 80.0, 2.0, 0.10, 0.0, 0.30, CALL),
                 (pb.MODEL_GARMAN_KOHLHAGEN, 1.20, 1.30, 1.0, 0.06, 0.01, 0.12, PUT)]
        for model, S, K, T, r, q, sigma, kind in cases:
            row = dict(S=S, K=K, T=T, r=r, q=q, sigma=sigma, type=kind)
            reference = crr_reference(S, K, T, r, r if model == pb.MODEL_BLACK76 else q, sigma, kind)
            served = {}
            for method in (pb.AMERICAN_METHOD_TREE, pb.AMERICAN_METHOD_BS2002):
                reply = self.stub.PriceBatch(batch([row, row], [pb.EUROPEAN, pb.AMERICAN], method, model,
                                                   outputs=[pb.PRICE]), timeout=30)
                self.assertEqual(len(reply.errors), 0)
                european, served[method] = reply.greeks.price
                self.assertGreater(reference - european, 0.01 * K / 100, "early exercise must matter here")
            # The tree: within 3e-4 of an 8192-step tree (american.h); the
            # reference itself is within about 1e-4 of the limit.
            tol = 2e-3 * K / 100
            self.assertAlmostEqual(served[pb.AMERICAN_METHOD_TREE], reference, delta=tol, msg=(model, row))
            # Bjerksund-Stensland 2002: a lower bound, at most 2.4% below.
            bs2002 = served[pb.AMERICAN_METHOD_BS2002]
            self.assertLessEqual(bs2002, reference + tol, (model, row))
            self.assertGreaterEqual(bs2002, reference * (1 - 0.025) - tol, (model, row))

    def test_batch_matches_the_offline_cli_outputs_and_element_errors(self):
        for method, name, n in ((pb.AMERICAN_METHOD_BS2002, "bs2002", 300), (pb.AMERICAN_METHOD_TREE, "tree", 40)):
            rows = random_rows(n, seed=11 + n, negative_rates=True)  # r < 0: priced (docs/kernels.md)
            for i, row in enumerate(rows):
                row["style"] = "american" if i % 3 else "european"
            rows[4]["sigma"] = -0.3  # a bad contract under either style
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "batch.csv")
                write_rows(path, rows, ["id", "type", "S", "K", "T", "r", "q", "sigma", "style"])
                code, out, err = run_cli("price", "--american-method", name, path)
            self.assertEqual(code, 3, err)  # some bad rows
            offline = read_csv(out)
            styles = [pb.AMERICAN if row["style"] == "american" else pb.EUROPEAN for row in rows]
            reply = self.stub.PriceBatch(batch(rows, styles, method), timeout=120)
            self.assertEqual(reply.count, n)
            errors = {e.index: e for e in reply.errors}
            expected = {i for i, line in enumerate(offline) if line["error"]}
            self.assertEqual(set(errors), expected)
            self.assertIn(4, errors)
            self.assertEqual(errors[4].field, "sigma")
            negative = [i for i, row in enumerate(rows) if row["style"] == "american" and row["r"] < 0 and i != 4]
            self.assertTrue(negative, "the rows must include American contracts with r < 0")
            for i in negative:  # negative rates are priced, served as offline
                self.assertNotIn(i, errors)
            for i, line in enumerate(offline):
                for g in FIRST_ORDER:
                    served = getattr(reply.greeks, g)[i]
                    if i in errors:
                        self.assertEqual(served, 0.0)
                    else:
                        self.assertTrue(close(served, float(line[g]), rel=1e-12, abs_tol=1e-12),
                                        "%s %s[%d]: %r vs %r" % (name, g, i, served, line[g]))

    def test_a_chain_with_mixed_styles(self):
        strikes = [80.0 + 2 * i for i in range(21)]
        contracts = [dict(id="c%d" % i, type=PUT if i % 4 < 2 else CALL, K=k, T=0.75, sigma=0.2 + 0.01 * (i % 7),
                          style="american" if i % 2 else "european") for i, k in enumerate(strikes)]
        market = pb.Market(spot=100.0, rate=0.05, **{"yield": 0.03})

        def chain(styles, method=pb.AMERICAN_METHOD_TREE):
            return pb.PriceChainRequest(
                model=pb.MODEL_BSM, market=market, american_method=method,
                contracts=pb.ChainContracts(strike=[c["K"] for c in contracts], expiry=[c["T"] for c in contracts],
                                            vol=[c["sigma"] for c in contracts],
                                            type=[option_type(c["type"]) for c in contracts], style=styles))

        mixed = [pb.AMERICAN if c["style"] == "american" else pb.EUROPEAN for c in contracts]
        reply = self.stub.PriceChain(chain(mixed), timeout=60)
        european = self.stub.PriceChain(chain([]), timeout=30)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "chain.csv")
            write_rows(path, contracts, ["id", "type", "K", "T", "sigma", "style"])
            code, out, err = run_cli("chain", "--spot", "100", "--rate", "0.05", "--yield", "0.03",
                                     "--american-method", "tree", path)
        self.assertEqual(code, 0, err)
        offline = read_csv(out)
        self.assertEqual((reply.count, len(reply.errors)), (len(contracts), 0))
        for i, c in enumerate(contracts):
            for g in FIRST_ORDER:
                self.assertTrue(close(getattr(reply.greeks, g)[i], float(offline[i][g]), rel=1e-12, abs_tol=1e-12),
                                (g, c))
            if c["style"] == "european":  # untouched by its American neighbours
                self.assertEqual(reply.greeks.price[i], european.greeks.price[i])
            else:
                self.assertGreaterEqual(reply.greeks.price[i], european.greeks.price[i] - TREE_ERROR)
        # Early exercise matters for some of these puts (r > q).
        self.assertGreater(max(reply.greeks.price[i] - european.greeks.price[i] for i in range(len(contracts))),
                           0.01)

    def test_an_explicitly_european_style_column_changes_nothing(self):
        rows = random_rows(50, seed=21)
        plain = self.stub.PriceBatch(batch(rows, []), timeout=30)
        styled = self.stub.PriceBatch(batch(rows, [pb.EUROPEAN] * 50, pb.AMERICAN_METHOD_TREE), timeout=30)
        self.assertEqual(plain, styled)
        # So does a bachelier request whose contracts are all European.
        bachelier = self.stub.PriceBatch(batch(rows, [pb.EUROPEAN] * 50, model=pb.MODEL_BACHELIER), timeout=30)
        self.assertEqual(bachelier.count, 50)


class AmericanValidation(ServedOnce):
    ROWS = [dict(type=PUT, S=100.0, K=100.0 + i, T=0.5, r=0.03, q=0.0, sigma=0.2) for i in range(3)]

    def chain(self, styles, method=pb.AMERICAN_METHOD_UNSPECIFIED, model=pb.MODEL_BSM, outputs=()):
        return pb.PriceChainRequest(
            model=model, market=pb.Market(spot=100.0, rate=0.03), american_method=method, outputs=list(outputs),
            contracts=pb.ChainContracts(strike=[100.0, 101.0, 102.0], expiry=[0.5] * 3, vol=[0.2] * 3,
                                        type=[pb.PUT] * 3, style=styles))

    def test_a_style_column_of_another_length_names_the_field(self):
        details = self.refused(self.stub.PriceBatch, batch(self.ROWS, [pb.AMERICAN] * 2))
        self.assertIn("field 'style' has 2 entries but the request has 3 contracts", details)
        details = self.refused(self.stub.PriceChain, self.chain([pb.AMERICAN] * 4))
        self.assertIn("field 'contracts.style' has 4 entries but the request has 3 contracts", details)

    def test_an_unknown_style_names_the_field_and_the_value(self):
        details = self.refused(self.stub.PriceBatch, batch(self.ROWS, [pb.EUROPEAN, 7, pb.AMERICAN]))
        self.assertIn("field 'style[1]': 7 is not a known ExerciseStyle", details)
        details = self.refused(self.stub.PriceChain, self.chain([pb.AMERICAN, pb.AMERICAN, -2]))
        self.assertIn("field 'contracts.style[2]': -2 is not a known ExerciseStyle", details)
        # the same on PriceBatch, whose column protobuf-c reads as its enum
        # type: it said 4294967295 (found in review)
        details = self.refused(self.stub.PriceBatch, batch(self.ROWS, [pb.EUROPEAN, -1, pb.AMERICAN]))
        self.assertIn("field 'style[1]': -1 is not a known ExerciseStyle", details)

    def test_an_unknown_method_names_the_field_even_without_american_contracts(self):
        details = self.refused(self.stub.PriceBatch, batch(self.ROWS, [], method=9))
        self.assertIn("field 'american_method': 9 is not a known AmericanMethod", details)
        details = self.refused(self.stub.PriceChain, self.chain([], method=5))
        self.assertIn("field 'american_method': 5 is not a known AmericanMethod", details)
        self.assertIn("3 alo, 4 alo_fast", details)

    def test_american_under_bachelier_is_refused_naming_the_contract(self):
        details = self.refused(self.stub.PriceBatch,
                               batch(self.ROWS, [pb.EUROPEAN, pb.AMERICAN, pb.AMERICAN], model=pb.MODEL_BACHELIER))
        self.assertIn("field 'style[1]' is AMERICAN", details)
        self.assertIn("MODEL_BSM, MODEL_BLACK76 or MODEL_GARMAN_KOHLHAGEN", details)
        details = self.refused(self.stub.PriceChain, self.chain([pb.EUROPEAN, pb.EUROPEAN, pb.AMERICAN],
                                                                 model=pb.MODEL_BACHELIER))
        self.assertIn("field 'contracts.style[2]' is AMERICAN", details)

    def test_second_order_outputs_with_american_contracts_are_refused(self):
        details = self.refused(self.stub.PriceBatch, batch(self.ROWS, [pb.AMERICAN] * 3, outputs=[pb.VANNA]))
        self.assertIn("field 'outputs' asks for second-order Greeks", details)
        details = self.refused(self.stub.PriceChain, self.chain([pb.EUROPEAN, pb.AMERICAN, pb.EUROPEAN],
                                                                 outputs=[pb.PRICE, pb.ALL_SECOND_ORDER]))
        self.assertIn("field 'outputs' asks for second-order Greeks", details)
        self.assertIn("contracts.style[1]", details)
        # Without American contracts they are served as before.
        reply = self.stub.PriceChain(self.chain([pb.EUROPEAN] * 3, outputs=[pb.VANNA]), timeout=30)
        self.assertEqual(len(reply.greeks.vanna), 3)


def iv_request(rows, styles, method=pb.AMERICAN_METHOD_UNSPECIFIED, model=pb.MODEL_BSM):
    """An ImpliedVolRequest from rows of dicts (S, K, T, r, q, price, type)."""
    return pb.ImpliedVolRequest(
        model=model, spot=[r["S"] for r in rows], strike=[r["K"] for r in rows], expiry=[r["T"] for r in rows],
        rate=[r["r"] for r in rows], price=[r["price"] for r in rows], type=[option_type(r["type"]) for r in rows],
        style=list(styles), american_method=method, **{"yield": [r["q"] for r in rows]})


class AmericanMethodAlo(ServedOnce):
    def test_alo_prices_agree_with_an_independent_tree_and_the_offline_cli(self):
        cases = [dict(id="a", type=PUT, S=100.0, K=110.0, T=1.0, r=0.08, q=0.0, sigma=0.25),
                 dict(id="b", type=PUT, S=100.0, K=100.0, T=0.5, r=0.05, q=0.02, sigma=0.30),
                 dict(id="c", type=CALL, S=100.0, K=90.0, T=1.0, r=0.03, q=0.08, sigma=0.20)]
        reply = self.stub.PriceBatch(batch(cases, [pb.AMERICAN] * 3, pb.AMERICAN_METHOD_ALO), timeout=60)
        self.assertEqual(len(reply.errors), 0)
        for i, row in enumerate(cases):
            reference = crr_reference(row["S"], row["K"], row["T"], row["r"], row["q"], row["sigma"], row["type"])
            european = european_bsm(row["S"], row["K"], row["T"], row["r"], row["q"], row["sigma"], row["type"])
            self.assertGreater(reference - european, 0.01, "early exercise must matter here")
            # CRR's own error (about 1e-4 at 2000 steps) bounds the comparison.
            self.assertAlmostEqual(reply.greeks.price[i], reference, delta=1e-3, msg=row)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "alo.csv")
            write_rows(path, cases, ["id", "type", "S", "K", "T", "r", "q", "sigma"])
            code, out, err = run_cli("price", "--style", "american", "--american-method", "alo", path)
        self.assertEqual(code, 0, err)
        for i, line in enumerate(read_csv(out)):
            for g in FIRST_ORDER:
                self.assertTrue(close(getattr(reply.greeks, g)[i], float(line[g]), rel=1e-12, abs_tol=1e-12), (g, i))
        # PriceChain selects alo too (its own decoder): the same prices on one market.
        chain = pb.PriceChainRequest(
            model=pb.MODEL_BSM, market=pb.Market(spot=100.0, rate=0.05, **{"yield": 0.02}),
            american_method=pb.AMERICAN_METHOD_ALO, outputs=[pb.PRICE],
            contracts=pb.ChainContracts(strike=[100.0], expiry=[0.5], vol=[0.30], type=[pb.PUT], style=[pb.AMERICAN]))
        self.assertEqual(self.stub.PriceChain(chain, timeout=60).greeks.price[0], reply.greeks.price[1])

    def test_alo_fast_is_within_1e6_of_alo_and_inverts_to_its_own_vols(self):
        rows = random_rows(40, 81)
        styles = [pb.AMERICAN] * len(rows)
        accurate = self.stub.PriceBatch(batch(rows, styles, pb.AMERICAN_METHOD_ALO), timeout=60)
        fast = self.stub.PriceBatch(batch(rows, styles, pb.AMERICAN_METHOD_ALO_FAST), timeout=60)
        self.assertEqual((len(fast.errors), len(fast.greeks.price)), (0, len(rows)))
        differ = 0
        for i, row in enumerate(rows):
            self.assertLessEqual(abs(fast.greeks.price[i] - accurate.greeks.price[i]), 1e-6 * row["K"], row)
            self.assertLessEqual(abs(fast.greeks.delta[i] - accurate.greeks.delta[i]), 1e-4, row)
            differ += fast.greeks.price[i] != accurate.greeks.price[i]
        self.assertGreater(differ, len(rows) // 2)  # a level of its own, not alo's prices
        priced = [dict(row, price=p) for row, p in zip(rows, fast.greeks.price)]
        reply = self.stub.ImpliedVol(iv_request(priced, styles, pb.AMERICAN_METHOD_ALO_FAST), timeout=120)
        self.assertEqual(len(reply.errors), 0)
        for i, row in enumerate(rows):
            if reply.flags[i] == 0:
                self.assertTrue(close(reply.vol[i], row["sigma"], rel=1e-10, abs_tol=0), (row, reply.vol[i]))


class AmericanPoolKept(ServedOnce):
    """A multi-task American batch runs on the compute agent's own pool,
    created at the first such batch and kept (adr/0033): the same gk-american
    threads answer every later one, where a pool per request took 1-2 ms to
    start. The second batch's prices are the first's, bit for bit."""

    def test_later_batches_run_on_the_first_batchs_threads(self):
        rows = random_rows(200, 11)  # 64 contracts a task for alo: 4 tasks
        request = batch(rows, [pb.AMERICAN] * len(rows), pb.AMERICAN_METHOD_ALO)
        first = self.stub.PriceBatch(request, timeout=60)
        threads = american_threads(self.server)
        self.assertGreater(len(threads), 0, "a multi-task batch runs on the American pool")
        for _ in range(3):
            again = self.stub.PriceBatch(request, timeout=60)
            self.assertEqual(list(again.greeks.price), list(first.greeks.price))
            self.assertEqual(american_threads(self.server), threads)


class AmericanImpliedVol(ServedOnce):
    # Near the money, out of the exercise region: every vol is pinned (flags 0).
    ROWS = [dict(id="p%d" % i, type=PUT if i % 2 else CALL, S=100.0, K=92.0 + 2 * i, T=0.25 + 0.2 * i,
                 r=0.06, q=0.02 if i % 3 else 0.05, sigma=0.15 + 0.04 * i) for i in range(9)]

    def priced(self, method=pb.AMERICAN_METHOD_ALO, model=pb.MODEL_BSM):
        """The rows with their American prices at their sigma, as PriceBatch gives them."""
        reply = self.stub.PriceBatch(batch(self.ROWS, [pb.AMERICAN] * len(self.ROWS), method, model,
                                           outputs=[pb.PRICE]), timeout=60)
        self.assertEqual(len(reply.errors), 0)
        return [dict(row, price=p) for row, p in zip(self.ROWS, reply.greeks.price)]

    def test_american_prices_give_back_their_vols(self):
        # alo to 1e-10 relative (american_iv.h); unspecified is alo; bs2002 too.
        for method, model in ((pb.AMERICAN_METHOD_ALO, pb.MODEL_BSM), (pb.AMERICAN_METHOD_UNSPECIFIED, pb.MODEL_BSM),
                              (pb.AMERICAN_METHOD_BS2002, pb.MODEL_BLACK76)):
            rows = self.priced(pb.AMERICAN_METHOD_ALO if method == pb.AMERICAN_METHOD_UNSPECIFIED else method, model)
            reply = self.stub.ImpliedVol(iv_request(rows, [pb.AMERICAN] * len(rows), method, model), timeout=120)
            self.assertEqual((reply.count, len(reply.errors), len(reply.flags)), (len(rows), 0, len(rows)))
            for i, row in enumerate(rows):
                self.assertEqual(reply.flags[i], 0, row)
                self.assertTrue(close(reply.vol[i], row["sigma"], rel=1e-10, abs_tol=0), (method, row, reply.vol[i]))

    def test_european_contracts_beside_american_ones_are_untouched(self):
        rows = self.priced()
        european = self.stub.PriceBatch(batch(self.ROWS, [], outputs=[pb.PRICE]), timeout=30).greeks.price
        mixed = [dict(row, price=european[i]) if i % 2 else row for i, row in enumerate(rows)]
        styles = [pb.EUROPEAN if i % 2 else pb.AMERICAN for i in range(len(rows))]
        reply = self.stub.ImpliedVol(iv_request(mixed, styles, pb.AMERICAN_METHOD_ALO), timeout=120)
        plain = self.stub.ImpliedVol(iv_request(mixed, []), timeout=30)
        self.assertEqual(len(plain.flags), 0)  # no American contract: no flags, as before
        for i, row in enumerate(mixed):
            self.assertTrue(close(reply.vol[i], row["sigma"], rel=1e-10, abs_tol=0), (i, reply.vol[i]))
            if i % 2:
                self.assertEqual(reply.vol[i], plain.vol[i])
            else:  # the American premium read as a European one implies a higher vol
                self.assertGreaterEqual(plain.vol[i], reply.vol[i] - 1e-12)

    def test_matches_the_offline_cli_vols_notes_and_errors(self):
        rows = self.priced()
        deep = dict(id="deep", type=PUT, S=50.0, K=100.0, T=1.0, r=0.08, q=0.0, price=50.0)  # exercise now
        low = dict(id="low", type=PUT, S=80.0, K=100.0, T=1.0, r=0.05, q=0.0, price=19.5)  # below K - S
        high = dict(id="high", type=CALL, S=100.0, K=100.0, T=1.0, r=0.05, q=0.02, price=100.0)  # at S
        negative = dict(id="neg", type=PUT, S=100.0, K=100.0, T=1.0, r=-0.01, q=0.0, price=5.0)  # solved
        rows += [deep, low, high, negative]
        reply = self.stub.ImpliedVol(iv_request(rows, [pb.AMERICAN] * len(rows), pb.AMERICAN_METHOD_ALO),
                                     timeout=120)
        errors = {e.index: e for e in reply.errors}
        n = len(self.ROWS)
        self.assertEqual(set(errors), {n + 1, n + 2})
        self.assertEqual((errors[n + 1].field, errors[n + 2].field), ("price", "price"))
        self.assertGreater(reply.vol[n + 3], 0.0)  # r < 0: never exercised early, a vol
        self.assertIn("intrinsic", errors[n + 1].reason)
        self.assertIn("upper bound", errors[n + 2].reason)
        self.assertEqual((reply.vol[n], reply.flags[n]), (0.0, 1))  # at the vol -> 0 limit
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "iv.csv")
            write_rows(path, rows, ["id", "type", "S", "K", "T", "r", "q", "price"])
            code, out, err = run_cli("iv", "--style", "american", "--american-method", "alo", path)
        self.assertEqual(code, 3, err)  # the bad rows
        offline = read_csv(out)
        self.assertEqual(list(offline[0]), ["id", "iv", "error", "note"])
        for i, line in enumerate(offline):
            self.assertEqual(bool(line["error"]), i in errors, line)
            if i not in errors:
                self.assertTrue(close(float(line["iv"]), reply.vol[i], rel=1e-12, abs_tol=0), line)
                self.assertEqual(line["note"], "at_lower_limit" if reply.flags[i] == 1 else "", line)

    def test_american_contracts_are_validated_like_price_batch(self):
        rows = self.priced()[:3]
        details = self.refused(self.stub.ImpliedVol, iv_request(rows, [pb.AMERICAN] * 2))
        self.assertIn("field 'style' has 2 entries but the request has 3 contracts", details)
        details = self.refused(self.stub.ImpliedVol, iv_request(rows, [pb.AMERICAN, 5, pb.EUROPEAN]))
        self.assertIn("field 'style[1]': 5 is not a known ExerciseStyle", details)
        details = self.refused(self.stub.ImpliedVol, iv_request(rows, [], method=7))
        self.assertIn("field 'american_method': 7 is not a known AmericanMethod", details)
        details = self.refused(self.stub.ImpliedVol,
                               iv_request(rows, [pb.EUROPEAN, pb.AMERICAN, pb.EUROPEAN], model=pb.MODEL_BACHELIER))
        self.assertIn("field 'style[1]' is AMERICAN", details)


class AmericanImpliedVolOnThePool(ServedOnce):
    """ImpliedVol's American contracts are solved as American batches are
    priced: in tasks on the compute agent's American pool, each task's
    solver calls checked for cancellation and the deadline, the tree's prices
    paced. Before, the whole solve ran on the compute agent's thread, which
    neither a deadline nor a cancellation could stop."""

    def alo_priced(self, n, seed, method=pb.AMERICAN_METHOD_ALO):
        rows = random_rows(n, seed)
        reply = self.stub.PriceBatch(batch(rows, [pb.AMERICAN] * n, method, outputs=[pb.PRICE]), timeout=120)
        self.assertEqual(len(reply.errors), 0)
        return [dict(row, price=p) for row, p in zip(rows, reply.greeks.price)]

    def test_a_large_request_gives_the_vols_of_its_slices_on_the_pool(self):
        rows = self.alo_priced(300, 71)  # 64 contracts a task for alo: 5 tasks
        whole = self.stub.ImpliedVol(iv_request(rows, [pb.AMERICAN] * len(rows), pb.AMERICAN_METHOD_ALO),
                                     timeout=120)
        self.assertGreater(len(american_threads(self.server)), 0, "a multi-task solve runs on the American pool")
        self.assertEqual((whole.count, len(whole.flags)), (len(rows), len(rows)))
        vols, flags, errors = [], [], {}
        for at in range(0, len(rows), 50):  # one task each, on the agent's thread
            part = self.stub.ImpliedVol(iv_request(rows[at:at + 50], [pb.AMERICAN] * len(rows[at:at + 50]),
                                                   pb.AMERICAN_METHOD_ALO), timeout=120)
            vols += list(part.vol)
            flags += list(part.flags)
            errors.update({at + e.index: e.reason for e in part.errors})
        self.assertEqual(list(whole.vol), vols)  # bit for bit, however sliced
        self.assertEqual(list(whole.flags), flags)
        self.assertEqual({e.index: e.reason for e in whole.errors}, errors)
        pinned = [i for i, f in enumerate(flags) if f == 0 and i not in errors]
        self.assertGreater(len(pinned), len(rows) // 2)
        for i in pinned:
            self.assertTrue(close(whole.vol[i], rows[i]["sigma"], rel=1e-10, abs_tol=0), (rows[i], whole.vol[i]))

    def test_an_expired_tree_solve_stops_and_frees_the_agent(self):
        # Targets from alo (cheap); the tree solves them to its own vols.
        # 1500 x a dozen tree prices: seconds of work on every core.
        rows, small = self.alo_priced(1500, 72), self.alo_priced(9, 73)
        with self.assertRaises(grpc.RpcError) as raised:
            self.stub.ImpliedVol(iv_request(rows, [pb.AMERICAN] * len(rows), pb.AMERICAN_METHOD_TREE), timeout=0.3)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        # The agent is free again within a task (4 tree vols): the next
        # compute call is answered at once, not after the abandoned solve.
        start = time.monotonic()
        reply = self.stub.ImpliedVol(iv_request(small, [pb.AMERICAN] * 9, pb.AMERICAN_METHOD_ALO), timeout=60)
        self.assertEqual(reply.count, 9)
        self.assertLess(time.monotonic() - start, 1.0 * SLOWDOWN)


class AmericanLatencyIsolation(ServedOnce):
    def small_chain(self, i):
        n = 100
        styles = [pb.EUROPEAN] * n if i % 2 else []  # an explicit European column takes the same path
        return pb.PriceChainRequest(
            model=pb.MODEL_BSM, market=pb.Market(spot=100.0, rate=0.03), outputs=[pb.PRICE, pb.DELTA],
            contracts=pb.ChainContracts(strike=[50.0 + i for i in range(n)], expiry=[0.5] * n, vol=[0.25] * n,
                                        type=[pb.CALL] * n, style=styles))

    def tree_seconds_per_contract(self):
        """One thread's time for an American tree price on this machine, now:
        16 contracts are one task, run on one thread."""
        rows = [dict(type=PUT, S=100.0, K=90.0 + i, T=1.0, r=0.05, q=0.0, sigma=0.3) for i in range(16)]
        best = float("inf")
        for _ in range(3):
            start = time.monotonic()
            self.stub.PriceBatch(batch(rows, [pb.AMERICAN] * 16, pb.AMERICAN_METHOD_TREE, outputs=[pb.PRICE]),
                                 timeout=60)
            best = min(best, time.monotonic() - start)
        return best / 16

    def test_small_european_calls_finish_while_a_large_american_batch_runs(self):
        # Sized for about 6 s of tree work on every core greeksd's pool uses.
        per_contract = self.tree_seconds_per_contract()
        n = int(min(1_000_000, max(2000, 6.0 * usable_cores() / per_contract)))
        rng = random.Random(9)
        rows = [dict(type=PUT, S=100.0, K=rng.uniform(80, 120), T=rng.uniform(0.1, 2), r=0.05, q=0.01,
                     sigma=rng.uniform(0.1, 0.5)) for _ in range(n)]
        big = self.stub.PriceBatch.future(batch(rows, [pb.AMERICAN] * n, pb.AMERICAN_METHOD_TREE, outputs=[pb.PRICE]),
                                          timeout=600, metadata=[("x-request-id", "big-american")])
        # European batches over one slice run on the shared pool: they must
        # not wait for the American work either.
        several_slices = batch(random_rows(10000, seed=4), [])
        time.sleep(0.5)  # decoded and running
        self.assertFalse(big.done(), "the large American request ended early")
        latencies = []
        for i in range(30):
            start = time.monotonic()
            if i % 10 == 9:
                reply = self.stub.PriceBatch(several_slices, timeout=60)
            else:
                reply = self.stub.PriceChain(self.small_chain(i), timeout=60)
            latencies.append(time.monotonic() - start)
            self.assertEqual(len(reply.errors), 0)
        self.assertFalse(big.done(), "30 European calls must finish before the large American one "
                                     "(n = %d, latencies %r)" % (n, latencies))
        self.assertLess(max(latencies), 1.0 * SLOWDOWN, latencies)
        # A cancelled American request stops within a task: the next one,
        # queued on the same agent, is answered at once.
        big.cancel()
        start = time.monotonic()
        small = self.stub.PriceBatch(batch(rows[:16], [pb.AMERICAN] * 16, pb.AMERICAN_METHOD_TREE,
                                           outputs=[pb.PRICE]), timeout=60)
        self.assertEqual(len(small.greeks.price), 16)
        self.assertLess(time.monotonic() - start, 2.0 * SLOWDOWN)

    def test_a_large_american_batch_is_priced_whole(self):
        # Many tasks over the request's own pool: every contract gets its
        # price, equal to the same contract priced alone.
        n = 50 * 16 + 5
        rows = random_rows(n, seed=33)
        reply = self.stub.PriceBatch(batch(rows, [pb.AMERICAN] * n, pb.AMERICAN_METHOD_TREE, outputs=[pb.PRICE]),
                                     timeout=600)
        self.assertEqual((reply.count, len(reply.errors), len(reply.greeks.price)), (n, 0, n))
        for i in (0, 17, 400, n - 1):
            alone = self.stub.PriceBatch(batch([rows[i]], [pb.AMERICAN], pb.AMERICAN_METHOD_TREE,
                                               outputs=[pb.PRICE]), timeout=60)
            self.assertEqual(alone.greeks.price[0], reply.greeks.price[i])


if __name__ == "__main__":
    unittest.main(verbosity=2)
