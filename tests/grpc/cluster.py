"""Several greeksd on one PostgreSQL book store: the harness shared by
tests/grpc/test_cluster.py (correctness under SIGKILL and SIGTERM) and
bench/cluster-bench (trades per second, acknowledgement latency, recovery).

What:
- Postgres: a throwaway PostgreSQL 15 cluster (tests/support/pg_test_server.sh).
- Instance: one greeksd on it, restartable on the same port (a client's
  target list names fixed addresses, as a headless Service's DNS would).
- cluster_channel: a channel over every instance with round robin and the gRPC
  retry policy of docs/api.md ("Several instances"), so a call that ends
  UNAVAILABLE (an instance killed or draining) is retried on another by gRPC.
- TradeDriver: a client thread executing its own trades one at a time, each
  with a fixed idempotency key; a call that fails anyway is resent as is, at
  most `resend_budget` times (the application's retry budget on top of gRPC's).
  Every acknowledgement is kept with its latency, attempts and time.
- Subscriber: follows one book's SubscribeEvents from sequence 1 on one
  instance; when its stream ends UNAVAILABLE (instance gone or draining) it
  resumes from the last sequence seen + 1 on the cluster channel. Every
  envelope it receives is kept, so a gap or a duplicate shows.

Why threads and blocking calls: each driver is one desk client with one call
in flight; several drivers make the concurrency. Python's GIL makes this
client cost about 0.2 ms of CPU per call, which on a 2-core machine is part of
what a throughput figure measures (bench/cluster-bench says so).
Environment: test_grpc.py's, plus PG_TEST_SCRIPT (the fixture script).
"""
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_grpc import Server, SLOWDOWN  # noqa: E402  (also puts the stubs on sys.path)
import grpc  # noqa: E402
from greeks.v1 import book_pb2 as bk  # noqa: E402
from greeks.v1 import book_pb2_grpc as bk_grpc  # noqa: E402
from greeks.events.v1 import book_events_pb2 as ev  # noqa: E402

PG_SCRIPT = os.environ.get("PG_TEST_SCRIPT", "")
US_PER_DAY = 86400 * 10**6
CALL_TIMEOUT_S = 10 * SLOWDOWN
RESENDABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN,
              grpc.StatusCode.INTERNAL, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED)

# The service config of docs/api.md "Several instances" (a test compares them).
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": "greeks.v1.PricingService"}, {"service": "greeks.v1.BookService"}],
        "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "1s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    }],
}


def cluster_channel(targets):
    return grpc.insecure_channel("ipv4:" + ",".join(targets),
                                 options=[("grpc.service_config", json.dumps(SERVICE_CONFIG)),
                                          ("grpc.enable_retries", 1)])


def affinity_channel(targets, first):
    """A channel that sends every call to targets[first] while it is up, then to
    the next (pick_first over the rotated list), with the same retry policy:
    book affinity (docs/operations.md, "Conflicts and where writes go")."""
    config = dict(SERVICE_CONFIG, loadBalancingConfig=[{"pick_first": {}}])
    ordered = targets[first:] + targets[:first]
    return grpc.insecure_channel("ipv4:" + ",".join(ordered),
                                 options=[("grpc.service_config", json.dumps(config)), ("grpc.enable_retries", 1)])


