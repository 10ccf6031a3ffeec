"""`greeks call book VERB` end to end: the real greeksd on a free loopback port
(test_grpc.Server, its journal on a throwaway SQLite file) called by the greeks
CLI binary. Checks are against independent references: positions, average
costs and realized P&L recomputed here from the trades sent; Greeks from the
Black-Scholes closed form written here; the audit trail against the commands
sent; the offline `greeks book show/audit` on the server's own journal (after
the server stopped) against what `greeks call book` printed; the exit codes of
docs/book-cli.md.

Environment (set by tests/CMakeLists.txt): GREEKSD, GREEKS_CLI, GREEKS_STUBS,
and GREEKS_TEST_SLOWDOWN for sanitizer builds.
"""
import csv
import io
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_grpc import CLI, SLOWDOWN, Server  # noqa: E402

TIMEOUT = 120 * SLOWDOWN
EXPIRY = (datetime.now(timezone.utc) + timedelta(days=200)).replace(microsecond=0)
EXPIRY_TEXT = EXPIRY.strftime("%Y-%m-%dT%H:%M:%SZ")
TRADE_COLUMNS = "trade_id,underlying,kind,type,style,strike,expiry,multiplier,quantity,price"


def norm_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def bsm_call_delta(S, K, T, r, q, vol):
    d1 = (math.log(S / K) + (r - q + 0.5 * vol * vol) * T) / (vol * math.sqrt(T))
    return math.exp(-q * T) * norm_cdf(d1)


HEADERS = {"underlying", "limit_underlying", "strategy_id", "trade_id", "rank", "sequence", "book_id"}


def tables(text):
    """stdout as its CSV tables, each a list of dicts: a header starts a table."""
    out = []
    for row in csv.reader(io.StringIO(text)):
        if row and row[0] in HEADERS:
            out.append((row, []))
        elif row:
            out[-1][1].append(dict(zip(out[-1][0], row)))
    return [t for _, t in out]


def rows(text):
    return list(csv.DictReader(io.StringIO(text)))


