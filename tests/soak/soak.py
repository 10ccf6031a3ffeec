#!/usr/bin/python3
"""Soak test of greeksd (docs/soak.md): a release server under SOAK_SECONDS
(default 3600) of mixed traffic, its memory and descriptors sampled throughout.

Traffic, from SOAK_CLIENTS threads (default 4), each call drawn at random:
valid PriceBatch, PriceChain, ImpliedVol, RevaluePortfolio and
RevaluePortfolioStream calls; well-formed but invalid requests (mismatched
columns, unknown model, oversized grids); random bytes to every method through
a generic channel with identity serializers; calls cancelled at once or soon
after they start (unary and mid-stream); calls with deadlines of 1 to 20 ms;
unknown methods and services; health checks; and, now and then, a fresh
channel (a new connection) for one call, then closed.

Every SOAK_SAMPLE_SECONDS (default 5; 1 when SOAK_SECONDS < 300) the server's
VmRSS (/proc/PID/status) and open descriptors (/proc/PID/fd) are sampled.
The verdict, after the run:
  * greeksd is alive throughout; health is SERVING at the end; SIGTERM exits 0;
  * every valid call ended OK, or with a status its own conditions allow
    (DEADLINE_EXCEEDED, CANCELLED when the client cut it; UNAVAILABLE or
    RESOURCE_EXHAUSTED when the server sheds load, which is counted and
    reported, and fails the run above 1% of valid calls);
  * no call anywhere ended UNKNOWN or INTERNAL;
  * flat resources: the first quarter is warm-up; the median of the last
    quarter may exceed the median of the second quarter by at most
    max(10%, 16 MiB) of RSS and by at most 8 descriptors (tolerances and why:
    docs/soak.md);
  * when gdb can attach (SOAK_HEAP_STATS=auto, the default; 1 requires it, 0
    skips it): the heap in use (malloc_stats()) with the server idle at the
    end exceeds the heap in use under load at the end of the first quarter by
    at most 4 MiB.
Samples go to SOAK_OUT (default build/soak): samples.csv, summary.json and
greeksd.log; and, if greeksd dies, recent_calls.json with the calls each
client thread made last (kind and seed: replayable with --replay).

Environment: GREEKSD (default build/api/greeksd), GREEKS_STUBS (default
build/tests/grpc_stubs), SOAK_SECONDS, SOAK_CLIENTS, SOAK_SAMPLE_SECONDS,
SOAK_SERVER_THREADS (default 4), SOAK_SEED (default: time), SOAK_HEAP_STATS,
SOAK_OUT.
"""
import collections
import csv
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GREEKSD = os.environ.get("GREEKSD", os.path.join(ROOT, "build/api/greeksd"))
STUBS = os.environ.get("GREEKS_STUBS", os.path.join(ROOT, "build/tests/grpc_stubs"))
sys.path.insert(0, STUBS)
import grpc  # noqa: E402
from greeks.v1 import pricing_pb2 as pb  # noqa: E402
from greeks.v1 import pricing_pb2_grpc as pb_grpc  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402

SECONDS = float(os.environ.get("SOAK_SECONDS", "3600"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "4"))
SAMPLE_SECONDS = float(os.environ.get("SOAK_SAMPLE_SECONDS", "1" if SECONDS < 300 else "5"))
SERVER_THREADS = int(os.environ.get("SOAK_SERVER_THREADS", "4"))
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
OUT = os.environ.get("SOAK_OUT", os.path.join(ROOT, "build/soak"))

RSS_TOLERANCE_FRACTION = 0.10
RSS_TOLERANCE_KIB = 16 * 1024
FD_TOLERANCE = 8
HEAP_TOLERANCE = 4 << 20  # bytes: idle heap in use at the end vs under load at the first quarter
HEAP_STATS = os.environ.get("SOAK_HEAP_STATS", "auto")  # auto (when gdb can attach), 0 or 1
SHED_LIMIT = 0.01  # UNAVAILABLE / RESOURCE_EXHAUSTED share of valid calls

