/*
 * event_codec.c - domain events <-> greeks.events.v1 payload bytes, with the
 * upcaster of MarketUpdated version 1.
 *
 * Encoding builds the protobuf-c structs on the stack (every event is bounded:
 * at most GK_MAX_LEGS legs, GK_MAX_VOL_POINTS vol points, GK_MAX_LIMITS limits)
 * and packs once into a malloc'ed buffer. Decoding unpacks with an arena
 * allocator on the stack, so replaying a million events does not make a million
 * round trips through malloc; a message too large for the arena falls back to
 * the heap. Every decoded value is validated again by the domain's own rules.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/batch.h"
#include "greeks/event_codec.h"
#include "greeks/events/v1/book_events.pb-c.h"

typedef Greeks__Events__V1__Instrument PbInstrument;
typedef Greeks__Events__V1__Leg PbLeg;
typedef Greeks__Events__V1__RiskLimit PbLimit;
typedef Greeks__Events__V1__VolPoint PbVolPoint;
typedef Greeks__Events__V1__MarketUpdated PbMarket;

/* ---- the decode arena ---------------------------------------------------------- */

typedef struct arena {
  unsigned char *base;
  size_t used, size;
} arena;

static void *arena_alloc(void *data, size_t size) {
  arena *a = data;
  size = (size + 15) & ~(size_t)15;
  if (a->used + size <= a->size) {
    void *p = a->base + a->used;
    a->used += size;
    return p;
  }
  return malloc(size);
}

static void arena_free(void *data, void *p) {
  arena *a = data;
  unsigned char *c = p;
  if (c >= a->base && c < a->base + a->size) return; /* released with the arena */
  free(p);
}

/* ---- encoding ------------------------------------------------------------------ */

static void instrument_to_pb(const gk_instrument *in, PbInstrument *pb) {
  greeks__events__v1__instrument__init(pb);
  pb->underlying = (char *)in->underlying;
  pb->kind = in->kind == GK_KIND_UNDERLYING ? GREEKS__EVENTS__V1__INSTRUMENT_KIND__UNDERLYING
                                            : GREEKS__EVENTS__V1__INSTRUMENT_KIND__OPTION;
  pb->option_type = in->type == GK_PUT ? GREEKS__EVENTS__V1__OPTION_TYPE__PUT
                                       : GREEKS__EVENTS__V1__OPTION_TYPE__CALL;
  pb->style = in->style == GK_STYLE_AMERICAN ? GREEKS__EVENTS__V1__EXERCISE_STYLE__AMERICAN
                                             : GREEKS__EVENTS__V1__EXERCISE_STYLE__EUROPEAN;
  pb->strike = in->strike;
  pb->expiry_us = in->expiry_us;
  pb->multiplier = in->multiplier;
}

/* Storage for up to GK_MAX_LEGS legs of one repeated field. */
typedef struct pb_legs {
  PbInstrument instruments[GK_MAX_LEGS];
  PbLeg legs[GK_MAX_LEGS];
  PbLeg *pointers[GK_MAX_LEGS];
} pb_legs;

static PbLeg **legs_to_pb(const gk_leg *legs, size_t count, pb_legs *out) {
  for (size_t i = 0; i < count; i++) {
    instrument_to_pb(&legs[i].instrument, &out->instruments[i]);
    greeks__events__v1__leg__init(&out->legs[i]);
    out->legs[i].instrument = &out->instruments[i];
    out->legs[i].quantity = legs[i].quantity;
    out->legs[i].price = legs[i].price;
    out->pointers[i] = &out->legs[i];
  }
  return out->pointers;
}

static void limit_to_pb(const gk_risk_limit *l, PbLimit *pb) {
  greeks__events__v1__risk_limit__init(pb);
  pb->underlying = (char *)l->underlying;
  pb->metric = (Greeks__Events__V1__LimitMetric)l->metric;
  pb->soft = l->soft;
  pb->hard = l->hard;
}

typedef struct pb_market {
  PbMarket market;
  PbInstrument instruments[GK_MAX_VOL_POINTS];
  PbVolPoint points[GK_MAX_VOL_POINTS];
  PbVolPoint *pointers[GK_MAX_VOL_POINTS];
} pb_market;