class Postgres:
    """A throwaway PostgreSQL cluster in `directory` (removed by stop())."""

    def __init__(self, directory):
        if not PG_SCRIPT:
            raise RuntimeError("PG_TEST_SCRIPT is not set (tests/support/pg_test_server.sh)")
        self.dir = directory
        self.conninfo = self._run("start").strip()

    def _run(self, command):
        p = subprocess.run(["sh", PG_SCRIPT, command, self.dir], capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("pg_test_server.sh %s failed (%d): %s" % (command, p.returncode, p.stderr))
        return p.stdout

    def stop(self):
        self._run("stop")


class Instance:
    """One greeksd on the shared store; restart() brings it back on its port."""

    def __init__(self, name, conninfo, *args):
        self.name, self.conninfo, self.args = name, conninfo, args
        self.tmp = tempfile.TemporaryDirectory()
        self.server = self._start()
        self.target = self.server.target
        self.port = self.server.port
        self.logs = []  # stderr of earlier lives

    def _start(self, *more):
        port_file = os.path.join(self.tmp.name, "metrics-port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        server = Server("--book-store", self.conninfo, "--log-level", "warn", "--metrics-port-file", port_file,
                        *self.args, *more)
        wait_until("greeksd's metrics port", lambda: os.path.getsize(port_file) > 0 if os.path.exists(port_file)
                   else False, 30)
        with open(port_file) as f:
            server.metrics_port = int(f.read())
        return server

    def metrics(self):
        """{name: value} of the unlabelled samples of /metrics (Prometheus text)."""
        url = "http://127.0.0.1:%d/metrics" % self.server.metrics_port
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, value = line.split(" ")[:2]
                values[name] = float(value)
        return values

    def alive(self):
        return self.server.proc.poll() is None

    def kill(self):
        """SIGKILL: no drain, no flush; returns when the process is gone."""
        self.server.proc.kill()
        self.server.proc.wait(timeout=30)

    def terminate(self, timeout=60):
        """SIGTERM: drains (in-flight calls finish, new ones get UNAVAILABLE). The exit code."""
        return self.server.stop(timeout=timeout)

    def restart(self):
        self.logs.append(self.server.stderr())
        self.close()
        self.server = self._start("--listen", "127.0.0.1:%d" % self.port)
        assert self.server.port == self.port, (self.server.port, self.port)

    def stderr(self):
        return "".join(self.logs) + self.server.stderr()

    def close(self):
        self.server.close()
        if not self.server.log.closed:
            self.server.log.close()

    def cleanup(self):
        self.close()
        self.tmp.cleanup()


def option(strike, expiry_us):
    return ev.Instrument(underlying="AAPL", kind=ev.OPTION, option_type=ev.CALL, style=ev.EUROPEAN,
                         strike=strike, expiry_us=expiry_us, multiplier=100)


def open_books(stub, books, expiry_us):
    """Opens each book with an AAPL market; keys make this safe to resend."""
    for book in books:
        stub.OpenBook(bk.OpenBookRequest(book_id=book, name=book, currency="USD", idempotency_key="open-" + book),
                      timeout=CALL_TIMEOUT_S)
        stub.UpdateMarket(bk.UpdateMarketRequest(book_id=book, idempotency_key="mkt-" + book, quotes=[
            bk.MarketQuote(underlying="AAPL", spot=100.0, rate=0.03, vol=0.25)]), timeout=CALL_TIMEOUT_S)


def planned_trades(client, count, books, expiry_us, seed):
    """`count` trades of one client: (book, ExecuteTradeRequest), ids and keys its own."""
    rng = random.Random(seed * 7919 + client)
    plan = []
    for j in range(count):
        book = books[rng.randrange(len(books))]
        trade_id = "s%d-c%d-t%d" % (seed, client, j)  # unique per run of one database
        quantity = rng.choice([-3, -2, -1, 1, 2, 3, 4, 5])
        leg = ev.Leg(instrument=option(float(rng.choice([90, 95, 100, 105, 110])), expiry_us),
                     quantity=quantity, price=round(rng.uniform(2.0, 12.0), 2))
        plan.append((book, bk.ExecuteTradeRequest(book_id=book, trade_id=trade_id, legs=[leg],
                                                  idempotency_key="key-" + trade_id)))
    return plan


class TradeDriver(threading.Thread):
    """Executes its planned trades one after another through `channel`."""

    def __init__(self, channel, plan, resend_budget=3, on_ack=None, until=None):
        """channel: one channel for every book, or {book: channel}."""
        super().__init__(daemon=True)
        if isinstance(channel, dict):
            self.stubs = {book: bk_grpc.BookServiceStub(c) for book, c in channel.items()}
        else:
            self.stubs = collections.defaultdict(lambda s=bk_grpc.BookServiceStub(channel): s)
        self.plan, self.resend_budget, self.on_ack = plan, resend_budget, on_ack
        self.until = until  # time.monotonic() after which no new trade starts; None: the whole plan
        self.acked = []    # (book, request, reply, started, finished, attempts)
        self.failed = []   # (book, request, last error): gave up after the budget
        self.errors = []   # (time, code, details) of every failed attempt

    def run(self):
        for book, request in self.plan:
            started = time.monotonic()
            if self.until is not None and started >= self.until:
                break
            for attempt in range(1 + self.resend_budget):
                try:
                    reply = self.stubs[book].ExecuteTrade(request, timeout=CALL_TIMEOUT_S)
                except grpc.RpcError as e:
                    self.errors.append((time.monotonic(), e.code(), e.details()))
                    if e.code() not in RESENDABLE or attempt == self.resend_budget:
                        self.failed.append((book, request, e))
                        break
                    time.sleep(0.2 * (attempt + 1))
                    continue
                self.acked.append((book, request, reply, started, time.monotonic(), attempt + 1))
                if self.on_ack:
                    self.on_ack()
                break


class Subscriber(threading.Thread):
    """Follows `book` from sequence 1 on `first_target`, then on `fallback` channel."""

    def __init__(self, book, first_target, fallback):
        super().__init__(daemon=True)
        self.book, self.first_target, self.fallback = book, first_target, fallback
        self.received = []     # every envelope's sequence, in arrival order
        self.payloads = {}     # sequence -> envelope
        self.resumes = []      # (instance target or "cluster", from_sequence, why)
        self.stopping = threading.Event()
        self.error = None
        self._call = None
        self._lock = threading.Lock()

    def last(self):
        return self.received[-1] if self.received else 0

    def run(self):
        own = grpc.insecure_channel(self.first_target)
        channel, where = own, self.first_target
        try:
            while not self.stopping.is_set():
                stub = bk_grpc.BookServiceStub(channel)
                with self._lock:
                    if self.stopping.is_set():
                        break
                    self._call = stub.SubscribeEvents(bk.SubscribeEventsRequest(book_id=self.book,
                                                                                from_sequence=self.last() + 1))
                try:
                    for envelope in self._call:
                        self.received.append(envelope.sequence)
                        self.payloads.setdefault(envelope.sequence, envelope)
                except grpc.RpcError as e:
                    if self.stopping.is_set():
                        break
                    # The instance went away or drained: resume elsewhere, no gap.
                    # Any other code is a failure of the test (and stops the wait
                    # for this subscriber at once, with the code).
                    if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                        self.error = e
                        break
                    self.resumes.append((where, self.last() + 1, "%s: %s" % (e.code().name, e.details())))
                    channel, where = self.fallback, "cluster"
                    time.sleep(0.05)
        finally:
            own.close()

    def stop(self):
        with self._lock:
            self.stopping.set()
            if self._call is not None:
                self._call.cancel()
        self.join(timeout=CALL_TIMEOUT_S)


def wait_until(what, check, seconds):
    """check() until true, at most `seconds`; raises naming `what`."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.0f s" % (what, seconds))
        time.sleep(0.02)


def percentile(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
