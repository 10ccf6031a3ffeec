/*
 * greeks/book.h - the book's domain: instruments, trades, positions, markets,
 * limits, the book aggregate and its events. Pure: no I/O, no threads, no clock
 * reads (every time is an argument).
 *
 * The aggregate follows decide/apply. A command is *decided* against the current
 * state (gk_book_decide_*): the invariants are checked there and the result is
 * an event, or a gk_status naming the field, the value and the rule. The state
 * changes only by *applying* an event (gk_book_apply), a fold that never fails on
 * an event that decide produced; replaying a book's stream from the start (or
 * from a snapshot) rebuilds the same state bit for bit.
 *
 * Units (adr/0023, docs/book.md):
 *   time      UTC microseconds since the Unix epoch (int64)
 *   T         years from valuation to expiry, ACT/365 Fixed: (expiry - t) / 365 days
 *   quantity  whole contracts (options) or units (the underlying), signed: buy > 0
 *   price     per unit of underlying, the option premium (or the underlying's
 *             price); cash = price x quantity x multiplier
 *   strike, spot in the underlying's currency units; rates, yields continuously
 *   compounded per year; vol per 1.00.
 *
 * Ownership: gk_book is opaque and owned by its creator (gk_book_new,
 * gk_book_clone), freed by gk_book_free. Events are plain values: everything is
 * inline, nothing to free. A gk_book is not thread-safe; share clones.
 */
#ifndef GREEKS_BOOK_H
#define GREEKS_BOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "greeks/american.h" /* GK_STYLE_EUROPEAN, GK_STYLE_AMERICAN */
#include "greeks/batch.h"    /* GK_CALL, GK_PUT */
#include "greeks/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GK_SYMBOL_SIZE 16       /* underlying symbol, up to 15 characters */
#define GK_BOOK_ID_SIZE 64      /* buffers; an id is at most GK_BOOK_ID_MAX_LENGTH */
/* Book ids are up to 58 characters of [A-Za-z0-9._-]: the journal stores a book
 * as the stream "book-ID", and stream names are at most 63 characters. */
#define GK_BOOK_ID_MAX_LENGTH 58
#define GK_TRADE_ID_SIZE 64
#define GK_EVENT_ID_SIZE 40     /* UUID text, 36 characters */
#define GK_META_ID_SIZE 64      /* correlation, causation, idempotency key */
#define GK_MAX_LEGS 16
#define GK_MAX_VOL_POINTS 16
#define GK_MAX_LIMITS 64
#define GK_TEXT_SIZE 128        /* names, reasons, descriptions */

#define GK_US_PER_DAY INT64_C(86400000000)
#define GK_US_PER_YEAR_ACT365 (INT64_C(365) * GK_US_PER_DAY)

/* ---- value objects ---------------------------------------------------------- */

typedef enum gk_instrument_kind { GK_KIND_OPTION = 0, GK_KIND_UNDERLYING = 1 } gk_instrument_kind;

/* An option (or the underlying itself). Two instruments are the same position when
 * every field is equal. For the underlying, type/style/strike/expiry are 0 and the
 * multiplier is 1. */
typedef struct gk_instrument {
  char underlying[GK_SYMBOL_SIZE];
  uint8_t kind;   /* gk_instrument_kind */
  uint8_t type;   /* GK_CALL / GK_PUT (greeks/batch.h) */
  uint8_t style;  /* GK_STYLE_EUROPEAN / GK_STYLE_AMERICAN (greeks/american.h) */
  double strike;
  int64_t expiry_us;
  double multiplier;
} gk_instrument;

/* Validates and builds an option: symbol 1..15 of [A-Za-z0-9._-], type GK_CALL or
 * GK_PUT, strike in (0, GK_MAX_STRIKE], expiry > 0, multiplier in
 * (0, GK_MAX_MULTIPLIER]. */
gk_code gk_instrument_option(const char *underlying, unsigned type, unsigned style, double strike,
                             int64_t expiry_us, double multiplier, gk_instrument *out,
                             gk_status *status);
/* The underlying itself (multiplier 1). */
gk_code gk_instrument_underlying(const char *underlying, gk_instrument *out, gk_status *status);
/* The rules of gk_instrument_option/underlying on a filled struct (for decoded input). */
gk_code gk_instrument_validate(const gk_instrument *instrument, gk_status *status);
bool gk_instrument_equal(const gk_instrument *a, const gk_instrument *b);
uint64_t gk_instrument_hash(const gk_instrument *instrument);
/* "AAPL 2027-01-15T21:00:00Z C 150 american x100" or "AAPL underlying",
 * truncated to size and NUL-terminated; returns, as snprintf does, the length
 * the whole text has (>= size: it was truncated), not the length written. */
