/*
 * instrument.c - the book's value objects: instruments, legs, trades, market
 * quotes and limits, each validated on construction with an error that names
 * the field, the value and the rule. Pure: no I/O, no clock.
 *
 * Instrument identity is every field (two options that differ only in
 * multiplier are different positions). The hash covers the same fields, with
 * -0.0 folded to 0.0 so that equal instruments hash equally.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "greeks/batch.h"
#include "greeks/book.h"
#include "index_map.h"

static bool symbol_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

/* An identifier: 1..size-1 characters of [A-Za-z0-9._-]. */
static gk_code check_identifier(const char *field, const char *value, size_t size, int64_t index,
                                gk_status *status) {
  size_t n = value ? strnlen(value, size) : 0;
  if (n == 0 || n >= size)
    return gk_status_set(status, GK_INVALID_ARGUMENT, field, value ? value : "", index,
                         "%s must be 1 to %zu characters", field, size - 1);
  for (size_t i = 0; i < n; i++)
    if (!symbol_char(value[i]))
      return gk_status_set(status, GK_INVALID_ARGUMENT, field, value, index,
                           "%s may hold only letters, digits, '.', '_' and '-'", field);
  return GK_OK;
}

static gk_code check_positive(const char *field, double v, int64_t index, gk_status *status) {
  if (isfinite(v) && v > 0) return GK_OK;
  char text[32];
  snprintf(text, sizeof text, "%.17g", v);
  return gk_status_set(status, GK_INVALID_ARGUMENT, field, text, index,
                       "%s must be a finite number > 0", field);
}

gk_code gk_instrument_validate(const gk_instrument *in, gk_status *status) {
  gk_code rc = check_identifier("underlying", in->underlying, GK_SYMBOL_SIZE, GK_STATUS_NO_INDEX,
                                status);
  if (rc != GK_OK) return rc;
  char text[32];
  if (in->kind == GK_KIND_UNDERLYING) {
    if (in->type || in->style || in->strike != 0 || in->expiry_us != 0 || in->multiplier != 1)
      return gk_status_set(status, GK_INVALID_ARGUMENT, "kind", "underlying", GK_STATUS_NO_INDEX,
                           "the underlying has no type, style, strike or expiry and a "
                           "multiplier of 1");
    return GK_OK;
  }
  if (in->kind != GK_KIND_OPTION) {
    snprintf(text, sizeof text, "%u", in->kind);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "kind", text, GK_STATUS_NO_INDEX,
                         "kind must be option or underlying");
  }
  if (in->type != GK_CALL && in->type != GK_PUT) {
    snprintf(text, sizeof text, "%u", in->type);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "type", text, GK_STATUS_NO_INDEX,
                         "type must be call or put");
  }
  if (in->style != GK_STYLE_EUROPEAN && in->style != GK_STYLE_AMERICAN) {
    snprintf(text, sizeof text, "%u", in->style);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "style", text, GK_STATUS_NO_INDEX,
                         "style must be european or american");
  }
  rc = check_positive("strike", in->strike, GK_STATUS_NO_INDEX, status);
  if (rc == GK_OK) rc = check_positive("multiplier", in->multiplier, GK_STATUS_NO_INDEX, status);
  if (rc == GK_OK && in->strike > GK_MAX_STRIKE) {
    snprintf(text, sizeof text, "%.17g", in->strike);
    rc = gk_status_set(status, GK_INVALID_ARGUMENT, "strike", text, GK_STATUS_NO_INDEX,
                       "strike must be at most %g", GK_MAX_STRIKE);
  }
  if (rc == GK_OK && in->multiplier > GK_MAX_MULTIPLIER) {
    snprintf(text, sizeof text, "%.17g", in->multiplier);
    rc = gk_status_set(status, GK_INVALID_ARGUMENT, "multiplier", text, GK_STATUS_NO_INDEX,
                       "multiplier must be at most %g", GK_MAX_MULTIPLIER);
  }
  if (rc == GK_OK && in->expiry_us <= 0) {
    snprintf(text, sizeof text, "%lld", (long long)in->expiry_us);
    rc = gk_status_set(status, GK_INVALID_ARGUMENT, "expiry", text, GK_STATUS_NO_INDEX,
                       "expiry must be a UTC time after 1970-01-01");
  }
  return rc;
}

