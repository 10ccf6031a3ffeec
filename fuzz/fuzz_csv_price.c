/*
 * libFuzzer target: `greeks price` / `greeks chain` input, through the verb's own
 * reader (csv_reader, price_columns, price_parse_row). Besides the shared CSV
 * properties (csv_properties.h), for each row:
 * - a row the reader accepts is either parsed or refused with an error naming
 *   its own line;
 * - a parsed row has type call or put and a known style, and every number the
 *   kernel then accepts (element error OK, bsm and bachelier) is finite and in
 *   the documented domain (greeks/batch.h), with a finite price.
 */
#include <stddef.h>
#include <string.h>
#include <stdint.h>

#include "csv_properties.h"
#include "greeks/american.h"
#include "greeks/bsm.h"
#include "price_command.h"

static void check_domain(gk_model model, const price_values *v) {
  csv_require(csv_finite(v->spot) && csv_finite(v->strike) && csv_finite(v->expiry), "S, K, T finite");
  csv_require(csv_finite(v->rate) && csv_finite(v->yield) && csv_finite(v->vol), "r, q, sigma finite");
  csv_require(v->expiry >= 0 && v->expiry <= GK_MAX_EXPIRY, "T in domain");
  csv_require(v->rate >= -GK_MAX_ABS_RATE && v->rate <= GK_MAX_ABS_RATE, "r in domain");
  if (model == GK_MODEL_BACHELIER) {
    csv_require(v->spot >= -GK_MAX_PRICE_LEVEL && v->spot <= GK_MAX_PRICE_LEVEL, "S in domain");
    csv_require(v->strike >= -GK_MAX_PRICE_LEVEL && v->strike <= GK_MAX_PRICE_LEVEL, "K in domain");
    csv_require(v->vol >= 0 && v->vol <= GK_MAX_PRICE_LEVEL, "sigma in domain");
    return;
  }
  csv_require(v->spot >= GK_MIN_PRICE_LEVEL && v->spot <= GK_MAX_PRICE_LEVEL, "S in domain");
  csv_require(v->strike >= GK_MIN_PRICE_LEVEL && v->strike <= GK_MAX_PRICE_LEVEL, "K in domain");
  csv_require(v->yield >= -GK_MAX_ABS_RATE && v->yield <= GK_MAX_ABS_RATE, "q in domain");
  csv_require(v->vol >= 0 && v->vol <= GK_MAX_VOL, "sigma in domain");
}

/* One accepted row under one model: parse, price one element, check. */
static void check_row(gk_model model, const char **fields, size_t line, size_t lines) {
  price_rules rules = {.model = model, .default_style = GK_STYLE_EUROPEAN};
  price_values v;
  csv_error error;
  if (price_parse_row(&rules, fields, line, &v, &error) != 0) {
    csv_check_error(&error, lines);
    csv_require(error.line == line, "a parse error names the row's line");
    return;
  }
  csv_require(v.type == GK_CALL || v.type == GK_PUT, "type call or put");
  csv_require(v.style == GK_STYLE_EUROPEAN || v.style == GK_STYLE_AMERICAN, "style known");
  /* Every first-order array given, as the verb does; then price and delta alone,
   * the other columns NULL as batch.h allows (the kernels once formed
   * out->gamma + i on them: docs/fuzzing.md, findings). Both must agree. */
  double o[7] = {0}, alone[2] = {0};
  uint8_t element = 0, element_alone = 0;
  gk_option_batch in = {1, &v.spot, &v.strike, &v.expiry, &v.rate, &v.yield, &v.vol, &v.type};
  gk_greeks_batch out = {&o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &element};
  csv_require(gk_bsm_price_batch(model, &in, GK_OUT_ALL, &out, NULL) == GK_RC_OK, "batch call");
  gk_greeks_batch two;
  memset(&two, 0, sizeof two);
  two.price = &alone[0], two.delta = &alone[1], two.error = &element_alone;
  csv_require(gk_bsm_price_batch(model, &in, GK_OUT_PRICE | GK_OUT_DELTA, &two, NULL) == GK_RC_OK, "price-and-delta call");
  csv_require(element_alone == element, "price-and-delta batch: same element verdict");
  if (element != GK_ELEMENT_OK) return;
  check_domain(model, &v);
  csv_require(csv_finite(o[0]) && csv_finite(o[1]), "price and delta finite");
  csv_require(memcmp(alone, o, sizeof alone) == 0, "price-and-delta batch: same price and delta");
}

/* Every row under the lognormal and the normal model. */
static void check_both_models(const char **fields, size_t line, size_t lines) {
  check_row(GK_MODEL_BSM, fields, line, lines);
  check_row(GK_MODEL_BACHELIER, fields, line, lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  price_rules rules = {.model = GK_MODEL_BSM};
  csv_column columns[PRICE_COLUMNS];
  price_columns(&rules, columns);
  csv_check_readers_agree(data, size, columns, PRICE_COLUMNS);
  csv_check_each_row(data, size, columns, PRICE_COLUMNS, check_both_models);
  return 0;
}
