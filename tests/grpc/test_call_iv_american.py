"""`greeks call iv --style american [--american-method M]`: American implied
vols over gRPC from the CLI, against greeksd on a free loopback port.

References, none of them the verb's own output captured once:
  - the vols the prices were made from: American premiums computed offline by
    `greeks price --style american --american-method M` (the pricing kernels,
    no server), inverted through the server must give the vols back (1e-9
    relative where the vega pins the vol; ALO solves to 1e-10);
  - the offline verb `greeks iv --style american` on the same file: its stdout
    (id,iv,error,note, the element errors' words, the notes) byte for byte;
  - the price bounds: a premium below the method's price at vol 0 is the
    element error "field 'price' value '...': must be >= the American price
    at vol 0" on its row, a
    premium of K for a put one above the upper bound, the others answered;
  - option handling: the offline verb's spellings and defaults (alo), the
    bachelier refusal, the options refused on other verbs.
The European `greeks call iv` is compared byte for byte too (the same error
words).

Environment (tests/CMakeLists.txt): that of test_grpc.py.
"""
import math
import re
import os
import random
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_grpc import Server, read_csv, run_cli, write_rows  # noqa: E402

IV_COLUMNS = ["id", "type", "S", "K", "T", "r", "q", "price"]
CONTRACT_COLUMNS = ["id", "type", "S", "K", "T", "r", "q", "sigma"]


