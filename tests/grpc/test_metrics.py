"""greeksd's HTTP listener end to end (adr/0031, docs/metrics.md): /metrics
counts exactly the calls this test makes (checked against the test's own
tally, not against captured output) and passes `promtool check metrics`;
/healthz and /readyz answer with each component's state, and /readyz turns 503
"draining" after SIGTERM while a call keeps the drain going; a real Prometheus
server scrapes greeksd every second and its query API returns the series the
test caused. Also: the listener's off switch and a taken explicit port.

Environment (tests/CMakeLists.txt): GREEKSD, GREEKS_STUBS, GREEKS_TEST_SLOWDOWN.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_grpc import CLI, DATA, Server, SLOWDOWN, GREEKSD  # noqa: E402  (also puts the stubs on sys.path)

import grpc  # noqa: E402
from greeks.v1 import pricing_pb2 as pb  # noqa: E402
from greeks.v1 import pricing_pb2_grpc as pb_grpc  # noqa: E402
from greeks.v1 import book_pb2 as bk  # noqa: E402
from greeks.v1 import book_pb2_grpc as bk_grpc  # noqa: E402
from greeks.events.v1 import book_events_pb2 as ev  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402

TIMEOUT = 30 * SLOWDOWN
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
US_PER_DAY = 86400 * 10**6
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def http_get(url, timeout=10):
    """(status, content type, body) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of every sample line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def value(samples, name, **labels):
    """The sum over the series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MetricsServer(Server):
    """greeksd with its HTTP listener on a free port (written to a file)."""

    def __init__(self, *args, **kw):
        self.metrics_dir = tempfile.TemporaryDirectory()
        port_file = os.path.join(self.metrics_dir.name, "metrics-port")
        super().__init__("--metrics-listen", "127.0.0.1:0", "--metrics-port-file", port_file, *args, **kw)
        with open(port_file) as f:  # written before the gRPC port file
            self.metrics_port = int(f.read())
        self.base = "http://127.0.0.1:%d" % self.metrics_port

    def close(self):
        super().close()
        self.metrics_dir.cleanup()

    def metrics(self):
        status, content_type, body = http_get(self.base + "/metrics")
        assert status == 200, (status, body)
        assert content_type.startswith("text/plain; version=0.0.4"), content_type
        return body


def chain(n, strike0=90.0, spot=100.0):
    return pb.PriceChainRequest(model=pb.MODEL_BSM, market=pb.Market(spot=spot, rate=0.03),
                                contracts=pb.ChainContracts(strike=[strike0 + i for i in range(n)],
                                                            expiry=[0.5] * n, vol=[0.2] * n, type=[pb.CALL] * n))


class MetricsServedTestCase(unittest.TestCase):
    """One greeksd with its metrics listener per class, and its stubs; the
    server must exit cleanly (sanitizer builds report there)."""

    @classmethod
    def setUpClass(cls):
        cls.server = MetricsServer()
        cls.channel = grpc.insecure_channel(cls.server.target)
        cls.pricing = pb_grpc.PricingServiceStub(cls.channel)
        cls.books = bk_grpc.BookServiceStub(cls.channel)
        cls.health = health_pb2_grpc.HealthStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code = cls.server.stop()
        log = cls.server.stderr()
        cls.server.close()
        assert code == 0, "greeksd exited %d: %s" % (code, log[-3000:])


class Exposition(MetricsServedTestCase):

    def wait_for(self, predicate, what):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            samples = parse_metrics(self.server.metrics())
            if predicate(samples):
                return samples
            time.sleep(0.05)
        self.fail("metrics never showed " + what)

    def test_counters_move_by_exactly_the_calls_made(self):
        before = parse_metrics(self.server.metrics())
        ok_chains, sizes = 7, [5, 1, 3, 8, 2, 5, 4]
        for n in sizes:
            self.assertEqual(len(self.pricing.PriceChain(chain(n), timeout=TIMEOUT).greeks.price), n)
        for _ in range(2):  # a negative spot: refused before the pricing agent
            with self.assertRaises(grpc.RpcError) as caught:
                self.pricing.PriceChain(chain(3, spot=-5.0), timeout=TIMEOUT)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.books.OpenBook(bk.OpenBookRequest(book_id="m1", name="metrics", currency="USD"), timeout=TIMEOUT)
        self.books.UpdateMarket(bk.UpdateMarketRequest(book_id="m1", quotes=[
            bk.MarketQuote(underlying="AAPL", spot=100, rate=0.03, vol=0.2)]), timeout=TIMEOUT)
        expiry = int(time.time() * 1e6) + 90 * US_PER_DAY
        for i in range(3):
            leg = ev.Leg(instrument=ev.Instrument(underlying="AAPL", kind=ev.OPTION, option_type=ev.CALL,
                                                  style=ev.EUROPEAN, strike=100 + i, expiry_us=expiry,
                                                  multiplier=100), quantity=1 + i, price=4.0)
            self.books.ExecuteTrade(bk.ExecuteTradeRequest(book_id="m1", trade_id="t%d" % i, legs=[leg]),
                                    timeout=TIMEOUT)
        with self.assertRaises(grpc.RpcError) as caught:
            self.books.ExecuteTrade(bk.ExecuteTradeRequest(book_id="nobody", trade_id="t", legs=[leg]),
                                    timeout=TIMEOUT)
        trade_error = caught.exception.code().name  # e.g. NOT_FOUND
        go_name = "".join(w.capitalize() for w in trade_error.split("_"))
        answer = self.health.Check(health_pb2.HealthCheckRequest(service="greeks.v1.BookService"), timeout=TIMEOUT)
        self.assertEqual(answer.status, health_pb2.HealthCheckResponse.SERVING)

        pc = dict(grpc_service="greeks.v1.PricingService", grpc_method="PriceChain", grpc_type="unary")
        et = dict(grpc_service="greeks.v1.BookService", grpc_method="ExecuteTrade", grpc_type="unary")
        # A call is counted when greeksd frees it, a moment after the client has its answer.
        after = self.wait_for(lambda s: value(s, "grpc_server_handled_total", grpc_method="Check")
                              - value(before, "grpc_server_handled_total", grpc_method="Check") >= 1
                              and value(s, "grpc_server_handling_seconds_count", **pc)
                              - value(before, "grpc_server_handling_seconds_count", **pc) >= 9
                              and value(s, "grpc_server_handled_total", **et)
                              - value(before, "grpc_server_handled_total", **et) >= 4, "every call handled")

        def moved(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        self.assertEqual(moved("grpc_server_started_total", **pc), 9)
        self.assertEqual(moved("grpc_server_handled_total", grpc_code="OK", **pc), ok_chains)
        self.assertEqual(moved("grpc_server_handled_total", grpc_code="InvalidArgument", **pc), 2)
        self.assertEqual(moved("grpc_server_handled_total", **pc), 9)
        self.assertEqual(moved("grpc_server_handling_seconds_bucket", le="+Inf", **pc), 9)
        self.assertEqual(moved("grpc_server_started_total", **et), 4)
        self.assertEqual(moved("grpc_server_handled_total", grpc_code="OK", **et), 3)
        self.assertEqual(moved("grpc_server_handled_total", grpc_code=go_name, **et), 1)
        self.assertEqual(moved("grpc_server_started_total", grpc_method="OpenBook"), 1)
        self.assertEqual(moved("grpc_server_started_total", grpc_method="UpdateMarket"), 1)
        self.assertEqual(moved("grpc_server_handled_total", grpc_method="Check", grpc_code="OK"), 1)
        self.assertEqual(moved("grpc_server_started_total"), 9 + 4 + 1 + 1 + 1)  # nothing else
        # The pricing agent: every option of the accepted chains, on the active ISA, as BSM.
        isa = [dict(ls)["isa"] for (n, ls) in after if n == "greeks_build_info"][0]
        self.assertEqual(moved("greeks_options_priced_total", model="bsm", isa=isa), sum(sizes))
        self.assertEqual(moved("greeks_options_priced_total"), sum(sizes))
        # Small chains are priced on the gRPC thread (adr/0038): never queued.
        self.assertEqual(moved("greeks_pricing_inline_requests_total"), ok_chains)
        self.assertEqual(moved("greeks_agent_messages_received_total", agent="pricing"), 0)
        self.assertEqual(moved("greeks_pricing_queue_wait_seconds_count"), 0)
        self.assertGreaterEqual(moved("greeks_pricing_batch_options_count"), 1)
        self.assertEqual(moved("greeks_pricing_batch_options_sum"), sum(sizes))
        # The journal: one BookOpened, one MarketUpdated, three TradeExecuted.
        self.assertEqual(moved("greeks_book_events_committed_total", type="BookOpened"), 1)
        self.assertEqual(moved("greeks_book_events_committed_total", type="MarketUpdated"), 1)
        self.assertEqual(moved("greeks_book_events_committed_total", type="TradeExecuted"), 3)
        self.assertEqual(moved("greeks_store_events_appended_total"), moved("greeks_book_events_committed_total"))
        self.assertEqual(moved("greeks_store_appends_total", result="ok"), 5)
        self.assertEqual(moved("greeks_store_append_seconds_count"), 5 + moved("greeks_store_appends_total",
                                                                               result="error"))
        # Every BookService command goes through the execution agent, the refused trade too.
        self.assertEqual(moved("greeks_agent_messages_received_total", agent="execution"), 6)
        self.assertEqual(moved("greeks_agent_messages_handled_total", agent="execution"), 6)
        # Gauges and info.
        self.assertEqual(value(after, "greeks_breaker_state", state="CLOSED"), 1)
        for agent in ("pricing", "compute", "intake", "book-queries", "execution", "risk", "strategy"):
            self.assertEqual(value(after, "greeks_agent_state", agent=agent, state="running"), 1, agent)
            self.assertEqual(value(after, "greeks_agent_state", agent=agent, state="stopped"), 0, agent)
        # every agent clients reach has both refusal series (the strategy agent
        # had none, the others no "stopping" one; found in review); once each
        for agent in ("pricing", "compute", "intake", "book-queries", "execution", "strategy"):
            for reason in ("mailbox_full", "stopping"):
                series = [k for k in after if k[0] == "greeks_agent_rejected_total"
                          and {("agent", agent), ("reason", reason)} <= set(k[1])]
                self.assertEqual(len(series), 1, (agent, reason))
        self.assertEqual(value(after, "greeks_store_up"), 1)
        self.assertEqual(value(after, "greeks_server_draining"), 0)
        self.assertGreater(value(after, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(value(after, "process_open_fds"), 3)
        self.assertGreaterEqual(value(after, "process_threads"), 4)
        self.assertGreater(value(after, "process_cpu_seconds_total"), 0)
        self.assertEqual(value(after, "greeks_config_info", server_threads="4", tls="false"), 1)

    def test_a_write_lock_held_elsewhere_counts_as_store_faults(self):
        """SQLite's write lock held by another process: the probe (a read)
        still passes, so greeks_store_up stays 1; the appends that wait past
        the busy timeout are the store's faults
        (greeks_store_append_faults_total, what GreeksdBookStoreWritesFailing
        watches), and the trade is retried and lands once the lock goes.
        Release build only: its seconds are SQLite's busy timeout, not code
        the sanitizer builds would see more of (make test's time budget)."""
        if SLOWDOWN > 1:
            self.skipTest("release build only: the wait is SQLite's 5 s busy timeout")
        import sqlite3
        self.books.OpenBook(bk.OpenBookRequest(book_id="locked", name="locked", currency="USD"), timeout=TIMEOUT)
        before = parse_metrics(self.server.metrics())
        db = sqlite3.connect(os.path.join(self.server.dir.name, "books.db"), timeout=30, isolation_level=None,
                             check_same_thread=False)
        db.execute("BEGIN EXCLUSIVE")
        leg = ev.Leg(instrument=ev.Instrument(underlying="AAPL", kind=ev.UNDERLYING), quantity=5, price=100.0)
        request = bk.ExecuteTradeRequest(book_id="locked", trade_id="L1", legs=[leg], idempotency_key="locked-L1")
        future = self.books.ExecuteTrade.future(request, timeout=120 * SLOWDOWN)
        # held until an append has failed past SQLite's 5 s busy timeout (a
        # fixed hold missed it when the append started late: found in review)
        try:
            self.wait_for(lambda s: value(s, "greeks_store_append_faults_total")
                          > value(before, "greeks_store_append_faults_total"), "an append failing on the lock")
            self.assertEqual(value(parse_metrics(self.server.metrics()), "greeks_store_up"), 1)  # the probe passes
        finally:
            db.execute("ROLLBACK")
            db.close()
        reply = future.result()
        self.assertGreater(reply.first_sequence, 1)
        self.assertFalse(reply.replayed)
        after = self.wait_for(lambda s: value(s, "greeks_store_appends_total", result="ok")
                              > value(before, "greeks_store_appends_total", result="ok"), "the trade's append")

        def moved(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        self.assertGreaterEqual(moved("greeks_store_append_faults_total"), 1)
        self.assertEqual(moved("greeks_store_append_faults_total"), moved("greeks_store_appends_total",
                                                                          result="error"))
        self.assertEqual(moved("greeks_store_appends_total", result="ok"), 1)
        self.assertEqual(value(after, "greeks_store_up"), 1)  # why the alert watches appends, not the probe

    def test_deadline_ended_streams_count_as_deadline_exceeded(self):
        """The client resets a stream at its deadline a little before the
        server's copy of it passes: such calls were counted Canceled, spending
        no error budget (found in review: 3 of 8)."""
        # named to run before test_slow_clients_..., whose held connections from
        # this address refuse /metrics for 10 s
        watch = dict(grpc_service="grpc.health.v1.Health", grpc_method="Watch")
        before = parse_metrics(self.server.metrics())
        for _ in range(8):
            with self.assertRaises(grpc.RpcError) as caught:
                for _answer in self.health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=0.3):
                    pass
            self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        after = self.wait_for(lambda s: value(s, "grpc_server_handled_total", **watch)
                              - value(before, "grpc_server_handled_total", **watch) >= 8, "the 8 watches handled")

        def moved(code):
            return value(after, "grpc_server_handled_total", grpc_code=code, **watch) - \
                value(before, "grpc_server_handled_total", grpc_code=code, **watch)
        self.assertEqual(moved("DeadlineExceeded"), 8)
        self.assertEqual(moved("Canceled"), 0)

    @unittest.skipIf(SLOWDOWN > 1, "a 10 s wait that tests no race: the plain suite's")
    def test_the_heap_is_trimmed_while_only_standing_streams_are_open(self):
        """greeksd returns its free heap every 10 s while no call is in
        flight; an open Health.Watch or SubscribeEvents counted as one, so an
        instance with a subscriber kept a burst's peak for as long as it was
        subscribed (221 MB held against 100 once the Watch closed: found in
        review). A trim runs within 10 s (and one health-thread pass) of the
        Watch opening, and the Watch is counted as a standing stream."""
        watch = self.health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
        try:
            next(watch)
            samples = self.wait_for(lambda s: value(s, "greeks_server_standing_streams") == 1, "the Watch standing")
            self.assertGreaterEqual(value(samples, "greeks_server_calls_in_flight"), 1)
            before = value(samples, "greeks_heap_trims_total")
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                samples = parse_metrics(self.server.metrics())
                if value(samples, "greeks_heap_trims_total") > before:
                    break
                time.sleep(0.2)
            self.assertGreater(value(samples, "greeks_heap_trims_total"), before,
                               "no heap trim in 12 s with only a Watch open")
            self.assertEqual(value(samples, "greeks_server_standing_streams"), 1)
        finally:
            watch.cancel()
        self.wait_for(lambda s: value(s, "greeks_server_standing_streams") == 0, "the Watch gone")

    def test_promtool_accepts_the_exposition(self):
        self.pricing.PriceChain(chain(4), timeout=TIMEOUT)
        body = self.server.metrics()
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.strip() + p.stderr.strip(), "", "promtool lint findings")
        for family in ("grpc_server_started_total", "grpc_server_handled_total", "grpc_server_handling_seconds",
                       "greeks_options_priced_total", "greeks_pricing_batch_options",
                       "greeks_pricing_queue_wait_seconds", "greeks_agent_mailbox_depth", "greeks_agent_rejected_total",
                       "greeks_agent_dead_letters_total", "greeks_breaker_state", "greeks_breaker_transitions_total",
                       "greeks_pool_busy_seconds_total", "greeks_store_append_seconds", "greeks_store_replay_seconds",
                       "greeks_risk_limit_breaches_total", "process_cpu_seconds_total", "greeks_build_info",
                       "greeks_config_info"):
            self.assertIn("# TYPE %s " % family, body)

    def test_liveness_readiness_and_other_paths(self):
        status, content_type, body = http_get(self.server.base + "/healthz")
        self.assertEqual((status, content_type, json.loads(body)), (200, "application/json", {"status": "alive"}))
        status, _, body = http_get(self.server.base + "/readyz")
        ready = json.loads(body)
        self.assertEqual(status, 200, body)
        self.assertEqual(ready["status"], "ready")
        self.assertFalse(ready["draining"])
        self.assertTrue(ready["store"]["reachable"])
        self.assertTrue(ready["store"]["description"].startswith("sqlite:"))
        self.assertEqual(ready["agents"], {"pricing": "running", "compute": "running", "intake": "running", "book-queries": "running",
                                           "execution": "running", "risk": "running", "strategy": "running"})
        self.assertEqual(ready["breaker"], {"pricing": "CLOSED"})
        self.assertGreaterEqual(ready["pool"]["threads"], 1)
        self.assertEqual(ready["services"]["greeks.v1.BookService"], "SERVING")
        status, _, body = http_get(self.server.base + "/nothing")
        self.assertEqual(status, 404)
        request = urllib.request.Request(self.server.base + "/metrics", data=b"x", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        self.assertEqual(caught.exception.code, 405)
        self.assertEqual(caught.exception.headers.get("Allow"), "GET, HEAD")

    def test_slow_clients_on_one_address_leave_the_probes_to_others(self):
        """40 connections from 127.0.0.1 each sending a header line a second
        (the timeout is an idle one, so they never time out): they once took all
        32 slots and /healthz timed out. One address now holds at most 16 of
        256; the probe from 127.0.0.2 answers at once."""
        slow = []
        try:
            for _ in range(40):
                c = socket.create_connection(("127.0.0.1", self.server.metrics_port), timeout=5)
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                slow.append(c)
            for _ in range(3):  # keep them busy past any idle check
                time.sleep(0.5)
                for c in slow:
                    try:
                        c.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        pass  # refused over the per-address limit: closed
            probe = socket.create_connection(("127.0.0.1", self.server.metrics_port), timeout=5,
                                             source_address=("127.0.0.2", 0))
            with probe:
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = probe.recv(4096)
            self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:200])
        finally:
            for c in slow:
                c.close()
            # the listener drops the closed ones at its own pace: until it has,
            # 127.0.0.1 is still over its limit and the next test's scrape was
            # reset (a flake seen in CI once)
            deadline = time.monotonic() + 10 * SLOWDOWN
            while time.monotonic() < deadline:
                try:
                    if http_get(self.server.base + "/healthz", timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.1)