SERVICE = "/greeks.v1.PricingService/"
METHODS = ["PriceChain", "PriceBatch", "ImpliedVol", "RevaluePortfolio"]
SC = grpc.StatusCode
# What each kind of call may end with, beside OK.
ALLOWED = {
    "valid": {SC.UNAVAILABLE, SC.RESOURCE_EXHAUSTED},
    "invalid": {SC.INVALID_ARGUMENT},
    "garbage": {SC.INVALID_ARGUMENT},
    "cancel": {SC.CANCELLED, SC.UNAVAILABLE, SC.RESOURCE_EXHAUSTED},
    "deadline": {SC.DEADLINE_EXCEEDED, SC.UNAVAILABLE, SC.RESOURCE_EXHAUSTED},
    "unknown": {SC.UNIMPLEMENTED},
    "health": set(),
}
NEVER = {SC.UNKNOWN, SC.INTERNAL}


# ---- greeksd --------------------------------------------------------------------


LIVE_SERVERS = []  # stopped by stop(), else killed on the way out (main's finally)


class Server:
    """greeksd on a free loopback port, as tests/grpc/test_grpc.py starts it."""

    def __init__(self, log_path):
        LIVE_SERVERS.append(self)
        self.proc = None
        self.dir = tempfile.TemporaryDirectory()
        port_file = os.path.join(self.dir.name, "port")
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [GREEKSD, "--listen", "127.0.0.1:0", "--port-file", port_file, "--server-threads", str(SERVER_THREADS),
             "--log-level", "warn", "--book-store", "sqlite:" + os.path.join(self.dir.name, "books.db")],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("greeksd did not start (exit %s); see %s" % (self.proc.poll(), log_path))
            time.sleep(0.02)
        time.sleep(0.05)
        with open(port_file) as f:
            self.target = "127.0.0.1:%d" % int(f.read())

    def sample(self):
        fields = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        fds = len(os.listdir("/proc/%d/fd" % self.proc.pid))
        return int(fields["VmRSS"].split()[0]), fds, int(fields["Threads"])

    def heap_in_use(self):
        """Bytes malloc holds for live allocations (malloc_stats()' total "in use",
        every arena), or None when gdb cannot attach. RSS also counts the free
        heap glibc keeps (greeksd sets M_TRIM_THRESHOLD to 64 MiB), so a flat RSS
        can hide a small leak and a rising one can be mere retention; this
        cannot. gdb stops greeksd for a moment and makes it print to its stderr."""
        if not shutil.which("gdb"):
            return None
        self.log.flush()
        before = os.path.getsize(self.log_path)
        try:
            subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-ex", "call (void)malloc_stats()"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        except subprocess.TimeoutExpired:
            return None
        with open(self.log_path) as f:
            f.seek(before)
            text = f.read()
        found = re.search(r"Total \(incl\. mmap\):\s*system bytes\s*=\s*\d+\s*in use bytes\s*=\s*(\d+)", text)
        return int(found.group(1)) if found else None

    def kill(self):
        """On an interrupted or failed run: greeksd was orphaned, still
        listening, its SQLite directory deleted under it (found in review)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.dir.cleanup()

    def stop(self):
        LIVE_SERVERS.remove(self)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "did not exit within 60 s of SIGTERM"
        finally:
            self.log.close()
            self.dir.cleanup()


# ---- requests -----------------------------------------------------------------------


def contracts(rng, n):
    return dict(strike=[rng.uniform(50, 150) for _ in range(n)], expiry=[rng.uniform(0.01, 3) for _ in range(n)],
                vol=[rng.uniform(0.05, 0.9) for _ in range(n)], type=[rng.choice([pb.CALL, pb.PUT]) for _ in range(n)])


def outputs(rng):
    return rng.choice([[], [pb.PRICE], [pb.ALL_FIRST_ORDER], [pb.ALL_SECOND_ORDER, pb.PRICE], list(range(1, 17))])


def price_batch(rng, n):
    c = contracts(rng, n)
    return pb.PriceBatchRequest(model=rng.choice([pb.MODEL_BSM, pb.MODEL_BLACK76, pb.MODEL_GARMAN_KOHLHAGEN]),
                                spot=[rng.uniform(50, 150) for _ in range(n)], strike=c["strike"], expiry=c["expiry"],
                                rate=[rng.uniform(-0.01, 0.08) for _ in range(n)], vol=c["vol"], type=c["type"],
                                outputs=outputs(rng), **{"yield": [rng.uniform(0, 0.05) for _ in range(n)]})


def price_chain(rng, n):
    return pb.PriceChainRequest(model=pb.MODEL_BSM, market=pb.Market(spot=rng.uniform(50, 150), rate=0.02),
                                contracts=pb.ChainContracts(**contracts(rng, n)), outputs=outputs(rng))


def implied_vol(rng, n):
    c = contracts(rng, n)  # prices at random: some are element errors (below intrinsic), still an OK call
    return pb.ImpliedVolRequest(model=pb.MODEL_BSM, spot=[100.0] * n, strike=c["strike"], expiry=c["expiry"],
                                rate=[0.01] * n, price=[rng.uniform(0.5, 30) for _ in range(n)], type=c["type"])


def positions(rng, n, underlyings):
    c = contracts(rng, n)
    return pb.Positions(underlying=[rng.randrange(underlyings) for _ in range(n)], type=c["type"], strike=c["strike"],
                        expiry=c["expiry"], vol=c["vol"], quantity=[rng.uniform(-10, 10) for _ in range(n)],
                        multiplier=[100.0] * n)


def revalue(rng, n, with_positions=True):
    u = rng.randint(1, 4)
    axis = [x / 10.0 for x in range(-2, 3)]
    return pb.RevaluePortfolioRequest(markets=pb.Markets(spot=[rng.uniform(50, 150) for _ in range(u)], rate=[0.02] * u),
                                      positions=positions(rng, n, u) if with_positions else None,
                                      grid=pb.ScenarioGrid(spot_shocks=axis, vol_shocks=axis[:rng.randint(1, 5)]))


def revalue_chunks(rng):
    first = revalue(rng, rng.randint(1, 300))
    u = len(first.markets.spot)
    return [first] + [pb.RevaluePortfolioRequest(positions=positions(rng, rng.randint(1, 300), u))
                      for _ in range(rng.randint(1, 4))]


# ---- one call of each kind -------------------------------------------------------
# Each returns (kind, status code); `rng` is seeded per call, so a call can be replayed.


class Client:
    def __init__(self, target):
        self.target = target
        self.channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.PricingServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def raw(self, method, channel=None):
        return (channel or self.channel).unary_unary(method, request_serializer=None, response_deserializer=None)

    def valid(self, rng, stub=None):
        stub = stub or self.stub
        which = rng.randrange(5)
        if which == 0:
            stub.PriceBatch(price_batch(rng, rng.randint(1, 512)), timeout=60)
        elif which == 1:
            stub.PriceChain(price_chain(rng, rng.randint(1, 2048)), timeout=60)
        elif which == 2:
            stub.ImpliedVol(implied_vol(rng, rng.randint(1, 512)), timeout=60)
        elif which == 3:
            stub.RevaluePortfolio(revalue(rng, rng.randint(1, 2000)), timeout=60)
        else:
            stub.RevaluePortfolioStream(iter(revalue_chunks(rng)), timeout=60)
        return "valid"

    def invalid(self, rng):
        which = rng.randrange(5)
        if which == 0:
            q = price_batch(rng, rng.randint(2, 50))
            del q.strike[-1]
            self.stub.PriceBatch(q, timeout=30)
        elif which == 1:
            q = price_chain(rng, 4)
            q.model = 42
            self.stub.PriceChain(q, timeout=30)
        elif which == 2:
            q = revalue(rng, 10)
            q.grid.vol_shocks.extend([0.0] * 300)
            self.stub.RevaluePortfolio(q, timeout=30)
        elif which == 3:
            chunks = revalue_chunks(rng)
            chunks[-1].markets.CopyFrom(chunks[0].markets)
            self.stub.RevaluePortfolioStream(iter(chunks), timeout=30)
        else:
            self.stub.PriceChain(pb.PriceChainRequest(contracts=pb.ChainContracts(**contracts(rng, 3))), timeout=30)
        return "invalid"

    def garbage(self, rng):
        method = SERVICE + rng.choice(METHODS)
        payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 256)))
        self.raw(method)(payload, timeout=30)
        return "garbage"

    def cancel(self, rng):
        which = rng.randrange(3)
        if which == 2:  # a stream cut after its first message
            started = threading.Event()

            def chunks():
                for i, c in enumerate(revalue_chunks(rng)):
                    yield c
                    if i == 0:
                        started.set()
                        time.sleep(0.05)
            call = self.stub.RevaluePortfolioStream.future(chunks(), timeout=60)
            started.wait(5)
        else:
            request = revalue(rng, 5000) if which == 0 else price_batch(rng, 4096)
            call = (self.stub.RevaluePortfolio if which == 0 else self.stub.PriceBatch).future(request, timeout=60)
            time.sleep(rng.choice([0, 0, 0.0005, 0.002, 0.01]))
        call.cancel()
        try:
            call.result()
        except grpc.FutureCancelledError:
            raise CancelledLocally()
        return "cancel"

    def deadline(self, rng):
        timeout = rng.uniform(0.001, 0.02)
        if rng.randrange(2):
            self.stub.RevaluePortfolio(revalue(rng, rng.randint(1000, 20000)), timeout=timeout)
        else:
            self.stub.PriceChain(price_chain(rng, 4096), timeout=timeout)
        return "deadline"

    def unknown(self, rng):
        method = rng.choice([SERVICE + "Nope", "/greeks.v1.Other/PriceBatch", "/x/y", SERVICE + "pricebatch"])
        self.raw(method)(b"", timeout=30)
        return "unknown"

    def health_check(self, rng):
        reply = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise NotServing(reply.status)
        return "health"

    def fresh_connection(self, rng):
        with grpc.insecure_channel(self.target) as channel:
            return self.valid(rng, pb_grpc.PricingServiceStub(channel))


class CancelledLocally(Exception):
    pass


class NotServing(Exception):
    pass


ACTIONS = [  # (weight, method name)
    (40, "valid"), (8, "invalid"), (10, "garbage"), (10, "cancel"), (10, "deadline"), (6, "unknown"),
    (8, "health_check"), (4, "fresh_connection"),
]
KIND_OF = {"health_check": "health", "fresh_connection": "valid"}


def call_once(client, action, seed):
    rng = random.Random(seed)
    try:
        return getattr(client, action)(rng), SC.OK
    except CancelledLocally:
        return "cancel", SC.CANCELLED
    except NotServing as e:
        return "health", "NOT_SERVING(%s)" % e.args[0]
    except grpc.RpcError as e:
        return KIND_OF.get(action, action), e.code()


# ---- the run --------------------------------------------------------------------------


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.bad = []  # (action, seed, code) of calls that ended as they must not
        self.total = 0

    def add(self, action, seed, kind, code):
        ok = code == SC.OK or code in ALLOWED.get(kind, set())
        name = code.name if hasattr(code, "name") else str(code)
        with self.lock:
            self.total += 1
            self.counts["%s %s" % (kind, name)] += 1
            if not ok or code in NEVER:
                self.bad.append((action, seed, name))


def client_loop(target, index, deadline, tally, recent, stop):
    rng = random.Random(SEED * 1000 + index)
    client = Client(target)
    weights = [w for w, _ in ACTIONS]
    names = [n for _, n in ACTIONS]
    while time.monotonic() < deadline and not stop.is_set():
        action = rng.choices(names, weights)[0]
        seed = rng.getrandbits(48)
        recent[index].append((action, seed))
        kind, code = call_once(client, action, seed)
        tally.add(action, seed, kind, code)
    client.channel.close()


def quarter_medians(values):
    q = len(values) // 4
    return statistics.median(values[q:2 * q]), statistics.median(values[3 * q:])


def slope_per_minute(samples, column):
    body = samples[len(samples) // 4:]
    if len(body) < 2:
        return 0.0
    xs, ys = [s["t"] for s in body], [s[column] for s in body]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def replay(target, action, seed):
    kind, code = call_once(Client(target), action, seed)
    print(action, seed, kind, code)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--replay":  # --replay ACTION SEED, against GREEKSD_TARGET
        return replay(os.environ["GREEKSD_TARGET"], sys.argv[2], int(sys.argv[3]))
    os.makedirs(OUT, exist_ok=True)
    server = Server(os.path.join(OUT, "greeksd.log"))
    print("soak: greeksd pid %d on %s, %d s, %d clients, sample every %g s, seed %d" %
          (server.proc.pid, server.target, SECONDS, CLIENTS, SAMPLE_SECONDS, SEED), flush=True)
    tally = Tally()
    recent = [collections.deque(maxlen=20) for _ in range(CLIENTS)]
    stop = threading.Event()
    start = time.monotonic()
    deadline = start + SECONDS
    threads = [threading.Thread(target=client_loop, args=(server.target, i, deadline, tally, recent, stop), daemon=True)
               for i in range(CLIENTS)]
    for t in threads:
        t.start()

    samples, died, failures = [], None, []
    heap = {"q1": None, "end": None, "off": False}
    with open(os.path.join(OUT, "samples.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", "rss_kib", "fds", "threads", "calls"])
        while time.monotonic() < deadline:
            time.sleep(min(SAMPLE_SECONDS, max(0.0, deadline - time.monotonic())))
            try:
                if server.proc.poll() is not None:
                    raise ProcessLookupError
                rss, fds, nthreads = server.sample()
            except (OSError, KeyError):  # gone between the poll and /proc
                time.sleep(0.1)
                died = server.proc.poll()
                if died is None:
                    raise
                break
            t = round(time.monotonic() - start, 2)
            samples.append({"t": t, "rss_kib": rss, "fds": fds, "threads": nthreads, "calls": tally.total})
            if heap["q1"] is None and HEAP_STATS != "0" and t >= SECONDS / 4 and not heap["off"]:
                heap["q1"] = server.heap_in_use()
                heap["off"] = heap["q1"] is None
                if heap["off"] and HEAP_STATS == "1":
                    failures.append("SOAK_HEAP_STATS=1 but gdb could not read greeksd's malloc_stats()")
            writer.writerow([t, rss, fds, nthreads, tally.total])
            f.flush()
            if len(samples) % max(1, int(60 / SAMPLE_SECONDS)) == 0:
                print("soak: %5.0f s  rss %d KiB  fds %d  calls %d" % (t, rss, fds, tally.total), flush=True)
    stop.set()
    for t in threads:
        t.join(timeout=90)

    if died is None and heap["q1"] is not None:
        time.sleep(2)  # the calls the clients left behind finish or are dropped
        heap["end"] = server.heap_in_use()
    if died is not None:
        with open(os.path.join(OUT, "recent_calls.json"), "w") as f:
            json.dump([list(r) for r in recent], f, indent=1)
        failures.append("greeksd died (exit %s) after %.0f s; each client's last calls in %s/recent_calls.json"
                        % (died, time.monotonic() - start, OUT))
    health = None
    if died is None:
        try:
            with grpc.insecure_channel(server.target) as channel:
                health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
        except grpc.RpcError as e:
            health = "error %s" % e.code()
        if health != health_pb2.HealthCheckResponse.SERVING:
            failures.append("health at the end is %s, not SERVING" % health)
    exit_code = server.stop() if died is None else died
    if died is None and exit_code != 0:
        failures.append("greeksd exited %s on SIGTERM, not 0" % exit_code)

    valid = sum(v for k, v in tally.counts.items() if k.startswith("valid "))
    shed = sum(v for k, v in tally.counts.items() if k in ("valid UNAVAILABLE", "valid RESOURCE_EXHAUSTED"))
    if valid and shed / valid > SHED_LIMIT:
        failures.append("%d of %d valid calls were shed (UNAVAILABLE/RESOURCE_EXHAUSTED)" % (shed, valid))
    # cancel and deadline calls may be shed too, under the same limit (their
    # shedding was allowed and unlimited: found in review)
    for kind in ("cancel", "deadline"):
        total = sum(v for k, v in tally.counts.items() if k.startswith(kind + " "))
        shed = sum(v for k, v in tally.counts.items() if k in (kind + " UNAVAILABLE", kind + " RESOURCE_EXHAUSTED"))
        if total and shed / total > SHED_LIMIT:
            failures.append("%d of %d %s calls were shed (UNAVAILABLE/RESOURCE_EXHAUSTED)" % (shed, total, kind))
    if tally.bad:
        failures.append("%d calls ended as they must not, e.g. %s" % (len(tally.bad), tally.bad[:5]))

    summary = {"seconds": SECONDS, "clients": CLIENTS, "server_threads": SERVER_THREADS, "seed": SEED,
               "calls": tally.total, "calls_per_second": round(tally.total / max(1e-9, time.monotonic() - start), 1),
               "outcomes": dict(sorted(tally.counts.items())), "samples": len(samples), "health_at_end":
               health_pb2.HealthCheckResponse.ServingStatus.Name(health) if isinstance(health, int) else health,
               "sigterm_exit": exit_code}
    if len(samples) >= 8:
        rss2, rss4 = quarter_medians([s["rss_kib"] for s in samples])
        fd2, fd4 = quarter_medians([s["fds"] for s in samples])
        rss_allowed = max(rss2 * RSS_TOLERANCE_FRACTION, RSS_TOLERANCE_KIB)
        summary.update(rss_kib_median_q2=rss2, rss_kib_median_q4=rss4, rss_allowed_growth_kib=rss_allowed,
                       rss_kib_max=max(s["rss_kib"] for s in samples), fds_median_q2=fd2, fds_median_q4=fd4,
                       fds_max=max(s["fds"] for s in samples),
                       rss_slope_kib_per_min=round(slope_per_minute(samples, "rss_kib"), 1),
                       fds_slope_per_min=round(slope_per_minute(samples, "fds"), 2))
        if rss4 - rss2 > rss_allowed:
            failures.append("RSS grew: median %d KiB in the second quarter, %d KiB in the last (allowed +%d)"
                            % (rss2, rss4, rss_allowed))
        if fd4 - fd2 > FD_TOLERANCE:
            failures.append("descriptors grew: median %g in the second quarter, %g in the last (allowed +%d)"
                            % (fd2, fd4, FD_TOLERANCE))
    elif died is None:
        failures.append("only %d samples: too few to judge flatness" % len(samples))
    if heap["q1"] is not None and heap["end"] is not None:
        summary.update(heap_in_use_q1_under_load=heap["q1"], heap_in_use_end_idle=heap["end"])
        if heap["end"] - heap["q1"] > HEAP_TOLERANCE:
            failures.append("heap in use grew: %d bytes under load at the first quarter, %d idle at the end "
                            "(allowed +%d)" % (heap["q1"], heap["end"], HEAP_TOLERANCE))
    summary["failures"] = failures
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    print("soak: %s" % ("FAILED: " + "; ".join(failures) if failures else "passed"))
    return 1 if failures else 0


def interrupted(signum, frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupted)  # a CI timeout's signal: the same way out as Ctrl-C
    try:
        sys.exit(main())
    finally:
        for live in list(LIVE_SERVERS):
            live.kill()
