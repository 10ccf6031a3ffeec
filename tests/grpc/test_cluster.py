"""Three greeksd on one PostgreSQL book store, one killed with SIGKILL and
later another stopped with SIGTERM, while clients trade and subscribe through
all three (issue 21 part 4; adr/0036 for the design under test).

What it checks, each against an independent reference:
- No acknowledged trade lost or doubled: every acknowledged trade id is in
  its book's journal exactly once (TradeExecuted events read with psql's
  sibling, GetAuditTrail, on a survivor, and the row count with psql), and no
  trade the clients did not send is there.
- Positions equal the clients' own sums of what was acknowledged (plain
  arithmetic here, not greeksd's), and every book equals a replay from scratch
  by a fresh process (`greeks book show --store` offline) byte for byte, as
  seen through each live instance (`greeks call book show`).
- Every subscriber's stream is gap-free, in order and without duplicates,
  across its instance's death (SIGKILL) or drain (SIGTERM) and its resume on
  another instance, and it carries every instance's commits.
- Idempotency keys hold across instances: a command resent to another
  instance is answered as a replay with the first answer's sequences.
- Clients carry on within their retry budget: every trade is acknowledged
  (gRPC's retry policy, then at most RESEND_BUDGET resends of the same
  request), and the time from the SIGKILL to every client's next
  acknowledgement is bounded.
- Each instance's risk projection follows every book: GetBookRisk at the
  final version answers on each live instance, with equal delta.

Bounded: a fixed number of trades, every wait capped; loopback only.
Environment: test_grpc.py's, plus PG_TEST_SCRIPT and GREEKS_CLI.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (CALL_TIMEOUT_S, US_PER_DAY, Instance, Postgres, Subscriber, TradeDriver,  # noqa: E402
                     cluster_channel, open_books, planned_trades, wait_until)
from test_grpc import CLI, SLOWDOWN  # noqa: E402
import grpc  # noqa: E402
from greeks.v1 import book_pb2 as bk  # noqa: E402
from greeks.v1 import book_pb2_grpc as bk_grpc  # noqa: E402
from greeks.events.v1 import book_events_pb2 as ev  # noqa: E402

BOOKS = ["desk-a", "desk-b", "desk-c"]
CLIENTS = 6
TRADES_PER_CLIENT = 100
RESEND_BUDGET = 3
# From the SIGKILL to each client's next acknowledgement: gRPC's backoff
# (0.1 s, doubling) and a reconnect, on a busy 2-core machine.
RECOVERY_BOUND_S = 5 * SLOWDOWN


class ThreeInstances(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.pg = Postgres(os.path.join(self.tmp.name, "pg"))
        self.addCleanup(self.pg.stop)
        self.instances = []
        for name in ("a", "b", "c"):
            instance = Instance(name, self.pg.conninfo)
            self.addCleanup(instance.cleanup)
            self.instances.append(instance)
        self.targets = [i.target for i in self.instances]
        self.channel = cluster_channel(self.targets)
        self.addCleanup(self.channel.close)
        self.expiry = (int(time.time() * 1e6) // US_PER_DAY + 120) * US_PER_DAY

    def direct(self, instance):
        channel = grpc.insecure_channel(instance.target)
        self.addCleanup(channel.close)
        return bk_grpc.BookServiceStub(channel)

    def journal(self, stub, book):
        """Every envelope of `book`'s audit trail, as read through `stub`."""
        return list(stub.GetAuditTrail(bk.GetAuditTrailRequest(book_id=book), timeout=CALL_TIMEOUT_S))

    def rows_in_postgres(self):
        """{book: number of event rows}, read with psql: not through greeksd."""
        psql = os.path.join(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")
        p = subprocess.run([psql, self.pg.conninfo, "-tA", "-F", " ", "-c",
                            "SELECT stream, count(*), max(sequence) FROM events GROUP BY stream"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        counts = {}
        for line in p.stdout.splitlines():
            if not line:
                continue
            stream, count, top = line.split(" ")
            for book in BOOKS:
                if stream.endswith(book):
                    self.assertEqual(int(count), int(top), "rows of %s are not 1..max" % stream)
                    counts[book] = int(count)
        return counts

    def cli(self, *args):
        p = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, "greeks %s: %s" % (" ".join(args), p.stderr))
        return p.stdout

    def test_two_steady_writers_on_one_book_both_finish(self):
        """Two writers on one PostgreSQL book, each booking trades back to
        back: the second gave up with ABORTED within a few commands, its
        retries (each reloading the book, with no pause) losing every race to
        the first (found in review). A retry now catches up on what it missed
        after a random pause; both finish every trade."""
        cli = os.environ["GREEKS_CLI"]
        subprocess.run([cli, "book", "open", "duel", "--store", self.pg.conninfo, "--name", "duel"], check=True,
                       capture_output=True, timeout=60)
        files, procs = [], []
        for writer in ("A", "B"):
            path = os.path.join(self.tmp.name, "trades-%s.csv" % writer)
            with open(path, "w") as f:
                f.write("trade_id,underlying,kind,type,strike,expiry,quantity,price\n")
                for i in range(150):
                    f.write("%s%d,AAPL,underlying,,,,1,100\n" % (writer, i))
            files.append(path)
        for path in files:
            procs.append(subprocess.Popen([cli, "book", "trade", "duel", "--file", path, "--store", self.pg.conninfo],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for p in procs:
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err[-2000:])
            self.assertEqual(sum(1 for line in out.splitlines() if ",executed," in line), 150, err[-2000:])
        book = self.journal(bk_grpc.BookServiceStub(self.channel), "duel")
        self.assertEqual(len(book), 301)  # BookOpened and every trade, once

    def test_each_crossing_is_journaled_once_by_the_cluster(self):
        """Every instance's risk agent sees every commit and detects the same
        crossing: each journaled its own RiskLimitBreached, one per instance
        (found in review). The journal now holds each crossing once: one
        Breached, then one Restored (adr/0050)."""
        cluster = bk_grpc.BookServiceStub(self.channel)
        a = self.direct(self.instances[0])
        a.OpenBook(bk.OpenBookRequest(book_id="lim", name="lim", currency="USD"), timeout=CALL_TIMEOUT_S)
        a.UpdateMarket(bk.UpdateMarketRequest(book_id="lim", quotes=[
            bk.MarketQuote(underlying="AAPL", spot=100.0, rate=0.03, vol=0.25)]), timeout=CALL_TIMEOUT_S)
        a.SetRiskLimits(bk.SetRiskLimitsRequest(book_id="lim", limits=[
            ev.RiskLimit(underlying="", metric=ev.DOLLAR_DELTA, soft=1000)]), timeout=CALL_TIMEOUT_S)
        stock = ev.Instrument(underlying="AAPL", kind=ev.UNDERLYING, multiplier=1)
        stubs = [self.direct(i) for i in self.instances]

        def edges():
            return [e.type for e in self.journal(cluster, "lim")
                    if e.type in (ev.RISK_LIMIT_BREACHED, ev.RISK_LIMIT_RESTORED)]

        def every_instance_sees(breached, version):
            for stub in stubs:
                risk = stub.GetBookRisk(bk.GetBookRiskRequest(book_id="lim", min_version=version),
                                        timeout=CALL_TIMEOUT_S)
                if [s.soft_breached for s in risk.limits] != [breached]:
                    return False
            return True

        for quantity, breached in ((50, True), (-50, False)):
            reply = a.ExecuteTrade(bk.ExecuteTradeRequest(book_id="lim", trade_id="t%d" % quantity, legs=[
                ev.Leg(instrument=stock, quantity=quantity, price=100.0)]), timeout=CALL_TIMEOUT_S)
            wait_until("every instance's projection sees the crossing",
                       lambda: every_instance_sees(breached, reply.last_sequence), 10 * SLOWDOWN)
            # each instance's agent journals after its projection moves: give
            # the slowest one time to try
            time.sleep(1.0 * SLOWDOWN)
            expected = [ev.RISK_LIMIT_BREACHED] if breached else [ev.RISK_LIMIT_BREACHED, ev.RISK_LIMIT_RESTORED]
            self.assertEqual(edges(), expected)

    def test_a_swinging_value_journals_only_crossings_it_had(self):
        """Ticks swinging a book across its limit through one instance while
        the others follow: an instance that judged a breach on an old state
        journaled it after the first had already opened and closed that level,
        a phantom pair at a tick that had brought the value back (4 runs in 5
        of 20 ticks, found in review). Every edge must now agree with the tick
        before it, and every instance with the journal (adr/0053)."""
        a = self.direct(self.instances[0])
        a.OpenBook(bk.OpenBookRequest(book_id="swing", name="swing", currency="USD"), timeout=CALL_TIMEOUT_S)
        a.UpdateMarket(bk.UpdateMarketRequest(book_id="swing", quotes=[
            bk.MarketQuote(underlying="A", spot=100.0, vol=0.2)]), timeout=CALL_TIMEOUT_S)
        a.SetRiskLimits(bk.SetRiskLimitsRequest(book_id="swing", limits=[
            ev.RiskLimit(underlying="", metric=ev.DOLLAR_DELTA, soft=1000)]), timeout=CALL_TIMEOUT_S)
        stock = ev.Instrument(underlying="A", kind=ev.UNDERLYING, multiplier=1)
        a.ExecuteTrade(bk.ExecuteTradeRequest(book_id="swing", trade_id="t0", legs=[
            ev.Leg(instrument=stock, quantity=5, price=100.0)]), timeout=CALL_TIMEOUT_S)  # 500
        last = 0
        for i in range(20):  # 1500, 500, ...: across 1000 and back below 950
            last = a.UpdateMarket(bk.UpdateMarketRequest(book_id="swing", quotes=[
                bk.MarketQuote(underlying="A", spot=300.0 if i % 2 == 0 else 100.0, vol=0.2)]),
                timeout=CALL_TIMEOUT_S).last_sequence
        stubs = [self.direct(i) for i in self.instances]
        for stub in stubs:
            stub.GetBookRisk(bk.GetBookRiskRequest(book_id="swing", min_version=last), timeout=CALL_TIMEOUT_S)
        time.sleep(1.5 * SLOWDOWN)  # every agent has judged and journaled, or been refused and judged again
        # Each edge is matched, in order, to a tick of its kind journaled
        # before it and after the tick of the edge before it (an edge may land
        # after later ticks: judged on time, journaled late). A phantom pair
        # has no tick of its own left to match.
        ticks, kinds, matched = [], [], -1
        for e in self.journal(a, "swing"):
            if e.type == ev.MARKET_UPDATED:
                ticks.append(ev.MarketUpdated.FromString(e.payload).spot)
            elif e.type in (ev.RISK_LIMIT_BREACHED, ev.RISK_LIMIT_RESTORED):
                breached = e.type == ev.RISK_LIMIT_BREACHED
                kinds.append("B" if breached else "R")
                want = 300.0 if breached else 100.0
                later = [k for k in range(matched + 1, len(ticks)) if ticks[k] == want]
                self.assertTrue(later, "edge %d (%s) has no tick of its own: ticks %s, edges %s"
                                % (e.sequence, kinds[-1], ticks, kinds))
                matched = later[0]
        self.assertTrue(kinds and len(kinds) <= 20 and kinds[-1] == "R", kinds)
        self.assertTrue(all(x != y for x, y in zip(kinds, kinds[1:])), kinds)
        for stub in stubs:
            risk = stub.GetBookRisk(bk.GetBookRiskRequest(book_id="swing"), timeout=CALL_TIMEOUT_S)
            self.assertEqual([l.soft_breached for l in risk.limits], [False])

    def test_a_breach_left_open_by_a_dead_instance_is_restored_by_a_survivor(self):
        """An instance journals a Breached for a spike, then dies before the
        fall's Restored; a survivor that was paused through both folds the
        spike, the Breached and the fall in one batch. It kept its own state
        ("never breached") and left the journal's breach open until its next
        restart, its GetBookRisk saying "not breached" meanwhile (found in
        review). It now takes the journal's state at that batch and restores
        the level (adr/0054)."""
        a, b, c = self.instances
        c.kill()  # the test needs one survivor, which must not see the spike alone
        sa, sb = self.direct(a), self.direct(b)
        sa.OpenBook(bk.OpenBookRequest(book_id="dead", name="dead", currency="USD"), timeout=CALL_TIMEOUT_S)
        sa.UpdateMarket(bk.UpdateMarketRequest(book_id="dead", quotes=[
            bk.MarketQuote(underlying="A", spot=100.0, vol=0.2)]), timeout=CALL_TIMEOUT_S)
        sa.SetRiskLimits(bk.SetRiskLimitsRequest(book_id="dead", limits=[
            ev.RiskLimit(underlying="", metric=ev.DOLLAR_DELTA, soft=1000)]), timeout=CALL_TIMEOUT_S)
        stock = ev.Instrument(underlying="A", kind=ev.UNDERLYING, multiplier=1)
        last = sa.ExecuteTrade(bk.ExecuteTradeRequest(book_id="dead", trade_id="t0", legs=[
            ev.Leg(instrument=stock, quantity=5, price=100.0)]), timeout=CALL_TIMEOUT_S).last_sequence  # 500
        sb.GetBookRisk(bk.GetBookRiskRequest(book_id="dead", min_version=last), timeout=CALL_TIMEOUT_S)
        os.kill(b.server.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: b.alive() and os.kill(b.server.proc.pid, signal.SIGCONT))

        def edges(stub):
            return [e.type for e in self.journal(stub, "dead")
                    if e.type in (ev.RISK_LIMIT_BREACHED, ev.RISK_LIMIT_RESTORED)]

        sa.UpdateMarket(bk.UpdateMarketRequest(book_id="dead", quotes=[
            bk.MarketQuote(underlying="A", spot=300.0, vol=0.2)]), timeout=CALL_TIMEOUT_S)  # 1500
        wait_until("the first instance journals its Breached",
                   lambda: edges(sa) == [ev.RISK_LIMIT_BREACHED], 10 * SLOWDOWN)
        a.kill()
        market = os.path.join(self.tmp.name, "fall.csv")
        with open(market, "w") as f:
            f.write("underlying,spot,rate,yield,vol\nA,100,0,0,0.2\n")  # 500: below 950
        self.cli("book", "market", "dead", "--file", market, "--store", self.pg.conninfo)
        os.kill(b.server.proc.pid, signal.SIGCONT)
        wait_until("the survivor restores the level the dead instance left open",
                   lambda: edges(sb) == [ev.RISK_LIMIT_BREACHED, ev.RISK_LIMIT_RESTORED], 10 * SLOWDOWN)
        risk = sb.GetBookRisk(bk.GetBookRiskRequest(book_id="dead"), timeout=CALL_TIMEOUT_S)
        self.assertEqual([(l.soft_breached, l.value) for l in risk.limits], [(False, 500.0)])

    def psql(self, sql):
        psql = os.path.join(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")
        p = subprocess.run([psql, self.pg.conninfo, "-tA", "-c", sql], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    def test_an_instance_frozen_mid_append_holds_its_book_for_seconds(self):
        """An instance frozen inside an append (a paused VM, SIGSTOP, a
        network cut) held its book's stream row: every other instance's trade
        on that book, and on the books behind it on the same execution shard,
        waited until it woke, with no limit (found in review). The append's
        transaction now ends its own session after 3 s idle inside it
        (adr/0063): the server rolls it back and the healthy instance's trade
        commits. The frozen instance is caught inside a transaction by
        stopping it during a burst of its own trades until pg_stat_activity
        shows its session idle in transaction with the streams row taken."""
        a, b, _ = self.instances
        sa, sb = self.direct(a), self.direct(b)
        sa.OpenBook(bk.OpenBookRequest(book_id="frozen", name="frozen", currency="USD"), timeout=CALL_TIMEOUT_S)
        stock = ev.Instrument(underlying="A", kind=ev.UNDERLYING, multiplier=1)
        stop = threading.Event()

        def burst(writer):
            for k in range(3000):
                if stop.is_set():
                    return
                try:
                    sa.ExecuteTrade(bk.ExecuteTradeRequest(book_id="frozen", trade_id="w%d-%d" % (writer, k), legs=[
                        ev.Leg(instrument=stock, quantity=1, price=100.0)]), timeout=60 * SLOWDOWN)
                except grpc.RpcError:
                    pass  # the frozen instance's own trades may fail: not what is tested

        writers = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
        for w in writers:
            w.start()
        pid = a.server.proc.pid
        self.addCleanup(lambda: a.alive() and os.kill(pid, signal.SIGCONT))
        held = ""
        for _ in range(60):
            time.sleep(0.1)
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.3)
            held = self.psql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid "
                             "WHERE s.application_name = 'greeks' AND s.state = 'idle in transaction' "
                             "AND l.relation = 'streams'::regclass AND l.mode = 'RowExclusiveLock'")
            if held not in ("", "0"):
                break
            os.kill(pid, signal.SIGCONT)
        stop.set()
        self.assertNotIn(held, ("", "0"), "never caught the instance inside an append")
        started = time.monotonic()
        reply = sb.ExecuteTrade(bk.ExecuteTradeRequest(book_id="frozen", trade_id="healthy", legs=[
            ev.Leg(instrument=stock, quantity=1, price=100.0)]), timeout=30 * SLOWDOWN)
        waited = time.monotonic() - started
        self.assertGreater(reply.last_sequence, 1)
        self.assertLess(waited, 3 + 6 * SLOWDOWN, "the healthy instance's trade waited %.1f s" % waited)
        os.kill(pid, signal.SIGCONT)
        for w in writers:
            w.join(timeout=120)
        # the frozen instance trades again once awake (its killed session is made again)
        sa.ExecuteTrade(bk.ExecuteTradeRequest(book_id="frozen", trade_id="awake", legs=[
            ev.Leg(instrument=stock, quantity=1, price=100.0)]), timeout=CALL_TIMEOUT_S)
        ids = [ev.TradeExecuted.FromString(e.payload).trade_id for e in self.journal(sb, "frozen")
               if e.type == ev.TRADE_EXECUTED]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertIn("healthy", ids)
        self.assertIn("awake", ids)

    def test_trades_and_subscriptions_survive_a_kill_and_a_drain(self):
        a, b, c = self.instances
        cluster = bk_grpc.BookServiceStub(self.channel)
        open_books(cluster, BOOKS, self.expiry)

        # Idempotency across instances: the same command on a, then on c.
        once = bk.ExecuteTradeRequest(book_id="desk-a", trade_id="once", idempotency_key="key-once",
                                      legs=[ev.Leg(instrument=cluster_option(self.expiry), quantity=7, price=5.5)])
        first = self.direct(a).ExecuteTrade(once, timeout=CALL_TIMEOUT_S)
        again = self.direct(c).ExecuteTrade(once, timeout=CALL_TIMEOUT_S)
        self.assertFalse(first.replayed)
        self.assertTrue(again.replayed)
        self.assertEqual((again.first_sequence, again.last_sequence), (first.first_sequence, first.last_sequence))
        extra = {("desk-a", "once"): 7}

        # Subscribers on every instance, one per book on a, b and c each.
        subscribers = []
        for instance in self.instances:
            for book in BOOKS:
                s = Subscriber(book, instance.target, self.channel)
                s.start()
                subscribers.append((instance, s))

        # Events everywhere: trades through a alone reach the subscribers and
        # the risk projections of b and c, which commit nothing meanwhile.
        only_a = {}
        for k in range(3):
            for book in BOOKS:
                request = bk.ExecuteTradeRequest(book_id=book, trade_id="a-only-%d" % k,
                                                 idempotency_key="key-a-only-%s-%d" % (book, k),
                                                 legs=[ev.Leg(instrument=cluster_option(self.expiry),
                                                              quantity=1 + k, price=5.0)])
                only_a[book] = self.direct(a).ExecuteTrade(request, timeout=CALL_TIMEOUT_S).last_sequence
                extra[(book, request.trade_id)] = 1 + k
        for instance, s in subscribers:
            wait_until("%s's subscriber to %s told of a's trades" % (instance.name, s.book),
                       lambda: s.last() >= only_a[s.book], 10 * SLOWDOWN)
        for instance in (b, c):  # /metrics: events read from the shared store
            self.assertGreaterEqual(instance.metrics()["greeks_book_events_followed_total"], len(BOOKS) * 3)
            for book in BOOKS:
                stub = self.direct(instance)
                wait_until("%s's risk of %s at a's version" % (instance.name, book),
                           lambda: stub.GetBookRisk(bk.GetBookRiskRequest(book_id=book),
                                                    timeout=CALL_TIMEOUT_S).version >= only_a[book], 10 * SLOWDOWN)

        # Clients through all three; SIGKILL b at a third, SIGTERM c at two thirds.
        total = CLIENTS * TRADES_PER_CLIENT
        acked = [0]
        lock = threading.Lock()

        def count():
            with lock:
                acked[0] += 1

        drivers = [TradeDriver(cluster_channel(self.targets), planned_trades(k, TRADES_PER_CLIENT, BOOKS,
                                                                             self.expiry, seed=21),
                               resend_budget=RESEND_BUDGET, on_ack=count) for k in range(CLIENTS)]
        for d in drivers:
            d.start()
        wait_until("a third of the trades", lambda: acked[0] >= total // 3, 60 * SLOWDOWN)
        killed_at = time.monotonic()
        b.kill()
        wait_until("two thirds of the trades", lambda: acked[0] >= 2 * total // 3, 60 * SLOWDOWN)
        self.assertEqual(c.terminate(), 0, c.stderr())
        for d in drivers:
            d.join(timeout=120 * SLOWDOWN)
            self.assertFalse(d.is_alive(), "a client did not finish")

        # Every trade acknowledged within the budget.
        for d in drivers:
            self.assertEqual(d.failed, [], "trades given up: %s" % [(r.trade_id, str(e)) for _, r, e in d.failed])
            self.assertEqual(len(d.acked), TRADES_PER_CLIENT)
            self.assertLessEqual(max(attempts for *_, attempts in d.acked), 1 + RESEND_BUDGET)
        # Each client acknowledged a trade soon after the SIGKILL.
        for d in drivers:
            after = [finished for _, _, _, _, finished, _ in d.acked if finished > killed_at]
            self.assertTrue(after, "a client acknowledged nothing after the kill")
            self.assertLess(min(after) - killed_at, RECOVERY_BOUND_S)

        errors = [e for d in drivers for e in d.errors]
        resent = sum(attempts - 1 for d in drivers for *_, attempts in d.acked)
        replays = sum(1 for d in drivers for _, _, reply, *_ in d.acked if reply.replayed)
        recovered = max(min(f for *_, f, _ in d.acked if f > killed_at) - killed_at for d in drivers)
        print("\n%d trades acknowledged; %d failed attempts resent (%s); %d answered as replays; "
              "every client acknowledged again %.3f s after the SIGKILL"
              % (total, resent, sorted(set(code.name for _, code, _ in errors)), replays, recovered),
              file=sys.stderr)

        # b comes back on its port and catches up; the survivors: a and b.
        b.restart()
        survivors = [a, b]

        # Expected: the clients' own sums of acknowledged quantities.
        expected_trades = {book: {} for book in BOOKS}
        for (book, trade_id), quantity in extra.items():
            expected_trades[book][trade_id] = quantity
        for d in drivers:
            for book, request, reply, *_ in d.acked:
                self.assertEqual(reply.trade_id, request.trade_id)
                expected_trades[book][request.trade_id] = request.legs[0].quantity
        self.assertEqual(sum(len(t) for t in expected_trades.values()), total + len(extra))

        finals = {}
        for book in BOOKS:
            envelopes = self.journal(self.direct(a), book)
            sequences = [e.sequence for e in envelopes]
            self.assertEqual(sequences, list(range(1, len(envelopes) + 1)), book)
            finals[book] = sequences[-1]
            executed = [ev.TradeExecuted.FromString(e.payload) for e in envelopes if e.type == ev.TRADE_EXECUTED]
            ids = [t.trade_id for t in executed]
            self.assertEqual(len(ids), len(set(ids)), "a trade recorded twice in %s" % book)
            self.assertEqual(set(ids), set(expected_trades[book]), "lost or unknown trades in %s" % book)
            self.assertEqual(self.journal(self.direct(b), book), envelopes)  # the restarted b reads the same
        self.assertEqual(self.rows_in_postgres(), finals)

        # Positions: the clients' arithmetic, then replay from scratch vs each instance.
        for book in BOOKS:
            quantities = {}
            for d in drivers:
                for bk_id, request, *_ in d.acked:
                    if bk_id == book:
                        strike = request.legs[0].instrument.strike
                        quantities[strike] = quantities.get(strike, 0) + request.legs[0].quantity
            for (extra_book, _), quantity in extra.items():
                if extra_book == book:
                    quantities[100.0] = quantities.get(100.0, 0) + quantity
            for instance in survivors:
                view = self.direct(instance).GetBook(bk.GetBookRequest(book_id=book), timeout=CALL_TIMEOUT_S)
                self.assertEqual(view.version, finals[book], instance.name)
                got = {p.instrument.strike: p.quantity for p in view.positions if p.quantity != 0}
                self.assertEqual(got, {k: v for k, v in quantities.items() if v != 0}, book)
            replay = self.cli("book", "show", book, "--store", self.pg.conninfo)
            replay_columns = "\n".join(",".join(line.split(",")[:10]) for line in replay.splitlines())
            for instance in survivors:
                live = self.cli("call", "--target", instance.target, "book", "show", book)
                self.assertEqual(live.strip(), replay_columns.strip(), "%s on %s" % (book, instance.name))

        # Subscribers: gap-free, in order, no duplicates, every instance's commits.
        deadline = time.monotonic() + 30 * SLOWDOWN
        for instance, s in subscribers:
            wait_until("subscriber of %s on %s at %d (it was at %d; resumes %s)"
                       % (s.book, instance.name, finals[s.book], s.last(), s.resumes),
                       lambda: s.error is not None or s.last() >= finals[s.book],
                       max(1.0, deadline - time.monotonic()))
            self.assertIsNone(s.error, "subscriber of %s on %s stopped: %s (resumes %s)"
                              % (s.book, instance.name, s.error, s.resumes))
        for instance, s in subscribers:
            s.stop()
            self.assertIsNone(s.error, s.error)
            self.assertEqual(s.received, list(range(1, finals[s.book] + 1)),
                             "stream of %s from %s (resumes %s)" % (s.book, instance.name, s.resumes))
            if instance is b or instance is c:  # their streams ended: resumed elsewhere
                self.assertTrue(s.resumes, "the subscriber on %s never resumed elsewhere" % instance.name)
        print("subscriber resumes: %s" % [(i.name, s.book, r[:2]) for i, s in subscribers for r in s.resumes],
              file=sys.stderr)
        # A subscriber on the restarted b, from the start: history then nothing missing.
        late = Subscriber("desk-b", b.target, self.channel)
        late.start()
        wait_until("late subscriber", lambda: late.last() >= finals["desk-b"], 30 * SLOWDOWN)
        late.stop()
        self.assertEqual(late.received, list(range(1, finals["desk-b"] + 1)))

        # Each live instance's risk projection reached the final version.
        for book in BOOKS:
            deltas = []
            for instance in survivors:
                risk = self.direct(instance).GetBookRisk(bk.GetBookRiskRequest(book_id=book,
                                                                               min_version=finals[book]),
                                                         timeout=CALL_TIMEOUT_S)
                self.assertGreaterEqual(risk.version, finals[book])
                deltas.append(risk.total.risk.delta)
            self.assertAlmostEqual(deltas[0], deltas[1], delta=1e-6 * max(1.0, abs(deltas[0])))
        self.assertTrue(a.alive() and b.alive())


def cluster_option(expiry_us):
    return ev.Instrument(underlying="AAPL", kind=ev.OPTION, option_type=ev.CALL, style=ev.EUROPEAN,
                         strike=100.0, expiry_us=expiry_us, multiplier=100)


if __name__ == "__main__":
    unittest.main()