class FailingKernels(unittest.TestCase):
    def test_counts_under_failing_kernels_say_what_happened(self):
        """Every kernel call fails (GREEKSD_TEST_FAULT=fail), then the breaker
        opens. Calls queued to the pricing agent end dead-lettered: they are
        finished (handled_total counts every outcome, as the execution agent
        does; it counted successes only, so they looked like a backlog), and
        small chains priced on the gRPC thread are counted as inline only
        once priced (the breaker's refusals and failed kernels were counted).
        Found in review."""
        server = MetricsServer("--breaker-minimum-calls", "5", "--breaker-window-calls", "10",
                               env={"GREEKSD_TEST_FAULT": "fail"})
        try:
            channel = grpc.insecure_channel(server.target)
            pricing = pb_grpc.PricingServiceStub(channel)
            before = parse_metrics(server.metrics())
            codes = []
            for n in (4, 4, 5000, 4, 4, 5000, 4, 4):  # small ones inline, 5000 through the agent
                with self.assertRaises(grpc.RpcError) as raised:
                    pricing.PriceChain(chain(n), timeout=TIMEOUT)
                codes.append(raised.exception.code())
            self.assertIn(grpc.StatusCode.INTERNAL, codes)
            self.assertIn(grpc.StatusCode.UNAVAILABLE, codes)  # the breaker opened
            deadline = time.monotonic() + 10
            while True:
                after = parse_metrics(server.metrics())
                if value(after, "grpc_server_handled_total", grpc_method="PriceChain") - \
                        value(before, "grpc_server_handled_total", grpc_method="PriceChain") >= 8 or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.05)

            def moved(name, **labels):
                return value(after, name, **labels) - value(before, name, **labels)

            received = moved("greeks_agent_messages_received_total", agent="pricing")
            self.assertGreaterEqual(received, 1)
            self.assertEqual(moved("greeks_agent_messages_handled_total", agent="pricing"), received)
            self.assertEqual(value(after, "greeks_agent_mailbox_depth", agent="pricing"), 0)
            self.assertEqual(moved("greeks_options_priced_total"), 0)
            self.assertEqual(moved("greeks_pricing_inline_requests_total"), 0)
            channel.close()
        finally:
            server.stop()
            server.close()


