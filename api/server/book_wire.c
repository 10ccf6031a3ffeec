/*
 * BookService messages <-> domain values (book_wire.h). Readers check enum
 * values and sizes the wire allows but the domain cannot hold (an unknown
 * option type, a 20-character symbol), then hand the values to the domain's
 * own validators (gk_instrument_validate, gk_legs_validate, ...), so a client
 * gets the same rule, worded the same way, as the CLI and the journal; the
 * request field at fault is prefixed ("legs[2]: ..."). Writers build messages
 * in an arena so that a response of any shape is freed in one call.
 */
#include "book_wire.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/event_codec.h"

/* ---- the arena --------------------------------------------------------------------- */

struct wire_chunk {
  wire_chunk *next;
  size_t used, size;
  max_align_t data[]; /* size bytes */
};

enum { WIRE_CHUNK_BYTES = 64 * 1024 };

void *wire_alloc(wire_arena *a, size_t size) {
  size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  if (size == 0) size = sizeof(max_align_t);
  wire_chunk *c = a->head;
  if (c == NULL || c->size - c->used < size) {
    size_t bytes = size > WIRE_CHUNK_BYTES ? size : WIRE_CHUNK_BYTES;
    c = malloc(sizeof *c + bytes);
    if (c == NULL) {
      a->failed = 1;
      return NULL;
    }
    c->next = a->head, c->used = 0, c->size = bytes;
    a->head = c;
  }
  void *p = (char *)c->data + c->used;
  c->used += size;
  memset(p, 0, size);
  return p;
}

char *wire_text(wire_arena *a, const char *text) {
  size_t n = strlen(text);
  char *p = wire_alloc(a, n + 1);
  if (p) memcpy(p, text, n + 1);
  return p;
}

