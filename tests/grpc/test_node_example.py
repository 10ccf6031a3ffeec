"""The Node.js example of docs/api.md, "Several instances" (issue 21 part 3):
examples/node/several_instances.js against two real greeksd.

What: the example's prices equal the offline `greeks chain` of the contracts
it printed (an independent path: no server) and obey put-call parity; both
instances answer (round robin); an instance hung in the middle of a call and
then killed with SIGKILL does not fail the run (the call is retried on the
other, and answered exactly once); a stand-in answering every call
UNAVAILABLE is retried past; a book write resent after the instance that
recorded it died is answered as a replay, recorded once (read back through
the survivor and, independently, from PostgreSQL with psql); a dns:/// target
works; and the code block in docs/api.md is the file's text, so the docs
cannot drift from what is tested.

How: tests/grpc/test_grpc.py's Server, both instances on one throwaway
PostgreSQL (tests/support/pg_test_server.sh; a book store shared across
processes must be PostgreSQL), --log-level debug so each answered call leaves
an access record naming its method in that server's log (counted as
test_call_targets.py does). The kill is made deterministic: the instance is
stopped (SIGSTOP) while the example runs, so the example's next call to it
hangs in flight, and only then killed: that call must be retried, which is
what the service config's retry policy is for (without it the run fails).

Why: the example is documentation; a reader runs it as is.
Environment: as test_grpc.py, plus PG_TEST_SCRIPT and GREEKS_NODE_EXAMPLES
(examples/node). Skipped only when node is not installed
(scripts/install-deps.sh --node-example installs it, and runs npm ci there).
"""
import csv
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_grpc import CLI, SLOWDOWN, Server  # noqa: E402  (also puts the stubs on sys.path)
from test_call_targets import StandIn, answered, count_answered  # noqa: E402

import grpc  # noqa: E402
from greeks.v1 import book_pb2 as bk  # noqa: E402
from greeks.v1 import book_pb2_grpc as bk_grpc  # noqa: E402
from greeks.events.v1 import book_events_pb2 as ev  # noqa: E402

