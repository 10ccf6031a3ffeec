/*
 * Minimal RFC 4180 CSV for the CLI: one record per line, fields separated by
 * commas, optionally enclosed in double quotes ("" is a literal quote). Quoted
 * fields may not span lines.
 */
#ifndef GREEKS_CLI_CSV_H
#define GREEKS_CLI_CSV_H

#include <stddef.h>
#include <stdio.h>

#define CSV_MAX_FIELDS 64

typedef struct csv_record {
  size_t field_count;
  char *fields[CSV_MAX_FIELDS]; /* point into the line buffer passed to csv_split */
} csv_record;

/* Splits `line` in place (it is modified; the record points into it). Strips a
 * trailing "\r\n" or "\n". Returns 0, or -1 with *error set to a static message
 * (unterminated quote, too many fields). */
int csv_split(char *line, csv_record *record, const char **error);

/* Writes `text` as one CSV field, quoting it when it holds a comma, quote or
 * line break. */
void csv_write_field(FILE *out, const char *text);

/* A CSV file read record by record with its columns found by header name. */
#define CSV_MESSAGE_SIZE 256
#define CSV_MAX_NAMED 16

typedef struct csv_file {
  const char *path;
  FILE *f;
  char *line;
  size_t capacity, line_number;
  int column_of[CSV_MAX_NAMED]; /* position of each named column, -1 if absent */
} csv_file;

/* Opens `path` and maps the header's columns to `columns` (ncols <= CSV_MAX_NAMED).
 * Prints a clear message and returns -1 when the file cannot be read or a
 * required column is missing. csv_file_close must be called either way. */
int csv_file_open(csv_file *t, const char *path, const char *const *columns, const int *required,
                  int ncols);

/* The next non-blank record: fields[c] points at column c's text (NULL for an
 * absent optional column). Returns 1, 0 at the end, or -1 with a message naming
 * the line in `error` (CSV_MESSAGE_SIZE bytes). */
int csv_file_next(csv_file *t, const char **fields, int ncols, char *error);

void csv_file_close(csv_file *t);

#endif /* GREEKS_CLI_CSV_H */