static void market_to_pb(const gk_market_quote *q, pb_market *out) {
  greeks__events__v1__market_updated__init(&out->market);
  out->market.underlying = (char *)q->underlying;
  out->market.spot = q->spot;
  out->market.rate = q->rate;
  out->market.yield = q->yield;
  out->market.vol = q->vol;
  out->market.market_time_us = q->market_time_us;
  for (size_t i = 0; i < q->vol_point_count && i < GK_MAX_VOL_POINTS; i++) {
    instrument_to_pb(&q->vol_points[i].instrument, &out->instruments[i]);
    greeks__events__v1__vol_point__init(&out->points[i]);
    out->points[i].instrument = &out->instruments[i];
    out->points[i].vol = q->vol_points[i].vol;
    out->pointers[i] = &out->points[i];
  }
  out->market.n_vols = q->vol_point_count;
  out->market.vols = out->pointers;
}

static gk_code pack(const ProtobufCMessage *message, uint8_t **bytes, size_t *size,
                    gk_status *status) {
  *size = protobuf_c_message_get_packed_size(message);
  *bytes = malloc(*size ? *size : 1);
  if (*bytes == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, "event", "", GK_STATUS_NO_INDEX,
                         "out of memory encoding an event of %zu bytes", *size);
  protobuf_c_message_pack(message, *bytes);
  return GK_OK;
}

static gk_code encode_trade(const gk_trade *t, uint8_t **bytes, size_t *size, gk_status *status) {
  pb_legs legs;
  Greeks__Events__V1__TradeExecuted pb = GREEKS__EVENTS__V1__TRADE_EXECUTED__INIT;
  pb.trade_id = (char *)t->trade_id;
  pb.n_legs = t->leg_count;
  pb.legs = legs_to_pb(t->legs, t->leg_count, &legs);
  pb.trade_time_us = t->trade_time_us;
  pb.idempotency_key = (char *)t->idempotency_key;
  pb.strategy_id = (char *)t->strategy_id;
  return pack(&pb.base, bytes, size, status);
}

static gk_code encode_correction(const gk_trade_corrected *c, uint8_t **bytes, size_t *size,
                                 gk_status *status) {
  pb_legs reversed, replacement;
  Greeks__Events__V1__TradeCorrected pb = GREEKS__EVENTS__V1__TRADE_CORRECTED__INIT;
  pb.trade_id = (char *)c->trade_id;
  pb.n_reversed_legs = c->reversed_count;
  pb.reversed_legs = legs_to_pb(c->reversed, c->reversed_count, &reversed);
  pb.n_replacement_legs = c->replacement_count;
  pb.replacement_legs = legs_to_pb(c->replacement, c->replacement_count, &replacement);
  pb.reason = (char *)c->reason;
  pb.trade_time_us = c->trade_time_us;
  return pack(&pb.base, bytes, size, status);
}

static gk_code encode_limits(const gk_risk_limits_set *s, uint8_t **bytes, size_t *size,
                             gk_status *status) {
  PbLimit limits[GK_MAX_LIMITS];
  PbLimit *pointers[GK_MAX_LIMITS];
  for (size_t i = 0; i < s->count; i++) {
    limit_to_pb(&s->limits[i], &limits[i]);
    pointers[i] = &limits[i];
  }
  Greeks__Events__V1__RiskLimitsSet pb = GREEKS__EVENTS__V1__RISK_LIMITS_SET__INIT;
  pb.n_limits = s->count;
  pb.limits = pointers;
  return pack(&pb.base, bytes, size, status);
}

