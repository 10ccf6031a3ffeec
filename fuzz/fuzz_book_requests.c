/*
 * libFuzzer target: what greeksd does with a BookService request's bytes
 * before the book sees it: request_unpack (api/server/requests.c: the UTF-8
 * rule on every string, then protobuf-c) and the readers of
 * api/server/book_wire.c that turn the message into domain values, in the
 * order the handlers (book_handlers.c) call them.
 *
 * Input: byte 0 picks the request (modulo 6): ExecuteTrade, CorrectTrade,
 * SetRiskLimits, UpdateMarket, GenerateStrategies, GenerateHedge; the rest is
 * the serialized message.
 *
 * Properties (a violation traps, so libFuzzer keeps the input):
 *   - a refused unpack is INVALID_ARGUMENT with printable details naming the
 *     message or a field;
 *   - a reader that refuses says why: a non-empty text starting with the
 *     request field at fault ("legs[2]...", "field 'limits' ...");
 *   - what a reader accepts is what the message says, field by field (a
 *     leg's quantity, price and instrument: underlying, kind, type, style,
 *     strike, expiry, multiplier; a limit's underlying, metric and levels; a
 *     quote's values, time and vol points; a quoted instrument's bid, ask, vol
 *     and instrument): the readers run the domain's validators themselves, so
 *     those alone would not catch a field read into the wrong place; and it
 *     passes those validators (each leg on its own);
 *   - an id (ExecuteTrade's book_id, trade_id, strategy_id, idempotency_key)
 *     is accepted exactly when its length is within its rule (book_id 1 to
 *     58, the others up to 63, the optional ones possibly empty), and copied
 *     whole;
 *   - nothing crashes or leaks (ASan, UBSan, LeakSanitizer).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "book_wire.h"
#include "greeks/v1/book.pb-c.h"
#include "requests.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { KINDS = 6 };

static void require(int condition, const char *what, const char *details) {
  if (condition) return;
  fprintf(stderr, "property failed: %s (%s)\n", what, details ? details : "");
  __builtin_trap();
}

static int printable(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
  return 1;
}

/* A refusal names the field at fault first. */
static void require_refusal(const char *why, const char *const *fields, size_t count) {
  require(memchr(why, '\0', WIRE_WHY_SIZE) != NULL, "refusal terminated", NULL);
  int named = strncmp(why, "field '", 7) == 0;
  for (size_t i = 0; i < count && !named; i++) named = strncmp(why, fields[i], strlen(fields[i])) == 0;
  require(named, "a refusal starts with the field at fault", why);
}

/* An accepted instrument is the message's. */
static void require_instrument(const gk_instrument *in, const Greeks__Events__V1__Instrument *pb) {
  require(strcmp(in->underlying, pb->underlying) == 0, "the underlying as sent", pb->underlying);
  int option = pb->kind == GREEKS__EVENTS__V1__INSTRUMENT_KIND__OPTION;
  require(in->kind == (option ? GK_KIND_OPTION : GK_KIND_UNDERLYING), "the kind as sent", NULL);
  if (!option) return;
  require(in->type == (pb->option_type == GREEKS__EVENTS__V1__OPTION_TYPE__PUT ? GK_PUT : GK_CALL),
          "the option type as sent", NULL);
  require(in->style == (pb->style == GREEKS__EVENTS__V1__EXERCISE_STYLE__AMERICAN ? GK_STYLE_AMERICAN
                                                                                  : GK_STYLE_EUROPEAN),
          "the style as sent", NULL);
  require(in->strike == pb->strike && in->expiry_us == pb->expiry_us && in->multiplier == pb->multiplier,
          "strike, expiry and multiplier as sent", NULL);
}