gk_code gk_instrument_option(const char *underlying, unsigned type, unsigned style, double strike,
                             int64_t expiry_us, double multiplier, gk_instrument *out,
                             gk_status *status) {
  memset(out, 0, sizeof *out);
  if (underlying) snprintf(out->underlying, sizeof out->underlying, "%s", underlying);
  out->kind = GK_KIND_OPTION;
  out->type = (uint8_t)(type > 255 ? 255 : type);
  out->style = (uint8_t)(style > 255 ? 255 : style);
  out->strike = strike;
  out->expiry_us = expiry_us;
  out->multiplier = multiplier;
  if (underlying && strlen(underlying) >= GK_SYMBOL_SIZE)
    return check_identifier("underlying", underlying, GK_SYMBOL_SIZE, GK_STATUS_NO_INDEX, status);
  return gk_instrument_validate(out, status);
}

gk_code gk_instrument_underlying(const char *underlying, gk_instrument *out, gk_status *status) {
  memset(out, 0, sizeof *out);
  if (underlying && strlen(underlying) >= GK_SYMBOL_SIZE)
    return check_identifier("underlying", underlying, GK_SYMBOL_SIZE, GK_STATUS_NO_INDEX, status);
  if (underlying) snprintf(out->underlying, sizeof out->underlying, "%s", underlying);
  out->kind = GK_KIND_UNDERLYING;
  out->multiplier = 1;
  return gk_instrument_validate(out, status);
}

bool gk_instrument_equal(const gk_instrument *a, const gk_instrument *b) {
  return strcmp(a->underlying, b->underlying) == 0 && a->kind == b->kind && a->type == b->type &&
         a->style == b->style && a->strike == b->strike && a->expiry_us == b->expiry_us &&
         a->multiplier == b->multiplier;
}

uint64_t gk_instrument_hash(const gk_instrument *in) {
  double strike = in->strike + 0.0, multiplier = in->multiplier + 0.0; /* -0 -> +0 */
  uint64_t h = gk_hash_bytes(HASH_SEED, in->underlying, strlen(in->underlying));
  uint8_t small[3] = {in->kind, in->type, in->style};
  h = gk_hash_bytes(h, small, sizeof small);
  h = gk_hash_bytes(h, &strike, sizeof strike);
  h = gk_hash_bytes(h, &in->expiry_us, sizeof in->expiry_us);
  return gk_hash_bytes(h, &multiplier, sizeof multiplier);
}

void gk_time_format_utc(int64_t us, char *out, size_t size) {
  int64_t micros = us % 1000000;
  if (micros < 0) micros += 1000000;
  time_t seconds = (time_t)((us - micros) / 1000000);
  struct tm tm;
  size_t n = gmtime_r(&seconds, &tm) ? strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm) : 0;
  if (n == 0) {
    snprintf(out, size, "%lldus", (long long)us);
    return;
  }
  if (micros) snprintf(out + n, size - n, ".%06lldZ", (long long)micros);
  else snprintf(out + n, size - n, "Z");
}

int gk_instrument_format(const gk_instrument *in, char *out, size_t size) {
  if (in->kind == GK_KIND_UNDERLYING) return snprintf(out, size, "%s underlying", in->underlying);
  char expiry[32];
  gk_time_format_utc(in->expiry_us, expiry, sizeof expiry);
  return snprintf(out, size, "%s %s %s %.10g %s x%.10g", in->underlying, expiry,
                  in->type == GK_CALL ? "C" : "P", in->strike,
                  in->style == GK_STYLE_AMERICAN ? "american" : "european", in->multiplier);
}

double gk_year_fraction(int64_t valuation_us, int64_t expiry_us) {
  return (double)(expiry_us - valuation_us) / (double)GK_US_PER_YEAR_ACT365;
}

/* ---- legs and trades -------------------------------------------------------------- */

static gk_code check_leg(const gk_leg *leg, size_t i, gk_status *status) {
  gk_code rc = gk_instrument_validate(&leg->instrument, status);
  if (rc != GK_OK) {
    status->index = (int64_t)i;
    return rc;
  }
  char text[32];
  if (leg->quantity == 0 || leg->quantity > GK_MAX_QUANTITY || leg->quantity < -GK_MAX_QUANTITY) {
    snprintf(text, sizeof text, "%lld", (long long)leg->quantity);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "quantity", text, (int64_t)i,
                         "leg %zu: quantity must be nonzero and at most %lld in magnitude", i,
                         (long long)GK_MAX_QUANTITY);
  }
  if (!isfinite(leg->price) || leg->price < 0) {
    snprintf(text, sizeof text, "%.17g", leg->price);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "price", text, (int64_t)i,
                         "leg %zu: price must be a finite number >= 0", i);
  }
  double cash = leg->price * fabs((double)leg->quantity) * leg->instrument.multiplier;
  if (!(cash <= GK_MAX_CASH)) {
    snprintf(text, sizeof text, "%.17g", leg->price);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "price", text, (int64_t)i,
                         "leg %zu: price x quantity x multiplier is %g, above %g currency "
                         "units", i, cash, GK_MAX_CASH);
  }
  return GK_OK;
}