int gk_instrument_format(const gk_instrument *instrument, char *out, size_t size);
/* A time in microseconds since the epoch as RFC 3339 UTC, "2027-01-15T21:00:00Z",
 * with ".ffffff" before the Z when it has microseconds; "<N>us" when gmtime
 * cannot. out holds at least 40 bytes. */
void gk_time_format_utc(int64_t us, char *out, size_t size);
/* ACT/365 Fixed year fraction from valuation_us to the expiry (negative once expired). */
double gk_year_fraction(int64_t valuation_us, int64_t expiry_us);

typedef struct gk_leg {
  gk_instrument instrument;
  int64_t quantity; /* nonzero, |q| <= GK_MAX_QUANTITY */
  double price;     /* finite, >= 0; |price x quantity x multiplier| <= GK_MAX_CASH */
} gk_leg;

#define GK_MAX_CASH 1e18         /* currency units of one leg: keeps every sum finite */
#define GK_MAX_STRIKE 1e12
#define GK_MAX_MULTIPLIER 1e6

#define GK_MAX_QUANTITY INT64_C(1000000000000)
/* A position's quantity stays within +-this: a leg that would take it past
 * is refused (FAILED_PRECONDITION). */
#define GK_MAX_POSITION_QUANTITY INT64_C(1000000000000000) /* 1e15 contracts */

typedef struct gk_trade {
  char trade_id[GK_TRADE_ID_SIZE];
  size_t leg_count; /* 1..GK_MAX_LEGS */
  gk_leg legs[GK_MAX_LEGS];
  int64_t trade_time_us;
  char idempotency_key[GK_META_ID_SIZE];
  char strategy_id[GK_META_ID_SIZE]; /* "" unless it executes a proposal */
} gk_trade;

/* Checks legs as values: 1..GK_MAX_LEGS, each instrument valid, quantity nonzero,
 * price finite and >= 0, no instrument twice. The status's index is the leg. */
gk_code gk_legs_validate(const gk_leg *legs, size_t count, gk_status *status);

/* Checks a trade as a value (ids, legs, quantities, prices); the book checks the
 * rest. The status's index is the leg. */
gk_code gk_trade_validate(const gk_trade *trade, gk_status *status);

typedef struct gk_position {
  gk_instrument instrument;
  int64_t quantity;
  double average_cost; /* per unit of underlying, of the open quantity; 0 when flat */
  double realized_pnl; /* currency units, from closing fills (average-cost method) */
} gk_position;

typedef struct gk_vol_point {
  gk_instrument instrument;
  double vol;
} gk_vol_point;

/* The market of one underlying. */
typedef struct gk_market_quote {
  char underlying[GK_SYMBOL_SIZE];
  double spot;  /* > 0 */
  double rate;  /* finite, |r| <= 1 */
  double yield; /* finite, |q| <= 1 */
  double vol;   /* > 0 and <= 10: every option of the underlying without a vol point */
  size_t vol_point_count;
  gk_vol_point vol_points[GK_MAX_VOL_POINTS];
  int64_t market_time_us;
} gk_market_quote;

gk_code gk_market_quote_validate(const gk_market_quote *quote, gk_status *status);

typedef enum gk_limit_metric {
  GK_LIMIT_DOLLAR_DELTA = 0,
  GK_LIMIT_DOLLAR_GAMMA = 1,
  GK_LIMIT_VEGA = 2,
  GK_LIMIT_WORST_SCENARIO_LOSS = 3,
  GK_LIMIT_GROSS_NOTIONAL = 4,
  GK_LIMIT_METRIC_COUNT
} gk_limit_metric;

typedef struct gk_risk_limit {
  char underlying[GK_SYMBOL_SIZE]; /* "" = the whole book */
  uint8_t metric;                  /* gk_limit_metric */
  double soft;                     /* >= 0, 0 = none */
  double hard;                     /* >= 0, 0 = none; >= soft when both set */
} gk_risk_limit;

const char *gk_limit_metric_name(unsigned metric);
gk_code gk_risk_limit_validate(const gk_risk_limit *limit, gk_status *status);

/* ---- events ----------------------------------------------------------------- */

typedef enum gk_event_type {
  GK_EVENT_BOOK_OPENED = 1,
  GK_EVENT_TRADE_EXECUTED = 2,
  GK_EVENT_TRADE_CORRECTED = 3,
  GK_EVENT_MARKET_UPDATED = 4,
  GK_EVENT_RISK_LIMITS_SET = 5,
  GK_EVENT_RISK_LIMIT_BREACHED = 6,
  GK_EVENT_RISK_LIMIT_RESTORED = 7,
  GK_EVENT_STRATEGY_PROPOSED = 8,
  GK_EVENT_TRADE_REJECTED = 9,
} gk_event_type;