/* Breached and restored share a layout (limit, level, value, threshold). */
static gk_code encode_edge(const gk_event *e, uint8_t **bytes, size_t *size, gk_status *status) {
  const gk_limit_edge *edge = &e->as.limit_edge;
  PbLimit limit;
  limit_to_pb(&edge->limit, &limit);
  Greeks__Events__V1__LimitLevel level =
      edge->hard ? GREEKS__EVENTS__V1__LIMIT_LEVEL__HARD : GREEKS__EVENTS__V1__LIMIT_LEVEL__SOFT;
  if (e->type == GK_EVENT_RISK_LIMIT_BREACHED) {
    Greeks__Events__V1__RiskLimitBreached pb = GREEKS__EVENTS__V1__RISK_LIMIT_BREACHED__INIT;
    pb.limit = &limit;
    pb.level = level;
    pb.value = edge->value;
    pb.threshold = edge->threshold;
    return pack(&pb.base, bytes, size, status);
  }
  Greeks__Events__V1__RiskLimitRestored pb = GREEKS__EVENTS__V1__RISK_LIMIT_RESTORED__INIT;
  pb.limit = &limit;
  pb.level = level;
  pb.value = edge->value;
  pb.threshold = edge->threshold;
  return pack(&pb.base, bytes, size, status);
}

static gk_code encode_strategy(const gk_strategy_proposed *s, uint8_t **bytes, size_t *size,
                               gk_status *status) {
  pb_legs legs;
  Greeks__Events__V1__StrategyProposed pb = GREEKS__EVENTS__V1__STRATEGY_PROPOSED__INIT;
  pb.strategy_id = (char *)s->strategy_id;
  pb.kind = (char *)s->kind;
  pb.n_legs = s->leg_count;
  pb.legs = legs_to_pb(s->legs, s->leg_count, &legs);
  pb.net_premium = s->net_premium;
  pb.description = (char *)s->description;
  return pack(&pb.base, bytes, size, status);
}

/* A refusal that failed closed (the check could not value, a correction over
 * the instruments' bound) names no limit: its limit is all zero. */
static bool rejection_names_a_limit(const gk_trade_rejected *r) {
  return r->limit.soft != 0 || r->limit.hard != 0 || r->limit.underlying[0] != '\0';
}

static gk_code encode_rejection(const gk_trade_rejected *r, uint8_t **bytes, size_t *size,
                                gk_status *status) {
  pb_legs legs;
  PbLimit limit;
  limit_to_pb(&r->limit, &limit);
  Greeks__Events__V1__TradeRejected pb = GREEKS__EVENTS__V1__TRADE_REJECTED__INIT;
  pb.trade_id = (char *)r->trade_id;
  pb.n_legs = r->leg_count;
  pb.legs = legs_to_pb(r->legs, r->leg_count, &legs);
  pb.limit = rejection_names_a_limit(r) ? &limit : NULL; /* fail closed: no limit broke */
  pb.level = r->hard ? GREEKS__EVENTS__V1__LIMIT_LEVEL__HARD : GREEKS__EVENTS__V1__LIMIT_LEVEL__SOFT;
  pb.value = r->value;
  pb.would_be = r->would_be;
  pb.threshold = r->threshold;
  pb.reason = (char *)r->reason;
  return pack(&pb.base, bytes, size, status);
}

gk_code gk_event_encode_payload(const gk_event *e, uint8_t **bytes, size_t *size,
                                gk_status *status) {
  switch (e->type) {
    case GK_EVENT_BOOK_OPENED: {
      Greeks__Events__V1__BookOpened pb = GREEKS__EVENTS__V1__BOOK_OPENED__INIT;
      pb.name = (char *)e->as.book_opened.name;
      pb.currency = (char *)e->as.book_opened.currency;
      return pack(&pb.base, bytes, size, status);
    }
    case GK_EVENT_TRADE_EXECUTED: return encode_trade(&e->as.trade_executed, bytes, size, status);
    case GK_EVENT_TRADE_CORRECTED:
      return encode_correction(&e->as.trade_corrected, bytes, size, status);
    case GK_EVENT_MARKET_UPDATED: {
      pb_market m;
      market_to_pb(&e->as.market_updated, &m);
      return pack(&m.market.base, bytes, size, status);
    }
    case GK_EVENT_RISK_LIMITS_SET: return encode_limits(&e->as.limits_set, bytes, size, status);
    case GK_EVENT_RISK_LIMIT_BREACHED:
    case GK_EVENT_RISK_LIMIT_RESTORED: return encode_edge(e, bytes, size, status);
    case GK_EVENT_STRATEGY_PROPOSED:
      return encode_strategy(&e->as.strategy_proposed, bytes, size, status);
    case GK_EVENT_TRADE_REJECTED: return encode_rejection(&e->as.trade_rejected, bytes, size, status);
  }
  return gk_status_set(status, GK_INTERNAL, "type", "", GK_STATUS_NO_INDEX,
                       "cannot encode event type %u", (unsigned)e->type);
}

