/*
 * snapshot_codec.c - a book's state <-> a BookSnapshot message, and the book
 * rebuilt from one.
 *
 * A snapshot is a cache of the fold at one sequence (the store writes one every
 * N events in the same transaction as the events): loading it and applying the
 * events after it must give the same book as replaying from the start, which
 * tests/test_book_service.c checks. Encoding allocates the protobuf-c structs
 * for every position in two arrays; decoding validates every position, trade
 * and market again through the domain's restore functions, so a damaged
 * snapshot fails with GK_DATA_LOSS rather than seeding a wrong book.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/batch.h"
#include "greeks/event_codec.h"
#include "greeks/events/v1/book_events.pb-c.h"

typedef Greeks__Events__V1__Instrument PbInstrument;
typedef Greeks__Events__V1__Position PbPosition;
typedef Greeks__Events__V1__TradeRef PbTradeRef;
typedef Greeks__Events__V1__BookSnapshot PbSnapshot;

/* Everything the encoder allocates, freed together. */
typedef struct snapshot_parts {
  PbInstrument *instruments;
  PbPosition *positions;
  PbPosition **position_pointers;
  PbTradeRef *trades;
  PbTradeRef **trade_pointers;
  char **strategies;
} snapshot_parts;

static void free_parts(snapshot_parts *p) {
  free(p->instruments);
  free(p->positions);
  free(p->position_pointers);
  free(p->trades);
  free(p->trade_pointers);
  free(p->strategies);
}

static void instrument_to_pb(const gk_instrument *in, PbInstrument *pb) {
  greeks__events__v1__instrument__init(pb);
  pb->underlying = (char *)in->underlying;
  pb->kind = (Greeks__Events__V1__InstrumentKind)in->kind;
  pb->option_type = (Greeks__Events__V1__OptionType)in->type;
  pb->style = (Greeks__Events__V1__ExerciseStyle)in->style;
  pb->strike = in->strike;
  pb->expiry_us = in->expiry_us;
  pb->multiplier = in->multiplier;
}

static bool fill_positions(const gk_book *book, PbSnapshot *pb, snapshot_parts *p) {
  size_t n = gk_book_position_count(book);
  p->instruments = calloc(n ? n : 1, sizeof *p->instruments);
  p->positions = calloc(n ? n : 1, sizeof *p->positions);
  p->position_pointers = calloc(n ? n : 1, sizeof *p->position_pointers);
  if (!p->instruments || !p->positions || !p->position_pointers) return false;
  for (size_t i = 0; i < n; i++) {
    const gk_position *pos = gk_book_position(book, i);
    instrument_to_pb(&pos->instrument, &p->instruments[i]);
    greeks__events__v1__position__init(&p->positions[i]);
    p->positions[i].instrument = &p->instruments[i];
    p->positions[i].quantity = pos->quantity;
    p->positions[i].average_cost = pos->average_cost;
    p->positions[i].realized_pnl = pos->realized_pnl;
    p->position_pointers[i] = &p->positions[i];
  }
  pb->n_positions = n;
  pb->positions = p->position_pointers;
  return true;
}

static bool fill_trades(const gk_book *book, PbSnapshot *pb, snapshot_parts *p) {
  size_t n = gk_book_trade_count(book);
  p->trades = calloc(n ? n : 1, sizeof *p->trades);
  p->trade_pointers = calloc(n ? n : 1, sizeof *p->trade_pointers);
  if (!p->trades || !p->trade_pointers) return false;
  for (size_t i = 0; i < n; i++) {
    greeks__events__v1__trade_ref__init(&p->trades[i]);
    p->trades[i].trade_id = (char *)gk_book_trade_id_at(book, i, &p->trades[i].sequence);
    p->trade_pointers[i] = &p->trades[i];
  }
  pb->n_trades = n;
  pb->trades = p->trade_pointers;
  return true;
}

static bool fill_strategies(const gk_book *book, PbSnapshot *pb, snapshot_parts *p) {
  size_t n = gk_book_strategy_count(book);
  p->strategies = calloc(n ? n : 1, sizeof *p->strategies);
  if (!p->strategies) return false;
  for (size_t i = 0; i < n; i++) p->strategies[i] = (char *)gk_book_strategy_at(book, i);
  pb->n_strategies = n;
  pb->strategies = p->strategies;
  return true;
}

