/*
 * libFuzzer target: `greeks revalue --market` input, through market_read
 * (revalue_input.h). Besides the shared CSV properties (csv_properties.h): a
 * refused file has one printable error within the input's lines; an accepted
 * one has at least one underlying, each name non-empty, without leading space
 * or NUL, found again by market_find at its own index (so no name twice), and
 * q = 0 when the model ignores it.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "csv_properties.h"
#include "revalue_input.h"

static void check_markets(const market_table *m, gk_model model) {
  csv_require(m->count >= 1, "at least one underlying");
  for (size_t k = 0; k < m->count; k++) {
    const char *name = m->names[k];
    csv_require(name[0] != '\0' && name[0] != ' ' && name[0] != '\t', "name non-empty, no leading space");
    csv_require(market_find(m, name) == (long)k, "each name found at its own index");
    if (!gk_model_uses_yield(model)) csv_require(m->yield[k] == 0.0, "q 0 when the model ignores it");
  }
}

static void read_as(gk_model model, const uint8_t *data, size_t size, size_t lines) {
  csv_reader *r = csv_reader_memory((const char *)data, size);
  csv_require(r != NULL, "reader");
  market_table m = {0};
  csv_error error;
  if (market_read(r, model, &m, &error) == 0) check_markets(&m, model);
  else csv_check_error(&error, lines);
  market_free(&m);
  csv_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const csv_column columns[4] = {{"underlying", 1}, {"S", 1}, {"r", 1}, {"q", 1}};
  csv_check_readers_agree(data, size, columns, 4);
  size_t lines = csv_line_count(data, size);
  read_as(GK_MODEL_BSM, data, size, lines);
  read_as(GK_MODEL_BLACK76, data, size, lines);
  return 0;
}