class LargeRequestsDecodedOffTheCqThread(MetricsServedTestCase):
    """A PriceChain or PriceBatch of more than 256 KiB is decoded on the intake
    agent, an ImpliedVol on the compute agent, not on the completion-queue
    thread (adr/0045): the answer must be the one its slices get where they arrive,
    bit for bit, element errors included; request errors must name the field
    as there; and the agents' counters show which path a PriceBatch took."""

    def received(self, agent):
        """Messages sent to the agent so far: counted when sent, before any
        reply, so a call's answer means its hand-offs are counted."""
        return value(parse_metrics(self.server.metrics()), "greeks_agent_messages_received_total", agent=agent)

    @staticmethod
    def request(n, seed, american=False):
        rng = random.Random(seed)
        columns = {k: [] for k in ("spot", "strike", "expiry", "rate", "yield", "vol", "type")}
        for i in range(n):
            for k, low, high in (("spot", 50, 150), ("strike", 50, 150), ("expiry", 0.01, 3), ("rate", 0.0, 0.08),
                                 ("yield", 0, 0.05), ("vol", 0.05, 0.9)):
                columns[k].append(rng.uniform(low, high))
            columns["type"].append(rng.choice([pb.CALL, pb.PUT]))
        columns["vol"][5] = -0.2            # element errors, far apart
        columns["type"][n - 7] = pb.OPTION_TYPE_UNSPECIFIED
        extra = dict(style=[pb.AMERICAN] * n, american_method=pb.AMERICAN_METHOD_BS2002) if american else {}
        return pb.PriceBatchRequest(model=pb.MODEL_BSM, outputs=[pb.ALL_FIRST_ORDER], **columns, **extra)

    @staticmethod
    def slice_of(request, begin, end):
        part = pb.PriceBatchRequest()
        part.CopyFrom(request)
        for field in ("spot", "strike", "expiry", "rate", "yield", "vol", "type", "style"):
            column = getattr(part, field)
            if len(column):
                kept = list(column)[begin:end]
                del column[:]
                column.extend(kept)
        return part

    def assert_same_as_slices(self, request, pieces, downstream):
        n = len(request.spot)
        self.assertGreater(request.ByteSize(), 256 * 1024)  # the intake's threshold
        before = {a: self.received(a) for a in ("intake", downstream)}
        whole = self.pricing.PriceBatch(request, timeout=TIMEOUT)
        self.assertEqual(self.received("intake") - before["intake"], 1)
        self.assertEqual(self.received(downstream) - before[downstream], 1)
        step = n // pieces
        errors = []
        for begin in range(0, n, step):
            part = self.slice_of(request, begin, begin + step)
            self.assertLess(part.ByteSize(), 256 * 1024)  # decoded where it arrives
            reply = self.pricing.PriceBatch(part, timeout=TIMEOUT)
            for name in ("price", "delta", "gamma", "vega", "theta", "rho", "phi"):
                got = list(getattr(whole.greeks, name))[begin:begin + step]
                self.assertEqual(got, list(getattr(reply.greeks, name)), name)  # bit for bit
            errors += [(e.index + begin, e.field, e.reason) for e in reply.errors]
        self.assertEqual(self.received("intake") - before["intake"], 1)  # the slices never went there
        self.assertEqual([(e.index, e.field, e.reason) for e in whole.errors], errors)
        self.assertEqual([e[0] for e in errors], [5, n - 7])

    def test_a_large_european_batch_is_its_slices(self):
        # 12,000 contracts: priced by the agent, not inline
        self.assert_same_as_slices(self.request(12000, seed=31), 12, "pricing")

    def test_a_large_american_batch_is_its_slices(self):
        # American contracts: the compute agent's pool
        self.assert_same_as_slices(self.request(6000, seed=32, american=True), 6, "compute")

    def test_a_large_bad_request_names_the_field(self):
        request = self.request(12000, seed=33)
        request.strike.append(100.0)
        before = self.received("intake")
        with self.assertRaises(grpc.RpcError) as raised:
            self.pricing.PriceBatch(request, timeout=TIMEOUT)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("'strike'", raised.exception.details())
        self.assertEqual(self.received("intake") - before, 1)

    def test_a_large_chain_is_its_slices(self):
        # A PriceChain over 256 KiB is decoded on the intake agent too.
        rng = random.Random(36)
        n = 12000
        strike = [rng.uniform(50, 150) for _ in range(n)]
        expiry = [rng.uniform(0.01, 3) for _ in range(n)]
        vol = [rng.uniform(0.05, 0.9) for _ in range(n)]
        types = [rng.choice([pb.CALL, pb.PUT]) for _ in range(n)]
        vol[11] = -0.1  # an element error

        def chain(begin, end):
            return pb.PriceChainRequest(model=pb.MODEL_BSM, market=pb.Market(spot=100.0, rate=0.03, **{"yield": 0.01}),
                                        contracts=pb.ChainContracts(strike=strike[begin:end], expiry=expiry[begin:end],
                                                                    vol=vol[begin:end], type=types[begin:end]),
                                        outputs=[pb.ALL_FIRST_ORDER])
        whole_request = chain(0, n)
        self.assertGreater(whole_request.ByteSize(), 256 * 1024)
        before = {a: self.received(a) for a in ("intake", "pricing")}
        whole = self.pricing.PriceChain(whole_request, timeout=TIMEOUT)
        self.assertEqual(self.received("intake") - before["intake"], 1)
        self.assertEqual(self.received("pricing") - before["pricing"], 1)  # 12,000 contracts: not inline
        errors = []
        for begin in range(0, n, 1000):
            reply = self.pricing.PriceChain(chain(begin, begin + 1000), timeout=TIMEOUT)
            for name in ("price", "delta", "gamma", "vega", "theta", "rho", "phi"):
                self.assertEqual(list(getattr(whole.greeks, name))[begin:begin + 1000],
                                 list(getattr(reply.greeks, name)), name)  # bit for bit
            errors += [(e.index + begin, e.field, e.reason) for e in reply.errors]
        self.assertEqual(self.received("intake") - before["intake"], 1)  # the slices never went there
        self.assertEqual([(e.index, e.field, e.reason) for e in whole.errors], errors)
        self.assertEqual([e[0] for e in errors], [11])

    def test_a_large_implied_vol_is_its_slices(self):
        # Over 256 KiB, an ImpliedVol is decoded on the compute agent that
        # solves it, paced; its vols and element errors are its slices'
        # (CircuitBreaker in test_grpc.py tells that path from the other).
        priced = self.request(12000, seed=35)
        prices = list(self.pricing.PriceBatch(priced, timeout=TIMEOUT).greeks.price)
        columns = {k: list(getattr(priced, k)) for k in ("spot", "strike", "expiry", "rate", "yield", "type")}
        request = pb.ImpliedVolRequest(model=pb.MODEL_BSM, price=prices, **columns)
        self.assertGreater(request.ByteSize(), 256 * 1024)
        whole = self.pricing.ImpliedVol(request, timeout=TIMEOUT)
        vols, errors = [], []
        for begin in range(0, 12000, 1000):
            part = pb.ImpliedVolRequest(model=pb.MODEL_BSM, price=prices[begin:begin + 1000],
                                        **{k: v[begin:begin + 1000] for k, v in columns.items()})
            reply = self.pricing.ImpliedVol(part, timeout=TIMEOUT)
            vols += list(reply.vol)
            errors += [(e.index + begin, e.field, e.reason) for e in reply.errors]
        self.assertEqual(list(whole.vol), vols)  # bit for bit
        self.assertEqual([(e.index, e.field, e.reason) for e in whole.errors], errors)
        self.assertIn(12000 - 7, [e[0] for e in errors])  # the unspecified type
        request.strike.append(100.0)
        with self.assertRaises(grpc.RpcError) as raised:
            self.pricing.ImpliedVol(request, timeout=TIMEOUT)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("'strike'", raised.exception.details())

    def test_a_large_request_protobuf_c_must_read_is_read(self):
        # model sent twice (legal protobuf, the last wins; not canonical): the
        # intake hands it to protobuf-c, which reads BLACK76.
        request = self.request(12000, seed=34)
        raw = self.channel.unary_unary("/greeks.v1.PricingService/PriceBatch")
        body = request.SerializeToString() + pb.PriceBatchRequest(model=pb.MODEL_BLACK76).SerializeToString()
        whole = pb.PriceResponse.FromString(raw(body, timeout=TIMEOUT))
        request.model = pb.MODEL_BLACK76
        part = self.pricing.PriceBatch(self.slice_of(request, 0, 1000), timeout=TIMEOUT)
        self.assertEqual(list(whole.greeks.price)[:1000], list(part.greeks.price))