void wire_arena_free(wire_arena *a) {
  for (wire_chunk *c = a->head, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  a->head = NULL;
}

/* ---- readers ----------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int refuse(char *why, size_t size, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(why, size, format, args);
  va_end(args);
  return -1;
}

/* Whether `value` stands in `text` as a whole word or number, not as part of
 * one, nor as the rule's own bound after a comparison: a spot of 0
 * "appeared" in "[0.0001, 10]", and a strike of 0 in "> 0", and went unsaid
 * (found in review). */
static bool says_value(const char *text, const char *value) {
  size_t n = strlen(value);
  for (const char *at = strstr(text, value); at; at = strstr(at + 1, value)) {
    char before = at > text ? at[-1] : ' ', after = at[n];
    bool joined = isalnum((unsigned char)before) || strchr(".-+_", before) || isalnum((unsigned char)after) ||
                  (after != '\0' && strchr("._", after) && isalnum((unsigned char)at[n + 1]));
    const char *back = at;
    while (back > text && back[-1] == ' ') back--;
    bool bound = back > text && strchr("<>=", back[-1]);
    if (!joined && !bound) return true;
  }
  return false;
}

/* The rule's message without the domain's own "leg N: " when the field named
 * before it already says which leg ("legs[1]: leg 1: quantity ...", found in
 * review). */
static const char *without_leg_prefix(const char *field, const char *message) {
  const char *open = strrchr(field, '[');
  if (open == NULL || strncmp(message, "leg ", 4) != 0) return message;
  size_t digits = strspn(message + 4, "0123456789");
  if (digits == 0 || message[4 + digits] != ':' || strncmp(open + 1, message + 4, digits) != 0 ||
      open[1 + digits] != ']')
    return message;
  return message + 4 + digits + 1 + (message[5 + digits] == ' ');
}

static int refuse_rule(char *why, size_t size, const char *field, const gk_status *rule) {
  const char *message = without_leg_prefix(field, rule->message);
  if (rule->value[0] && !says_value(message, rule->value)) /* the value too, where the rule leaves it out */
    return refuse(why, size, "%s: %s (%s: '%s')", field, message, rule->field, rule->value);
  return refuse(why, size, "%s: %s", field, message);
}

/* An underlying too long for the domain: the rule first, then the start of
 * the text (a value of any length put the rule past the details' end, and a
 * cut inside a character made them mojibake: found in review). */
static int long_symbol(char *why, size_t size, const char *field, const char *text) {
  return refuse(why, size, "%s.underlying has %zu bytes: a symbol is 1 to %d characters of [A-Za-z0-9._-] (it starts "
                "'%.40s')", field, strlen(text), GK_SYMBOL_SIZE - 1, text);
}

static int read_id_of_at_most(const char *text, const char *field, int optional, size_t most, char *out, char *why,
                              size_t size) {
  size_t n = text ? strlen(text) : 0;
  if (n == 0 && !optional) return refuse(why, size, "field '%s' is required", field);
  if (n > most) return refuse(why, size, "field '%s' has %zu bytes: at most %zu bytes of UTF-8", field, n, most);
  memcpy(out, text ? text : "", n + 1);
  return 0;
}

int wire_read_id(const char *text, const char *field, int optional, char *out, size_t out_size, char *why,
                 size_t size) {
  return read_id_of_at_most(text, field, optional, out_size - 1, out, why, size);
}

/* A book id's rule is shorter than its buffer: 59 to 63 characters were told
 * "1 to 58", 64 "at most 63" (found in review). */
int wire_read_book_id(const char *text, char out[GK_BOOK_ID_SIZE], char *why, size_t size) {
  return read_id_of_at_most(text, "book_id", 0, GK_BOOK_ID_MAX_LENGTH, out, why, size);
}

int wire_read_instrument(const Greeks__Events__V1__Instrument *pb, const char *field, gk_instrument *out,
                         char *why, size_t size) {
  memset(out, 0, sizeof *out);
  if (pb == NULL) return refuse(why, size, "field '%s' is required", field);
  if (strlen(pb->underlying) >= GK_SYMBOL_SIZE)
    return long_symbol(why, size, field, pb->underlying);
  if ((unsigned)pb->kind > 1 || (unsigned)pb->option_type > 1 || (unsigned)pb->style > 1)
    return refuse(why, size, "%s: unknown kind, option_type or style value (%d, %d, %d)", field, (int)pb->kind,
                  (int)pb->option_type, (int)pb->style);
  if (pb->kind == GREEKS__EVENTS__V1__INSTRUMENT_KIND__UNDERLYING) {
    /* an option's fields on the underlying were dropped: multiplier 100 meant
     * one share per unit */
    if (pb->strike != 0 || pb->expiry_us != 0 || pb->option_type != 0 || pb->style != 0 ||
        !(pb->multiplier == 0 || pb->multiplier == 1))
      return refuse(why, size,
                    "%s: the underlying has no strike, expiry, option_type or style and a multiplier of 1 (or 0: "
                    "unset); got strike %.17g, expiry_us %lld, option_type %d, style %d, multiplier %.17g",
                    field, pb->strike, (long long)pb->expiry_us, (int)pb->option_type, (int)pb->style,
                    pb->multiplier);
    gk_status rule;
    if (gk_instrument_underlying(pb->underlying, out, &rule) != GK_OK) return refuse_rule(why, size, field, &rule);
    return 0;
  }
  memcpy(out->underlying, pb->underlying, strlen(pb->underlying) + 1);
  out->kind = GK_KIND_OPTION;
  out->type = pb->option_type == GREEKS__EVENTS__V1__OPTION_TYPE__PUT ? GK_PUT : GK_CALL;
  out->style = pb->style == GREEKS__EVENTS__V1__EXERCISE_STYLE__AMERICAN ? GK_STYLE_AMERICAN : GK_STYLE_EUROPEAN;
  out->strike = pb->strike;
  out->expiry_us = pb->expiry_us;
  out->multiplier = pb->multiplier;
  gk_status rule;
  if (gk_instrument_validate(out, &rule) != GK_OK) return refuse_rule(why, size, field, &rule);
  return 0;
}

int wire_read_legs(Greeks__Events__V1__Leg *const *legs, size_t count, const char *field, gk_leg *out,
                   size_t *written, char *why, size_t size) {
  if (count > GK_MAX_LEGS) return refuse(why, size, "field '%s' has %zu legs: at most %d", field, count, GK_MAX_LEGS);
  char at[64];
  for (size_t i = 0; i < count; i++) {
    snprintf(at, sizeof at, "%s[%zu].instrument", field, i);
    if (wire_read_instrument(legs[i]->instrument, at, &out[i].instrument, why, size) != 0) return -1;
    out[i].quantity = legs[i]->quantity;
    out[i].price = legs[i]->price;
  }
  *written = count;
  if (count == 0) return 0;
  gk_status rule;
  if (gk_legs_validate(out, count, &rule) != GK_OK) {
    snprintf(at, sizeof at, "%s[%lld]", field, (long long)(rule.index >= 0 ? rule.index : 0));
    return refuse_rule(why, size, at, &rule);
  }
  return 0;
}

int wire_read_limits(Greeks__Events__V1__RiskLimit *const *limits, size_t count, gk_risk_limit *out, char *why,
                     size_t size) {
  if (count > GK_MAX_LIMITS) return refuse(why, size, "field 'limits' has %zu entries: at most %d", count, GK_MAX_LIMITS);
  for (size_t i = 0; i < count; i++) {
    const Greeks__Events__V1__RiskLimit *pb = limits[i];
    memset(&out[i], 0, sizeof out[i]);
    char at[32];
    snprintf(at, sizeof at, "limits[%zu]", i);
    if (strlen(pb->underlying) >= GK_SYMBOL_SIZE) return long_symbol(why, size, at, pb->underlying);
    if ((unsigned)pb->metric >= GK_LIMIT_METRIC_COUNT)
      return refuse(why, size, "limits[%zu].metric: unknown metric %d", i, (int)pb->metric);
    memcpy(out[i].underlying, pb->underlying, strlen(pb->underlying) + 1);
    out[i].metric = (uint8_t)pb->metric;
    out[i].soft = pb->soft;
    out[i].hard = pb->hard;
    gk_status rule;
    if (gk_risk_limit_validate(&out[i], &rule) != GK_OK) return refuse_rule(why, size, at, &rule);
  }
  return 0;
}

int wire_read_quote(const Greeks__V1__MarketQuote *pb, const char *field, int64_t now_us, gk_market_quote *out,
                    char *why, size_t size) {
  memset(out, 0, sizeof *out);
  if (pb == NULL) return refuse(why, size, "field '%s' is required", field);
  if (strlen(pb->underlying) >= GK_SYMBOL_SIZE)
    return long_symbol(why, size, field, pb->underlying);
  if (pb->n_vols > GK_MAX_VOL_POINTS)
    return refuse(why, size, "%s.vols has %zu entries: at most %d", field, pb->n_vols, GK_MAX_VOL_POINTS);
  memcpy(out->underlying, pb->underlying, strlen(pb->underlying) + 1);
  out->spot = pb->spot, out->rate = pb->rate, out->yield = pb->yield, out->vol = pb->vol;
  out->market_time_us = pb->market_time_us ? pb->market_time_us : now_us;
  out->vol_point_count = pb->n_vols;
  char at[64];
  for (size_t i = 0; i < pb->n_vols; i++) {
    snprintf(at, sizeof at, "%s.vols[%zu].instrument", field, i);
    if (wire_read_instrument(pb->vols[i]->instrument, at, &out->vol_points[i].instrument, why, size) != 0) return -1;
    out->vol_points[i].vol = pb->vols[i]->vol;
  }
  gk_status rule;
  if (gk_market_quote_validate(out, &rule) != GK_OK) return refuse_rule(why, size, field, &rule);
  return 0;
}

int wire_read_quoted(Greeks__V1__QuotedInstrument *const *quoted, size_t count, const char *field,
                     gk_quoted_instrument *out, char *why, size_t size) {
  if (count == 0 || count > GK_MAX_QUOTED_INSTRUMENTS)
    return refuse(why, size, "field '%s' has %zu entries: 1 to %d", field, count, GK_MAX_QUOTED_INSTRUMENTS);
  char at[64];
  for (size_t i = 0; i < count; i++) {
    snprintf(at, sizeof at, "%s[%zu].instrument", field, i);
    if (wire_read_instrument(quoted[i]->instrument, at, &out[i].instrument, why, size) != 0) return -1;
    out[i].bid = quoted[i]->bid, out[i].ask = quoted[i]->ask, out[i].vol = quoted[i]->vol;
  }
  gk_status rule;
  if (gk_quoted_instruments_validate(out, count, &rule) != GK_OK) {
    /* the rule names the quote as the core does ("instruments[3].bid is 3: ..."):
     * named as the request names it ("chain[3].bid ..." in GenerateStrategies) */
    const char *core = "instruments";
    if (strncmp(rule.message, core, strlen(core)) == 0 && rule.message[strlen(core)] == '[')
      return refuse(why, size, "%s%s", field, rule.message + strlen(core));
    snprintf(at, sizeof at, "%s[%lld]", field, (long long)(rule.index >= 0 ? rule.index : 0));
    return refuse_rule(why, size, at, &rule);
  }
  return 0;
}

/* ---- writers ----------------------------------------------------------------------- */

Greeks__Events__V1__Instrument *wire_instrument(wire_arena *a, const gk_instrument *in) {
  Greeks__Events__V1__Instrument *pb = wire_alloc(a, sizeof *pb);
  if (pb == NULL) return NULL;
  greeks__events__v1__instrument__init(pb);
  pb->underlying = wire_text(a, in->underlying);
  pb->kind = in->kind == GK_KIND_UNDERLYING ? GREEKS__EVENTS__V1__INSTRUMENT_KIND__UNDERLYING
                                            : GREEKS__EVENTS__V1__INSTRUMENT_KIND__OPTION;
  pb->option_type = in->type == GK_PUT ? GREEKS__EVENTS__V1__OPTION_TYPE__PUT : GREEKS__EVENTS__V1__OPTION_TYPE__CALL;
  pb->style = in->style == GK_STYLE_AMERICAN ? GREEKS__EVENTS__V1__EXERCISE_STYLE__AMERICAN
                                             : GREEKS__EVENTS__V1__EXERCISE_STYLE__EUROPEAN;
  pb->strike = in->strike;
  pb->expiry_us = in->expiry_us;
  pb->multiplier = in->multiplier;
  return pb->underlying ? pb : NULL;
}

Greeks__Events__V1__Leg **wire_legs(wire_arena *a, const gk_leg *legs, size_t count) {
  Greeks__Events__V1__Leg **out = wire_alloc(a, (count ? count : 1) * sizeof *out);
  if (out == NULL) return NULL;
  for (size_t i = 0; i < count; i++) {
    Greeks__Events__V1__Leg *leg = wire_alloc(a, sizeof *leg);
    if (leg == NULL) return NULL;
    greeks__events__v1__leg__init(leg);
    leg->instrument = wire_instrument(a, &legs[i].instrument);
    leg->quantity = legs[i].quantity;
    leg->price = legs[i].price;
    out[i] = leg;
  }
  return out;
}

Greeks__Events__V1__RiskLimit *wire_limit(wire_arena *a, const gk_risk_limit *l) {
  Greeks__Events__V1__RiskLimit *pb = wire_alloc(a, sizeof *pb);
  if (pb == NULL) return NULL;
  greeks__events__v1__risk_limit__init(pb);
  pb->underlying = wire_text(a, l->underlying);
  pb->metric = (Greeks__Events__V1__LimitMetric)l->metric;
  pb->soft = l->soft;
  pb->hard = l->hard;
  return pb;
}

Greeks__V1__MarketQuote *wire_quote(wire_arena *a, const gk_market_quote *q) {
  Greeks__V1__MarketQuote *pb = wire_alloc(a, sizeof *pb);
  if (pb == NULL) return NULL;
  greeks__v1__market_quote__init(pb);
  pb->underlying = wire_text(a, q->underlying);
  pb->spot = q->spot, pb->rate = q->rate, pb->yield = q->yield, pb->vol = q->vol;
  pb->market_time_us = q->market_time_us;
  pb->n_vols = q->vol_point_count;
  pb->vols = wire_alloc(a, (q->vol_point_count ? q->vol_point_count : 1) * sizeof *pb->vols);
  if (pb->vols == NULL) return NULL;
  for (size_t i = 0; i < q->vol_point_count; i++) {
    Greeks__Events__V1__VolPoint *v = wire_alloc(a, sizeof *v);
    if (v == NULL) return NULL;
    greeks__events__v1__vol_point__init(v);
    v->instrument = wire_instrument(a, &q->vol_points[i].instrument);
    v->vol = q->vol_points[i].vol;
    pb->vols[i] = v;
  }
  return pb;
}

static int fill_positions(wire_arena *a, const gk_book *book, Greeks__V1__BookView *v) {
  size_t n = gk_book_position_count(book);
  v->positions = wire_alloc(a, (n ? n : 1) * sizeof *v->positions);
  Greeks__V1__Position *items = wire_alloc(a, (n ? n : 1) * sizeof *items);
  if (v->positions == NULL || items == NULL) return -1;
  for (size_t i = 0; i < n; i++) {
    const gk_position *p = gk_book_position(book, i);
    greeks__v1__position__init(&items[i]);
    items[i].instrument = wire_instrument(a, &p->instrument);
    items[i].quantity = p->quantity;
    items[i].average_cost = p->average_cost;
    items[i].realized_pnl = p->realized_pnl;
    v->positions[i] = &items[i];
  }
  v->n_positions = n;
  return a->failed ? -1 : 0;
}

static int fill_trades(wire_arena *a, const gk_book *book, Greeks__V1__BookView *v) {
  size_t n = gk_book_trade_count(book);
  v->trades = wire_alloc(a, (n ? n : 1) * sizeof *v->trades);
  Greeks__V1__TradeRef *items = wire_alloc(a, (n ? n : 1) * sizeof *items);
  if (v->trades == NULL || items == NULL) return -1;
  for (size_t i = 0; i < n; i++) {
    greeks__v1__trade_ref__init(&items[i]);
    int64_t sequence = 0;
    items[i].trade_id = wire_text(a, gk_book_trade_id_at(book, i, &sequence));
    items[i].sequence = sequence;
    v->trades[i] = &items[i];
  }
  v->n_trades = n;
  return a->failed ? -1 : 0;
}

static int fill_markets_limits_strategies(wire_arena *a, const gk_book *book, Greeks__V1__BookView *v) {
  size_t markets = gk_book_market_count(book);
  v->markets = wire_alloc(a, (markets ? markets : 1) * sizeof *v->markets);
  if (v->markets == NULL) return -1;
  for (size_t i = 0; i < markets; i++) v->markets[i] = wire_quote(a, gk_book_market(book, i));
  v->n_markets = markets;
  const gk_risk_limits_set *limits = gk_book_limits(book);
  v->limits = wire_alloc(a, (limits->count ? limits->count : 1) * sizeof *v->limits);
  if (v->limits == NULL) return -1;
  for (size_t i = 0; i < limits->count; i++) v->limits[i] = wire_limit(a, &limits->limits[i]);
  v->n_limits = limits->count;
  size_t strategies = gk_book_strategy_count(book);
  v->strategies = wire_alloc(a, (strategies ? strategies : 1) * sizeof *v->strategies);
  if (v->strategies == NULL) return -1;
  for (size_t i = 0; i < strategies; i++) v->strategies[i] = wire_text(a, gk_book_strategy_at(book, i));
  v->n_strategies = strategies;
  return a->failed ? -1 : 0;
}

Greeks__V1__BookView *wire_book_view(wire_arena *a, const gk_book *book) {
  Greeks__V1__BookView *v = wire_alloc(a, sizeof *v);
  if (v == NULL) return NULL;
  greeks__v1__book_view__init(v);
  v->book_id = wire_text(a, gk_book_id(book));
  v->name = wire_text(a, gk_book_name(book));
  v->currency = wire_text(a, gk_book_currency(book));
  v->version = gk_book_version(book);
  v->opened_time_us = gk_book_opened_time(book);
  v->last_event_time_us = gk_book_last_event_time(book);
  if (fill_positions(a, book, v) != 0 || fill_trades(a, book, v) != 0 ||
      fill_markets_limits_strategies(a, book, v) != 0)
    return NULL;
  return v;
}

int wire_event_envelope(wire_arena *a, const gk_event *e, Greeks__Events__V1__EventEnvelope *out) {
  greeks__events__v1__event_envelope__init(out);
  uint8_t *payload = NULL;
  size_t size = 0;
  if (gk_event_encode_payload(e, &payload, &size, NULL) != GK_OK) return -1;
  uint8_t *copy = wire_alloc(a, size ? size : 1);
  if (copy && size) memcpy(copy, payload, size);
  free(payload);
  if (copy == NULL) return -1;
  out->event_id = wire_text(a, e->meta.event_id);
  out->book_id = wire_text(a, e->meta.book_id);
  out->sequence = e->meta.sequence;
  out->time_us = e->meta.time_us;
  out->type = (Greeks__Events__V1__EventType)e->type;
  out->schema_version = e->meta.schema_version;
  out->correlation_id = wire_text(a, e->meta.correlation_id);
  out->causation_id = wire_text(a, e->meta.causation_id);
  out->payload.data = copy;
  out->payload.len = size;
  return a->failed ? -1 : 0;
}

uint8_t *wire_pack(const ProtobufCMessage *m, size_t *size) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *bytes = malloc(n ? n : 1);
  if (bytes == NULL) return NULL;
  protobuf_c_message_pack(m, bytes);
  *size = n;
  return bytes;
}