void gk_event_to_stored(const gk_event *e, const uint8_t *payload, size_t size,
                        gk_stored_event *out) {
  memset(out, 0, sizeof *out);
  out->sequence = e->meta.sequence;
  out->time_us = e->meta.time_us;
  out->type = (uint32_t)e->type;
  out->schema_version = gk_event_current_version(e->type);
  snprintf(out->event_id, sizeof out->event_id, "%s", e->meta.event_id);
  snprintf(out->correlation_id, sizeof out->correlation_id, "%s", e->meta.correlation_id);
  snprintf(out->causation_id, sizeof out->causation_id, "%s", e->meta.causation_id);
  out->payload = payload;
  out->payload_size = size;
}

/* ---- decoding ------------------------------------------------------------------------ */

typedef struct decode_context {
  const char *stream;
  const gk_stored_event *stored;
  gk_status *status;
} decode_context;

static gk_code damaged(const decode_context *c, const char *why) {
  char value[32];
  snprintf(value, sizeof value, "%lld", (long long)c->stored->sequence);
  return gk_status_set(c->status, GK_DATA_LOSS, "sequence", value, GK_STATUS_NO_INDEX,
                       "stream %s, sequence %lld (%s version %u): %s; see docs/operations.md, "
                       "corrupted store", c->stream, (long long)c->stored->sequence,
                       gk_event_type_name(c->stored->type), c->stored->schema_version, why);
}

/* A decoded value that breaks a domain rule: the journal holds it, so it is damage. */
static gk_code invalid_value(const decode_context *c, const gk_status *rule) {
  char why[200];
  snprintf(why, sizeof why, "a stored value breaks a rule (%.150s)", rule->message);
  return damaged(c, why);
}

static void copy_text(char *out, size_t size, const char *in) {
  size_t n = in ? strnlen(in, size - 1) : 0;
  if (n) memcpy(out, in, n);
  out[n] = '\0';
}

static bool text_fits(const char *in, size_t size) { return in == NULL || strlen(in) < size; }

/* An enum's value as the domain's byte: the wire's values are the domain's
 * (0, 1); any other (a later release's, or damage) is 255, which the domain's
 * rules refuse. They were read as "anything else": an unknown type as a
 * call, an unknown style as European (found in review). */
static uint8_t enum_byte(int value) { return value == 0 || value == 1 ? (uint8_t)value : 255; }

/* A limit level: soft or hard, else damage. */
static bool level_known(int level) {
  return level == GREEKS__EVENTS__V1__LIMIT_LEVEL__SOFT || level == GREEKS__EVENTS__V1__LIMIT_LEVEL__HARD;
}

static gk_code instrument_from_pb(const decode_context *c, const PbInstrument *pb,
                                  gk_instrument *out) {
  memset(out, 0, sizeof *out);
  if (pb == NULL) return damaged(c, "a leg has no instrument");
  if (!text_fits(pb->underlying, GK_SYMBOL_SIZE)) return damaged(c, "an underlying is too long");
  copy_text(out->underlying, sizeof out->underlying, pb->underlying);
  if (enum_byte(pb->kind) == 255 || enum_byte(pb->option_type) == 255 || enum_byte(pb->style) == 255)
    return damaged(c, "an instrument's kind, type or style is not one this build knows");
  out->kind = enum_byte(pb->kind);
  out->type = enum_byte(pb->option_type);
  out->style = enum_byte(pb->style);
  out->strike = pb->strike;
  out->expiry_us = pb->expiry_us;
  out->multiplier = pb->multiplier;
  gk_status rule;
  if (gk_instrument_validate(out, &rule) != GK_OK) return invalid_value(c, &rule);
  return GK_OK;
}