/* Markets and limits are few (one per underlying, <= GK_MAX_LIMITS): each is
 * encoded through the event encoder's layout into a sub-message, packed here. */
typedef struct market_parts {
  Greeks__Events__V1__MarketUpdated *markets;
  int64_t *event_times;
  Greeks__Events__V1__MarketUpdated **pointers;
  PbInstrument *instruments;
  Greeks__Events__V1__VolPoint *points;
  Greeks__Events__V1__VolPoint **point_pointers;
} market_parts;

static void free_markets(market_parts *m) {
  free(m->markets);
  free(m->event_times);
  free(m->pointers);
  free(m->instruments);
  free(m->points);
  free(m->point_pointers);
}

static void market_to_pb(const gk_market_quote *q, size_t slot, market_parts *m) {
  Greeks__Events__V1__MarketUpdated *pb = &m->markets[slot];
  greeks__events__v1__market_updated__init(pb);
  pb->underlying = (char *)q->underlying;
  pb->spot = q->spot;
  pb->rate = q->rate;
  pb->yield = q->yield;
  pb->vol = q->vol;
  pb->market_time_us = q->market_time_us;
  size_t base = slot * GK_MAX_VOL_POINTS;
  for (size_t j = 0; j < q->vol_point_count; j++) {
    instrument_to_pb(&q->vol_points[j].instrument, &m->instruments[base + j]);
    greeks__events__v1__vol_point__init(&m->points[base + j]);
    m->points[base + j].instrument = &m->instruments[base + j];
    m->points[base + j].vol = q->vol_points[j].vol;
    m->point_pointers[base + j] = &m->points[base + j];
  }
  pb->n_vols = q->vol_point_count;
  pb->vols = &m->point_pointers[base];
  m->pointers[slot] = pb;
}

static bool fill_markets(const gk_book *book, PbSnapshot *pb, market_parts *m) {
  size_t n = gk_book_market_count(book), k = n ? n : 1;
  m->markets = calloc(k, sizeof *m->markets);
  m->event_times = calloc(k, sizeof *m->event_times);
  m->pointers = calloc(k, sizeof *m->pointers);
  m->instruments = calloc(k * GK_MAX_VOL_POINTS, sizeof *m->instruments);
  m->points = calloc(k * GK_MAX_VOL_POINTS, sizeof *m->points);
  m->point_pointers = calloc(k * GK_MAX_VOL_POINTS, sizeof *m->point_pointers);
  if (!m->markets || !m->event_times || !m->pointers || !m->instruments || !m->points ||
      !m->point_pointers)
    return false;
  for (size_t i = 0; i < n; i++) {
    const gk_market_quote *q = gk_book_market(book, i);
    market_to_pb(q, i, m);
    m->event_times[i] = gk_book_underlying_event_time(book, q->underlying);
  }
  pb->n_markets = n;
  pb->markets = m->pointers;
  pb->n_market_event_time_us = n;
  pb->market_event_time_us = m->event_times;
  pb->market_times_recorded = 1;
  return true;
}

