#include "csv.h"

#include <string.h>

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