/* A trade's legs, or (within_bounds false) a refusal's: those record what was
 * refused, which changes no position and may lie past a leg's bounds (a
 * correction's net change can reach twice them), so only their count and
 * instruments are held to the rules. */
static gk_code legs_from_pb(const decode_context *c, PbLeg *const *pb, size_t n, gk_leg *out,
                            size_t *count, bool allow_empty, bool within_bounds) {
  if (n > GK_MAX_LEGS || (n == 0 && !allow_empty)) return damaged(c, "bad number of legs");
  for (size_t i = 0; i < n; i++) {
    gk_code rc = instrument_from_pb(c, pb[i]->instrument, &out[i].instrument);
    if (rc != GK_OK) return rc;
    out[i].quantity = pb[i]->quantity;
    out[i].price = pb[i]->price;
  }
  *count = n;
  if (n == 0 || !within_bounds) return GK_OK;
  gk_status rule;
  if (gk_legs_validate(out, n, &rule) != GK_OK) return invalid_value(c, &rule);
  return GK_OK;
}

static gk_code decode_trade(const decode_context *c, const Greeks__Events__V1__TradeExecuted *pb,
                            gk_trade *t) {
  if (!text_fits(pb->trade_id, GK_TRADE_ID_SIZE) ||
      !text_fits(pb->idempotency_key, GK_META_ID_SIZE) ||
      !text_fits(pb->strategy_id, GK_META_ID_SIZE))
    return damaged(c, "an id is too long");
  copy_text(t->trade_id, sizeof t->trade_id, pb->trade_id);
  copy_text(t->idempotency_key, sizeof t->idempotency_key, pb->idempotency_key);
  copy_text(t->strategy_id, sizeof t->strategy_id, pb->strategy_id);
  t->trade_time_us = pb->trade_time_us;
  return legs_from_pb(c, pb->legs, pb->n_legs, t->legs, &t->leg_count, false, true);
}

static gk_code decode_correction(const decode_context *c,
                                 const Greeks__Events__V1__TradeCorrected *pb,
                                 gk_trade_corrected *out) {
  if (!text_fits(pb->trade_id, GK_TRADE_ID_SIZE) || !text_fits(pb->reason, GK_TEXT_SIZE))
    return damaged(c, "a text field is too long");
  copy_text(out->trade_id, sizeof out->trade_id, pb->trade_id);
  copy_text(out->reason, sizeof out->reason, pb->reason);
  out->trade_time_us = pb->trade_time_us;
  gk_code rc = legs_from_pb(c, pb->reversed_legs, pb->n_reversed_legs, out->reversed,
                            &out->reversed_count, true, true);
  if (rc != GK_OK) return rc;
  return legs_from_pb(c, pb->replacement_legs, pb->n_replacement_legs, out->replacement,
                      &out->replacement_count, true, true);
}

static gk_code market_from_pb(const decode_context *c, const PbMarket *pb, gk_market_quote *q) {
  memset(q, 0, sizeof *q);
  if (!text_fits(pb->underlying, GK_SYMBOL_SIZE) || pb->n_vols > GK_MAX_VOL_POINTS)
    return damaged(c, "a market update is malformed");
  copy_text(q->underlying, sizeof q->underlying, pb->underlying);
  q->spot = pb->spot;
  q->rate = pb->rate;
  q->yield = pb->yield;
  q->vol = pb->vol;
  q->market_time_us = pb->market_time_us;
  q->vol_point_count = pb->n_vols;
  for (size_t i = 0; i < pb->n_vols; i++) {
    gk_code rc = instrument_from_pb(c, pb->vols[i]->instrument, &q->vol_points[i].instrument);
    if (rc != GK_OK) return rc;
    q->vol_points[i].vol = pb->vols[i]->vol;
  }
  gk_status rule;
  if (gk_market_quote_validate(q, &rule) != GK_OK) return invalid_value(c, &rule);
  return GK_OK;
}

/* The upcaster: MarketUpdated version 1 -> version 2. Version 1 had no dividend
 * yield (the desk's books then held index options priced without one: 0 is what
 * they meant), no per-instrument vols, and no market time (the event's time). */