/* The current schema version of each event type's payload. */
uint32_t gk_event_current_version(gk_event_type type);
const char *gk_event_type_name(unsigned type); /* "TradeExecuted", ...; "unknown" */

typedef struct gk_event_meta {
  char event_id[GK_EVENT_ID_SIZE];
  char book_id[GK_BOOK_ID_SIZE];
  int64_t sequence;        /* 1-based, per book */
  int64_t time_us;
  uint32_t schema_version; /* current version after decoding (upcast) */
  char correlation_id[GK_META_ID_SIZE];
  char causation_id[GK_META_ID_SIZE];
} gk_event_meta;

typedef struct gk_book_opened {
  char name[GK_TEXT_SIZE];
  char currency[4];
} gk_book_opened;

typedef struct gk_trade_corrected {
  char trade_id[GK_TRADE_ID_SIZE];
  size_t reversed_count;
  gk_leg reversed[GK_MAX_LEGS];
  size_t replacement_count;
  gk_leg replacement[GK_MAX_LEGS];
  char reason[GK_TEXT_SIZE];
  int64_t trade_time_us; /* the trade's own trade time, µs since the epoch; 0: not recorded (older events) */
} gk_trade_corrected;

typedef struct gk_risk_limits_set {
  size_t count;
  gk_risk_limit limits[GK_MAX_LIMITS];
} gk_risk_limits_set;

typedef struct gk_limit_edge {  /* RiskLimitBreached / RiskLimitRestored */
  gk_risk_limit limit;
  uint8_t hard;                 /* 0 soft level, 1 hard level */
  double value;
  double threshold;
} gk_limit_edge;

typedef struct gk_strategy_proposed {
  char strategy_id[GK_META_ID_SIZE];
  char kind[32];
  size_t leg_count;
  gk_leg legs[GK_MAX_LEGS];
  double net_premium;
  char description[GK_TEXT_SIZE];
} gk_strategy_proposed;

/* A trade refused by a pre-trade check (no position changes). */
typedef struct gk_trade_rejected {
  char trade_id[GK_TRADE_ID_SIZE];
  size_t leg_count;
  gk_leg legs[GK_MAX_LEGS];
  gk_risk_limit limit;
  uint8_t hard;
  double value, would_be, threshold;
  char reason[GK_TEXT_SIZE];
} gk_trade_rejected;

typedef struct gk_event {
  gk_event_meta meta;
  gk_event_type type;
  union {
    gk_book_opened book_opened;
    gk_trade trade_executed;
    gk_trade_corrected trade_corrected;
    gk_market_quote market_updated;
    gk_risk_limits_set limits_set;
    gk_limit_edge limit_edge; /* breached and restored */
    gk_strategy_proposed strategy_proposed;
    gk_trade_rejected trade_rejected;
  } as;
} gk_event;

/* ---- the aggregate ---------------------------------------------------------- */

typedef struct gk_book gk_book;

/* An empty, unopened book (version 0). NULL when out of memory. */
gk_book *gk_book_new(void);
void gk_book_free(gk_book *book); /* NULL is a no-op */
/* A deep, independent copy (an immutable snapshot for readers); NULL on OOM. */
gk_book *gk_book_clone(const gk_book *book);

bool gk_book_is_open(const gk_book *book);
const char *gk_book_id(const gk_book *book);
const char *gk_book_name(const gk_book *book);
const char *gk_book_currency(const gk_book *book);
int64_t gk_book_version(const gk_book *book); /* sequence of the last applied event */
int64_t gk_book_opened_time(const gk_book *book);
int64_t gk_book_last_event_time(const gk_book *book);

/* Positions in the order they were first traded (a flat position stays listed
 * with quantity 0 and its realized P&L). Index 0..count-1. */
size_t gk_book_position_count(const gk_book *book);
const gk_position *gk_book_position(const gk_book *book, size_t index);
const gk_position *gk_book_find_position(const gk_book *book, const gk_instrument *instrument);

