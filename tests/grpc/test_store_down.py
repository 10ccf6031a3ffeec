"""greeksd with its book store on a real PostgreSQL that goes away and comes
back: readiness and health per component (api/server/probes.c, health.c).

What: a throwaway PostgreSQL cluster (tests/support/pg_test_server.sh) with a
password on its role, greeksd journaling into it; the server is paused (pg_ctl
stop -m fast, data kept) and resumed on the same port. While it is down,
/readyz must answer 503 naming the store as unreachable, grpc.health.v1 must
report greeks.v1.BookService NOT_SERVING while "" and greeks.v1.PricingService
stay SERVING, pricing must still answer, and a trade must fail with
UNAVAILABLE naming the store (never a crash). After the resume, readiness and
health recover, a new trade is accepted, and every acknowledged event is in
the book, in the audit trail, and in the events table read directly with psql
(an independent reader); the one trade refused during the outage is nowhere.
The store's password never appears in greeksd's stderr, /readyz or /metrics.

How: every wait is a bounded poll (the store probe runs once a second); the
cluster is stopped in a cleanup whatever happens.

Environment (set by tests/CMakeLists.txt): GREEKSD, GREEKS_CLI (test_grpc reads it),
GREEKS_STUBS, GREEKS_DATA,
GREEKS_TEST_SLOWDOWN, PG_TEST_SCRIPT (the fixture script).
"""
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_grpc import Server, SLOWDOWN  # noqa: E402  (also puts the stubs on sys.path)

import grpc  # noqa: E402
from greeks.v1 import pricing_pb2 as pb  # noqa: E402
from greeks.v1 import pricing_pb2_grpc as pb_grpc  # noqa: E402
from greeks.v1 import book_pb2 as bk  # noqa: E402
from greeks.v1 import book_pb2_grpc as bk_grpc  # noqa: E402
from greeks.events.v1 import book_events_pb2 as ev  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402