class Draining(unittest.TestCase):
    def drain_held_by_a_stream(self, server, channel, twice=False):
        """SIGTERM (twice if `twice`, well within a second) while a RevaluePortfolioStream
        that does not end until released is in flight; returns (release, the
        call's future, /readyz's body) once readiness has turned 503."""
        release = threading.Event()

        def chunks():
            release.wait(TIMEOUT)
            return
            yield  # noqa: unreachable (makes this a generator)

        stub = pb_grpc.PricingServiceStub(channel)
        future = stub.RevaluePortfolioStream.future(chunks(), timeout=TIMEOUT)
        stream = dict(grpc_method="RevaluePortfolioStream")
        deadline = time.monotonic() + TIMEOUT
        while value(parse_metrics(server.metrics()), "grpc_server_started_total", **stream) < 1:
            self.assertLess(time.monotonic(), deadline, "the stream never reached greeksd")
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGTERM)
        if twice:  # once the first is taken: two pending ones would be one
            deadline = time.monotonic() + TIMEOUT
            while "draining:" not in server.stderr():
                self.assertLess(time.monotonic(), deadline, "the drain never began")
                time.sleep(0.005)
            server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + TIMEOUT
        while True:
            status, _, body = http_get(server.base + "/readyz")
            if status == 503:
                return release, future, body
            self.assertLess(time.monotonic(), deadline, "readiness never failed: " + body)
            time.sleep(0.05)

    def release_and_drain_to_the_end(self, server, release, future):
        """Lets the held stream end; the drain then finishes and greeksd exits 0."""
        release.set()
        try:
            future.result(timeout=TIMEOUT)
        except grpc.RpcError:
            pass  # an empty stream may be refused; the drain is what these tests are about
        self.assertEqual(server.proc.wait(timeout=TIMEOUT), 0, server.stderr()[-2000:])

    def test_a_call_refused_by_a_draining_instance_is_retried_on_another(self):
        """greeksd's own UNAVAILABLE (draining, the breaker open, the store
        unreachable) comes with response headers, which commit a gRPC call: the
        channel's retry policy never moved it to another instance, as the docs
        promise (found in review: 8 of 10 `greeks call` runs failed against a
        draining instance and a healthy one). The client library sends such a
        refused call again, round robin taking it to the next instance."""
        draining = MetricsServer("--drain-timeout-ms", str(int(30000 * SLOWDOWN)))
        healthy = MetricsServer()
        channel = grpc.insecure_channel(draining.target)
        try:
            release, future, _ = self.drain_held_by_a_stream(draining, channel)
            target = "%s,%s" % (draining.target, healthy.target)
            refused = 0
            for run in range(20):  # each process starts the list at an item of its own
                p = subprocess.run([CLI, "call", "--target", target, "price-batch",
                                    os.path.join(DATA, "cli", "good.csv")],
                                   capture_output=True, text=True, timeout=TIMEOUT)
                self.assertEqual(p.returncode, 0, p.stderr)
                refused = draining.stderr().count("the server is draining")
                if refused >= 2 and run >= 5:
                    break
            self.assertGreaterEqual(refused, 1, "no run reached the draining instance first")
            self.release_and_drain_to_the_end(draining, release, future)
        finally:
            channel.close()
            draining.close()
            healthy.stop()
            healthy.close()

    def test_readiness_turns_503_while_a_call_keeps_the_drain_going(self):
        server = MetricsServer("--drain-timeout-ms", str(int(30000 * SLOWDOWN)))
        channel = grpc.insecure_channel(server.target)
        try:
            release, future, body = self.drain_held_by_a_stream(server, channel)
            ready = json.loads(body)
            self.assertEqual(ready["status"], "draining")
            self.assertTrue(ready["draining"])
            self.assertEqual(ready["services"]["greeks.v1.PricingService"], "NOT_SERVING")
            self.assertEqual(http_get(server.base + "/healthz")[0], 200)  # alive while it drains
            self.assertEqual(value(parse_metrics(server.metrics()), "greeks_server_draining"), 1)
            self.release_and_drain_to_the_end(server, release, future)
        finally:
            channel.close()
            server.close()

    def test_a_second_sigterm_ends_the_drain_at_once(self):
        """An operator who signals again is not kept waiting for the drain (a
        second SIGTERM was ignored without a word: found on rereading the
        drain): greeksd exits 128 + 15 at once and says why, although the
        call in flight had minutes left."""
        server = MetricsServer("--drain-timeout-ms", "600000")
        channel = grpc.insecure_channel(server.target)
        try:
            release, future, _ = self.drain_held_by_a_stream(server, channel)
            time.sleep(1.1)  # one within a second of the first is the same stop (below)
            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            self.assertEqual(server.proc.wait(timeout=TIMEOUT), 128 + signal.SIGTERM, server.stderr()[-2000:])
            self.assertLess(time.monotonic() - signalled, 10 * SLOWDOWN)
            self.assertIn("second SIGTERM during the drain: exiting now (status 143)", server.stderr())
            self.assertFalse(release.is_set())
            with self.assertRaises(grpc.RpcError):
                future.result(timeout=TIMEOUT)  # its server is gone
            release.set()
        finally:
            channel.close()
            server.close()

    def test_a_sigterm_delivered_twice_at_once_still_drains(self):
        """A wrapper that forwards the stop to the process and to its group
        (coreutils' timeout) delivers SIGTERM twice within microseconds: that
        is one stop, and the drain runs to its end (it exited 143 at once in 2
        runs of 3: found in review)."""
        server = MetricsServer("--drain-timeout-ms", str(int(30000 * SLOWDOWN)))
        channel = grpc.insecure_channel(server.target)
        try:
            release, future, _ = self.drain_held_by_a_stream(server, channel, twice=True)
            time.sleep(0.5)
            self.assertIsNone(server.proc.poll(), server.stderr()[-2000:])  # still draining
            self.release_and_drain_to_the_end(server, release, future)
            self.assertIn("SIGTERM within a second of the first taken as the same stop", server.stderr())
        finally:
            channel.close()
            server.close()