/* Markets by underlying, in the order first updated. */
size_t gk_book_market_count(const gk_book *book);
const gk_market_quote *gk_book_market(const gk_book *book, size_t index);
const gk_market_quote *gk_book_find_market(const gk_book *book, const char *underlying);
/* The time (us since the epoch) of the last event that moved `underlying`'s
 * market or positions: its MarketUpdated, or a trade or correction that
 * changed the quantity of a position on it after that (a correction repeating
 * a leg unchanged does not). 0 when the book has no market for it. The live risk
 * values an underlying at this time, or at a later expiry of one of its open
 * options up to the book's last event (adr/0054), so the figures are a
 * function of the journal, whoever folds it and however its events are
 * batched. */
int64_t gk_book_underlying_event_time(const gk_book *book, const char *underlying);
/* The vol of `instrument`: its vol point if the market has one, else the
 * underlying's vol; false when the underlying has no market. */
bool gk_book_vol_of(const gk_book *book, const gk_instrument *instrument, double *vol);

const gk_risk_limits_set *gk_book_limits(const gk_book *book);

/* Whether a hard limit of the book covers `underlying`: one set on that
 * symbol, or a book-wide one (no underlying). The pre-trade check fails
 * closed only where one does. */
bool gk_book_hard_limit_covers(const gk_book *book, const char *underlying);

/* The limit levels the journal holds breached: a RiskLimitBreached opens its
 * level (the limit's underlying and metric, soft or hard), a RiskLimitRestored
 * closes it. The risk projection starts from these, so that a restart neither
 * opens a breach twice nor leaves one open that the value has left, and a
 * limit edge that would not change them is not journaled (several instances
 * on one store see every crossing; adr/0047). At most GK_MAX_OPEN_BREACHES
 * (each of GK_MAX_LIMITS limits at two levels, and as many withdrawn ones
 * awaiting their Restored); past that the oldest is forgotten. */
#define GK_MAX_OPEN_BREACHES (4 * GK_MAX_LIMITS)
bool gk_book_breach_open(const gk_book *book, const gk_risk_limit *limit, int hard);
size_t gk_book_open_breach_count(const gk_book *book);
const gk_limit_edge *gk_book_open_breach_at(const gk_book *book, size_t index);
/* Whether journaling `type` for `edge` would change the open breaches. */
bool gk_book_edge_changes_breaches(const gk_book *book, gk_event_type type, const gk_limit_edge *edge);
/* The version of the last RiskLimitBreached or RiskLimitRestored applied (0:
 * none), or a later version: after a snapshot it is the snapshot's when no
 * edge followed. Limit edges judged at an earlier version are stale: another
 * judgement of the levels has been journaled since (adr/0050). */
int64_t gk_book_last_edge_version(const gk_book *book);

/* The sequence of the event that last set a trade's legs (its TradeExecuted or
 * latest TradeCorrected); 0 when the book has no such trade. */
int64_t gk_book_trade_sequence(const gk_book *book, const char *trade_id);
size_t gk_book_trade_count(const gk_book *book);
/* Trades, in the order executed: id and sequence of the event that last set its legs. */
const char *gk_book_trade_id_at(const gk_book *book, size_t index, int64_t *sequence);

/* Strategy ids proposed on this book, in order. */
size_t gk_book_strategy_count(const gk_book *book);
bool gk_book_has_strategy(const gk_book *book, const char *strategy_id);
const char *gk_book_strategy_at(const gk_book *book, size_t index);

/* ---- decide: command -> event, or the rule it breaks ---------------------- */
/* Each fills out->type and out->as (never out->meta: the use case stamps it) and
 * returns GK_OK, or fails with a status naming the field, the value and the rule:
 *   GK_NOT_FOUND            the book is not open (every command but open)
 *   GK_ALREADY_EXISTS       open on an open book; a trade id already applied
 *   GK_FAILED_PRECONDITION  an expired instrument, an unknown trade or strategy
 *   GK_INVALID_ARGUMENT     a malformed value (gk_*_validate)
 * `now_us` is the command's time. A trade leg whose expiry is at or before the
 * trade's own time is refused (a late booking of a trade done before expiry is
 * accepted; the position is then reported expired); a trade time more than 5
 * minutes after now_us is refused. */
gk_code gk_book_decide_open(const gk_book *book, const char *book_id, const char *name,
                            const char *currency, gk_event *out, gk_status *status);
gk_code gk_book_decide_trade(const gk_book *book, const gk_trade *trade, int64_t now_us,
                             gk_event *out, gk_status *status);
/* `original` is the event that last set the trade's legs (the use case reads it
 * from the store at gk_book_trade_sequence); replacement_count 0 cancels. A
 * cancel of a cancelled trade is GK_FAILED_PRECONDITION (field trade_id); a
 * correction with legs rebooks a cancelled trade. Replacement legs equal to
 * the trade's current ones (in any order) are GK_FAILED_PRECONDITION (field
 * replacement): a correction must change the trade. */