static gk_code upcast_market_v1(const decode_context *c,
                                const Greeks__Events__V1__MarketUpdatedV1 *v1,
                                gk_market_quote *q) {
  PbMarket v2 = GREEKS__EVENTS__V1__MARKET_UPDATED__INIT;
  v2.underlying = v1->underlying;
  v2.spot = v1->spot;
  v2.rate = v1->rate;
  v2.yield = 0.0;
  v2.vol = v1->vol;
  v2.market_time_us = c->stored->time_us;
  return market_from_pb(c, &v2, q);
}

static gk_code limit_from_pb(const decode_context *c, const PbLimit *pb, gk_risk_limit *l) {
  memset(l, 0, sizeof *l);
  if (pb == NULL || !text_fits(pb->underlying, GK_SYMBOL_SIZE))
    return damaged(c, "a limit is malformed");
  copy_text(l->underlying, sizeof l->underlying, pb->underlying);
  l->metric = (uint8_t)((unsigned)pb->metric < GK_LIMIT_METRIC_COUNT ? (unsigned)pb->metric : 255);
  l->soft = pb->soft;
  l->hard = pb->hard;
  gk_status rule;
  if (gk_risk_limit_validate(l, &rule) != GK_OK) return invalid_value(c, &rule);
  return GK_OK;
}

static gk_code decode_limits(const decode_context *c, const Greeks__Events__V1__RiskLimitsSet *pb,
                             gk_risk_limits_set *out) {
  if (pb->n_limits > GK_MAX_LIMITS) return damaged(c, "too many limits");
  out->count = pb->n_limits;
  for (size_t i = 0; i < pb->n_limits; i++) {
    gk_code rc = limit_from_pb(c, pb->limits[i], &out->limits[i]);
    if (rc != GK_OK) return rc;
  }
  return GK_OK;
}

static gk_code decode_strategy(const decode_context *c,
                               const Greeks__Events__V1__StrategyProposed *pb,
                               gk_strategy_proposed *out) {
  if (!text_fits(pb->strategy_id, GK_META_ID_SIZE) || !text_fits(pb->kind, sizeof out->kind) ||
      !text_fits(pb->description, GK_TEXT_SIZE))
    return damaged(c, "a text field is too long");
  copy_text(out->strategy_id, sizeof out->strategy_id, pb->strategy_id);
  copy_text(out->kind, sizeof out->kind, pb->kind);
  copy_text(out->description, sizeof out->description, pb->description);
  out->net_premium = pb->net_premium;
  /* greeks never writes a non-finite premium (gk_book_decide_proposal): such
   * a row is damage, not a proposal (found by fuzz_journal) */
  if (!isfinite(out->net_premium)) return damaged(c, "the proposal's net premium is not finite");
  /* No legs is a valid proposal: the hedge of a book already at its target. */
  return legs_from_pb(c, pb->legs, pb->n_legs, out->legs, &out->leg_count, true, true);
}

static gk_code decode_rejection(const decode_context *c,
                                const Greeks__Events__V1__TradeRejected *pb,
                                gk_trade_rejected *out) {
  if (!text_fits(pb->trade_id, GK_TRADE_ID_SIZE) || !text_fits(pb->reason, GK_TEXT_SIZE))
    return damaged(c, "a text field is too long");
  copy_text(out->trade_id, sizeof out->trade_id, pb->trade_id);
  copy_text(out->reason, sizeof out->reason, pb->reason);
  if (!level_known(pb->level)) return damaged(c, "a refusal's limit level is neither soft nor hard");
  out->hard = pb->level == GREEKS__EVENTS__V1__LIMIT_LEVEL__HARD;
  out->value = pb->value;
  out->would_be = pb->would_be;
  out->threshold = pb->threshold;
  /* No limit (NULL), or the zero limit such refusals were written with before:
   * the refusal names none. Validating it made every one of them DATA_LOSS on
   * the next load, and the book (and greeksd) unable to start. */
  bool none = pb->limit == NULL ||
              (pb->limit->soft == 0 && pb->limit->hard == 0 && (pb->limit->underlying == NULL || !pb->limit->underlying[0]));
  memset(&out->limit, 0, sizeof out->limit);
  gk_code rc = none ? GK_OK : limit_from_pb(c, pb->limit, &out->limit);
  if (rc != GK_OK) return rc;
  /* no legs: a refused cancel (a correction records the replacement asked
   * for, and a cancel asks for none). Refusing them made the book unreadable
   * and greeksd unable to start (found in review). */
  return legs_from_pb(c, pb->legs, pb->n_legs, out->legs, &out->leg_count, true, false);
}