class RealPrometheus(unittest.TestCase):
    def test_prometheus_scrapes_greeksd_and_answers_queries_on_its_series(self):
        server = MetricsServer()
        channel = grpc.insecure_channel(server.target)
        work = tempfile.TemporaryDirectory()
        prometheus = None
        try:
            calls = 6
            stub = pb_grpc.PricingServiceStub(channel)
            for _ in range(calls):
                stub.PriceChain(chain(3), timeout=TIMEOUT)
            config = os.path.join(work.name, "prometheus.yml")
            with open(config, "w") as f:
                f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        "scrape_configs:\n  - job_name: greeksd\n    scrape_interval: 1s\n    static_configs:\n"
                        "      - targets: ['127.0.0.1:%d']\n" % server.metrics_port)
            os.chmod(work.name, 0o777)  # nobody writes its database here when root is refused
            port = free_port()
            command = [PROMETHEUS, "--config.file=" + config, "--storage.tsdb.path=" + os.path.join(work.name, "data"),
                       "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"]
            log = open(os.path.join(work.name, "prometheus.log"), "w")
            prometheus = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            api = "http://127.0.0.1:%d/api/v1/" % port
            query = 'grpc_server_handled_total{grpc_method="PriceChain",grpc_code="OK"}'
            deadline = time.monotonic() + 45 * SLOWDOWN
            result = []
            while time.monotonic() < deadline:
                if prometheus.poll() is not None:
                    with open(log.name) as f:
                        self.fail("Prometheus exited %d: %s" % (prometheus.returncode, f.read()))
                try:
                    status, _, body = http_get(api + "query?query=" + urllib.parse.quote(query), timeout=5)
                except (urllib.error.URLError, ConnectionError, socket.timeout):
                    status, body = 0, ""
                if status == 200:
                    result = json.loads(body)["data"]["result"]
                    if result:
                        break
                time.sleep(0.25)
            with open(log.name) as f:
                self.assertEqual(len(result), 1, "Prometheus never had the series: %s" % f.read())
            series = result[0]
            self.assertEqual(series["metric"]["job"], "greeksd")
            self.assertEqual(series["metric"]["grpc_service"], "greeks.v1.PricingService")
            self.assertEqual(float(series["value"][1]), calls)
            _, _, body = http_get(api + "targets", timeout=5)
            (target,) = json.loads(body)["data"]["activeTargets"]
            self.assertEqual(target["health"], "up", target.get("lastError"))
        finally:
            log.close() if prometheus is not None else None
            if prometheus is not None:
                prometheus.terminate()
                try:
                    prometheus.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    prometheus.kill()
                    prometheus.wait()
            channel.close()
            code = server.stop()
            log = server.stderr()
            server.close()
            work.cleanup()
        self.assertEqual(code, 0, log[-3000:])