gk_code gk_legs_validate(const gk_leg *legs, size_t count, gk_status *status) {
  if (count == 0 || count > GK_MAX_LEGS) {
    char text[32];
    snprintf(text, sizeof text, "%zu", count);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "legs", text, GK_STATUS_NO_INDEX,
                         "a trade has 1 to %d legs", GK_MAX_LEGS);
  }
  for (size_t i = 0; i < count; i++) {
    gk_code rc = check_leg(&legs[i], i, status);
    if (rc != GK_OK) return rc;
    for (size_t j = 0; j < i; j++)
      if (gk_instrument_equal(&legs[i].instrument, &legs[j].instrument)) {
        char named[128]; /* which instrument: a trade's legs may share a symbol */
        gk_instrument_format(&legs[i].instrument, named, sizeof named);
        return gk_status_set(status, GK_INVALID_ARGUMENT, "legs", legs[i].instrument.underlying, (int64_t)i,
                             "legs %zu and %zu trade the same instrument, %s: net them into one leg", j, i,
                             named);
      }
  }
  return GK_OK;
}

gk_code gk_trade_validate(const gk_trade *t, gk_status *status) {
  gk_code rc = check_identifier("trade_id", t->trade_id, GK_TRADE_ID_SIZE, GK_STATUS_NO_INDEX,
                                status);
  if (rc == GK_OK) rc = gk_legs_validate(t->legs, t->leg_count, status);
  if (rc == GK_OK && t->trade_time_us <= 0) {
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)t->trade_time_us);
    rc = gk_status_set(status, GK_INVALID_ARGUMENT, "trade_time", text, GK_STATUS_NO_INDEX,
                       "trade_time must be a UTC time after 1970-01-01");
  }
  if (rc == GK_OK && strnlen(t->idempotency_key, GK_META_ID_SIZE) >= GK_META_ID_SIZE)
    rc = gk_status_set(status, GK_INVALID_ARGUMENT, "idempotency_key", "", GK_STATUS_NO_INDEX,
                       "idempotency_key must be shorter than %d bytes (UTF-8)", GK_META_ID_SIZE);
  return rc;
}

/* ---- market quotes and limits ------------------------------------------------------- */

static gk_code check_range(const char *field, double v, double lo, double hi, int64_t index,
                           gk_status *status) {
  if (isfinite(v) && v >= lo && v <= hi) return GK_OK;
  char text[32];
  snprintf(text, sizeof text, "%.17g", v);
  return gk_status_set(status, GK_INVALID_ARGUMENT, field, text, index,
                       "%s must be a finite number in [%g, %g]", field, lo, hi);
}

/* Which vol point a refusal is about, in its message: the wire shows the
 * message, not the index, and a quote with hundreds of vol points said only
 * "vols.vol must be ..." (found in review). */
static void name_the_vol_point(gk_status *status, size_t i) {
  status->index = (int64_t)i;
  if (strncmp(status->message, "vol point ", 10) == 0) return;
  char named[sizeof status->message];
  int prefix = snprintf(named, sizeof named, "vol point %zu: ", i);
  if (prefix < 0 || (size_t)prefix >= sizeof named) return;
  size_t kept = strnlen(status->message, sizeof named - 1 - (size_t)prefix); /* a long rule is cut, as text */
  memcpy(named + prefix, status->message, kept);
  named[(size_t)prefix + kept] = '\0';
  memcpy(status->message, named, sizeof named);
}

