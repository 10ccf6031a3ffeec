#!/usr/bin/python3
"""bulk-load.py: keeps long calls in flight against a greeksd, one after another,
until it is killed: the background of bench/load-test's "no starvation" case
(issue 23 part 4; docs/performance.md, "Serving overhead").

  bench/bulk-load.py TARGET STUBS_DIR revalue|american [--positions N] [--chunk N] [--contracts N]

revalue: RevaluePortfolio of N positions (default 200000, an 11 MiB message)
on 50 underlyings over a 5 x 5 spot/vol grid, about a quarter of a second of
pricing on two cores; with --chunk K > 0 the same portfolio by
RevaluePortfolioStream in messages of K positions; american: PriceBatch of N American puts (default 64) by the binomial
tree, about 0.33 ms a price; european: PriceBatch of N European contracts (default 200,000, a 9 MB
message) with price and the first-order Greeks. The request is serialized once and sent as bytes,
so that this client's own CPU (a process on the same cores) stays small beside
the server's; each answer is parsed and checked for its size (a bulk call that
failed would measure nothing). The count of calls made is printed on SIGTERM.
"""
import argparse
import random
import signal
import sys

parser = argparse.ArgumentParser()
parser.add_argument("target")
parser.add_argument("stubs")
parser.add_argument("kind", choices=["revalue", "american", "european"])
parser.add_argument("--positions", type=int, default=200000)
parser.add_argument("--chunk", type=int, default=0)
parser.add_argument("--contracts", type=int, default=None)
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


def european_request(n):
    return pb.PriceBatchRequest(model=pb.MODEL_BSM, spot=[100.0] * n, strike=[rng.uniform(80, 120) for _ in range(n)],
                                expiry=[rng.uniform(0.1, 2) for _ in range(n)], rate=[0.03] * n,
                                vol=[rng.uniform(0.1, 0.5) for _ in range(n)],
                                type=[rng.choice([pb.CALL, pb.PUT]) for _ in range(n)])


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
channel = grpc.insecure_channel(args.target, options=[("grpc.max_receive_message_length", -1)])  # european: 11 MB answers


def raw_call(method, response_type):
    """A unary call that sends bytes as they are and parses the answer (keeps
    it as bytes when response_type is None)."""
    return channel.unary_unary("/greeks.v1.PricingService/" + method, request_serializer=None,
                               response_deserializer=response_type.FromString if response_type else None)


def chunks(request, size):
    """The stream's messages: the first with model, markets and grid."""
    p, out = request.positions, []
    for begin in range(0, len(p.strike), size):
        end = begin + size
        part = pb.Positions(underlying=p.underlying[begin:end], type=p.type[begin:end], strike=p.strike[begin:end],
                            expiry=p.expiry[begin:end], vol=p.vol[begin:end], quantity=p.quantity[begin:end],
                            multiplier=p.multiplier[begin:end])
        message = pb.RevaluePortfolioRequest(positions=part)
        if begin == 0:
            message.model, message.markets.CopyFrom(request.markets), message.grid.CopyFrom(request.grid)
        out.append(message.SerializeToString())
    return out


if args.kind == "revalue" and args.chunk > 0:
    call = channel.stream_unary("/greeks.v1.PricingService/RevaluePortfolioStream", request_serializer=None,
                                response_deserializer=pb.RevaluePortfolioResponse.FromString)
    messages = chunks(revalue_request(args.positions), args.chunk)
    while True:
        reply = call(iter(messages), timeout=120)
        assert len(reply.pnl) == 25 and reply.positions == args.positions, "a revaluation answered short"
        calls += 1
elif args.kind == "revalue":
    call, request = raw_call("RevaluePortfolio", pb.RevaluePortfolioResponse), revalue_request(args.positions)
    payload = request.SerializeToString()
    while True:
        reply = call(payload, timeout=120)
        assert len(reply.pnl) == 25, "a revaluation answered without its grid"
        calls += 1
else:
    contracts = args.contracts or (64 if args.kind == "american" else 200000)
    make = american_request if args.kind == "american" else european_request
    payload = make(contracts).SerializeToString()
    # The first answer is parsed and checked; the rest are kept as bytes and
    # compared with its length (parsing 11 MB in Python per call would make
    # this client, on the server's cores, the load being measured).
    reply = raw_call("PriceBatch", pb.PriceResponse)(payload, timeout=120)
    assert len(reply.greeks.price) == contracts and not reply.errors, "a %s batch failed" % args.kind
    size, call = reply.ByteSize(), raw_call("PriceBatch", None)
    calls += 1
    while True:
        answer = call(payload, timeout=120)
        assert len(answer) == size, "a %s batch answered %d bytes, not %d" % (args.kind, len(answer), size)
        calls += 1
