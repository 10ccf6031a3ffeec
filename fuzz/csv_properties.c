/*
 * The shared CSV properties (csv_properties.h). The two readers are compared
 * through a transcript: each call's answer, line number and fields (or message)
 * appended to a buffer, then the buffers compared byte for byte.
 */
#define _GNU_SOURCE /* fmemopen */
#include "csv_properties.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void csv_require(int ok, const char *what) {
  if (ok) return;
  fprintf(stderr, "CSV property failed: %s\n", what);
  abort();
}

int csv_finite(double x) { return isfinite(x); }

size_t csv_line_count(const uint8_t *data, size_t size) {
  size_t lines = 0;
  for (size_t i = 0; i < size; i++) {
    if (data[i] == '\r') lines++;
    else if (data[i] == '\n' && !(i > 0 && data[i - 1] == '\r')) lines++;
  }
  if (size > 0 && data[size - 1] != '\r' && data[size - 1] != '\n') lines++;
  return lines;
}

/* Valid UTF-8 with no C0/C1 control characters and no DEL. */
static int printable(const char *text) {
  const unsigned char *s = (const unsigned char *)text;
  size_t len = strlen(text);
  for (size_t i = 0; i < len;) {
    char probe[16];
    size_t n = s[i] < 0x80 ? 1 : (s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : 2);
    if (s[i] < 0x80) {
      if (s[i] < 0x20 || s[i] == 0x7f) return 0;
      i++;
      continue;
    }
    if (i + n > len) return 0;
    /* csv_escape passes a sequence through only when it is valid and printable */
    if (csv_escape(probe, sizeof probe, text + i, n, n) != n || memcmp(probe, text + i, n) != 0) return 0;
    i += n;
  }
  return 1;
}

void csv_check_error(const csv_error *error, size_t lines) {
  csv_require(error->line <= lines, "error line within the input");
  csv_require(memchr(error->message, '\0', sizeof error->message) != NULL, "message terminated");
  csv_require(error->message[0] != '\0', "message not empty");
  if (!printable(error->message)) fprintf(stderr, "message: %s\n", error->message);
  csv_require(printable(error->message), "message printable");
  if (error->line == 0) return;
  char prefix[32];
  snprintf(prefix, sizeof prefix, "line %zu: ", error->line);
  csv_require(strncmp(error->message, prefix, strlen(prefix)) == 0, "message starts with its line");
}

typedef struct transcript {
  char *text;
  size_t len, cap;
} transcript;

static void add(transcript *t, const char *s, size_t n) {
  if (t->len + n + 1 > t->cap) {
    t->cap = (t->len + n + 1) * 2;
    t->text = realloc(t->text, t->cap);
    csv_require(t->text != NULL, "transcript memory");
  }
  memcpy(t->text + t->len, s, n);
  t->len += n;
  t->text[t->len] = '\0';
}

static void add_number(transcript *t, long n) {
  char s[32];
  add(t, s, (size_t)snprintf(s, sizeof s, "%ld|", n));
}

/* Everything a reader returns, in order; checks each error on the way. */
static transcript read_all(csv_reader *r, const csv_column *columns, int ncols, size_t lines) {
  transcript t = {0};
  csv_error error;
  const char *fields[16];
  size_t last_line = 0;
  if (csv_reader_header(r, columns, ncols, &error) != 0) {
    csv_check_error(&error, lines);
    add(&t, error.message, strlen(error.message));
    return t;
  }
  for (int got; (got = csv_reader_next(r, fields, &error)) != CSV_END;) {
    size_t line = csv_reader_line(r);
    csv_require(line > last_line && line <= lines, "row lines increase within the input");
    last_line = line;
    add_number(&t, got);
    add_number(&t, (long)line);
    if (got != CSV_ROW) {
      csv_check_error(&error, lines);
      csv_require(got == CSV_FAILED || error.line == line, "a bad row's error names its line");
      add(&t, error.message, strlen(error.message));
      if (got == CSV_FAILED) break;
      continue;
    }
    for (int c = 0; c < ncols; c++) {
      if (columns[c].name == NULL) csv_require(fields[c] == NULL, "a column not read has no field");
      else if (columns[c].required) csv_require(fields[c] != NULL, "a required column has a field");
      add(&t, fields[c] ? fields[c] : "<absent>", fields[c] ? strlen(fields[c]) + 1 : 9);
    }
  }
  return t;
}

void csv_check_readers_agree(const uint8_t *data, size_t size, const csv_column *columns, int ncols) {
  csv_require(ncols <= 16, "at most 16 columns in a fuzz target");
  size_t lines = csv_line_count(data, size);
  csv_reader *memory = csv_reader_memory((const char *)data, size);
  csv_require(memory != NULL, "memory reader");
  transcript a = read_all(memory, columns, ncols, lines);
  csv_reader_free(memory);
  if (size > 0) {
    FILE *f = fmemopen((void *)data, size, "rb");
    csv_require(f != NULL, "fmemopen");
    csv_reader *stream = csv_reader_stream(f, 1 + data[size / 2] % 16);
    csv_require(stream != NULL, "stream reader");
    transcript b = read_all(stream, columns, ncols, lines);
    csv_reader_free(stream);
    fclose(f);
    csv_require(a.len == b.len && (a.len == 0 || memcmp(a.text, b.text, a.len) == 0),
                "memory and stream readers agree");
    free(b.text);
  }
  free(a.text);
}

void csv_check_each_row(const uint8_t *data, size_t size, const csv_column *columns, int ncols, csv_row_check check) {
  csv_require(ncols <= CSV_CHECK_MAX_COLUMNS, "columns fit the row buffer");
  size_t lines = csv_line_count(data, size);
  csv_reader *r = csv_reader_memory((const char *)data, size);
  csv_error error;
  const char *fields[CSV_CHECK_MAX_COLUMNS];
  if (r && csv_reader_header(r, columns, ncols, &error) == 0) {
    for (int got; (got = csv_reader_next(r, fields, &error)) != CSV_END;)
      if (got == CSV_ROW) check(fields, csv_reader_line(r), lines);
  }
  csv_reader_free(r);
}