PG_SCRIPT = os.environ["PG_TEST_SCRIPT"]
PSQL = os.path.join(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")
TIMEOUT = 30 * SLOWDOWN
# The probe runs once a second; a verdict should follow an outage within a few.
TURN_S = 10 * SLOWDOWN
US_PER_DAY = 86400 * 10**6
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
BOOK = "greeks.v1.BookService"


def http_get(url):
    """(status, body) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def pg(command, directory, env):
    p = subprocess.run(["sh", PG_SCRIPT, command, directory], capture_output=True, text=True, timeout=120, env=env)
    if p.returncode != 0:
        raise RuntimeError("pg_test_server.sh %s failed (%d): %s" % (command, p.returncode, p.stderr))
    return p.stdout


def poll(what, check, seconds=TURN_S):
    """check() until it returns a true value, at most `seconds`; its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            if not value:
                raise AssertionError("%s: not within %.0f s" % (what, seconds))
            return value
        time.sleep(0.1)


class StoreOutage(unittest.TestCase):
    def setUp(self):
        self.password = "pw-" + secrets.token_hex(12)
        self.pg_env = dict(os.environ, PG_TEST_PASSWORD=self.password)
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.pg_dir = os.path.join(self.tmp.name, "pg")
        self.addCleanup(pg, "stop", self.pg_dir, self.pg_env)  # runs even when start fails part way
        self.conninfo = pg("start", self.pg_dir, self.pg_env).strip()
        self.assertIn("password=" + self.password, self.conninfo)  # a real secret, checked by the server
        with open(os.path.join(self.pg_dir, "port")) as f:
            self.pg_port = int(f.read())
        port_file = os.path.join(self.tmp.name, "metrics-port")
        self.server = Server("--book-store", self.conninfo, "--metrics-listen", "127.0.0.1:0",
                             "--metrics-port-file", port_file)
        self.addCleanup(self.server.close)
        with open(port_file) as f:
            self.base = "http://127.0.0.1:%d" % int(f.read())
        self.channel = grpc.insecure_channel(self.server.target)
        self.addCleanup(self.channel.close)
        self.books = bk_grpc.BookServiceStub(self.channel)
        self.pricing = pb_grpc.PricingServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.acked = []  # every CommandReply greeksd acknowledged
        self.legs = {}   # trade id -> its quantity

    # ---- helpers ----

    def readyz(self):
        status, body = http_get(self.base + "/readyz")
        self.assertNotIn(self.password, body)
        return status, json.loads(body)

    def check(self, service):
        return self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT).status

    def trade(self, trade_id):
        leg = ev.Leg(instrument=ev.Instrument(underlying="AAPL", kind=ev.OPTION, option_type=ev.CALL,
                                              style=ev.EUROPEAN, strike=100, expiry_us=self.expiry, multiplier=100),
                     quantity=len(self.legs) + 1, price=4.0)
        reply = self.books.ExecuteTrade(bk.ExecuteTradeRequest(book_id="desk", trade_id=trade_id, legs=[leg],
                                                               idempotency_key="key-" + trade_id), timeout=TIMEOUT)
        self.acked.append(reply)
        self.legs[trade_id] = leg.quantity
        return reply

    def price_chain(self):
        n = 21
        request = pb.PriceChainRequest(model=pb.MODEL_BSM, market=pb.Market(spot=100, rate=0.03),
                                       contracts=pb.ChainContracts(strike=[90.0 + i for i in range(n)],
                                                                   expiry=[0.5] * n, vol=[0.2] * n,
                                                                   type=[pb.CALL] * n))
        reply = self.pricing.PriceChain(request, timeout=TIMEOUT)
        prices = list(reply.greeks.price)
        self.assertEqual(len(prices), n)
        # Calls fall with the strike; the first is worth at least S - K e^{-rT} > 0.
        self.assertTrue(all(a > b > 0 for a, b in zip(prices, prices[1:])), prices)
        return prices

    def events_in_postgres(self):
        """(sequence, event_id) of the book's events, read with psql, not greeksd."""
        p = subprocess.run([PSQL, self.conninfo, "-tA", "-F", " ", "-c",
                            "SELECT stream, sequence, event_id FROM events ORDER BY stream, sequence"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [line.split(" ") for line in p.stdout.splitlines() if line]
        return [(int(seq), eid) for stream, seq, eid in rows if "desk" in stream]

    def sql(self, text):
        p = subprocess.run([PSQL, self.conninfo, "-tA", "-c", text], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    @unittest.skipIf(SLOWDOWN > 1, "waits on the watcher's 3 s grace and backoff, no race: the plain suite's "
                     "(tests/test_book_follow.c runs the store's side under the sanitizers)")
    def test_an_instance_that_cannot_listen_refuses_its_stale_risk(self):
        """A second instance B whose LISTEN connection is lost and cannot be
        reopened (its role may no longer log in) heard no other instance's
        commits and served their stale risk with nothing saying so (found in
        review). Now, while its store still answers (greeks_store_up 1, its
        own trades go through): greeks_store_following 0, /readyz 503 with
        store.following false, /readyz/pricing 200, BookService NOT_SERVING,
        GetBookRisk UNAVAILABLE naming why. Allowed to log in again, B listens,
        catches up on A's trade and serves its risk."""
        role, password = "follower", "pw-" + secrets.token_hex(8)
        self.sql("CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'" % (role, password))
        port_file = os.path.join(self.tmp.name, "b-metrics-port")
        b = Server("--book-store", self.conninfo + " user=%s password=%s" % (role, password),
                   "--metrics-listen", "127.0.0.1:0", "--metrics-port-file", port_file)
        self.addCleanup(b.close)
        with open(port_file) as f:
            b_base = "http://127.0.0.1:%d" % int(f.read())
        b_channel = grpc.insecure_channel(b.target)
        self.addCleanup(b_channel.close)
        b_books, b_health = bk_grpc.BookServiceStub(b_channel), health_pb2_grpc.HealthStub(b_channel)
        self.books.OpenBook(bk.OpenBookRequest(book_id="desk", name="desk", currency="USD"), timeout=TIMEOUT)
        self.books.UpdateMarket(bk.UpdateMarketRequest(book_id="desk", quotes=[
            bk.MarketQuote(underlying="AAPL", spot=100.0, rate=0.03, vol=0.2)]), timeout=TIMEOUT)
        self.expiry = int(time.time() * 1e6) + 90 * US_PER_DAY
        first = self.trade("t1")
        b_books.GetBookRisk(bk.GetBookRiskRequest(book_id="desk", min_version=first.last_sequence), timeout=TIMEOUT)
        self.sql("ALTER ROLE %s NOLOGIN" % role)
        self.assertEqual(self.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE usename = '%s' AND query LIKE 'LISTEN%%'" % role), "1")

        def b_ready():
            status, body = http_get(b_base + "/readyz")
            return (status, json.loads(body)) if status == 503 else None
        status, ready = poll("B's readiness failing", b_ready)
        self.assertFalse(ready["store"]["following"], ready)
        self.assertTrue(ready["store"]["reachable"], ready)
        self.assertIn("not permitted to log in", ready["store"]["follow_error"])
        self.assertEqual(http_get(b_base + "/readyz/pricing")[0], 200)
        metrics = http_get(b_base + "/metrics")[1]
        self.assertIn("\ngreeks_store_following 0\n", metrics)
        self.assertIn("\ngreeks_store_up 1\n", metrics)
        self.assertEqual(b_health.Check(health_pb2.HealthCheckRequest(service=BOOK), timeout=TIMEOUT).status,
                         NOT_SERVING)
        second = self.trade("t2")  # on A: B does not hear it
        with self.assertRaises(grpc.RpcError) as caught:
            b_books.GetBookRisk(bk.GetBookRiskRequest(book_id="desk"), timeout=TIMEOUT)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("live risk may be stale", caught.exception.details())
        self.assertIn("retry on another instance", caught.exception.details())
        b_books.ExecuteTrade(bk.ExecuteTradeRequest(book_id="desk", trade_id="b1", legs=[ev.Leg(
            instrument=ev.Instrument(underlying="AAPL", kind=ev.UNDERLYING, multiplier=1), quantity=1,
            price=100.0)]), timeout=TIMEOUT)  # its own commands work
        self.sql("ALTER ROLE %s LOGIN" % role)

        def b_risk():
            try:
                return b_books.GetBookRisk(bk.GetBookRiskRequest(book_id="desk", min_version=second.last_sequence),
                                           timeout=TIMEOUT)
            except grpc.RpcError:
                return None
        risk = poll("B following again", b_risk, seconds=20 * SLOWDOWN)
        self.assertGreaterEqual(risk.version, second.last_sequence + 1)
        self.assertEqual(http_get(b_base + "/readyz")[0], 200)
        self.assertIn("\ngreeks_store_following 1\n", http_get(b_base + "/metrics")[1])
        b.stop()

    # ---- the outage ----

    def test_the_store_goes_away_and_comes_back(self):
        # Up: a book, a trade; ready, every service SERVING.
        self.acked.append(self.books.OpenBook(bk.OpenBookRequest(book_id="desk", name="desk", currency="USD"),
                                              timeout=TIMEOUT))
        self.acked.append(self.books.UpdateMarket(bk.UpdateMarketRequest(book_id="desk", quotes=[
            bk.MarketQuote(underlying="AAPL", spot=100.0, rate=0.03, vol=0.2)]), timeout=TIMEOUT))
        self.expiry = int(time.time() * 1e6) + 90 * US_PER_DAY
        self.trade("t1")
        status, ready = self.readyz()
        self.assertEqual(status, 200, ready)
        self.assertEqual(ready["status"], "ready")
        self.assertTrue(ready["store"]["reachable"])
        self.assertNotIn("error", ready["store"])
        description = ready["store"]["description"]
        self.assertEqual(description, "postgresql:greeks_test@127.0.0.1:%d" % self.pg_port)
        for service in ("", "greeks.v1.PricingService", BOOK):
            self.assertEqual(self.check(service), SERVING, service)
        prices = self.price_chain()

        # Hung: the server and its backends stopped (SIGSTOP), connections open,
        # nothing answers. The probe's libpq call never returns; readiness used
        # to stay 200 on the last answer while every book command timed out.
        pg("freeze", self.pg_dir, self.pg_env)
        try:
            status, ready = poll("/readyz 503 while the store hangs",
                                 lambda: (lambda r: r if r[0] == 503 else None)(self.readyz()), seconds=25 * SLOWDOWN)
            self.assertFalse(ready["store"]["reachable"])
            self.assertIn("hangs", ready["store"]["error"])
            # stale past 10 s in nanoseconds; the field is whole milliseconds,
            # so it can read exactly 10000 (a CI run saw it)
            self.assertGreaterEqual(ready["store"]["last_probe_ms_ago"], 10000)
            self.assertEqual(self.check(BOOK), NOT_SERVING)
            self.assertIn("greeks_store_up 0", http_get(self.base + "/metrics")[1])
            self.assertEqual(self.price_chain(), prices)
            # the operator hears of it: the probe's own thread is stuck in
            # the call, so a hang was never logged (found in review)
            poll("a WARN line for the hang", lambda: "no probe has answered for over 10 s" in self.server.stderr())
            line = [x for x in self.server.stderr().splitlines() if "no probe has answered" in x][0]
            self.assertIn(description, line)
            self.assertTrue("WARN" in line or '"warn"' in line, line)
        finally:
            pg("thaw", self.pg_dir, self.pg_env)
        poll("/readyz 200 once the store answers again", lambda: self.readyz()[0] == 200)
        self.assertEqual(self.check(BOOK), SERVING)
        poll("a line when it answers again", lambda: "answers again after" in self.server.stderr())
        self.assertEqual(self.server.stderr().count("no probe has answered"), 1)  # once a hang, not a tick

        # Down: readiness 503 naming the store, BookService alone NOT_SERVING.
        pg("pause", self.pg_dir, self.pg_env)
        status, ready = poll("/readyz 503 after the store went away",
                             lambda: (lambda r: r if r[0] == 503 else None)(self.readyz()))
        self.assertEqual(ready["status"], "not_ready")
        self.assertFalse(ready["store"]["reachable"])
        self.assertEqual(ready["store"]["description"], description)
        self.assertIn(description, ready["store"]["error"])
        # /readyz/pricing stays 200: pricing needs no store, and instances that
        # share it all went NotReady together, pricing unreachable (found in
        # review; deploy/k8s's readiness probe)
        status, body = http_get(self.base + "/readyz/pricing")
        self.assertEqual(status, 200, body)
        self.assertFalse(json.loads(body)["store"]["reachable"])
        self.assertFalse(ready["draining"])
        self.assertEqual(ready["services"], {"": "SERVING", "greeks.v1.PricingService": "SERVING",
                                             BOOK: "NOT_SERVING"})
        self.assertEqual(ready["agents"], {"pricing": "running", "compute": "running", "intake": "running", "book-queries": "running",
                                           "execution": "running", "risk": "running", "strategy": "running"})
        self.assertEqual(self.check(BOOK), NOT_SERVING)
        self.assertEqual(self.check(""), SERVING)
        self.assertEqual(self.check("greeks.v1.PricingService"), SERVING)
        self.assertEqual(self.price_chain(), prices)  # pricing needs no store
        for attempt in range(3):  # each of the pool's broken connections in turn: never a crash
            with self.assertRaises(grpc.RpcError) as caught:
                self.trade("refused")
            self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE, caught.exception.details())
            self.assertIn(description, caught.exception.details())
            self.assertNotIn(self.password, caught.exception.details())
            # libpq's first line only, and the advice whole: its hint lines
            # cut both ("... failed: No such file or directory  Is the); it is
            # re", found in review)
            self.assertTrue(caught.exception.details().endswith("retry"), caught.exception.details())
            self.assertNotIn("Is the", caught.exception.details())
        # A query: its failed read drops the book's cached state, so the next
        # trade fails at its own read, before any append (and so did the ones
        # above where the watcher's resync after the thaw met the pause)
        with self.assertRaises(grpc.RpcError) as caught:
            self.books.GetBook(bk.GetBookRequest(book_id="desk"), timeout=TIMEOUT)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE, caught.exception.details())
        self.assertIn(description, caught.exception.details())
        with self.assertRaises(grpc.RpcError) as caught:
            self.trade("refused")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE, caught.exception.details())
        # A new book reads nothing before its append: a failed append for certain
        with self.assertRaises(grpc.RpcError) as caught:
            self.books.OpenBook(bk.OpenBookRequest(book_id="spare", name="spare", currency="USD",
                                                   idempotency_key="open-spare"), timeout=TIMEOUT)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE, caught.exception.details())
        self.assertIsNone(self.server.proc.poll(), "greeksd exited while the store was down")
        self.legs.pop("refused", None)
        # the operator hears of it: an ERROR line naming the store and the
        # cause (a failed append was only an info access line: found in
        # review), reads counted (a trade after the GetBook failed at its
        # read: no line at all, found when a CI run failed)
        def fault_lines():
            lines = [x for x in self.server.stderr().splitlines() if "calls failed since the last probe" in x]
            counted = sum(int(re.search(r"calls failed since the last probe: (\d+)", x).group(1)) for x in lines)
            return lines if counted >= 6 else None  # the three trades, the GetBook, the last trade, OpenBook
        lines = poll("ERROR lines for the failed calls", fault_lines)
        self.assertIn(description, lines[0])
        self.assertTrue(all("ERROR" in x or '"error"' in x for x in lines), lines)
        failed = [re.search(r"calls failed since the last probe: (\d+) \(appends (\d+), reads (\d+); (\d+) since the start\)",
                            x) for x in lines]
        self.assertTrue(all(failed), lines)
        self.assertEqual(sum(int(m.group(1)) for m in failed), int(failed[-1].group(4)), lines)
        self.assertTrue(all(int(m.group(1)) == int(m.group(2)) + int(m.group(3)) for m in failed), lines)
        self.assertGreaterEqual(sum(int(m.group(3)) for m in failed), 2, lines)  # the GetBook's, the last trade's
        self.assertGreaterEqual(sum(int(m.group(2)) for m in failed), 1, lines)  # the OpenBook's

        # Back: ready again, BookService SERVING, a new trade accepted.
        pg("resume", self.pg_dir, self.pg_env)
        poll("/readyz 200 after the store came back", lambda: self.readyz()[0] == 200)
        status, ready = self.readyz()
        self.assertTrue(ready["store"]["reachable"])
        self.assertNotIn("error", ready["store"])
        poll("BookService SERVING after the store came back", lambda: self.check(BOOK) == SERVING)
        self.assertEqual(self.check(""), SERVING)
        # Back, but greeksd's pooled connections are stale (a PostgreSQL
        # restart ends their sessions). A connection whose close has arrived is
        # made again when taken (adr/0063); one still closing as the query
        # takes it fails that query, and the trade right after succeeds
        # either way. Each kind is judged by its latest call: the
        # failed read in the same second hid "appends succeed again", and the
        # log ended on an ERROR for a store that worked (found in review).
        p = subprocess.run([PSQL, self.conninfo, "-tA", "-c",
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        try:
            self.books.GetBook(bk.GetBookRequest(book_id="desk"), timeout=TIMEOUT)
        except grpc.RpcError as e:  # on a stale connection
            self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE, e.details())
        self.trade("t2")
        poll("appends said to succeed again", lambda: "appends succeed again" in self.server.stderr())
        poll("reads said to succeed again", lambda: "reads succeed again" in self.server.stderr())
        tail = self.server.stderr()
        tail = tail[max(tail.rindex("appends succeed again"), tail.rindex("reads succeed again")):]
        self.assertNotIn("calls failed", tail)

        # Nothing acknowledged was lost; nothing refused was written.
        book = self.books.GetBook(bk.GetBookRequest(book_id="desk"), timeout=TIMEOUT)
        acked_sequences = sorted(s for r in self.acked for s in range(r.first_sequence, r.last_sequence + 1)
                                 if r.last_sequence > 0)
        self.assertEqual(acked_sequences, list(range(1, len(acked_sequences) + 1)))  # no gap, no double
        self.assertEqual(book.version, acked_sequences[-1])
        self.assertEqual([t.trade_id for t in book.trades], ["t1", "t2"])
        (position,) = book.positions
        self.assertEqual(position.quantity, sum(self.legs.values()))
        audit = list(self.books.GetAuditTrail(bk.GetAuditTrailRequest(book_id="desk"), timeout=TIMEOUT))
        self.assertEqual([e.sequence for e in audit], acked_sequences)
        self.assertEqual(self.events_in_postgres(), [(e.sequence, e.event_id) for e in audit])

        # A clean stop; the secret never shown or logged.
        status, body = http_get(self.base + "/metrics")
        self.assertEqual(status, 200)
        self.assertNotIn(self.password, body)
        self.assertEqual(self.server.stop(signal.SIGTERM, timeout=TIMEOUT), 0, self.server.stderr())
        log = self.server.stderr()
        self.assertIn("unreachable", log)
        self.assertIn("reachable again", log)
        self.assertNotIn(self.password, log)


class CommitCutProxy:
    """A TCP proxy in front of PostgreSQL that, when armed, forwards the next
    COMMIT of a transaction that inserted events, lets the server commit and
    answer, and then cuts the connection before the answer reaches greeksd: the
    append is in the journal, and greeksd sees a connection lost during its
    COMMIT. With drop_commit, the COMMIT itself is lost with the connection;
    on_cut, if set, then runs while greeksd's connection is still held open
    (greeksd waits for its answer), and the connection is cut after it."""

    def __init__(self, pg_port):
        self.pg_port = pg_port
        self.armed = threading.Event()
        self.drop_commit = False  # True: the COMMIT itself is lost, not its answer
        self.on_cut = None  # with drop_commit: run before greeksd's connection is cut
        self.down_after_cut = 0.0  # seconds new connections are refused after a cut
        self.refuse_until = 0.0
        self.live = []  # every connection's two sockets
        self.cuts = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def accept_loop(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            if time.monotonic() < self.refuse_until:  # the store "down" for a while after a cut
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.pg_port))
            except OSError:  # the server down (on_cut's crash): refused, as it would be
                client.close()
                continue
            self.live.append((client, server))
            state = {"inserted": False, "cut": False, "holding": False}
            threading.Thread(target=self.pump, args=(client, server, state, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client, state, False), daemon=True).start()

    def pump(self, source, target, state, from_client):
        try:
            while True:
                data = source.recv(65536)
                if not data or state["cut"]:
                    break
                if from_client and b"INSERT INTO events" in data:
                    state["inserted"] = True
                if from_client and b"COMMIT\x00" in data and state["inserted"]:
                    state["inserted"] = False
                    if self.armed.is_set():
                        self.armed.clear()
                        self.cuts += 1
                        self.refuse_until = time.monotonic() + self.down_after_cut
                        if self.down_after_cut:  # the whole store goes: every other connection too
                            for pair in self.live:
                                if source not in pair:
                                    for end in pair:
                                        try:
                                            end.shutdown(socket.SHUT_RDWR)
                                        except OSError:
                                            pass
                        state["cut"] = True
                        if self.drop_commit:  # the server never sees the COMMIT
                            if self.on_cut:
                                state["holding"] = True
                                self.on_cut()
                            break
                        # The server's answer ends the other pump, which closes both
                        # ends: the server has committed, greeksd never hears it.
                        target.sendall(data)
                        time.sleep(0.5)
                        break
                target.sendall(data)
        except OSError:
            pass
        finally:
            # while on_cut runs, a server gone ends only its own side
            for end in (source,) if state["holding"] and not from_client else (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.listener.close()


class LostCommit(unittest.TestCase):
    """A connection lost after COMMIT was sent. It was answered UNAVAILABLE,
    which the execution agent retries as "nothing was written": a trade without
    a key executed and was answered ALREADY_EXISTS, a correction without a key
    was journaled twice, and a keyed trade sent once came back "replayed"
    (found in review). greeksd now learns the outcome on another connection."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.pg_dir = os.path.join(self.tmp.name, "pg")
        self.addCleanup(pg, "stop", self.pg_dir, os.environ)
        self.conninfo = pg("start", self.pg_dir, os.environ).strip()
        with open(os.path.join(self.pg_dir, "port")) as f:
            self.proxy = CommitCutProxy(int(f.read()))
        self.addCleanup(self.proxy.close)
        self.server = Server("--book-store", "host=127.0.0.1 port=%d dbname=greeks_test user=greeks" %
                             self.proxy.port)
        self.addCleanup(self.server.close)
        self.channel = grpc.insecure_channel(self.server.target)
        self.addCleanup(self.channel.close)
        self.books = bk_grpc.BookServiceStub(self.channel)
        self.expiry = int(time.time() * 1e6) + 90 * US_PER_DAY

    def leg(self, quantity):
        return ev.Leg(instrument=ev.Instrument(underlying="AAPL", kind=ev.OPTION, option_type=ev.CALL,
                                               style=ev.EUROPEAN, strike=100, expiry_us=self.expiry,
                                               multiplier=100), quantity=quantity, price=4.0)

    def cut(self, call):
        """call() with the proxy armed; the reply, once the cut happened."""
        cuts = self.proxy.cuts
        self.proxy.armed.set()
        reply = call()
        self.assertEqual(self.proxy.cuts, cuts + 1, "the proxy cut no commit")
        return reply

    def journal(self):
        """The book's event types, read with psql straight from the server."""
        p = subprocess.run([PSQL, self.conninfo, "-tA", "-c",
                            "SELECT type FROM events WHERE stream = 'book-desk' ORDER BY sequence"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [int(t) for t in p.stdout.split()]

    def test_a_commit_whose_answer_was_lost_is_answered_by_its_outcome(self):
        self.books.OpenBook(bk.OpenBookRequest(book_id="desk", name="desk", currency="USD"), timeout=TIMEOUT)
        trade = self.cut(lambda: self.books.ExecuteTrade(bk.ExecuteTradeRequest(
            book_id="desk", trade_id="t1", legs=[self.leg(10)]), timeout=TIMEOUT))
        self.assertEqual(trade.first_sequence, 2)
        self.assertFalse(trade.replayed)
        correction = self.cut(lambda: self.books.CorrectTrade(bk.CorrectTradeRequest(
            book_id="desk", trade_id="t1", replacement_legs=[self.leg(7)], reason="fat finger"), timeout=TIMEOUT))
        self.assertEqual((correction.first_sequence, correction.last_sequence), (3, 3))
        keyed = self.cut(lambda: self.books.ExecuteTrade(bk.ExecuteTradeRequest(
            book_id="desk", trade_id="t2", legs=[self.leg(1)], idempotency_key="k-t2"), timeout=TIMEOUT))
        self.assertFalse(keyed.replayed)
        self.assertEqual(keyed.first_sequence, 4)
        # The COMMIT itself lost: nothing was written, so the agent's retry on a
        # new connection is safe, and the client sees one trade.
        self.proxy.drop_commit = True
        dropped = self.cut(lambda: self.books.ExecuteTrade(bk.ExecuteTradeRequest(
            book_id="desk", trade_id="t3", legs=[self.leg(2)]), timeout=TIMEOUT))
        self.assertEqual(dropped.first_sequence, 5)
        self.assertEqual(self.journal(), [ev.BOOK_OPENED, ev.TRADE_EXECUTED, ev.TRADE_CORRECTED,
                                          ev.TRADE_EXECUTED, ev.TRADE_EXECUTED])
        book = self.books.GetBook(bk.GetBookRequest(book_id="desk"), timeout=TIMEOUT)
        self.assertEqual(book.version, 5)
        self.assertEqual(sorted(p.quantity for p in book.positions), [10])
        # Committed, then the store out of reach past the 5 s the server gives
        # itself to learn the outcome: the client is told the outcome is
        # unknown, and nothing retries it as if nothing had been written (a
        # keyless correction was journaled twice: found in review).
        self.proxy.drop_commit = False
        self.proxy.down_after_cut = 7 * SLOWDOWN
        with self.assertRaises(grpc.RpcError) as caught:
            self.cut(lambda: self.books.CorrectTrade(bk.CorrectTradeRequest(
                book_id="desk", trade_id="t3", replacement_legs=[self.leg(5)], reason="size"), timeout=TIMEOUT))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE, caught.exception.details())
        self.assertIn("its outcome could not be learnt: it may have been recorded", caught.exception.details())
        time.sleep(max(0.0, self.proxy.refuse_until - time.monotonic()) + 0.5)
        self.assertEqual(self.journal().count(ev.TRADE_CORRECTED), 2)  # t1's and this one, once

    def assert_lost_commit_recorded_once(self, on_cut):
        """A keyed trade whose COMMIT is lost, on_cut run while greeksd waits:
        answered as new, at sequence 2, and journaled once."""
        self.proxy.drop_commit = True
        self.proxy.on_cut = on_cut
        trade = self.cut(lambda: self.books.ExecuteTrade(bk.ExecuteTradeRequest(
            book_id="desk", trade_id="t1", legs=[self.leg(10)], idempotency_key="k-t1"), timeout=TIMEOUT))
        self.assertEqual((trade.first_sequence, trade.replayed), (2, False))
        self.assertEqual(self.journal(), [ev.BOOK_OPENED, ev.TRADE_EXECUTED])

    def test_a_transaction_id_reused_after_a_crash_does_not_answer_for_the_lost_append(self):
        """PostgreSQL crashed with the COMMIT in flight: the append is lost, and
        the restarted server hands its transaction id out again (the inserts'
        WAL was never flushed). Another client's transaction took it and
        committed, txid_status said "committed", and greeksd acknowledged a
        trade that was not in the journal; its keyed resend then ran as new
        (found in review: 4 of 10,483 acknowledged trades lost over 8 crashes).
        The append is now answered by its own first event: not there, nothing
        written, so the agent's retry records it once."""
        self.books.OpenBook(bk.OpenBookRequest(book_id="desk", name="desk", currency="USD"), timeout=TIMEOUT)

        def crash_restart_and_let_another_client_commit():
            pg("crash", self.pg_dir, os.environ)
            pg("resume", self.pg_dir, os.environ)
            p = subprocess.run([PSQL, self.conninfo, "-tA", "-c", "SELECT txid_current()"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)

        self.assert_lost_commit_recorded_once(crash_restart_and_let_another_client_commit)
        resent = self.books.ExecuteTrade(bk.ExecuteTradeRequest(
            book_id="desk", trade_id="t1", legs=[self.leg(10)], idempotency_key="k-t1"), timeout=TIMEOUT)
        self.assertEqual((resent.first_sequence, resent.replayed), (2, True))
        book = self.books.GetBook(bk.GetBookRequest(book_id="desk"), timeout=TIMEOUT)
        self.assertEqual((book.version, [p.quantity for p in book.positions]), (2, [10]))

    def test_a_backend_crash_is_told_apart_from_a_strangers_transaction_under_the_reused_id(self):
        """One backend killed (an OOM kill): the server reinitialises without a
        new start time, forgets the append, and hands its id to a stranger whose
        transaction stays open past the 5 s greeksd gives itself. txid_status
        said "in progress" throughout, and the client was told the outcome was
        unknown, "it may have been recorded", for a trade never written (found
        in review). The append's session is gone, so the journal answers:
        nothing written, retried, recorded once."""
        self.books.OpenBook(bk.OpenBookRequest(book_id="desk", name="desk", currency="USD"), timeout=TIMEOUT)
        victim = subprocess.Popen([PSQL, self.conninfo, "-tA", "-c", "SELECT pg_sleep(60)"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(victim.kill)

        def victim_pid():
            p = subprocess.run([PSQL, self.conninfo, "-tA", "-c", "SELECT pid FROM pg_stat_activity WHERE "
                                "query = 'SELECT pg_sleep(60)'"], capture_output=True, text=True, timeout=60)
            return p.stdout.strip()
        pid = int(poll("the victim backend", victim_pid))
        strangers = []

        def kill_one_backend_and_let_a_stranger_take_the_id():
            os.kill(pid, signal.SIGKILL)  # pg_ctl stop is not involved: the postmaster stays
            victim.wait(timeout=60)
            poll("the server back", lambda: subprocess.run(
                [PSQL, self.conninfo, "-tA", "-c", "SELECT 1"], capture_output=True, timeout=60).returncode == 0)
            strangers.append(subprocess.Popen(
                [PSQL, self.conninfo, "-tA", "-c", "BEGIN; SELECT txid_current(); SELECT pg_sleep(%g); COMMIT;" %
                 (6 * SLOWDOWN)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(0.5)  # its id taken

        self.assert_lost_commit_recorded_once(kill_one_backend_and_let_a_stranger_take_the_id)
        for stranger in strangers:
            self.assertEqual(stranger.wait(timeout=60), 0)



class DeletedSqliteStore(unittest.TestCase):
    """The SQLite store's directory removed under a running greeksd (a tmp
    cleaner, a mistaken rm, a restore). In WAL mode SQLite went on committing to
    the unlinked file: trades were acknowledged, /readyz said ready, and after a
    restart the books were gone and a resent key was recorded again as new
    (found in review). Now the probe fails, readiness and BookService health say
    so, and a trade fails UNAVAILABLE, acknowledging nothing."""

    def test_a_deleted_store_file_fails_readiness_and_every_command(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        store_dir = os.path.join(tmp.name, "store")
        os.mkdir(store_dir)
        port_file = os.path.join(tmp.name, "metrics-port")
        server = Server("--book-store", "sqlite:" + os.path.join(store_dir, "books.db"),
                        "--metrics-listen", "127.0.0.1:0", "--metrics-port-file", port_file)
        self.addCleanup(server.close)
        with open(port_file) as f:
            base = "http://127.0.0.1:%d" % int(f.read())
        channel = grpc.insecure_channel(server.target)
        self.addCleanup(channel.close)
        books = bk_grpc.BookServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        books.OpenBook(bk.OpenBookRequest(book_id="desk", name="desk", currency="USD"), timeout=TIMEOUT)
        status, body = http_get(base + "/readyz")
        self.assertEqual(status, 200, body)
        # what was opened, absolute: the bracket an operator reads
        self.assertEqual(json.loads(body)["store"]["description"], "sqlite:" + os.path.join(store_dir, "books.db"))

        subprocess.run(["rm", "-rf", store_dir], check=True, timeout=30)
        status, ready = poll("/readyz 503 once the store file is gone",
                             lambda: (lambda r: (r[0], json.loads(r[1])) if r[0] == 503 else None)(
                                 http_get(base + "/readyz")))
        self.assertFalse(ready["store"]["reachable"])
        self.assertIn("deleted, moved or replaced", ready["store"]["error"])
        self.assertEqual(health.Check(health_pb2.HealthCheckRequest(service=BOOK), timeout=TIMEOUT).status,
                         NOT_SERVING)
        self.assertIn("greeks_store_up 0", http_get(base + "/metrics")[1])
        with self.assertRaises(grpc.RpcError) as refused:
            books.OpenBook(bk.OpenBookRequest(book_id="desk2", name="desk2", currency="USD",
                                              idempotency_key="open-desk2"), timeout=TIMEOUT)
        self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("deleted, moved or replaced", refused.exception.details())
        poll("a WARN line for the store", lambda: "unreachable" in server.stderr())
        # the refused OpenBook failed at its append (a new book reads nothing
        # first): an ERROR line says so
        line = poll("an ERROR line for the failed append",
                    lambda: next((x for x in server.stderr().splitlines() if "calls failed since the last" in x), None))
        failed = re.search(r"calls failed since the last probe: (\d+) \(appends (\d+), reads 0; (\d+) since the start\)",
                           line)
        self.assertTrue(failed and int(failed.group(1)) == int(failed.group(2)) == int(failed.group(3)) >= 1, line)
        self.assertIn("deleted, moved or replaced", line)
        self.assertTrue("ERROR" in line or '"error"' in line, line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
