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

#endif /* GREEKS_CLI_CSV_H */
