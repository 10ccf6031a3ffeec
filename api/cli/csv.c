#include "csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

static void strip_line_end(char *line) {
  size_t len = strlen(line);
  while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
}

/* Unquotes the field starting at *cursor (just past the opening quote) in place.
 * Returns the character after the closing quote, or NULL if none. */
static char *unquote_field(char *cursor) {
  char *write = cursor;
  for (char *read = cursor; *read != '\0'; read++) {
    if (*read != '"') {
      *write++ = *read;
      continue;
    }
    if (read[1] == '"') {
      *write++ = '"';
      read++;
      continue;
    }
    *write = '\0';
    return read + 1;
  }
  return NULL;
}

int csv_split(char *line, csv_record *record, const char **error) {
  strip_line_end(line);
  record->field_count = 0;
  char *cursor = line;
  for (;;) {
    if (record->field_count == CSV_MAX_FIELDS) {
      *error = "too many fields";
      return -1;
    }
    char *field = cursor;
    char *after;
    if (*cursor == '"') {
      field = cursor + 1;
      after = unquote_field(field);
      if (after == NULL) {
        *error = "unterminated quoted field";
        return -1;
      }
      if (*after != ',' && *after != '\0') {
        *error = "text after a closing quote";
        return -1;
      }
    } else {
      after = strchr(cursor, ',');
      if (after == NULL) after = cursor + strlen(cursor);
    }
    record->fields[record->field_count++] = field;
    if (*after == '\0') return 0;
    *after = '\0';
    cursor = after + 1;
  }
}

void csv_write_field(FILE *out, const char *text) {
  if (strpbrk(text, ",\"\r\n") == NULL) {
    fputs(text, out);
    return;
  }
  fputc('"', out);
  for (const char *p = text; *p; p++) {
    if (*p == '"') fputc('"', out);
    fputc(*p, out);
  }
  fputc('"', out);
}

/* A CSV file read line by line with named columns. */
int csv_file_open(csv_file *t, const char *path, const char *const *columns, const int *required,
                    int ncols) {
  memset(t, 0, sizeof *t);
  t->path = path;
  t->f = fopen(path, "r");
  if (t->f == NULL) {
    fprintf(stderr, "greeks: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  csv_record header;
  const char *error = NULL;
  while (getline(&t->line, &t->capacity, t->f) != -1) {
    t->line_number++;
    if (*cli_skip_spaces(t->line) == '\0') continue;
    if (csv_split(t->line, &header, &error) != 0) {
      fprintf(stderr, "greeks: %s: header: %s\n", path, error);
      return -1;
    }
    for (int c = 0; c < ncols; c++) {
      t->column_of[c] = -1;
      for (size_t i = 0; i < header.field_count; i++)
        if (strcmp(cli_skip_spaces(header.fields[i]), columns[c]) == 0) t->column_of[c] = (int)i;
      if (t->column_of[c] < 0 && required[c]) {
        fprintf(stderr, "greeks: %s: header has no '%s' column\n", path, columns[c]);
        return -1;
      }
    }
    return 0;
  }
  fprintf(stderr, "greeks: %s: empty file (expected a header)\n", path);
  return -1;
}

/* Next non-blank record; fields[c] NULL for absent columns. 1 ok, 0 end, -1 error
 * (message in *error). */
int csv_file_next(csv_file *t, const char **fields, int ncols, char *error) {
  csv_record record;
  const char *split_error;
  while (getline(&t->line, &t->capacity, t->f) != -1) {
    t->line_number++;
    if (*cli_skip_spaces(t->line) == '\0') continue;
    if (csv_split(t->line, &record, &split_error) != 0) {
      snprintf(error, CSV_MESSAGE_SIZE, "line %zu: %s", t->line_number, split_error);
      return -1;
    }
    for (int c = 0; c < ncols; c++) {
      int at = t->column_of[c];
      fields[c] = NULL;
      if (at < 0) continue;
      if ((size_t)at >= record.field_count) {
        snprintf(error, CSV_MESSAGE_SIZE, "line %zu: %zu fields, a field is missing", t->line_number,
                 record.field_count);
        return -1;
      }
      fields[c] = record.fields[at];
    }
    return 1;
  }
  return 0;
}

void csv_file_close(csv_file *t) {
  if (t->f) fclose(t->f);
  free(t->line);
}

