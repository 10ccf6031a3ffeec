#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_journal (fuzz/corpus/fuzz_journal/): one valid
payload per event type and version and one snapshot, encoded by protoc from
text format (independently of greeks' encoder). Run from fuzz/."""
import subprocess

PROTO = "greeks/events/v1/book_events.proto"
LEG = ('legs { instrument { underlying: "AAPL" option_type: PUT style: AMERICAN strike: 150 '
       'expiry_us: 1800046800000000 multiplier: 100 } quantity: -3 price: 4.25 }')
SEEDS = {
    "book_opened": (0x01, "BookOpened", 'name: "Desk" currency: "USD"'),
    "trade": (0x02, "TradeExecuted", 'trade_id: "T1" trade_time_us: 1796083200000000 ' + LEG),
    "correction": (0x03, "TradeCorrected", 'trade_id: "T1" ' + LEG.replace("legs", "reversed_legs")),
    "market_v2": (0x04, "MarketUpdated", 'underlying: "AAPL" spot: 190 rate: 0.04 yield: 0.01 vol: 0.25 '
                  'vols { instrument { underlying: "AAPL" strike: 150 expiry_us: 1800046800000000 '
                  'multiplier: 100 } vol: 0.3 }'),
    "market_v1": (0x14, "MarketUpdatedV1", 'underlying: "AAPL" spot: 190 rate: 0.04 vol: 0.25'),
    "limits": (0x05, "RiskLimitsSet", 'limits { metric: VEGA soft: 1000 hard: 2000 } '
               'limits { underlying: "AAPL" metric: DOLLAR_DELTA hard: 5e6 }'),
    "breach": (0x06, "RiskLimitBreached", 'limit { metric: VEGA soft: 1000 } value: 1200 threshold: 1000'),
    "strategy": (0x08, "StrategyProposed", 'strategy_id: "S1" kind: "vertical" net_premium: 1.5 ' + LEG),
    "rejected": (0x09, "TradeRejected", 'trade_id: "T2" ' + LEG + ' limit { underlying: "AAPL" '
                 'metric: DOLLAR_DELTA hard: 1e5 } level: HARD value: 6e4 would_be: 1.2e5 threshold: 1e5'),
    "snapshot": (0x80, "BookSnapshot", 'sequence: 3 book_id: "fuzz" currency: "USD" '
                 'positions { instrument { underlying: "AAPL" strike: 150 expiry_us: 1800046800000000 '
                 'multiplier: 100 } quantity: 5 average_cost: 3 } trades { trade_id: "T1" sequence: 2 } '
                 'markets { underlying: "AAPL" spot: 190 vol: 0.2 } last_event_time_us: 1796000000000000 '
                 'open_breaches { limit { underlying: "AAPL" metric: DOLLAR_GAMMA soft: 1000 } value: 5000 '
                 'threshold: 1000 } breaches_recorded: true market_event_time_us: 1796000000000000 '
                 'market_times_recorded: true limit_edges_since_move: [1, 0]'),
}
# The same events on the book fuzz_journal builds when bit 5 is set (its
# populated_book(): AAPL's market, trade T1 with the put above and 100 shares,
# limits, the vega limit's soft level breached, strategy S1), with a cancel
# and a correction of T1 and the breach's restore that meet that state.
SHARES = 'instrument { underlying: "AAPL" kind: UNDERLYING multiplier: 1 } quantity: 100 price: 190'
BOTH = LEG.replace("legs", "reversed_legs") + " reversed_legs { " + SHARES + " }"
ON_BOOK = {name + "_on_book": (selector | 0x20, message, text)
           for name, (selector, message, text) in SEEDS.items() if selector < 0x80}
ON_BOOK.update({
    "cancel_on_book": (0x23, "TradeCorrected", 'trade_id: "T1" trade_time_us: 1796000000000000 ' + BOTH),
    "correction_on_book": (0x23, "TradeCorrected", 'trade_id: "T1" trade_time_us: 1796000000000000 ' + BOTH +
                           ' replacement_legs { ' + SHARES.replace("100", "50") + ' }'),
    "restore_on_book": (0x27, "RiskLimitRestored", 'limit { metric: VEGA soft: 1000 hard: 2000 } value: 900 '
                        'threshold: 1000'),
})
SEEDS.update(ON_BOOK)
for name, (selector, message, text) in SEEDS.items():
    payload = subprocess.run(["protoc", "-I../proto", "--encode=greeks.events.v1." + message, PROTO],
                             input=text.encode(), capture_output=True, check=True).stdout
    with open("corpus/fuzz_journal/" + name, "wb") as f:
        f.write(bytes([selector]) + payload)