static void read_legs(Greeks__Events__V1__Leg *const *legs, size_t count, const char *field) {
  gk_leg out[GK_MAX_LEGS];
  size_t written = 0;
  char why[WIRE_WHY_SIZE] = "";
  const char *fields[] = {field};
  gk_status st;
  if (wire_read_legs(legs, count, field, out, &written, why, sizeof why) != 0) {
    require_refusal(why, fields, 1);
    return;
  }
  require(written == count, "every leg read", NULL);
  for (size_t i = 0; i < written; i++) {
    require(gk_legs_validate(&out[i], 1, &st) == GK_OK, "an accepted leg passes gk_legs_validate", st.message);
    require(out[i].quantity == legs[i]->quantity && out[i].price == legs[i]->price, "quantity and price as sent",
            NULL);
    require_instrument(&out[i].instrument, legs[i]->instrument);
  }
}

/* wire_read_id (wire_read_book_id for book_id): accepted exactly within its
 * rule, and copied whole. */
static void read_id(const char *text, const char *field, int optional, size_t most, size_t out_size) {
  char out[GK_META_ID_SIZE + GK_BOOK_ID_SIZE];
  char why[WIRE_WHY_SIZE] = "";
  size_t n = strlen(text);
  int ok = (strcmp(field, "book_id") == 0 ? wire_read_book_id(text, out, why, sizeof why)
                                          : wire_read_id(text, field, optional, out, out_size, why, sizeof why)) == 0;
  require(ok == ((n > 0 || optional) && n <= most), "an id is accepted exactly within its rule", why);
  if (ok) require(strcmp(out, text) == 0, "an id copied whole", text);
  else require(strncmp(why, "field '", 7) == 0, "an id's refusal names its field", why);
}

static void read_limits(const Greeks__V1__SetRiskLimitsRequest *q) {
  gk_risk_limit out[GK_MAX_LIMITS];
  char why[WIRE_WHY_SIZE] = "";
  const char *fields[] = {"limits"};
  gk_status st;
  if (wire_read_limits(q->limits, q->n_limits, out, why, sizeof why) != 0) {
    require_refusal(why, fields, 1);
    return;
  }
  for (size_t i = 0; i < q->n_limits; i++) {
    require(gk_risk_limit_validate(&out[i], &st) == GK_OK, "an accepted limit passes its validator", st.message);
    const Greeks__Events__V1__RiskLimit *pb = q->limits[i];
    require(strcmp(out[i].underlying, pb->underlying) == 0 && out[i].metric == (unsigned)pb->metric &&
                out[i].soft == pb->soft && out[i].hard == pb->hard,
            "a limit as sent", pb->underlying);
  }
}

static void read_quote(const Greeks__V1__MarketQuote *pb, const char *field) {
  gk_market_quote quote;
  char why[WIRE_WHY_SIZE] = "";
  const char *fields[] = {field};
  gk_status st;
  if (wire_read_quote(pb, field, 1800000000000000LL, &quote, why, sizeof why) != 0) {
    require_refusal(why, fields, 1);
    return;
  }
  require(gk_market_quote_validate(&quote, &st) == GK_OK, "an accepted quote passes its validator", st.message);
  require(strcmp(quote.underlying, pb->underlying) == 0 && quote.spot == pb->spot && quote.rate == pb->rate &&
              quote.yield == pb->yield && quote.vol == pb->vol &&
              quote.market_time_us == (pb->market_time_us ? pb->market_time_us : 1800000000000000LL),
          "a quote as sent", pb->underlying);
  require(quote.vol_point_count == pb->n_vols, "every vol point read", NULL);
  for (size_t i = 0; i < pb->n_vols; i++) {
    require(quote.vol_points[i].vol == pb->vols[i]->vol, "a vol point's vol as sent", NULL);
    require_instrument(&quote.vol_points[i].instrument, pb->vols[i]->instrument);
  }
}