gk_code gk_book_snapshot_encode(const gk_book *book, uint8_t **bytes, size_t *size,
                                gk_status *status) {
  PbSnapshot pb = GREEKS__EVENTS__V1__BOOK_SNAPSHOT__INIT;
  pb.sequence = gk_book_version(book);
  pb.book_id = (char *)gk_book_id(book);
  pb.name = (char *)gk_book_name(book);
  pb.currency = (char *)gk_book_currency(book);
  pb.opened_time_us = gk_book_opened_time(book);
  pb.last_event_time_us = gk_book_last_event_time(book);
  const gk_risk_limits_set *limits = gk_book_limits(book);
  Greeks__Events__V1__RiskLimit pb_limits[GK_MAX_LIMITS], *limit_pointers[GK_MAX_LIMITS];
  for (size_t i = 0; i < limits->count; i++) {
    greeks__events__v1__risk_limit__init(&pb_limits[i]);
    pb_limits[i].underlying = (char *)limits->limits[i].underlying;
    pb_limits[i].metric = (Greeks__Events__V1__LimitMetric)limits->limits[i].metric;
    pb_limits[i].soft = limits->limits[i].soft;
    pb_limits[i].hard = limits->limits[i].hard;
    limit_pointers[i] = &pb_limits[i];
  }
  pb.n_limits = limits->count;
  pb.limits = limit_pointers;
  uint32_t edge_counts[2 * GK_MAX_LIMITS];
  for (size_t i = 0; i < limits->count; i++) {
    edge_counts[2 * i] = gk_book_edges_since_move(book, &limits->limits[i], 0);
    edge_counts[2 * i + 1] = gk_book_edges_since_move(book, &limits->limits[i], 1);
  }
  pb.n_limit_edges_since_move = 2 * limits->count;
  pb.limit_edges_since_move = edge_counts;
  size_t open_count = gk_book_open_breach_count(book);
  Greeks__Events__V1__RiskLimitBreached pb_open[GK_MAX_OPEN_BREACHES], *open_pointers[GK_MAX_OPEN_BREACHES];
  Greeks__Events__V1__RiskLimit pb_open_limits[GK_MAX_OPEN_BREACHES];
  for (size_t i = 0; i < open_count; i++) {
    const gk_limit_edge *e = gk_book_open_breach_at(book, i);
    greeks__events__v1__risk_limit_breached__init(&pb_open[i]);
    greeks__events__v1__risk_limit__init(&pb_open_limits[i]);
    pb_open_limits[i].underlying = (char *)e->limit.underlying;
    pb_open_limits[i].metric = (Greeks__Events__V1__LimitMetric)e->limit.metric;
    pb_open_limits[i].soft = e->limit.soft;
    pb_open_limits[i].hard = e->limit.hard;
    pb_open[i].limit = &pb_open_limits[i];
    pb_open[i].level = e->hard ? GREEKS__EVENTS__V1__LIMIT_LEVEL__HARD : GREEKS__EVENTS__V1__LIMIT_LEVEL__SOFT;
    pb_open[i].value = e->value;
    pb_open[i].threshold = e->threshold;
    open_pointers[i] = &pb_open[i];
  }
  pb.n_open_breaches = open_count;
  pb.open_breaches = open_pointers;
  pb.breaches_recorded = 1;
  pb.fold_version = GK_BOOK_FOLD_VERSION;
  snapshot_parts parts = {0};
  market_parts markets = {0};
  bool ok = fill_positions(book, &pb, &parts) && fill_trades(book, &pb, &parts) &&
            fill_strategies(book, &pb, &parts) && fill_markets(book, &pb, &markets);
  gk_code rc = GK_OK;
  if (ok) {
    *size = protobuf_c_message_get_packed_size(&pb.base);
    *bytes = malloc(*size ? *size : 1);
    ok = *bytes != NULL;
    if (ok) protobuf_c_message_pack(&pb.base, *bytes);
  }
  if (!ok)
    rc = gk_status_set(status, GK_RESOURCE_EXHAUSTED, "snapshot", gk_book_id(book),
                       GK_STATUS_NO_INDEX, "out of memory encoding a snapshot of book %s",
                       gk_book_id(book));
  free_parts(&parts);
  free_markets(&markets);
  return rc;
}

/* ---- decoding -------------------------------------------------------------------------- */

static gk_code snapshot_damaged(const char *stream, int64_t sequence, const char *why,
                                gk_status *status) {
  char value[32];
  snprintf(value, sizeof value, "%lld", (long long)sequence);
  return gk_status_set(status, GK_DATA_LOSS, "snapshot", value, GK_STATUS_NO_INDEX,
                       "stream %s, snapshot at sequence %lld: %s; delete the stream's snapshots "
                       "to rebuild from the events (docs/operations.md)", stream,
                       (long long)sequence, why);
}

static bool instrument_from_pb(const PbInstrument *pb, gk_instrument *out) {
  memset(out, 0, sizeof *out);
  if (pb == NULL || pb->underlying == NULL || strlen(pb->underlying) >= GK_SYMBOL_SIZE)
    return false;
  snprintf(out->underlying, sizeof out->underlying, "%s", pb->underlying);
  /* the wire's values are the domain's (0, 1); any other is damage, not a
   * call or a European (found in review) */
  unsigned kind = (unsigned)pb->kind, type = (unsigned)pb->option_type, style = (unsigned)pb->style;
  if (kind > 1 || type > 1 || style > 1) return false;
  out->kind = (uint8_t)kind;
  out->type = (uint8_t)type;
  out->style = (uint8_t)style;
  out->strike = pb->strike;
  out->expiry_us = pb->expiry_us;
  out->multiplier = pb->multiplier;
  return true;
}