gk_code gk_book_decide_correction(const gk_book *book, const gk_event *original,
                                  const gk_leg *replacement, size_t replacement_count,
                                  const char *reason, int64_t now_us, gk_event *out,
                                  gk_status *status);
gk_code gk_book_decide_market(const gk_book *book, const gk_market_quote *quote, gk_event *out,
                              gk_status *status);
gk_code gk_book_decide_limits(const gk_book *book, const gk_risk_limit *limits, size_t count,
                              gk_event *out, gk_status *status);
/* A limit crossing the risk projection saw (type GK_EVENT_RISK_LIMIT_BREACHED or
 * _RESTORED): the limit must be valid and the values finite. */
gk_code gk_book_decide_limit_edge(const gk_book *book, gk_event_type type,
                                  const gk_limit_edge *edge, gk_event *out, gk_status *status);

/* A StrategyProposed (a hedge or a strategy the strategy agent proposes): a new
 * strategy id (GK_ALREADY_EXISTS when the book has it), 0..GK_MAX_LEGS valid legs,
 * a finite net premium. A trade that executes it names it in strategy_id. */
gk_code gk_book_decide_strategy(const gk_book *book, const gk_strategy_proposed *proposal,
                                gk_event *out, gk_status *status);

/* ---- apply: the fold --------------------------------------------------------- */
/* The fold's rules, as snapshots record them: raised whenever gk_book_apply
 * gives another state for the same events (a figure, a time, a count), so
 * that a snapshot written under the old rules is replayed, not used
 * (snapshots are a cache: docs/book.md). 1: from 2026-12-07. */
#define GK_BOOK_FOLD_VERSION 1u

/* Applies one event. Its meta.sequence must be version + 1 and its book id the
 * book's (after BookOpened); otherwise, or when the event contradicts the state
 * (a replay of a corrupted or foreign stream), it fails with GK_DATA_LOSS naming
 * the sequence, and the book is unchanged. GK_RESOURCE_EXHAUSTED on OOM (the book
 * is then unchanged too). */
gk_code gk_book_apply(gk_book *book, const gk_event *event, gk_status *status);

/* Makes room for this many positions and trades (a snapshot load knows them);
 * false on OOM. Optional: the book grows on demand otherwise. */
bool gk_book_reserve(gk_book *book, size_t positions, size_t trades);

/* Rebuild support for snapshots (engine/events decodes them): restore a book at
 * `sequence` from its parts. Each call validates what it adds. */
gk_code gk_book_restore_header(gk_book *book, const char *book_id, const char *name,
                               const char *currency, int64_t opened_time_us, int64_t sequence,
                               int64_t last_event_time_us, gk_status *status);
gk_code gk_book_restore_position(gk_book *book, const gk_position *position, gk_status *status);
gk_code gk_book_restore_trade(gk_book *book, const char *trade_id, int64_t sequence,
                              gk_status *status);
/* The market, timed (gk_book_underlying_event_time) at the header's last event. */
gk_code gk_book_restore_market(gk_book *book, const gk_market_quote *quote, gk_status *status);
/* The market with the time of its underlying's last event; GK_DATA_LOSS when
 * that is after the header's last event. */
gk_code gk_book_restore_market_at(gk_book *book, const gk_market_quote *quote,
                                  int64_t underlying_event_time_us, gk_status *status);
gk_code gk_book_restore_limits(gk_book *book, const gk_risk_limits_set *limits, gk_status *status);
gk_code gk_book_restore_strategy(gk_book *book, const char *strategy_id, gk_status *status);
gk_code gk_book_restore_breach(gk_book *book, const gk_limit_edge *open, gk_status *status);

/* The live risk's brake (adr/0054): the limit edges the journal holds on
 * `limit`'s level (hard: 1 for the hard level) since the book's last trade,
 * correction, tick or limits set, or the first event at or after the expiry
 * of an option position it held, at most 255; 0 for a limit the book does
 * not have. A fold of the journal, so every instance reads the same count. */
unsigned gk_book_edges_since_move(const gk_book *book, const gk_risk_limit *limit, int hard);
/* Snapshot support: the counts of limit `limit_index` of the restored limits. */
gk_code gk_book_restore_edges_since_move(gk_book *book, size_t limit_index, unsigned soft,
                                         unsigned hard, gk_status *status);

/* True when both books hold the same state (every position, trade, market, limit,
 * version); on false, `difference` (may be NULL) says the first that differs. */
bool gk_book_equal(const gk_book *a, const gk_book *b, char *difference, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_BOOK_H */
