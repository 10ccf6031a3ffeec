/*
 * Properties every CSV fuzz target checks (fuzz/fuzz_csv_*.c), whatever the verb:
 * - csv_check_error: an error's line is within the input's line count, and its
 *   message is one printable line (valid UTF-8, no control bytes) that starts
 *   with "line N: " when it names a line N;
 * - csv_check_readers_agree: the memory reader and the stream reader (blocks of
 *   1 to 16 bytes, so that CRLF and the BOM straddle block ends) return the same
 *   rows, fields, line numbers and errors;
 * - csv_line_count: how many lines the rules in api/cli/csv.h see in the input.
 * A property that fails aborts (libFuzzer records the input).
 */
#ifndef GREEKS_FUZZ_CSV_PROPERTIES_H
#define GREEKS_FUZZ_CSV_PROPERTIES_H

#include <stddef.h>
#include <stdint.h>

#include "csv.h"

/* Aborts with `what` on stderr when `ok` is false. */
void csv_require(int ok, const char *what);

size_t csv_line_count(const uint8_t *data, size_t size);

void csv_check_error(const csv_error *error, size_t lines);

/* Reads the input whole with `columns` through both readers and compares. */
void csv_check_readers_agree(const uint8_t *data, size_t size, const csv_column *columns, int ncols);

/* Reads the input from memory and calls check(fields, line, lines) on every row
 * after a usable header (rows the reader refuses are csv_check_readers_agree's
 * business). At most CSV_CHECK_MAX_COLUMNS columns. */
enum { CSV_CHECK_MAX_COLUMNS = 16 };
typedef void (*csv_row_check)(const char **fields, size_t line, size_t lines);
void csv_check_each_row(const uint8_t *data, size_t size, const csv_column *columns, int ncols, csv_row_check check);

/* libFuzzer's entry point, defined by each target. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 when the double is finite. */
int csv_finite(double x);

#endif
