#!/usr/bin/python3
"""american-latency.py: the latency of American PriceBatch calls by alo, one
call at a time, against a greeksd it starts on a free loopback port
(adr/0033's amendment: the compute agent's kept American pool).

  GREEKSD=build/api/greeksd GREEKS_STUBS=build/tests/grpc_stubs \\
      bench/american-latency.py [CONTRACTS [CALLS]]

(test_grpc.py, whose server and stubs it borrows, also wants GREEKS_CLI and
GREEKS_DATA; unset, they default to build/api/greeks and tests/data.)

CONTRACTS random contracts (default 128; seed 7, tests/grpc/test_american_grpc.py's
random_rows) as AMERICAN with AMERICAN_METHOD_ALO, price and every
first-order Greek; 5 warm-up calls, then CALLS calls (default 200). Prints
the median and the 90th percentile in ms. The answers are checked: every
contract priced, no element error.
"""
import os
import statistics
import sys
import time

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
os.environ.setdefault("GREEKS_CLI", os.path.join(root, "build", "api", "greeks"))
os.environ.setdefault("GREEKS_DATA", os.path.join(root, "tests", "data"))
sys.path.insert(0, os.path.join(root, "tests", "grpc"))
from test_grpc import Server, stub, pb  # noqa: E402  (greeksd as a child; the generated stubs)
from test_american_grpc import batch, random_rows  # noqa: E402

contracts = int(sys.argv[1]) if len(sys.argv) > 1 else 128
calls = int(sys.argv[2]) if len(sys.argv) > 2 else 200
server = Server()
try:
    channel, service = stub(server.target)
    request = batch(random_rows(contracts, 7), [pb.AMERICAN] * contracts, method=pb.AMERICAN_METHOD_ALO)
    for _ in range(5):
        reply = service.PriceBatch(request, timeout=60)
        if len(reply.greeks.price) != contracts or len(reply.errors) != 0:
            raise SystemExit("american-latency: %d prices, %d errors" % (len(reply.greeks.price), len(reply.errors)))
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        service.PriceBatch(request, timeout=60)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    print("%d contracts, %d calls: median %.3f ms, p90 %.3f ms" % (
        contracts, calls, 1e3 * statistics.median(seconds), 1e3 * seconds[int(0.9 * len(seconds))]))
finally:
    server.close()
