/*
 * libFuzzer target: `greeks iv` input, through the verb's own reader
 * (csv_reader, iv_columns, iv_parse_row). Besides the shared CSV properties
 * (csv_properties.h), for each row the reader accepts: it is parsed or refused
 * with an error naming its line; a parsed row has type call or put; and a vol
 * the kernel then returns (element error OK, bsm and bachelier) is finite and
 * >= 0, from finite inputs with T > 0.
 */
#include <stddef.h>
#include <stdint.h>

#include "csv_properties.h"
#include "greeks/iv.h"
#include "iv_command.h"

static void check_row(gk_model model, const char **fields, size_t line, size_t lines) {
  iv_values v;
  csv_error error;
  if (iv_parse_row(model, fields, line, &v, &error) != 0) {
    csv_check_error(&error, lines);
    csv_require(error.line == line, "a parse error names the row's line");
    return;
  }
  csv_require(v.type == GK_CALL || v.type == GK_PUT, "type call or put");
  double vol = -1;
  uint8_t element = 0;
  gk_iv_batch in = {1, &v.spot, &v.strike, &v.expiry, &v.rate, &v.yield, &v.price, &v.type};
  csv_require(gk_implied_vol_batch(model, &in, &vol, &element, NULL) == GK_RC_OK, "batch call");
  if (element != GK_ELEMENT_OK) return;
  csv_require(csv_finite(v.spot) && csv_finite(v.strike) && csv_finite(v.rate) && csv_finite(v.yield) &&
                  csv_finite(v.price) && csv_finite(v.expiry) && v.expiry > 0,
              "inputs of a solved row finite, T > 0");
  csv_require(csv_finite(vol) && vol >= 0, "vol finite and >= 0");
}

/* Every row under the lognormal and the normal model. */
static void check_both_models(const char **fields, size_t line, size_t lines) {
  check_row(GK_MODEL_BSM, fields, line, lines);
  check_row(GK_MODEL_BACHELIER, fields, line, lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  csv_column columns[IV_COLUMNS];
  iv_columns(GK_MODEL_BSM, columns);
  csv_check_readers_agree(data, size, columns, IV_COLUMNS);
  csv_check_each_row(data, size, columns, IV_COLUMNS, check_both_models);
  return 0;
}