static gk_code restore_market(gk_book *book, const Greeks__Events__V1__MarketUpdated *pb,
                              int64_t event_time_us, gk_status *status) {
  gk_market_quote q;
  memset(&q, 0, sizeof q);
  if (pb->underlying == NULL || strlen(pb->underlying) >= GK_SYMBOL_SIZE ||
      pb->n_vols > GK_MAX_VOL_POINTS)
    return GK_DATA_LOSS;
  snprintf(q.underlying, sizeof q.underlying, "%s", pb->underlying);
  q.spot = pb->spot;
  q.rate = pb->rate;
  q.yield = pb->yield;
  q.vol = pb->vol;
  q.market_time_us = pb->market_time_us;
  q.vol_point_count = pb->n_vols;
  for (size_t j = 0; j < pb->n_vols; j++) {
    if (!instrument_from_pb(pb->vols[j]->instrument, &q.vol_points[j].instrument))
      return GK_DATA_LOSS;
    q.vol_points[j].vol = pb->vols[j]->vol;
  }
  return gk_book_restore_market_at(book, &q, event_time_us, status);
}

static gk_code restore_limit(const Greeks__Events__V1__RiskLimit *in, gk_risk_limit *l) {
  memset(l, 0, sizeof *l);
  if (in == NULL || in->underlying == NULL || strlen(in->underlying) >= GK_SYMBOL_SIZE) return GK_DATA_LOSS;
  snprintf(l->underlying, sizeof l->underlying, "%s", in->underlying);
  l->metric = (uint8_t)((unsigned)in->metric < GK_LIMIT_METRIC_COUNT ? (unsigned)in->metric : 255);
  l->soft = in->soft;
  l->hard = in->hard;
  return GK_OK;
}

static gk_code restore_parts(gk_book *book, const PbSnapshot *pb, gk_status *status) {
  gk_code rc = gk_book_restore_header(book, pb->book_id, pb->name, pb->currency,
                                      pb->opened_time_us, pb->sequence, pb->last_event_time_us,
                                      status);
  for (size_t i = 0; rc == GK_OK && i < pb->n_positions; i++) {
    gk_position p = {.quantity = pb->positions[i]->quantity,
                     .average_cost = pb->positions[i]->average_cost,
                     .realized_pnl = pb->positions[i]->realized_pnl};
    rc = instrument_from_pb(pb->positions[i]->instrument, &p.instrument)
             ? gk_book_restore_position(book, &p, status)
             : GK_DATA_LOSS;
  }
  for (size_t i = 0; rc == GK_OK && i < pb->n_trades; i++)
    rc = gk_book_restore_trade(book, pb->trades[i]->trade_id, pb->trades[i]->sequence, status);
  if (rc == GK_OK && pb->n_market_event_time_us != pb->n_markets) rc = GK_DATA_LOSS;
  for (size_t i = 0; rc == GK_OK && i < pb->n_markets; i++)
    rc = restore_market(book, pb->markets[i], pb->market_event_time_us[i], status);
  gk_risk_limits_set limits = {.count = pb->n_limits};
  if (rc == GK_OK && pb->n_limits > GK_MAX_LIMITS) rc = GK_DATA_LOSS;
  for (size_t i = 0; rc == GK_OK && i < pb->n_limits; i++) rc = restore_limit(pb->limits[i], &limits.limits[i]);
  if (rc == GK_OK) rc = gk_book_restore_limits(book, &limits, status);
  /* none in a snapshot from before the brake's count: 0 */
  if (rc == GK_OK && pb->n_limit_edges_since_move != 0 && pb->n_limit_edges_since_move != 2 * pb->n_limits)
    rc = GK_DATA_LOSS;
  for (size_t i = 0; rc == GK_OK && pb->n_limit_edges_since_move && i < pb->n_limits; i++)
    rc = gk_book_restore_edges_since_move(book, i, pb->limit_edges_since_move[2 * i],
                                          pb->limit_edges_since_move[2 * i + 1], status);
  for (size_t i = 0; rc == GK_OK && i < pb->n_open_breaches; i++) {
    const Greeks__Events__V1__RiskLimitBreached *in = pb->open_breaches[i];
    if ((unsigned)in->level > 1) {
      rc = GK_DATA_LOSS;
      break;
    }
    gk_limit_edge open = {.hard = in->level == GREEKS__EVENTS__V1__LIMIT_LEVEL__HARD,
                          .value = in->value,
                          .threshold = in->threshold};
    rc = restore_limit(in->limit, &open.limit);
    if (rc == GK_OK) rc = gk_book_restore_breach(book, &open, status);
  }
  for (size_t i = 0; rc == GK_OK && i < pb->n_strategies; i++)
    rc = gk_book_restore_strategy(book, pb->strategies[i], status);
  return rc;
}