class CallBookCase(unittest.TestCase):
    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = Server(*cls.server_args)
        cls.dir = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.server.close()
        cls.dir.cleanup()

    def call(self, *args, target=None):
        p = subprocess.run([CLI, "call", "--target", target or self.server.target, "--timeout-ms",
                            str(int(60000 * SLOWDOWN)), "book", *args],
                           capture_output=True, text=True, timeout=TIMEOUT)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args):
        code, out, err = self.call(*args)
        self.assertEqual(code, 0, err)
        return out

    def file(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def open_book(self, book, spot=100.0, vol=0.2, rate=0.03):
        self.ok("open", book, "--name", "desk " + book, "--currency", "USD")
        market = self.file(book + "-market.csv", "underlying,spot,rate,yield,vol\nAAPL,%r,%r,0,%r\n" % (spot, rate, vol))
        return self.ok("market", book, "--file", market)

    def trades(self, book, name, lines):
        return self.call("trade", book, "--file", self.file(name, TRADE_COLUMNS + "\n" + "".join(lines)))


class CommandsAndQueries(CallBookCase):
    def test_trades_then_show_prints_the_positions_computed_here(self):
        self.open_book("pos")
        code, out, err = self.trades("pos", "pos.csv", [
            "T1,AAPL,option,call,,100,%s,100,10,5.5\n" % EXPIRY_TEXT,
            "T2,AAPL,option,call,,100,%s,100,30,6.0\n" % EXPIRY_TEXT,
            "T2,AAPL,underlying,,,,,,50,100\n",
            "T3,AAPL,option,call,,100,%s,100,-15,7\n" % EXPIRY_TEXT])
        self.assertEqual(code, 0, err)
        done = rows(out)
        self.assertEqual([(r["trade_id"], r["status"], r["first_sequence"]) for r in done],
                         [("T1", "executed", "3"), ("T2", "executed", "4"), ("T3", "executed", "5")])
        self.assertEqual([r["message"] for r in done], ["1 leg", "2 legs", "1 leg"])
        shown = rows(self.ok("show", "pos"))
        average = (10 * 5.5 + 30 * 6.0) / 40
        self.assertEqual(len(shown), 2)
        call, stock = shown
        self.assertEqual((call["kind"], call["type"], call["style"], call["expiry"]),
                         ("option", "call", "european", EXPIRY_TEXT))
        self.assertEqual((float(call["strike"]), float(call["multiplier"]), int(call["quantity"])), (100, 100, 25))
        self.assertAlmostEqual(float(call["average_cost"]), average, places=12)
        self.assertAlmostEqual(float(call["realized_pnl"]), 15 * (7 - average) * 100, places=6)
        self.assertEqual((stock["kind"], int(stock["quantity"]), float(stock["average_cost"])), ("underlying", 50, 100))
        # The book as of the first trade (sequence 3): that trade alone.
        (early,) = rows(self.ok("show", "pos", "--as-of", "3"))
        self.assertEqual((int(early["quantity"]), float(early["average_cost"])), (10, 5.5))
        # An event past the book's version is no state to show (it printed today's, exit 0: found in review).
        code, out, err = self.call("show", "pos", "--as-of", "999")
        self.assertEqual((code, out), (2, ""), err)
        self.assertIn("--as-of 999: the book is at version", err)
        # Re-running the file records nothing: every trade is replayed with its first sequences.
        again = self.call("trade", "pos", "--file", os.path.join(self.dir.name, "pos.csv"))
        self.assertEqual(again[0], 0, again[2])
        self.assertEqual([(r["status"], r["first_sequence"]) for r in rows(again[1])],
                         [("replayed", "3"), ("replayed", "4"), ("replayed", "5")])

    def test_a_bad_leg_is_named_and_the_others_are_executed(self):
        self.open_book("bad")
        code, out, err = self.trades("bad", "bad.csv", [
            "G1,AAPL,option,call,,100,%s,100,1,5\n" % EXPIRY_TEXT,
            "B1,AAPL,option,call,,-3,%s,100,1,5\n" % EXPIRY_TEXT,
            "B2,AAPL,option,put,,90,2020-01-17T21:00:00Z,100,1,1\n"])
        self.assertEqual(code, 3, err)
        status = {r["trade_id"]: r for r in rows(out)}
        self.assertEqual(status["G1"]["status"], "executed")
        self.assertEqual(status["B1"]["status"], "rejected")
        self.assertIn("line 3: field 'strike' value '-3'", status["B1"]["message"])
        self.assertIn("line 4: trade B2 refused (FAILED_PRECONDITION)", status["B2"]["message"])
        self.assertIn("expired", status["B2"]["message"])
        self.assertIn("field 'strike'", err)
        # A correction is all or nothing: a bad leg refuses it, exit 2, nothing recorded.
        legs = self.file("fix.csv", "underlying,kind,type,style,strike,expiry,multiplier,quantity,price\n"
                         "AAPL,option,call,,100,%s,100,2,5\nAAPL,option,call,,110,%s,100,zero,5\n"
                         % (EXPIRY_TEXT, EXPIRY_TEXT))
        code, out, err = self.call("correct", "bad", "G1", "--file", legs)
        self.assertEqual(code, 2, err)
        self.assertIn("line 3: field 'quantity' value 'zero'", err)
        self.assertEqual(out, "")
        audit = rows(self.ok("audit", "bad"))
        self.assertEqual([r["type"] for r in audit], ["BookOpened", "MarketUpdated", "TradeExecuted"])

    def test_audit_lists_the_events_sent_in_order(self):
        self.open_book("aud")
        self.trades("aud", "aud.csv", ["A1,AAPL,option,call,,100,%s,100,2,5\n" % EXPIRY_TEXT])
        limits = self.file("aud-limits.csv", "underlying,metric,soft,hard\n,dollar_delta,1000000,2000000\n")
        self.ok("limits", "aud", "--file", limits, "--key", "lim-1")
        self.ok("correct", "aud", "A1", "--cancel", "--reason", "wrong desk")
        audit = rows(self.ok("audit", "aud"))
        self.assertEqual([int(r["sequence"]) for r in audit], [1, 2, 3, 4, 5])
        self.assertEqual([r["type"] for r in audit],
                         ["BookOpened", "MarketUpdated", "TradeExecuted", "RiskLimitsSet", "TradeCorrected"])
        self.assertEqual(audit[0]["summary"], "book opened: 'desk aud' in USD")
        self.assertEqual(audit[2]["causation_id"], "cli-A1")
        self.assertEqual(audit[2]["summary"], "trade A1: 1 leg")
        self.assertEqual(audit[3]["causation_id"], "lim-1")
        self.assertEqual(audit[4]["summary"], "trade A1 cancelled: wrong desk")
        window = rows(self.ok("audit", "aud", "--from", "2", "--to", "3"))
        self.assertEqual([r["event_id"] for r in window], [audit[1]["event_id"], audit[2]["event_id"]])
        self.assertEqual(rows(self.ok("audit", "aud", "--since", audit[3]["time"]))[0]["sequence"], "4")
        # both ranges: the events in both, as the offline verb reads them (the
        # server keeps only the time window: every event of it came back,
        # found in review)
        both = rows(self.ok("audit", "aud", "--from", "2", "--to", "3", "--since", audit[0]["time"]))
        self.assertEqual([r["sequence"] for r in both], ["2", "3"])
        late = rows(self.ok("audit", "aud", "--from", "1", "--to", "3", "--since", audit[2]["time"],
                            "--until", audit[4]["time"]))
        self.assertEqual([r["sequence"] for r in late], [str(k) for k in range(1, 4) if audit[k - 1]["time"] >= audit[2]["time"]])
        # The same key again: replayed, nothing appended.
        (again,) = rows(self.ok("limits", "aud", "--file", limits, "--key", "lim-1"))
        self.assertEqual((again["status"], again["first_sequence"]), ("replayed", "4"))
        self.assertEqual(len(rows(self.ok("audit", "aud"))), 5)

    def test_a_breach_and_its_restore_read_as_the_rules_applied(self):
        # found in review: a restore read "restored: 74973 <= 80000", where 77973 had
        # stayed breached (the rule is below the level less the hysteresis)
        self.open_book("edge", spot=100.0)
        limits = self.file("edge-limits.csv", "underlying,metric,soft,hard\n,gross_notional,1000,\n")
        self.ok("limits", "edge", "--file", limits)
        self.assertEqual(self.trades("edge", "edge1.csv", ["E1,AAPL,underlying,,,,,,20,100\n"])[0], 0)
        self.assertEqual(self.trades("edge", "edge2.csv", ["E2,AAPL,underlying,,,,,,-15,100\n"])[0], 0)
        deadline = time.time() + 20 * SLOWDOWN  # the risk agent journals the edges after the trades
        while True:
            audit = rows(self.ok("audit", "edge"))
            summaries = {r["type"]: r["summary"] for r in audit}
            if "RiskLimitRestored" in summaries or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(summaries.get("RiskLimitsSet"), "1 limit set")
        self.assertEqual(summaries.get("RiskLimitBreached"), "soft gross_notional limit on the book breached: 2000 > 1000")
        self.assertEqual(summaries.get("RiskLimitRestored"),
                         "soft gross_notional limit on the book restored: 500 < 1000 less the hysteresis")

    def test_the_epoch_is_a_time_not_the_servers_clock(self):
        # found in review: 0 on the wire means "the server's clock" (or no range),
        # so a file's 1970-01-01T00:00:00Z trade_time was replaced by it, an
        # expiry of 'now' read as the epoch, and --until at the epoch listed every event
        self.open_book("epoch")
        code, out, err = self.call("trade", "epoch", "--file", self.file("epoch.csv", TRADE_COLUMNS + ",trade_time\n"
                                   "Z1,AAPL,underlying,,,,,,1,100,1970-01-01T00:00:00Z\n"
                                   "Z2,AAPL,option,call,,100,now,100,1,5,\n"
                                   "Z3,AAPL,underlying,,,,,,1,100,now\n"))
        self.assertEqual(code, 3, err)
        by_id = {r["trade_id"]: r for r in rows(out)}
        self.assertEqual(by_id["Z1"]["status"], "rejected")
        self.assertIn("must be after 1970-01-01T00:00:00Z here", by_id["Z1"]["message"])
        self.assertEqual(by_id["Z2"]["status"], "rejected")
        self.assertIn("'now' is the server's clock", by_id["Z2"]["message"])
        self.assertEqual(by_id["Z3"]["status"], "executed")  # 'now' in trade_time: the server's clock
        for window in (("--until", "1970-01-01T00:00:00Z"),
                       ("--since", "2030-01-01T00:00:00Z", "--until", "2029-01-01T00:00:00Z")):
            code, out, err = self.call("audit", "epoch", *window)
            self.assertEqual(code, 0, err)
            self.assertEqual(rows(out), [], window)  # the header alone, as the offline verb

    def test_risk_matches_the_closed_form_and_names_the_limit_state(self):
        self.open_book("risk", spot=100.0, vol=0.25, rate=0.03)
        before = time.time()
        code, out, err = self.trades("risk", "risk.csv", ["R1,AAPL,option,call,,105,%s,100,10,5\n" % EXPIRY_TEXT])
        self.assertEqual(code, 0, err)
        version = rows(out)[0]["last_sequence"]
        limits = self.file("risk-limits.csv", "underlying,metric,soft,hard\n,dollar_delta,1000,100000000\n")
        self.ok("limits", "risk", "--file", limits)
        grid = os.path.join(self.dir.name, "grid.csv")
        out = self.ok("risk", "risk", "--min-version", version, "--grid", grid)
        after = time.time()
        risk, limit_states = tables(out)
        by_name = {r["underlying"]: r for r in risk}
        self.assertEqual(set(by_name), {"AAPL", "TOTAL"})
        total = by_name["TOTAL"]
        self.assertEqual(int(total["positions"]), 1)
        deltas = [bsm_call_delta(100.0, 105.0, (EXPIRY.timestamp() - t) / (365 * 86400), 0.03, 0.0, 0.25)
                  for t in (before - 5, after + 5)]  # the server valued it in between
        self.assertGreaterEqual(float(total["delta"]), min(deltas) * 1000 - 1e-9)
        self.assertLessEqual(float(total["delta"]), max(deltas) * 1000 + 1e-9)
        self.assertAlmostEqual(float(total["dollar_delta"]), float(total["delta"]) * 100.0, places=6)
        self.assertAlmostEqual(float(total["gross_notional"]), 10 * 100 * 100.0, places=6)
        (state,) = limit_states
        self.assertEqual((state["limit_underlying"], state["metric"], state["state"]),
                         ("", "dollar_delta", "soft_breached"))
        self.assertAlmostEqual(float(state["value"]), float(total["dollar_delta"]), places=6)
        with open(grid) as f:
            cells = rows(f.read())
        zero = [c for c in cells if c["underlying"] == "TOTAL" and float(c["spot_shock"]) == 0
                and float(c["vol_shock"]) == 0]
        self.assertEqual(len(zero), 1)
        self.assertAlmostEqual(float(zero[0]["pnl"]), 0.0, places=6)
        worst = max(0.0, -min(float(c["pnl"]) for c in cells if c["underlying"] == "TOTAL"))
        self.assertAlmostEqual(float(total["worst_loss"]), worst, places=6)
        # a position on an underlying without a market is in no figure: its row
        # of zeros read as a flat underlying, with no word (found in review)
        self.open_book("unquoted", spot=100.0, vol=0.25, rate=0.03)  # AAPL's market, no limit
        code, out, err = self.trades("unquoted", "risk2.csv", ["R2,MSFT,underlying,,,,,,100,300\n",
                                                               "R3,AAPL,underlying,,,,,,10,100\n"])
        self.assertEqual(code, 0, err)
        code, out, err = self.call("risk", "unquoted", "--min-version", rows(out)[-1]["last_sequence"])
        self.assertEqual(code, 0, err)
        self.assertIn("unquoted: MSFT has no market: any open positions on it are not valued, not in the risk", err)
        self.assertNotIn("AAPL has no market", err)

    def test_a_delta_hedge_is_proposed_then_executed_from_its_own_output(self):
        self.open_book("hedge")
        self.trades("hedge", "hedge.csv", ["H1,AAPL,option,call,,100,%s,100,-10,5\n" % EXPIRY_TEXT])
        quotes = self.file("quotes.csv", "underlying,kind,type,style,strike,expiry,multiplier,bid,ask,vol\n"
                           "AAPL,underlying,,,,,,99.98,100.02,\n")
        summary, legs = tables(self.ok("hedge", "hedge", "AAPL", "--target", "delta", "--quotes", quotes))
        (h,) = summary
        (leg,) = legs
        q = int(leg["quantity"])
        self.assertEqual(q, round(-float(h["delta_before"])))
        self.assertLessEqual(abs(float(h["delta_after"])), 0.5 + 1e-9)
        self.assertAlmostEqual(float(leg["price"]), 100.02 if q > 0 else 99.98)
        self.assertAlmostEqual(float(h["cost"]), abs(q) * 0.02, places=9)
        legs_file = self.file("hedge-legs.csv", TRADE_COLUMNS + "\n" + ",".join(
            leg[c] for c in TRADE_COLUMNS.split(",")) + "\n")
        code, out, err = self.call("trade", "hedge", "--file", legs_file, "--strategy", h["strategy_id"])
        self.assertEqual(code, 0, err)
        stock = [r for r in rows(self.ok("show", "hedge")) if r["kind"] == "underlying"]
        self.assertEqual([int(r["quantity"]) for r in stock], [q])
        audit = rows(self.ok("audit", "hedge"))
        self.assertEqual([r["type"] for r in audit][-2:], ["StrategyProposed", "TradeExecuted"])
        self.assertEqual(audit[-2]["sequence"], h["sequence"])
        self.assertIn(h["strategy_id"], audit[-2]["summary"])
        bad = self.file("bad-quotes.csv", "underlying,kind,type,style,strike,expiry,multiplier,bid,ask,vol\n"
                        "AAPL,underlying,,,,,,101,100,\n")
        code, out, err = self.call("hedge", "hedge", "AAPL", "--target", "delta", "--quotes", bad)
        self.assertEqual(code, 2, err)
        self.assertIn("line 2", err)
        self.assertIn("bid", err)
        # an option's own rule names the field and the file's text, as the
        # book's files do (it said the rule alone: found in review)
        bad = self.file("bad-strike.csv", "underlying,kind,type,style,strike,expiry,multiplier,bid,ask,vol\n"
                        "AAPL,option,call,european,-0.1,2027-06-18T20:00:00Z,100,1,1.2,\n")
        code, out, err = self.call("hedge", "hedge", "AAPL", "--target", "delta", "--quotes", bad)
        self.assertEqual(code, 2, err)
        self.assertIn("line 2: field 'strike' value '-0.1': strike must be a finite number > 0", err)
        # an underlying row with an option's columns, or a multiplier, is
        # refused as the trades file refuses it: it was proposed as stock,
        # the columns dropped (found in review)
        for columns, field in (("call,american,105,2027-06-18T20:00:00Z,", "type"), (",,,,100", "multiplier")):
            bad = self.file("bad-underlying.csv", "underlying,kind,type,style,strike,expiry,multiplier,bid,ask,vol\n"
                            "AAPL,underlying,%s,99.9,100.1,\n" % columns)
            code, out, err = self.call("hedge", "hedge", "AAPL", "--target", "delta", "--quotes", bad)
            self.assertEqual(code, 2, err)
            self.assertIn("line 2: field '%s'" % field, err)
            self.assertIn("for kind underlying", err)

    def test_strategies_are_ranked_from_the_chain_and_journaled(self):
        self.open_book("strat")
        chain = self.file("chain.csv", "underlying,kind,type,style,strike,expiry,multiplier,bid,ask,vol\n"
                          + "".join("AAPL,option,%s,,%d,%s,100,%g,%g,\n" % (t, k, EXPIRY_TEXT, p, p + 0.2)
                                    for t, k, p in [("call", 95, 9.0), ("call", 100, 6.0), ("call", 105, 3.8),
                                                    ("put", 95, 3.0), ("put", 100, 5.0), ("put", 105, 7.5)]))
        horizon = (EXPIRY - timedelta(days=100)).strftime("%Y-%m-%dT%H:%M:%SZ")
        before = len(rows(self.ok("audit", "strat")))
        out = self.ok("strategies", "strat", "--chain", chain, "--view", "bullish", "--move", "0.05",
                      "--horizon", horizon, "--max", "4")
        found = rows(out)
        self.assertGreater(len(found), 0)
        self.assertLessEqual(len(found), 4)
        self.assertEqual([int(r["rank"]) for r in found], list(range(1, len(found) + 1)))
        scores = [float(r["score"]) for r in found]
        self.assertEqual(scores, sorted(scores, reverse=True))
        for r in found:
            self.assertTrue(r["kind"] and r["legs"], r)
            for leg in r["legs"].split("; "):  # every leg is one of the chain's strikes
                self.assertRegex(leg, r"^[+-]\d+ AAPL (underlying|\S+ [CP] (95|100|105) )")
        audit = rows(self.ok("audit", "strat"))
        proposed = [r for r in audit[before:] if r["type"] == "StrategyProposed"]
        self.assertEqual([p["summary"].split()[1] for p in proposed], [r["strategy_id"] for r in found])

    def test_exit_codes_follow_the_offline_verbs(self):
        code, out, err = self.call("show", "nobook")
        self.assertEqual(code, 2)
        self.assertIn("NOT_FOUND", err)
        self.assertIn("request id", err)
        self.open_book("twice")
        code, out, err = self.call("open", "twice", "--name", "again")
        self.assertEqual(code, 2)
        self.assertIn("ALREADY_EXISTS", err)
        code, out, err = self.call("correct", "twice", "nosuch", "--cancel")
        self.assertEqual(code, 2)
        self.assertIn("NOT_FOUND", err)
        self.assertEqual(self.call("show", "twice", "--as-of", "yesterday")[0], 2)
        self.assertEqual(self.call("show")[0], 2)
        self.assertEqual(self.call("frobnicate", "twice")[0], 2)
        self.assertEqual(self.call("audit", "twice", "--count", "3")[0], 2)  # not an option of audit
        code, out, err = self.call("trade", "nobook", "--file", self.file("nb.csv", TRADE_COLUMNS + "\n"
                                   "N1,AAPL,option,call,,100,%s,100,1,5\nN2,AAPL,underlying,,,,,,1,100\n"
                                   % EXPIRY_TEXT))
        self.assertEqual(code, 2)  # the book is missing: the first trade stops the file
        self.assertIn("stopped at line 2", err)
        self.assertEqual([r["trade_id"] for r in rows(out)], ["N1"])
        # ... and it was not run: "outcome unknown" and "may have executed" were
        # said of a book that does not exist (found in review)
        self.assertEqual(rows(out)[0]["status"], "rejected")
        self.assertIn("refused (NOT_FOUND)", rows(out)[0]["message"])
        self.assertIn("that one was not executed", err)
        self.assertNotIn("may have executed", err)
        # Nobody listening: the call fails on the way, exit 4 (safe to re-run).
        with socket_closed() as target:
            code, out, err = self.call("show", "twice", target=target)
        self.assertEqual(code, 4, err)
        self.assertIn("UNAVAILABLE", err)


class OutcomeUnknown(CallBookCase):
    """Calls cut while the server may still run them (found in review): a
    trade whose call timed out was reported "rejected" though it executed; a
    market update that timed out said "safe to re-run" and a re-run journaled
    it twice (its key was random and never shown); an output that could not be
    written after a write ran exited 2, "nothing was written"."""

    def hold_the_store(self, seconds):
        """The server's journal locked by another writer for `seconds`."""
        import sqlite3
        import threading
        db = sqlite3.connect(os.path.join(self.server.dir.name, "books.db"), timeout=30, isolation_level=None,
                             check_same_thread=False)
        db.execute("BEGIN EXCLUSIVE")
        threading.Timer(seconds, lambda: (db.execute("ROLLBACK"), db.close())).start()

    def call_short(self, *args):
        p = subprocess.run([CLI, "call", "--target", self.server.target, "--timeout-ms", "500", "book", *args],
                           capture_output=True, text=True, timeout=TIMEOUT)
        return p.returncode, p.stdout, p.stderr

    def test_a_write_cut_by_its_deadline_says_its_key_and_a_trade_is_unknown(self):
        self.open_book("cut")
        market = self.file("cut-market.csv", "underlying,spot,rate,yield,vol\nAAPL,101,0.03,0,0.2\n")
        trades = self.file("cut-trades.csv", TRADE_COLUMNS + "\nC1,AAPL,underlying,,,,,,7,100\n")
        self.hold_the_store(3 * SLOWDOWN)
        code, out, err = self.call_short("market", "cut", "--file", market)
        self.assertEqual(code, 4, err)
        self.assertTrue("DEADLINE_EXCEEDED" in err or "UNAVAILABLE" in err, err)
        marker = "re-run with --key "
        self.assertIn(marker, err)
        key = err.split(marker)[1].split(":")[0]
        self.assertTrue(key.startswith("cli-"), err)
        code, out, err = self.call_short("trade", "cut", "--file", trades)
        self.assertEqual(code, 4, err)
        (row,) = rows(out)
        self.assertEqual(row["status"], "unknown", out)
        self.assertIn("outcome unknown", row["message"])
        self.assertIn("that one may have executed", err)
        # Once the store is free, the re-runs replay or run each once: one
        # MarketUpdated under the key shown, one trade of 7.
        deadline = time.monotonic() + 30 * SLOWDOWN
        while True:
            code, out, err = self.call("market", "cut", "--file", market, "--key", key)
            if code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(code, 0, err)
        (again,) = rows(self.call("trade", "cut", "--file", trades)[1])
        self.assertIn(again["status"], ("executed", "replayed"))
        audit = rows(self.ok("audit", "cut"))
        self.assertEqual([r["causation_id"] for r in audit].count(key), 1, audit)
        self.assertEqual([r["type"] for r in audit].count("TradeExecuted"), 1, audit)

    def test_an_unknown_correction_names_the_key_it_sent(self):
        # A correction file's own idempotency_key is the one sent: the advice
        # named the run's random key, and following it was refused as
        # differing from the file's (found in review).
        legs = self.file("keyed-legs.csv", "trade_id,underlying,kind,type,style,strike,expiry,multiplier,quantity,"
                                           "price,idempotency_key\nT1,AAPL,underlying,,,,,,3,100,fix-T1-a\n")
        p = subprocess.run([CLI, "call", "--target", "127.0.0.1:1", "--retry-attempts", "1", "book", "correct", "c1",
                            "T1", "--file", legs], capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("re-run with --key fix-T1-a:", p.stderr)

    def test_a_write_whose_output_cannot_be_written_exits_4(self):
        with open("/dev/full", "w") as full:
            p = subprocess.run([CLI, "call", "--target", self.server.target, "book", "open", "fullout"],
                               stdout=full, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("after the command ran", p.stderr)
        self.assertIn("audit fullout", p.stderr)
        self.assertIn("without --key cli-", p.stderr)
        self.assertEqual(rows(self.ok("audit", "fullout"))[0]["type"], "BookOpened")  # it did run
        with open("/dev/full", "w") as full:  # a read: nothing ran, exit 2 as before
            p = subprocess.run([CLI, "call", "--target", self.server.target, "book", "show", "fullout"],
                               stdout=full, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 2, p.stderr)


class socket_closed:
    """A loopback address with nothing listening."""

    def __enter__(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return "127.0.0.1:%d" % self.port

    def __exit__(self, *exc):
        return False


class Subscriptions(CallBookCase):
    server_args = ("--subscriber-queue", "16")

    def test_count_stops_after_k_events_in_sequence(self):
        self.open_book("sub")
        for i in range(5):
            self.ok("market", "sub", "--file", self.file("m%d.csv" % i,
                    "underlying,spot,rate,yield,vol\nAAPL,%d,0.03,0,0.2\n" % (101 + i)))
        got = rows(self.ok("subscribe", "sub", "--from", "3", "--count", "4"))
        self.assertEqual([int(r["sequence"]) for r in got], [3, 4, 5, 6])
        self.assertEqual([r["summary"] for r in got], ["market AAPL: spot %d rate 0.03 yield 0 vol 0.2" % s
                                                       for s in (101, 102, 103, 104)])
        trail = rows(self.ok("audit", "sub", "--from", "3", "--to", "6"))
        self.assertEqual([r["event_id"] for r in got], [r["event_id"] for r in trail])

    def test_a_stuck_subscriber_exits_4_with_where_to_resume(self):
        self.open_book("slow")
        proc = subprocess.Popen([CLI, "call", "--target", self.server.target, "book", "subscribe", "slow"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertTrue(proc.stdout.readline().startswith("sequence,"))
            self.assertTrue(proc.stdout.readline().startswith("1,"))
            proc.send_signal(signal.SIGSTOP)  # subscribed; now it stops reading
            # One command's events always fit a queue they find empty, so the
            # queue overflows only once the stopped client's socket and window
            # are full: 24 commands of 512 quotes with 16 vol points each
            # (~1.5 kB an event, ~18 MB), sent from here for speed.
            import grpc
            from greeks.v1 import book_pb2 as bk, book_pb2_grpc as bk_grpc
            from greeks.events.v1 import book_events_pb2 as ev
            expiry = int((time.time() + 90 * 86400) * 1e6)
            with grpc.insecure_channel(self.server.target) as channel:
                stub = bk_grpc.BookServiceStub(channel)
                for batch in range(24):
                    quotes = [bk.MarketQuote(underlying="S%d" % i, spot=100 + batch, rate=0.03, vol=0.2, vols=[
                        ev.VolPoint(instrument=ev.Instrument(underlying="S%d" % i, kind=ev.OPTION, option_type=ev.CALL,
                                                             style=ev.EUROPEAN, strike=50 + k, expiry_us=expiry,
                                                             multiplier=100), vol=0.2 + k / 1000)
                        for k in range(16)]) for i in range(512)]
                    stub.UpdateMarket(bk.UpdateMarketRequest(book_id="slow", quotes=quotes), timeout=TIMEOUT)
        finally:
            proc.send_signal(signal.SIGCONT)
        # Read through the same buffered file objects as readline() above:
        # communicate() reads the raw descriptors and would miss rows that
        # readline() had already buffered (stderr is a few lines: no deadlock).
        out = proc.stdout.read()
        err = proc.stderr.read()
        proc.wait(timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 4, err)
        self.assertIn("RESOURCE_EXHAUSTED", err)
        self.assertIn("fell behind", err)
        printed = [int(r.split(",", 1)[0]) for r in out.splitlines() if r]
        self.assertEqual(printed, list(range(2, 2 + len(printed))))  # after 1: none missed, none twice
        resume = int(err.rsplit("--from ", 1)[1].split()[0])
        self.assertIn("resume from sequence %d" % resume, err)  # the server's word agrees
        self.assertEqual(resume, printed[-1] + 1 if printed else 2)
        rest = rows(self.ok("subscribe", "slow", "--from", str(resume), "--count", "3"))
        self.assertEqual([int(r["sequence"]) for r in rest], [resume, resume + 1, resume + 2])

    def test_a_subscriber_that_cannot_write_stops_with_where_to_resume(self):
        """Its output failing (a closed pipe here, a full disk in production),
        the feed went on and lost rows, then said to resume after them."""
        self.open_book("cut")
        proc = subprocess.Popen([CLI, "call", "--target", self.server.target, "book", "subscribe", "cut"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN))
        try:
            self.assertTrue(proc.stdout.readline().startswith("sequence,"))
            self.assertTrue(proc.stdout.readline().startswith("1,"))
            self.assertTrue(proc.stdout.readline().startswith("2,"))
            proc.stdout.close()  # the reader goes away; the next row cannot be written
            self.ok("market", "cut", "--file", self.file("cut-m.csv", "underlying,spot,rate,yield,vol\nAAPL,101,0.03,0,0.2\n"))
            proc.wait(timeout=20 * SLOWDOWN)  # it went on streaming, and never exited
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err = proc.stderr.read()
        self.assertEqual(proc.returncode, 4, err)
        self.assertIn("cannot write the output", err)
        self.assertIn("greeks call book subscribe cut --from 3", err)  # rows 1 and 2 were written
        with open("/dev/full", "w") as full:
            p = subprocess.run([CLI, "call", "--target", self.server.target, "book", "subscribe", "cut", "--from", "2"],
                               stdout=full, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("No space left on device", p.stderr)
        self.assertIn("subscribe cut --from 2", p.stderr)


class OfflineAgrees(CallBookCase):
    def test_the_offline_verbs_read_the_same_book_from_the_servers_journal(self):
        self.open_book("same")
        code, out, err = self.trades("same", "same.csv", [
            "S1,AAPL,option,put,american,95,%s,100,7,3.25\n" % EXPIRY_TEXT,
            "S2,AAPL,underlying,,,,,,-20,101.5\n",
            "S3,AAPL,option,put,american,95,%s,100,-2,3.5\n" % EXPIRY_TEXT])
        self.assertEqual(code, 0, err)
        shown = self.ok("show", "same")
        audited = self.ok("audit", "same")
        self.assertEqual(self.server.stop(), 0)
        store = "sqlite:" + os.path.join(self.server.dir.name, "books.db")
        offline = subprocess.run([CLI, "book", "show", "same", "--store", store], capture_output=True, text=True,
                                 timeout=TIMEOUT)
        self.assertEqual(offline.returncode, 0, offline.stderr)
        columns = rows(shown)[0].keys()
        self.assertEqual([{c: r[c] for c in columns} for r in rows(offline.stdout)], rows(shown))
        self.assertEqual([int(r["quantity"]) for r in rows(shown)], [5, -20])
        self.assertEqual([float(r["realized_pnl"]) for r in rows(shown)], [2 * (3.5 - 3.25) * 100, 0])
        offline = subprocess.run([CLI, "book", "audit", "same", "--store", store], capture_output=True, text=True,
                                 timeout=TIMEOUT)
        self.assertEqual(offline.returncode, 0, offline.stderr)
        self.assertEqual(offline.stdout, audited)


if __name__ == "__main__":
    unittest.main(verbosity=2)