/* Which message a (type, version) pair is stored as. */
static const ProtobufCMessageDescriptor *descriptor_of(uint32_t type, uint32_t version) {
  if (type == GK_EVENT_MARKET_UPDATED && version == 1)
    return &greeks__events__v1__market_updated_v1__descriptor;
  if (type < GK_EVENT_BOOK_OPENED || type > GK_EVENT_TRADE_REJECTED) return NULL;
  if (version != gk_event_current_version((gk_event_type)type)) return NULL;
  static const ProtobufCMessageDescriptor *const current[] = {
      NULL,
      &greeks__events__v1__book_opened__descriptor,
      &greeks__events__v1__trade_executed__descriptor,
      &greeks__events__v1__trade_corrected__descriptor,
      &greeks__events__v1__market_updated__descriptor,
      &greeks__events__v1__risk_limits_set__descriptor,
      &greeks__events__v1__risk_limit_breached__descriptor,
      &greeks__events__v1__risk_limit_restored__descriptor,
      &greeks__events__v1__strategy_proposed__descriptor,
      &greeks__events__v1__trade_rejected__descriptor};
  return current[type];
}

static gk_code decode_edge(const decode_context *c, const PbLimit *limit, int level, double value,
                           double threshold, gk_limit_edge *out) {
  if (!level_known(level)) return damaged(c, "a limit edge's level is neither soft nor hard");
  gk_code rc = limit_from_pb(c, limit, &out->limit);
  out->hard = level == GREEKS__EVENTS__V1__LIMIT_LEVEL__HARD;
  out->value = value;
  out->threshold = threshold;
  /* never written (gk_book_decide_limit_edge refuses them): damage, which
   * loaded as a NaN breach (found by fuzz_journal) */
  if (rc == GK_OK && (!isfinite(value) || !isfinite(threshold)))
    return damaged(c, "a limit edge's value or threshold is not finite");
  return rc;
}

static gk_code decode_book_opened(const decode_context *c,
                                  const Greeks__Events__V1__BookOpened *pb, gk_book_opened *out) {
  if (!text_fits(pb->name, GK_TEXT_SIZE) || !text_fits(pb->currency, sizeof out->currency))
    return damaged(c, "a text field is too long");
  copy_text(out->name, sizeof out->name, pb->name);
  copy_text(out->currency, sizeof out->currency, pb->currency);
  return GK_OK;
}

static gk_code decode_body(const decode_context *c, const ProtobufCMessage *m, gk_event *out) {
  const gk_stored_event *s = c->stored;
  if (s->type == GK_EVENT_MARKET_UPDATED && s->schema_version == 1)
    return upcast_market_v1(c, (const void *)m, &out->as.market_updated);
  switch (s->type) {
    case GK_EVENT_BOOK_OPENED: return decode_book_opened(c, (const void *)m, &out->as.book_opened);
    case GK_EVENT_TRADE_EXECUTED: return decode_trade(c, (const void *)m, &out->as.trade_executed);
    case GK_EVENT_TRADE_CORRECTED:
      return decode_correction(c, (const void *)m, &out->as.trade_corrected);
    case GK_EVENT_MARKET_UPDATED: return market_from_pb(c, (const void *)m, &out->as.market_updated);
    case GK_EVENT_RISK_LIMITS_SET: return decode_limits(c, (const void *)m, &out->as.limits_set);
    case GK_EVENT_RISK_LIMIT_BREACHED: {
      const Greeks__Events__V1__RiskLimitBreached *b = (const void *)m;
      return decode_edge(c, b->limit, b->level, b->value, b->threshold, &out->as.limit_edge);
    }
    case GK_EVENT_RISK_LIMIT_RESTORED: {
      const Greeks__Events__V1__RiskLimitRestored *r = (const void *)m;
      return decode_edge(c, r->limit, r->level, r->value, r->threshold, &out->as.limit_edge);
    }
    case GK_EVENT_STRATEGY_PROPOSED:
      return decode_strategy(c, (const void *)m, &out->as.strategy_proposed);
    case GK_EVENT_TRADE_REJECTED: return decode_rejection(c, (const void *)m, &out->as.trade_rejected);
  }
  return damaged(c, "unknown event type");
}

