#!/usr/bin/python3
"""bulk-load.py: keeps long calls in flight against a greeksd, one after another,
until it is killed: the background of bench/load-test's "no starvation" case
(issue 23 part 4; docs/performance.md, "Serving overhead").

  bench/bulk-load.py TARGET STUBS_DIR revalue|american [--positions N] [--contracts N]

revalue: RevaluePortfolio of N positions (default 200000) on 50 underlyings
over a 5 x 5 spot/vol grid, about a quarter of a second of pricing on two
cores; american: PriceBatch of N American puts (default 64) by the binomial
tree, about 0.33 ms each. Each call's answer is checked for its size (a bulk
call that failed would measure nothing); the count of calls made is printed
on SIGTERM.
"""
import argparse
import random
import signal
import sys

parser = argparse.ArgumentParser()
parser.add_argument("target")
parser.add_argument("stubs")
parser.add_argument("kind", choices=["revalue", "american"])
parser.add_argument("--positions", type=int, default=200000)
parser.add_argument("--contracts", type=int, default=64)
args = parser.parse_args()
sys.path.insert(0, args.stubs)
import grpc  # noqa: E402
from greeks.v1 import pricing_pb2 as pb  # noqa: E402
from greeks.v1 import pricing_pb2_grpc as pb_grpc  # noqa: E402

rng = random.Random(23)


def revalue_request(n):
    underlyings = 50
    markets = pb.Markets(spot=[100.0 + k for k in range(underlyings)], rate=[0.03] * underlyings)
    positions = pb.Positions(underlying=[rng.randrange(underlyings) for _ in range(n)],
                             type=[rng.choice([pb.CALL, pb.PUT]) for _ in range(n)],
                             strike=[rng.uniform(80, 150) for _ in range(n)],
                             expiry=[rng.uniform(0.05, 2) for _ in range(n)],
                             vol=[rng.uniform(0.1, 0.5) for _ in range(n)],
                             quantity=[float(rng.randint(-10, 10) or 1) for _ in range(n)],
                             multiplier=[100.0] * n)
    grid = pb.ScenarioGrid(spot_shocks=[-0.1, -0.05, 0, 0.05, 0.1], vol_shocks=[-0.05, -0.02, 0, 0.02, 0.05],
                           vol_mode=pb.ABSOLUTE)
    return pb.RevaluePortfolioRequest(model=pb.MODEL_BSM, markets=markets, positions=positions, grid=grid)


def american_request(n):
    return pb.PriceBatchRequest(model=pb.MODEL_BSM, spot=[100.0] * n, strike=[rng.uniform(80, 120) for _ in range(n)],
                                expiry=[rng.uniform(0.1, 2) for _ in range(n)], rate=[0.03] * n,
                                vol=[rng.uniform(0.1, 0.5) for _ in range(n)], type=[pb.PUT] * n,
                                style=[pb.AMERICAN] * n, american_method=pb.AMERICAN_METHOD_TREE)


calls = 0


def stop(signum, frame):
    print("bulk-load: %d %s calls" % (calls, args.kind), flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
stub = pb_grpc.PricingServiceStub(grpc.insecure_channel(args.target))
if args.kind == "revalue":
    request = revalue_request(args.positions)
    while True:
        reply = stub.RevaluePortfolio(request, timeout=120)
        assert len(reply.pnl) == 25, "a revaluation answered without its grid"
        calls += 1
else:
    request = american_request(args.contracts)
    while True:
        reply = stub.PriceBatch(request, timeout=120)
        assert len(reply.greeks.price) == args.contracts and not reply.errors, "an American batch failed"
        calls += 1