class Switches(unittest.TestCase):
    def run_greeksd(self, *args, env=None):
        with tempfile.TemporaryDirectory() as d:
            return subprocess.run([GREEKSD, "--listen", "127.0.0.1:0", "--book-store", "sqlite:" + d + "/b.db", *args],
                                  capture_output=True, text=True, timeout=TIMEOUT,
                                  env=dict(os.environ, **env) if env else None)

    def test_off_disables_the_listener(self):
        server = Server("--metrics-listen", "off")
        try:
            self.assertNotIn("/readyz on", server.stderr())
        finally:
            self.assertEqual(server.stop(), 0)
            server.close()

    def test_an_explicit_address_that_is_taken_stops_the_start(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            p = self.run_greeksd("--metrics-listen", "127.0.0.1:%d" % taken.getsockname()[1])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("--metrics-listen: cannot listen on", p.stderr)

    def test_why_it_did_not_start_is_a_record_in_the_log_format(self):
        """Under --log-format json every stderr line is a JSON object, the
        reason for not starting (exit 1) and start-up check refusals (exit 2)
        included: they were plain text, the one line a log pipeline needed
        (found in review)."""
        with socket.socket() as taken, tempfile.TemporaryDirectory() as d:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            p = self.run_greeksd("--metrics-listen", "127.0.0.1:%d" % taken.getsockname()[1], "--log-format", "json")
            self.assertEqual(p.returncode, 1, p.stderr)
            p2 = self.run_greeksd("--tls-cert", d + "/none.pem", "--tls-key", d + "/none.key", "--log-format", "json")
            self.assertEqual(p2.returncode, 2, p2.stderr)
        for run, says in ((p, "--metrics-listen: cannot listen on"), (p2, "--tls-cert: '%s/none.pem' cannot be read" % d)):
            records = [json.loads(line) for line in run.stderr.splitlines()]  # every line, or this raises
            errors = [r["message"] for r in records if r["level"] == "error"]
            self.assertTrue(any(says in m for m in errors), run.stderr)

    def test_a_taken_address_is_named_where_it_was_set(self):
        """The error named --metrics-listen (or --listen) for an address set by
        a variable or a file (found in review)."""
        with socket.socket() as taken, tempfile.TemporaryDirectory() as d:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            address = "127.0.0.1:%d" % taken.getsockname()[1]
            p = self.run_greeksd(env={"GREEKSD_METRICS_LISTEN": address})
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("GREEKSD_METRICS_LISTEN: cannot listen on '%s'" % address, p.stderr)
            config = os.path.join(d, "listen.yaml")
            with open(config, "w") as f:
                f.write("# the gRPC port\nlisten: %s\n" % address)
            p = subprocess.run([GREEKSD, "--config", config, "--metrics-listen", "off", "--book-store",
                                "sqlite:" + d + "/b.db"], capture_output=True, text=True, timeout=TIMEOUT)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("%s:2: listen: cannot listen on '%s'" % (config, address), p.stderr)

    def test_readyz_is_json_whatever_bytes_the_store_path_holds(self):
        """A store path in Latin-1 went into /readyz as raw bytes: not UTF-8,
        so not JSON (the log line was escaped)."""
        with tempfile.TemporaryDirectory() as d:
            directory = os.path.join(d.encode(), b"caf\xe9-\xff")
            os.mkdir(directory)
            server = MetricsServer("--book-store", b"sqlite:" + directory + b"/books.db")
            try:
                status, _, body = http_get(server.base + "/readyz")
                self.assertEqual(status, 200, body)
                ready = json.loads(body)  # http_get decodes strictly: a byte that is not UTF-8 raises
                self.assertIn("caf\ufffd-\ufffd", ready["store"]["description"])
            finally:
                self.assertEqual(server.stop(), 0)
                server.close()

    def test_a_bad_address_is_refused_by_name(self):
        p = self.run_greeksd("--metrics-listen", "nowhere")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--metrics-listen: 'nowhere' must be HOST:PORT", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