static void decode_meta(const char *stream, const gk_stored_event *s, gk_event *out) {
  out->meta.sequence = s->sequence;
  out->meta.time_us = s->time_us;
  out->meta.schema_version = gk_event_current_version((gk_event_type)s->type);
  copy_text(out->meta.event_id, sizeof out->meta.event_id, s->event_id);
  copy_text(out->meta.correlation_id, sizeof out->meta.correlation_id, s->correlation_id);
  copy_text(out->meta.causation_id, sizeof out->meta.causation_id, s->causation_id);
  const char *book = strncmp(stream, "book-", 5) == 0 ? stream + 5 : stream;
  copy_text(out->meta.book_id, sizeof out->meta.book_id, book);
}

gk_code gk_event_decode(const char *stream, const gk_stored_event *s, gk_event *out,
                        gk_status *status) {
  decode_context c = {stream, s, status};
  memset(out, 0, sizeof *out);
  const ProtobufCMessageDescriptor *d = descriptor_of(s->type, s->schema_version);
  if (d == NULL)
    return damaged(&c, "this build knows no such event type and schema version "
                       "(a newer greeks wrote it?)");
  _Alignas(16) unsigned char space[16384];
  arena a = {space, 0, sizeof space};
  ProtobufCAllocator allocator = {arena_alloc, arena_free, &a};
  ProtobufCMessage *m = protobuf_c_message_unpack(d, &allocator, s->payload_size, s->payload);
  if (m == NULL) return damaged(&c, "the payload does not parse");
  out->type = (gk_event_type)s->type;
  decode_meta(stream, s, out);
  gk_code rc = decode_body(&c, m, out);
  protobuf_c_message_free_unpacked(m, &allocator);
  return rc;
}

/* ---- command results ------------------------------------------------------------------ */

gk_code gk_command_result_encode(const gk_command_result *r, uint8_t **bytes, size_t *size,
                                 gk_status *status) {
  Greeks__Events__V1__CommandResult pb = GREEKS__EVENTS__V1__COMMAND_RESULT__INIT;
  pb.book_id = (char *)r->book_id;
  pb.first_sequence = r->first_sequence;
  pb.last_sequence = r->last_sequence;
  pb.trade_id = (char *)r->trade_id;
  pb.request_hash = r->request_hash;
  pb.rejection = (char *)r->rejection;
  return pack(&pb.base, bytes, size, status);
}

gk_code gk_command_result_decode(const uint8_t *bytes, size_t size, gk_command_result *out,
                                 gk_status *status) {
  memset(out, 0, sizeof *out);
  Greeks__Events__V1__CommandResult *pb =
      greeks__events__v1__command_result__unpack(NULL, size, bytes);
  if (pb == NULL || !text_fits(pb->book_id, GK_BOOK_ID_SIZE) ||
      !text_fits(pb->trade_id, GK_TRADE_ID_SIZE)) {
    if (pb) greeks__events__v1__command_result__free_unpacked(pb, NULL);
    return gk_status_set(status, GK_DATA_LOSS, "idempotency", "", GK_STATUS_NO_INDEX,
                         "a stored command result does not parse");
  }
  copy_text(out->book_id, sizeof out->book_id, pb->book_id);
  copy_text(out->trade_id, sizeof out->trade_id, pb->trade_id);
  out->first_sequence = pb->first_sequence;
  out->last_sequence = pb->last_sequence;
  out->request_hash = pb->request_hash;
  copy_text(out->rejection, sizeof out->rejection, pb->rejection);
  greeks__events__v1__command_result__free_unpacked(pb, NULL);
  return GK_OK;
}