/* Unpacking a 100k-position snapshot makes ~300k small allocations; a chunked
 * arena makes them a few dozen and frees them at once. */
typedef struct chunk {
  struct chunk *next;
  size_t used, size;
  _Alignas(16) unsigned char data[];
} chunk;

static void *chunk_alloc(void *user, size_t size) {
  chunk **head = user;
  size = (size + 15) & ~(size_t)15;
  if (*head == NULL || (*head)->used + size > (*head)->size) {
    size_t capacity = size > (1u << 20) ? size : (1u << 20);
    chunk *c = malloc(sizeof *c + capacity);
    if (c == NULL) return NULL;
    c->next = *head, c->used = 0, c->size = capacity;
    *head = c;
  }
  void *p = (*head)->data + (*head)->used;
  (*head)->used += size;
  return p;
}

static void chunk_free(void *user, void *p) { (void)user, (void)p; }

static void free_chunks(chunk *head) {
  while (head) {
    chunk *next = head->next;
    free(head);
    head = next;
  }
}

gk_code gk_book_snapshot_decode(const char *stream, const uint8_t *bytes, size_t size,
                                gk_book **out, gk_status *status) {
  *out = NULL;
  chunk *chunks = NULL;
  ProtobufCAllocator arena = {chunk_alloc, chunk_free, &chunks};
  PbSnapshot *pb = greeks__events__v1__book_snapshot__unpack(&arena, size, bytes);
  if (pb == NULL) {
    free_chunks(chunks);
    return snapshot_damaged(stream, -1, "the bytes do not parse", status);
  }
  if (!pb->breaches_recorded || !pb->market_times_recorded) {
    /* older than open breaches or the underlyings' event times: not used (event_codec.h) */
    int64_t sequence = pb->sequence;
    const char *lacks = pb->breaches_recorded ? "its underlyings' event times" : "open breaches";
    free_chunks(chunks);
    return gk_status_set(status, GK_FAILED_PRECONDITION, "snapshot", stream, GK_STATUS_NO_INDEX,
                         "stream %s: the snapshot at sequence %lld does not record %s: "
                         "replay the stream instead", stream, (long long)sequence, lacks);
  }
  if (pb->fold_version != GK_BOOK_FOLD_VERSION) {
    /* computed under other fold rules: its state is not this build's (event_codec.h) */
    int64_t sequence = pb->sequence;
    unsigned fold = pb->fold_version;
    free_chunks(chunks);
    return gk_status_set(status, GK_FAILED_PRECONDITION, "snapshot", stream, GK_STATUS_NO_INDEX,
                         "stream %s: the snapshot at sequence %lld was folded under rules %u, this build "
                         "folds under %u: replay the stream instead", stream, (long long)sequence, fold,
                         GK_BOOK_FOLD_VERSION);
  }
  gk_book *book = gk_book_new();
  if (book == NULL || !gk_book_reserve(book, pb->n_positions, pb->n_trades)) {
    gk_book_free(book);
    free_chunks(chunks);
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "snapshot", stream, GK_STATUS_NO_INDEX,
                         "out of memory loading a snapshot");
  }
  gk_status why;
  gk_status_clear(&why);
  gk_code rc = restore_parts(book, pb, &why);
  int64_t sequence = pb->sequence;
  free_chunks(chunks);
  if (rc == GK_RESOURCE_EXHAUSTED) {
    if (status) *status = why;
  } else if (rc != GK_OK) {
    rc = snapshot_damaged(stream, sequence, why.message[0] ? why.message : "a part is malformed",
                          status);
  }
  if (rc != GK_OK) {
    gk_book_free(book);
    return rc;
  }
  *out = book;
  return GK_OK;
}