gk_code gk_market_quote_validate(const gk_market_quote *q, gk_status *status) {
  gk_code rc = check_identifier("underlying", q->underlying, GK_SYMBOL_SIZE, GK_STATUS_NO_INDEX,
                                status);
  if (rc == GK_OK) rc = check_positive("spot", q->spot, GK_STATUS_NO_INDEX, status);
  if (rc == GK_OK) rc = check_range("rate", q->rate, -1, 1, GK_STATUS_NO_INDEX, status);
  if (rc == GK_OK) rc = check_range("yield", q->yield, -1, 1, GK_STATUS_NO_INDEX, status);
  if (rc == GK_OK) rc = check_range("vol", q->vol, 1e-4, 10, GK_STATUS_NO_INDEX, status);
  if (rc == GK_OK && q->vol_point_count > GK_MAX_VOL_POINTS)
    rc = gk_status_set(status, GK_INVALID_ARGUMENT, "vols", "", GK_STATUS_NO_INDEX,
                       "a market update carries at most %d vol points", GK_MAX_VOL_POINTS);
  for (size_t i = 0; rc == GK_OK && i < q->vol_point_count; i++) {
    const gk_vol_point *p = &q->vol_points[i];
    rc = gk_instrument_validate(&p->instrument, status);
    if (rc == GK_OK && strcmp(p->instrument.underlying, q->underlying) != 0)
      rc = gk_status_set(status, GK_INVALID_ARGUMENT, "vols.underlying", p->instrument.underlying,
                         (int64_t)i, "vol point %zu is on %s, not on the quote's underlying %s",
                         i, p->instrument.underlying, q->underlying);
    if (rc == GK_OK && !(isfinite(p->vol) && p->vol >= 1e-4 && p->vol <= 10)) {
      /* the value in the text: the wire took vol point 11's index for a vol of 11 (found in review) */
      char text[32];
      snprintf(text, sizeof text, "%.17g", p->vol);
      rc = gk_status_set(status, GK_INVALID_ARGUMENT, "vols.vol", text, (int64_t)i,
                         "vols.vol is %s: it must be a finite number in [0.0001, 10]", text);
    }
    if (rc != GK_OK && status) name_the_vol_point(status, i);
  }
  return rc;
}

const char *gk_limit_metric_name(unsigned metric) {
  static const char *const names[] = {"dollar_delta", "dollar_gamma", "vega",
                                      "worst_scenario_loss", "gross_notional"};
  return metric < GK_LIMIT_METRIC_COUNT ? names[metric] : "unknown";
}

gk_code gk_risk_limit_validate(const gk_risk_limit *l, gk_status *status) {
  if (l->underlying[0]) {
    gk_code rc = check_identifier("limit.underlying", l->underlying, GK_SYMBOL_SIZE,
                                  GK_STATUS_NO_INDEX, status);
    if (rc != GK_OK) return rc;
  }
  char text[32];
  if (l->metric >= GK_LIMIT_METRIC_COUNT) {
    snprintf(text, sizeof text, "%u", l->metric);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "limit.metric", text, GK_STATUS_NO_INDEX,
                         "metric must be dollar_delta, dollar_gamma, vega, "
                         "worst_scenario_loss or gross_notional");
  }
  gk_code rc = check_range("limit.soft", l->soft, 0, 1e18, GK_STATUS_NO_INDEX, status);
  if (rc == GK_OK) rc = check_range("limit.hard", l->hard, 0, 1e18, GK_STATUS_NO_INDEX, status);
  if (rc == GK_OK && l->soft == 0 && l->hard == 0)
    rc = gk_status_set(status, GK_INVALID_ARGUMENT, "limit.soft", "0", GK_STATUS_NO_INDEX,
                       "a %s limit needs a soft or a hard level > 0", gk_limit_metric_name(l->metric));
  if (rc == GK_OK && l->soft > 0 && l->hard > 0 && l->hard < l->soft) {
    snprintf(text, sizeof text, "%.17g", l->hard);
    rc = gk_status_set(status, GK_INVALID_ARGUMENT, "limit.hard", text, GK_STATUS_NO_INDEX,
                       "the hard level (%g) must be at least the soft level (%g)", l->hard,
                       l->soft);
  }
  return rc;
}

/* ---- event types --------------------------------------------------------------------- */

uint32_t gk_event_current_version(gk_event_type type) {
  return type == GK_EVENT_MARKET_UPDATED ? 2 : 1;
}

const char *gk_event_type_name(unsigned type) {
  static const char *const names[] = {"unknown",          "BookOpened",        "TradeExecuted",
                                      "TradeCorrected",   "MarketUpdated",     "RiskLimitsSet",
                                      "RiskLimitBreached", "RiskLimitRestored", "StrategyProposed",
                                      "TradeRejected"};
  return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}