static void read_quoted(Greeks__V1__QuotedInstrument *const *quoted, size_t count, const char *field) {
  gk_quoted_instrument *out = calloc(count ? count : 1, sizeof *out);
  require(out != NULL, "memory", NULL);
  char why[WIRE_WHY_SIZE] = "";
  const char *fields[] = {field};
  gk_status st;
  if (wire_read_quoted(quoted, count, field, out, why, sizeof why) == 0) {
    require(gk_quoted_instruments_validate(out, count, &st) == GK_OK, "accepted quotes pass their validator",
            st.message);
    for (size_t i = 0; i < count; i++) {
      require(out[i].bid == quoted[i]->bid && out[i].ask == quoted[i]->ask && out[i].vol == quoted[i]->vol,
              "a quoted instrument's bid, ask and vol as sent", NULL);
      require_instrument(&out[i].instrument, quoted[i]->instrument);
    }
  } else {
    require_refusal(why, fields, 1);
  }
  free(out);
}

static void read_message(int kind, const ProtobufCMessage *m) {
  char field[32];
  switch (kind) {
    case 0: {
      const Greeks__V1__ExecuteTradeRequest *q = (const Greeks__V1__ExecuteTradeRequest *)m;
      read_id(q->book_id, "book_id", 0, GK_BOOK_ID_MAX_LENGTH, GK_BOOK_ID_SIZE);
      read_id(q->trade_id, "trade_id", 0, GK_TRADE_ID_SIZE - 1, GK_TRADE_ID_SIZE);
      read_id(q->strategy_id, "strategy_id", 1, GK_META_ID_SIZE - 1, GK_META_ID_SIZE);
      read_id(q->idempotency_key, "idempotency_key", 1, GK_META_ID_SIZE - 1, GK_META_ID_SIZE);
      read_legs(q->legs, q->n_legs, "legs");
      break;
    }
    case 1: {
      const Greeks__V1__CorrectTradeRequest *q = (const Greeks__V1__CorrectTradeRequest *)m;
      read_legs(q->replacement_legs, q->n_replacement_legs, "replacement_legs");
      break;
    }
    case 2: read_limits((const Greeks__V1__SetRiskLimitsRequest *)m); break;
    case 3: {
      const Greeks__V1__UpdateMarketRequest *q = (const Greeks__V1__UpdateMarketRequest *)m;
      for (size_t i = 0; i < q->n_quotes && i < 8; i++) {
        snprintf(field, sizeof field, "quotes[%zu]", i);
        read_quote(q->quotes[i], field);
      }
      break;
    }
    case 4: {
      const Greeks__V1__GenerateStrategiesRequest *q = (const Greeks__V1__GenerateStrategiesRequest *)m;
      if (q->market) read_quote(q->market, "market");
      read_quoted(q->chain, q->n_chain, "chain");
      break;
    }
    default: {
      const Greeks__V1__GenerateHedgeRequest *q = (const Greeks__V1__GenerateHedgeRequest *)m;
      read_quoted(q->instruments, q->n_instruments, "instruments");
      break;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const ProtobufCMessageDescriptor *const descriptors[KINDS] = {
      &greeks__v1__execute_trade_request__descriptor,   &greeks__v1__correct_trade_request__descriptor,
      &greeks__v1__set_risk_limits_request__descriptor, &greeks__v1__update_market_request__descriptor,
      &greeks__v1__generate_strategies_request__descriptor, &greeks__v1__generate_hedge_request__descriptor};
  if (size == 0) return 0;
  int kind = data[0] % KINDS;
  ProtobufCMessage *m = NULL;
  request_verdict v;
  if (request_unpack(descriptors[kind], data + 1, size - 1, &m, &v) != 0) {
    require(m == NULL, "a refused request owns nothing", NULL);
    require(v.code == GRPC_STATUS_INVALID_ARGUMENT, "a refused unpack is INVALID_ARGUMENT", v.details);
    require(v.details[0] != '\0' && printable(v.details), "refusal details printable", v.details);
    require(strstr(v.details, "field '") || strstr(v.details, "is not a valid "), "refusal names what", v.details);
    return 0;
  }
  read_message(kind, m);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}