EXAMPLES = os.environ["GREEKS_NODE_EXAMPLES"]
SCRIPT = os.path.join(EXAMPLES, "several_instances.js")
DOCS = os.path.join(EXAMPLES, "..", "..", "docs", "api.md")
PG_SCRIPT = os.environ["PG_TEST_SCRIPT"]
PSQL = os.path.join(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")
NODE = shutil.which("node")
TIMEOUT = 60 * SLOWDOWN
GREEKS = ("price", "delta")


def pg(command, directory):
    p = subprocess.run(["sh", PG_SCRIPT, command, directory], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("pg_test_server.sh %s failed (%d): %s" % (command, p.returncode, p.stderr))
    return p.stdout


def example(target, *args):
    """(exit code, JSON lines printed, stderr) of one run of the example."""
    p = subprocess.run([NODE, SCRIPT, target, *args], cwd=EXAMPLES, capture_output=True, text=True,
                       timeout=TIMEOUT)
    return p.returncode, [json.loads(line) for line in p.stdout.splitlines()], p.stderr


def offline_chain(market, contracts):
    """`greeks chain` of the contracts a line printed, on its market: {greek: [values]}."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "chain.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "type", "K", "T", "sigma"])
            for i, (kind, k, t, sigma) in enumerate(zip(contracts["type"], contracts["strike"],
                                                        contracts["expiry"], contracts["vol"])):
                w.writerow(["c%d" % i, kind.lower(), repr(float(k)), repr(float(t)), repr(float(sigma))])
        p = subprocess.run([CLI, "chain", "--spot", repr(float(market["spot"])), "--rate", repr(market["rate"]),
                            "--yield", repr(market["yield"]), path], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("greeks chain failed: " + p.stderr)
    rows = list(csv.DictReader(p.stdout.splitlines()))
    return {g: [float(r[g]) for r in rows] for g in GREEKS}


class NodeExample(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if NODE is None:
            raise unittest.SkipTest("node is not installed (scripts/install-deps.sh --node-example installs nodejs and npm)")
        if not os.path.isdir(os.path.join(EXAMPLES, "node_modules", "@grpc", "grpc-js")):
            raise AssertionError("examples/node has no node_modules: run scripts/install-deps.sh --node-example "
                                 "(or cd examples/node && npm ci)")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.pg_dir = os.path.join(cls.tmp.name, "pg")
        cls.addClassCleanup(pg, "stop", cls.pg_dir)  # runs even when start fails part way
        cls.conninfo = pg("start", cls.pg_dir).strip()
        cls.references = {}  # spot -> offline_chain

    def setUp(self):
        self.a = Server("--log-level", "debug", "--book-store", self.conninfo)
        self.addCleanup(self.a.close)
        self.b = Server("--log-level", "debug", "--book-store", self.conninfo)
        self.addCleanup(self.b.close)
        self.targets = "ipv4:%s,%s" % (self.a.target, self.b.target)

    def assert_priced(self, lines):
        """Every line's prices and deltas against `greeks chain`; prices against put-call parity."""
        for line in lines:
            market, contracts = line["market"], line["contracts"]
            key = (market["spot"], market["rate"], market["yield"], json.dumps(contracts, sort_keys=True))
            if key not in self.references:
                self.references[key] = offline_chain(market, contracts)
            for g in GREEKS:
                self.assertEqual(len(line[g]), len(contracts["strike"]), g)
                for served, offline in zip(line[g], self.references[key][g]):
                    self.assertTrue(math.isclose(served, offline, rel_tol=1e-12, abs_tol=1e-12),
                                    "%s: %r served, %r offline" % (g, served, offline))
            # C - P = S e^{-qT} - K e^{-rT} for a call and a put of the same strike, expiry and vol.
            s, r, q = market["spot"], market["rate"], market["yield"]
            legs = list(zip(contracts["type"], contracts["strike"], contracts["expiry"], contracts["vol"], line["price"]))
            pairs = 0
            for kind, k, t, sigma, call in legs:
                for kind2, k2, t2, sigma2, put in legs:
                    if (kind, kind2, k, t, sigma) == ("CALL", "PUT", k2, t2, sigma2):
                        pairs += 1
                        self.assertAlmostEqual(call - put, s * math.exp(-q * t) - k * math.exp(-r * t), places=10)
            self.assertGreater(pairs, 0, "the example's chain has no call-put pair to check")

    def test_prices_are_right_and_both_instances_answer(self):
        # Each run starts round robin at a random address and alternates: 3 runs
        # of 10 calls all on one instance would be a broken balancer.
        total = 0
        for _ in range(3):
            code, lines, err = example(self.targets, "10")
            self.assertEqual(code, 0, err)
            self.assertEqual(len(lines), 10)
            self.assert_priced(lines)
            total += 10
        a = answered(self.a, 1, "PriceChain")
        b = answered(self.b, total - a, "PriceChain")
        self.assertEqual(a + b, total)
        self.assertGreaterEqual(min(a, b), 5, "calls answered: %d and %d" % (a, b))

    def test_an_instance_killed_mid_call_does_not_fail_the_run(self):
        calls = 10000  # seconds of calls: far more than run before b is stopped
        proc = subprocess.Popen([NODE, SCRIPT, self.targets, str(calls)], cwd=EXAMPLES,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        out = b""

        def read_for(seconds):
            """What the example prints within `seconds` of silence (b"" when none)."""
            ready, _, _ = select.select([proc.stdout], [], [], seconds)
            return os.read(proc.stdout.fileno(), 1 << 16) if ready else b""

        deadline = time.monotonic() + TIMEOUT
        while out.count(b"\n") < 20 and time.monotonic() < deadline:
            out += read_for(TIMEOUT)
        self.assertGreaterEqual(out.count(b"\n"), 20, "the example stopped printing (exit %r)" % proc.poll())
        self.assertGreater(count_answered(self.b, "PriceChain"), 0)  # b is in the rotation
        # b hangs: the example's next call to it waits, in flight; then it dies.
        self.b.proc.send_signal(signal.SIGSTOP)
        while True:
            more = read_for(1.0 * SLOWDOWN)
            if not more:
                break
            out += more
        self.assertIsNone(proc.poll(), "the example finished before b was stopped: raise `calls`")
        stalled_at = out.count(b"\n")
        self.assertLess(stalled_at, calls)
        self.b.stop(signal.SIGKILL)
        rest, err = proc.communicate(timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 0, err.decode())
        lines = [json.loads(line) for line in (out + rest).decode().splitlines()]
        self.assertEqual(len(lines), calls)
        self.assert_priced(lines)
        # The call in flight on b was answered once, by a: every call exactly once
        # overall. b writes a call's access record just after its reply, and the
        # SIGSTOP can land between the two (seen under ASan), so one call b
        # answered may have no record: the records may fall one short of the
        # calls, never above them (a call answered twice would show as one more).
        b = count_answered(self.b, "PriceChain")
        recorded = answered(self.a, calls - b, "PriceChain") + b
        self.assertIn(recorded, (calls - 1, calls))
        self.assertLessEqual(b, stalled_at)  # b answered nothing after it was stopped

    def test_unavailable_is_retried_on_the_other_address(self):
        stand_in = StandIn()  # every call ends UNAVAILABLE
        self.addCleanup(stand_in.close)
        code, lines, err = example("ipv4:%s,%s" % (stand_in.target, self.a.target), "10")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(lines), 10)
        self.assert_priced(lines)
        self.assertEqual(answered(self.a, 10, "PriceChain"), 10)
        # Round robin alternates: about half the calls tried the stand-in first.
        self.assertGreaterEqual(len(stand_in.handler.attempts), 3)

    def book_events(self, book_id):
        """(sequence, type, causation) of the book's events, read from PostgreSQL with psql, not greeksd."""
        p = subprocess.run([PSQL, self.conninfo, "-tA", "-F", " ", "-c",
                            "SELECT sequence, type, causation_id FROM events WHERE stream = 'book-%s' "
                            "ORDER BY sequence" % book_id], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [(int(s), int(t), c) for s, t, c in (line.split(" ") for line in p.stdout.splitlines() if line)]

    def test_a_book_write_resent_after_its_instance_died_is_a_replay(self):
        code, lines, err = example(self.targets, "1", "node-desk")
        self.assertEqual(code, 0, err)
        self.assert_priced(lines[:1])
        opened, traded = lines[1:]
        self.assertEqual((opened["book_id"], opened["replayed"], opened["first_sequence"]), ("node-desk", False, "1"))
        self.assertEqual((traded["trade_id"], traded["replayed"], traded["first_sequence"]), ("T1", False, "2"))
        # The instance that recorded the trade dies; the same commands, resent
        # to the same two addresses, reach the other: answered as replays.
        recorder, survivor = (self.a, self.b) if count_answered(self.a, "ExecuteTrade") else (self.b, self.a)
        self.assertEqual(answered(recorder, 1, "ExecuteTrade"), 1)
        recorder.stop(signal.SIGKILL)
        code, again, err = example(self.targets, "1", "node-desk")
        self.assertEqual(code, 0, err)
        self.assertEqual(again[1], dict(opened, replayed=True))
        self.assertEqual(again[2], dict(traded, replayed=True))
        self.assertEqual(answered(survivor, 1, "ExecuteTrade"), 1)
        # Recorded once: in the store (psql) and in the survivor's book.
        self.assertEqual(self.book_events("node-desk"), [(1, ev.BOOK_OPENED, "open-node-desk"),
                                                         (2, ev.TRADE_EXECUTED, "buy-node-desk-T1")])
        with grpc.insecure_channel(survivor.target) as channel:
            book = bk_grpc.BookServiceStub(channel).GetBook(bk.GetBookRequest(book_id="node-desk"), timeout=TIMEOUT)
        self.assertEqual([t.trade_id for t in book.trades], ["T1"])
        self.assertEqual([(p.instrument.underlying, p.quantity) for p in book.positions], [("AAPL", 10)])
        self.assertEqual(book.version, 2)

    def test_a_dns_name_reaches_the_instance(self):
        # localhost may resolve to ::1 too, where nothing listens: round robin skips it.
        code, lines, err = example("dns:///localhost:%d" % self.a.port, "2")
        self.assertEqual(code, 0, err)
        self.assert_priced(lines)
        self.assertEqual(answered(self.a, 2, "PriceChain"), 2)


class Docs(unittest.TestCase):
    def test_the_docs_quote_the_example_as_it_is(self):
        with open(DOCS) as f:
            docs = f.read()
        section = docs.split("\n### Several instances\n", 1)[1].split("\n## ", 1)[0]
        blocks = re.findall(r"^```js\n(.*?)^```$", section, re.S | re.M)
        self.assertEqual(len(blocks), 1, "one ```js block in docs/api.md, Several instances")
        with open(SCRIPT) as f:
            code = f.read()
        # The file less its header comment, from 'use strict' on.
        self.assertEqual(blocks[0], code[code.index("'use strict';"):])
        self.assertIn("retryableStatusCodes: ['UNAVAILABLE']", blocks[0])
        self.assertIn("cd examples/node && npm ci", section)
        self.assertIn("node several_instances.js", section)


if __name__ == "__main__":
    unittest.main(verbosity=2)