def random_contracts(n, seed):
    """Contracts where early exercise matters (puts with r > 0, calls with q > 0)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind = rng.choice(["call", "put"])
        rows.append(dict(id="c%d" % i, type=kind, S=rng.uniform(70, 130), K=rng.uniform(70, 130),
                         T=rng.uniform(0.1, 2.0), r=rng.uniform(0.01, 0.08), q=rng.uniform(0.0, 0.06),
                         sigma=rng.uniform(0.1, 0.6)))
    return rows


class CallIvAmerican(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.dir = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()
        code = cls.server.stop()
        log = cls.server.stderr()
        cls.server.close()
        if code != 0:
            raise AssertionError("greeksd exited %d on SIGTERM:\n%s" % (code, log))

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def call(self, *args):
        return run_cli("call", "--target", self.server.target, "--timeout-ms", "60000", *args)

    def american_prices(self, rows, method):
        """The rows priced offline as American by `method`: {id: price}."""
        contracts = self.path("contracts-%s.csv" % method)
        write_rows(contracts, rows, CONTRACT_COLUMNS)
        code, out, err = run_cli("price", "--style", "american", "--american-method", method, "--greeks", "none",
                                 contracts)
        self.assertEqual(code, 0, err)
        return {line["id"]: float(line["price"]) for line in read_csv(out)}

    def iv_file(self, rows, prices, name):
        path = self.path(name)
        write_rows(path, [dict(row, price=prices[row["id"]]) for row in rows], IV_COLUMNS)
        return path

    def test_american_prices_invert_to_their_vols_and_match_the_offline_verb(self):
        # Per method: priced offline, inverted by the server; "alo" also as the
        # default (no --american-method), which must be the same request.
        for method, n, seed in (("alo", 60, 1), ("bs2002", 60, 2), ("tree", 12, 3)):
            rows = random_contracts(n, seed)
            prices = self.american_prices(rows, method)
            path = self.iv_file(rows, prices, "iv-%s.csv" % method)
            code, served, err = self.call("iv", "--style", "american", "--american-method", method, path)
            self.assertEqual(code, 0, err)
            lines = read_csv(served)
            self.assertEqual(list(lines[0]), ["id", "iv", "error", "note"])
            checked = 0
            for row, line in zip(rows, lines):
                self.assertEqual(line["id"], row["id"])
                self.assertEqual(line["error"], "", line)
                if line["note"]:
                    continue  # vol 0 (exercise now) or low vega: the price pins the vol loosely (american_iv.h)
                self.assertTrue(math.isclose(float(line["iv"]), row["sigma"], rel_tol=1e-9),
                                (method, row, line))
                checked += 1
            self.assertGreater(checked, n * 0.8, method)
            code, offline, err = run_cli("iv", "--style", "american", "--american-method", method, path)
            self.assertEqual(code, 0, err)
            self.assertEqual(served, offline, method)
            if method == "alo":
                code, default, err = self.call("iv", "--style", "american", path)
                self.assertEqual((code, default), (0, served), err)

    def test_a_style_column_chooses_each_rows_solver_offline_and_served(self):
        """A price file's style column: American rows solved as American,
        European rows as European, blank ones by --style, in `greeks iv` and
        `greeks call iv` alike. Both ignored it: an American premium came back
        as a European vol (20.87% for 20%; found in review)."""
        rows = random_contracts(12, seed=11)
        american = self.american_prices(rows, "alo")
        european = self.path("european.csv")
        write_rows(european, rows, CONTRACT_COLUMNS)
        code, out, err = run_cli("price", "--greeks", "none", european)
        self.assertEqual(code, 0, err)
        european_prices = {line["id"]: float(line["price"]) for line in read_csv(out)}
        styles = ["american", "european", ""] * 4
        mixed = [dict(row, price=american[row["id"]] if s != "european" else european_prices[row["id"]], style=s)
                 for row, s in zip(rows, styles)]
        path = self.path("iv-mixed.csv")
        write_rows(path, mixed, IV_COLUMNS + ["style"])
        for flags in ([], ["--style", "american"]):
            code, served, err = self.call("iv", *flags, path)
            self.assertEqual(code, 0, err)
            code, offline, err = run_cli("iv", *flags, path)
            self.assertEqual(code, 0, err)
            self.assertEqual(served, offline, flags)
            lines = read_csv(served)
            self.assertEqual(list(lines[0]), ["id", "iv", "error", "note"])
            for row, style, line in zip(rows, styles, lines):
                solved_as_american = style == "american" or (style == "" and flags)
                if (style == "" and not flags) or line["note"]:
                    continue  # an American premium solved as European: no vol to hold it to; or vol 0 / low vega
                if solved_as_american or style == "european":
                    self.assertTrue(math.isclose(float(line["iv"]), row["sigma"], rel_tol=1e-9), (style, flags, line))
        bad = self.path("iv-bad-style.csv")
        write_rows(bad, [dict(mixed[0], style="bermudan")], IV_COLUMNS + ["style"])
        code, served, err = self.call("iv", bad)
        self.assertEqual(code, 3, err)
        self.assertIn("field 'style' value 'bermudan': must be european or american", served)

    def test_prices_outside_the_bounds_are_element_errors_worded_as_offline(self):
        rows = random_contracts(8, seed=7)
        rows[2].update(type="put", S=80.0, K=100.0)   # deep in the money: intrinsic 20
        rows[5].update(type="put", S=90.0, K=100.0)
        prices = self.american_prices(rows, "alo")
        prices["c2"] = 19.5              # below intrinsic 20
        prices["c5"] = 100.0             # a put worth K: at the upper bound
        path = self.iv_file(rows, prices, "iv-bad.csv")
        code, served, err = self.call("iv", "--style", "american", path)
        self.assertEqual(code, 3, err)   # some bad rows, the others answered
        lines = read_csv(served)
        self.assertEqual(lines[2]["iv"], "")
        self.assertEqual(lines[2]["note"], "")
        # the American lower limit, K - S = 20 here, not the discounted
        # intrinsic value 19.5 already meets (found in review)
        self.assertRegex(lines[2]["error"], r"^line 4: field 'price' value '19\.5': must be >= the American price at vol 0")
        # the value as the file has it (repr: 100.0), not the double reprinted
        self.assertRegex(lines[5]["error"], r"^line 7: field 'price' value '%s': .*upper bound"
                         % re.escape(repr(prices["c5"])))
        for i in (0, 1, 3, 4, 6, 7):
            self.assertEqual(lines[i]["error"], "", lines[i])
            if lines[i]["note"] == "":  # else vol 0 (exercise now) or low vega
                self.assertTrue(math.isclose(float(lines[i]["iv"]), rows[i]["sigma"], rel_tol=1e-9), lines[i])
        self.assertIn("intrinsic value", err)
        code, offline, _ = run_cli("iv", "--style", "american", path)
        self.assertEqual(code, 3)
        self.assertEqual(served, offline)

    def test_unreadable_rows_and_input_errors_keep_the_offline_words(self):
        # A negative rate (priced, by both verbs alike), a bad type and a bad
        # number, beside a good row, on the European and the American verb.
        rows = random_contracts(4, seed=11)
        prices = self.american_prices(rows, "alo")
        rows[1]["r"] = -0.01
        rows[2]["type"] = "straddle"
        path = self.iv_file(rows, prices, "iv-mixed.csv")
        with open(path, "a") as f:
            f.write("c4,put,100,100,1,0.05,0.0,abc\n")
        for style in (["--style", "american"], ["--style", "european"], []):
            code, served, err = self.call("iv", *style, path)
            code_offline, offline, _ = run_cli("iv", *style, path)
            self.assertEqual((code, code_offline), (3, 3), err)
            self.assertEqual(served, offline, style)
        lines = read_csv(served)
        self.assertIn("field 'type' value 'straddle'", lines[2]["error"])
        self.assertIn("field 'price' value 'abc'", lines[4]["error"])

    def test_black76_american_premiums_round_trip(self):
        rows = random_contracts(20, seed=13)
        for row in rows:
            row["q"] = row["r"]  # black76: options on futures, b = 0
        prices = self.american_prices(rows, "alo")
        path = self.iv_file(rows, prices, "iv-black76.csv")
        code, served, err = self.call("iv", "--model", "black76", "--style", "american", path)
        self.assertEqual(code, 0, err)
        code, offline, _ = run_cli("iv", "--model", "black76", "--style", "american", path)
        self.assertEqual((code, served), (0, offline))
        # Priced as bsm with q = r, the same premium as black76 on the forward
        # S e^{(r-q)T} = S: the vols come back.
        checked = 0
        for row, line in zip(rows, read_csv(served)):
            if line["note"] == "":  # not pinned at vol 0 (exercise now), nor low vega
                self.assertTrue(math.isclose(float(line["iv"]), row["sigma"], rel_tol=1e-9), line)
                checked += 1
        self.assertGreater(checked, 10)

    def test_price_verbs_read_the_style_column_as_offline(self):
        """`call price-batch` and `price-chain` once read no style column and
        priced American rows as European with exit 0 (found in review): their
        stdout must be the offline verbs' byte for byte, every method, the
        column's bad words and refusals included."""
        rows = random_contracts(12, seed=23)
        for i, r in enumerate(rows):
            r["style"] = ["american", "european", "", "AMERICAN", "bermudan"][i % 5]
        # rows with two problems: the offline verbs' order of checks names the first
        rows.append(dict(rows[0], id="two-a", S="x", style="bermudan"))
        rows.append(dict(rows[1], id="two-b", S="x", K="y", style=""))
        rows.append(dict(rows[2], id="bad-q", q="zz", style=""))  # ignored under black76, as offline
        batch = self.path("styled-batch.csv")
        write_rows(batch, rows, CONTRACT_COLUMNS + ["style"])
        chain_rows = [dict(r, S=None, r=None, q=None) for r in rows]
        chain = self.path("styled-chain.csv")
        write_rows(chain, chain_rows, ["id", "type", "K", "T", "sigma", "style"])
        market = ("--spot", "101.5", "--rate", "0.04", "--yield", "0.01")
        for extra in ((), ("--american-method", "alo"), ("--american-method", "tree", "--greeks", "delta"),
                      ("--style", "american", "--american-method", "alo-fast"), ("--greeks", "second"),
                      ("--model", "black76")):
            offline = run_cli("price", *extra, batch)
            served = self.call("price-batch", *extra, batch)
            self.assertEqual(served[0], offline[0], extra)
            self.assertEqual(served[1], offline[1], extra)
            self.assertEqual(served[2], offline[2], extra)  # same words, the file named
            offline = run_cli("chain", *market, *extra, chain)
            served = self.call("price-chain", *market, *extra, chain)
            self.assertEqual((served[0], served[1]), (offline[0], offline[1]), extra)
        # and the American rows are American: above their European price
        plain = self.path("plain-batch.csv")
        write_rows(plain, rows, CONTRACT_COLUMNS)
        american = {r["id"]: float(r["price"]) for r in read_csv(self.call("price-batch", batch)[1]) if r["price"]}
        european = {r["id"]: float(r["price"]) for r in read_csv(self.call("price-batch", plain)[1]) if r["price"]}
        self.assertGreater(american["c0"], european["c0"])
        self.assertEqual(american["c1"], european["c1"])
        code, _, err = self.call("price-batch", "--style", "american", "--greeks", "second", batch)
        self.assertEqual(code, 2)
        self.assertIn("--style american has price and first-order Greeks only", err)
        # q is required where the model has a yield (bsm, gk), as offline: a file
        # without it was priced at q = 0
        no_q = self.path("no-q.csv")
        write_rows(no_q, random_contracts(2, seed=5), [c for c in CONTRACT_COLUMNS if c != "q"])
        for verb, offline in (("price-batch", "price"),):
            for model, want in (("bsm", 2), ("gk", 2), ("black76", 0)):
                code, out, err = self.call(verb, "--model", model, no_q)
                self.assertEqual(code, want, err)
                self.assertEqual(code, run_cli(offline, "--model", model, no_q)[0])
                if want == 2:
                    self.assertIn("header has no 'q' column", err)
        no_q_iv = self.path("no-q-iv.csv")
        write_rows(no_q_iv, [dict(r, price=5.0) for r in random_contracts(2, seed=6)],
                   [c for c in IV_COLUMNS if c != "q"])
        for model in ("bsm", "black76"):
            code, _, err = self.call("iv", "--model", model, no_q_iv)
            self.assertEqual(code, run_cli("iv", "--model", model, no_q_iv)[0], err)
            self.assertEqual(code == 2, model == "bsm", err)  # refused for want of q only under bsm

    def test_options_spelled_and_refused_as_offline(self):
        rows = random_contracts(2, seed=17)
        path = self.iv_file(rows, self.american_prices(rows, "alo"), "iv-opts.csv")
        code, _, err = self.call("iv", "--style", "bermudan", path)
        self.assertEqual(code, 2)
        self.assertIn("--style must be european or american", err)
        code, _, err = self.call("iv", "--style", "american", "--american-method", "lsm", path)
        self.assertEqual(code, 2)
        self.assertIn("--american-method must be bs2002, tree, alo or alo-fast", err)
        code, _, err = self.call("iv", "--model", "bachelier", "--style", "american", path)
        self.assertEqual(code, 2)
        self.assertIn("needs a lognormal model", err)
        code, _, err = self.call("revalue", "--style", "american", "--market", path, path)
        self.assertEqual(code, 2)
        self.assertIn("belong to call price-batch, price-chain and iv", err)
        code, out, err = self.call("iv", "--style", "AMERICAN", "--american-method", "alo", path)
        self.assertEqual(code, 0, err)
        self.assertEqual(out.splitlines()[0], "id,iv,error,note")
        code, out, err = run_cli("call", "--help")
        self.assertIn("--american-method", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
