/*
 * The CLI's CSV reader (rules in csv.h). Three steps per row, each its own
 * function: read_line takes the bytes up to the next CR, LF or CRLF into a line
 * buffer of our own (from the caller's memory, or from stream blocks refilled as
 * needed); split_line cuts that buffer into fields in place, unquoting and
 * terminating each; check_row holds the row to the header (field count, NUL
 * bytes) and maps the verb's columns. Lengths are carried explicitly, so a NUL
 * byte in the input is data to report, not an early end.
 *
 * A stream is not read whole: memory is one block plus the longest line, so
 * `greeks price` stays bounded however large its input.
 */
#include "csv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BLOCK 65536
#define NAME_SHOWN 44   /* bytes of an escaped column name in a message, with its NUL */
#define VALUE_SHOWN 84  /* bytes of an escaped value in a message, with its NUL */

struct csv_reader {
  const char *data; /* the bytes at hand: the caller's buffer, or `block` */
  size_t size, pos;
  FILE *stream;     /* NULL for a memory reader */
  char *block;
  size_t block_size;
  int pending_cr;   /* the last line ended with CR: a LF next is part of it */
  int read_errno;   /* errno of a failed read */
  char *line;       /* the current line, NUL-terminated at line_len */
  size_t line_len, line_cap, line_number;
  char **fields;    /* split_line's output: start and length of each field */
  size_t *lengths, field_count, field_cap;
  char *header_text;         /* a copy of the header line; header names point in */
  char **header_names;
  size_t header_count;
  int *column_of;            /* per verb column: header position or -1 */
  int ncols;
};

/* ---- messages ---- */

/* Length of the valid, printable UTF-8 sequence at s (2 to 4 bytes), 0 if none.
 * C1 controls (U+0080..U+009F) count as unprintable. */
static size_t utf8_sequence(const unsigned char *s, size_t len) {
  unsigned char c = s[0];
  size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n == 0 || n > len) return 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c == 0xc2) lo = 0xa0;       /* not a C1 control */
  else if (c == 0xe0) lo = 0xa0;  /* not overlong */
  else if (c == 0xed) hi = 0x9f;  /* not a surrogate */
  else if (c == 0xf0) lo = 0x90;  /* not overlong */
  else if (c == 0xf4) hi = 0x8f;  /* not above U+10FFFF */
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xbf) return 0;
  return n;
}

size_t csv_escape(char *out, size_t size, const char *value, size_t len, size_t max_shown) {
  const unsigned char *s = (const unsigned char *)value;
  size_t w = 0, i = 0;
  if (size == 0) return 0;
  while (i < len && i < max_shown) {
    char piece[8];
    size_t n = utf8_sequence(s + i, len - i), take = n ? n : 1;
    if (n) memcpy(piece, s + i, n);
    else if (s[i] == '\\') memcpy(piece, "\\\\", n = 2);
    else if (s[i] >= 0x20 && s[i] < 0x7f) piece[0] = (char)s[i], n = 1;
    else n = (size_t)snprintf(piece, sizeof piece, "\\x%02x", s[i]);
    if (w + n + 4 > size) break; /* room for "..." and the NUL */
    memcpy(out + w, piece, n);
    w += n;
    i += take;
  }
  if (i < len && w + 4 <= size) memcpy(out + w, "...", 3), w += 3;
  out[w] = '\0';
  return w;
}

/* Sets e's message; a message too long for it is cut (never seen: the names
 * and values in it are cut first). */
__attribute__((format(printf, 3, 4))) static void set_message(csv_error *e, size_t line, const char *format, ...) {
  va_list args;
  va_start(args, format);
  e->line = line;
  e->not_the_data = false;
  vsnprintf(e->message, sizeof e->message, format, args);
  va_end(args);
}

static void field_error_n(csv_error *e, size_t line, const char *field, const char *value, size_t len,
                          const char *rule) {
  char name[NAME_SHOWN], shown[VALUE_SHOWN];
  csv_escape(name, sizeof name, field, strlen(field), sizeof name);
  csv_escape(shown, sizeof shown, value, len, sizeof shown);
  set_message(e, line, "line %zu: field '%s' value '%s': %s", line, name, shown, rule);
}

void csv_field_error(csv_error *e, size_t line, const char *field, const char *value, const char *rule) {
  field_error_n(e, line, field, value ? value : "", value ? strlen(value) : 0, rule);
}

static void line_error(csv_error *e, size_t line, const char *text) {
  if (line) set_message(e, line, "line %zu: %s", line, text);
  else set_message(e, 0, "%s", text);
}

/* ---- reading lines ---- */

static csv_reader *reader_new(void) { return calloc(1, sizeof(csv_reader)); }

csv_reader *csv_reader_memory(const char *data, size_t size) {
  csv_reader *r = reader_new();
  if (r) r->data = data, r->size = size;
  return r;
}

csv_reader *csv_reader_stream(FILE *stream, size_t block_size) {
  csv_reader *r = reader_new();
  if (r == NULL) return NULL;
  r->stream = stream;
  r->block_size = block_size ? block_size : DEFAULT_BLOCK;
  r->block = malloc(r->block_size);
  if (r->block == NULL) {
    free(r);
    return NULL;
  }
  r->data = r->block;
  return r;
}

/* More bytes at r->data: 1, 0 at the end, -1 on a read error. */
static int refill(csv_reader *r) {
  if (r->stream == NULL) return 0;
  errno = 0;
  size_t n = fread(r->block, 1, r->block_size, r->stream);
  r->size = n, r->pos = 0;
  if (n > 0) return 1;
  r->read_errno = errno;
  return ferror(r->stream) ? -1 : 0;
}

static int append_to_line(csv_reader *r, const char *bytes, size_t n) {
  if (r->line_len + n + 1 > r->line_cap) {
    size_t cap = r->line_cap ? r->line_cap : 256;
    while (cap < r->line_len + n + 1) cap *= 2;
    char *grown = realloc(r->line, cap);
    if (grown == NULL) return -1;
    r->line = grown, r->line_cap = cap;
  }
  memcpy(r->line + r->line_len, bytes, n);
  r->line_len += n;
  r->line[r->line_len] = '\0';
  return 0;
}

static const char *find_line_end(const char *p, const char *end) {
  while (p < end && *p != '\n' && *p != '\r') p++;
  return p;
}

/* The next line into r->line: 1, 0 at the end of the input, -1 with *e set. */
static int read_line(csv_reader *r, csv_error *e) {
  r->line_len = 0;
  if (append_to_line(r, "", 0) != 0) goto out_of_memory;
  for (;;) {
    if (r->pos == r->size) {
      int more = refill(r);
      if (more < 0) {
        set_message(e, 0, "read error: %s", strerror(r->read_errno ? r->read_errno : EIO));
        e->not_the_data = true;
        return -1;
      }
      if (more == 0) return r->line_len > 0;
    }
    if (r->pending_cr) {
      r->pending_cr = 0;
      if (r->data[r->pos] == '\n') {
        r->pos++;
        continue;
      }
    }
    const char *start = r->data + r->pos, *end = r->data + r->size;
    const char *stop = find_line_end(start, end);
    if (append_to_line(r, start, (size_t)(stop - start)) != 0) goto out_of_memory;
    r->pos = (size_t)(stop - r->data);
    if (stop < end) {
      r->pending_cr = *stop == '\r';
      r->pos++;
      return 1;
    }
  }
out_of_memory:
  line_error(e, 0, "out of memory"), e->not_the_data = true;
  return -1;
}

static int is_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t') return 0;
  return 1;
}

/* The next non-blank line, numbered, without a leading byte order mark. */
static int next_line(csv_reader *r, csv_error *e) {
  for (;;) {
    int got = read_line(r, e);
    if (got <= 0) return got;
    r->line_number++;
    if (r->line_number == 1 && r->line_len >= 3 && memcmp(r->line, "\xef\xbb\xbf", 3) == 0) {
      memmove(r->line, r->line + 3, r->line_len - 2); /* with the NUL */
      r->line_len -= 3;
    }
    if (!is_blank(r->line, r->line_len)) return 1;
  }
}

/* ---- splitting ---- */

static int grow_fields(csv_reader *r) {
  if (r->field_count < r->field_cap) return 0;
  size_t cap = r->field_cap ? r->field_cap * 2 : 16;
  char **fields = realloc(r->fields, cap * sizeof *fields);
  if (fields) r->fields = fields;
  size_t *lengths = realloc(r->lengths, cap * sizeof *lengths);
  if (lengths) r->lengths = lengths;
  if (!fields || !lengths) return -1;
  r->field_cap = cap;
  return 0;
}

/* Unquotes the field whose opening quote is at `quote`, moving it to start
 * there. Returns the byte after the closing quote, or NULL when there is none;
 * *len is the unquoted length (so far, when there is none). */
static char *unquote(char *quote, const char *end, size_t *len) {
  char *write = quote;
  for (char *read = quote + 1; read < end; read++) {
    if (*read != '"') {
      *write++ = *read;
    } else if (read + 1 < end && read[1] == '"') {
      *write++ = '"';
      read++;
    } else {
      *len = (size_t)(write - quote);
      return read + 1;
    }
  }
  *len = (size_t)(write - quote);
  return NULL;
}

/* The name of field `index` for a message: the header's, or "#N" beyond it. */
static const char *field_name(const csv_reader *r, size_t index, char *buffer, size_t size) {
  if (index < r->header_count) return r->header_names[index];
  snprintf(buffer, size, "#%zu", index + 1);
  return buffer;
}

static void split_error(csv_reader *r, csv_error *e, size_t index, const char *value, size_t len,
                        const char *rule) {
  char name[32];
  if (r->header_names == NULL) {
    set_message(e, r->line_number, "line %zu: header: field %zu: %s", r->line_number, index + 1, rule);
    return;
  }
  field_error_n(e, r->line_number, field_name(r, index, name, sizeof name), value, len, rule);
}

/* Cuts r->line into r->fields in place. Returns 0, CSV_BAD_ROW or CSV_FAILED
 * with *e set. */
static int split_line(csv_reader *r, csv_error *e) {
  char *cursor = r->line, *end = r->line + r->line_len;
  r->field_count = 0;
  for (;;) {
    if (grow_fields(r) != 0) {
      line_error(e, 0, "out of memory"), e->not_the_data = true;
      return CSV_FAILED;
    }
    char *after;
    size_t len;
    if (cursor < end && *cursor == '"') {
      after = unquote(cursor, end, &len);
      if (after == NULL) {
        split_error(r, e, r->field_count, cursor, len, "unterminated quoted field (a quoted field may not span lines)");
        return CSV_BAD_ROW;
      }
      if (after < end && *after != ',') {
        split_error(r, e, r->field_count, after, (size_t)(end - after), "text after a closing quote");
        return CSV_BAD_ROW;
      }
    } else {
      after = memchr(cursor, ',', (size_t)(end - cursor));
      if (after == NULL) after = end;
      len = (size_t)(after - cursor);
      /* RFC 4180: a field holding a quote is quoted. Accepted, the tail of a
       * quoted field that spanned lines ('1",X,call,...') became a row of its
       * own, priced into sums reported without it (found in review). */
      if (memchr(cursor, '"', len) != NULL) {
        split_error(r, e, r->field_count, cursor, len,
                    "a double quote in an unquoted field (quote the field and double the quote)");
        return CSV_BAD_ROW;
      }
    }
    r->fields[r->field_count] = cursor;
    r->lengths[r->field_count++] = len;
    cursor[len] = '\0';
    if (after == end) return 0;
    cursor = after + 1;
  }
}

/* ---- the header ---- */

/* Keeps a copy of the split header line; names trimmed of spaces and tabs. */
static int keep_header(csv_reader *r) {
  r->header_text = malloc(r->line_len + 1);
  r->header_names = malloc(r->field_count * sizeof *r->header_names);
  if (r->header_text == NULL || r->header_names == NULL) return -1;
  memcpy(r->header_text, r->line, r->line_len + 1);
  for (size_t i = 0; i < r->field_count; i++) {
    char *name = r->header_text + (r->fields[i] - r->line);
    size_t len = r->lengths[i];
    while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t')) name[--len] = '\0';
    while (*name == ' ' || *name == '\t') name++;
    r->header_names[i] = name;
  }
  r->header_count = r->field_count;
  return 0;
}

/* Maps column c to the one header field of its name; -1 with *e set when it
 * appears twice or is required and absent. */
static int map_column(csv_reader *r, const csv_column *column, int c, csv_error *e) {
  r->column_of[c] = -1;
  if (column->name == NULL) return 0;
  for (size_t i = 0; i < r->header_count; i++) {
    if (strcmp(r->header_names[i], column->name) != 0) continue;
    if (r->column_of[c] >= 0) {
      set_message(e, r->line_number, "line %zu: header: column '%s' appears twice (fields %d and %zu)",
                  r->line_number, column->name, r->column_of[c] + 1, i + 1);
      return -1;
    }
    r->column_of[c] = (int)i;
  }
  if (r->column_of[c] >= 0 || !column->required) return 0;
  set_message(e, r->line_number, "line %zu: header has no '%s' column", r->line_number, column->name);
  return -1;
}

int csv_reader_has_column(const csv_reader *r, int c) { return c >= 0 && c < r->ncols && r->column_of[c] >= 0; }

int csv_reader_header(csv_reader *r, const csv_column *columns, int ncols, csv_error *e) {
  int got = next_line(r, e);
  if (got < 0) return -1;
  if (got == 0) {
    line_error(e, 0, "empty file: no header");
    return -1;
  }
  int split = split_line(r, e);
  if (split != 0) return -1;
  for (size_t i = 0; i < r->field_count; i++)
    if (memchr(r->fields[i], '\0', r->lengths[i]) != NULL) {
      set_message(e, r->line_number, "line %zu: header: field %zu holds a NUL byte", r->line_number, i + 1);
      return -1;
    }
  r->column_of = malloc((size_t)(ncols > 0 ? ncols : 1) * sizeof *r->column_of);
  if (r->column_of == NULL || keep_header(r) != 0) {
    line_error(e, 0, "out of memory"), e->not_the_data = true;
    return -1;
  }
  r->ncols = ncols;
  for (int c = 0; c < ncols; c++)
    if (map_column(r, &columns[c], c, e) != 0) return -1;
  return 0;
}

/* ---- rows ---- */

/* Holds the split row to the header: field count, NUL bytes. */
static int check_row(csv_reader *r, csv_error *e) {
  if (r->field_count != r->header_count) {
    char name[NAME_SHOWN] = "";
    int fewer = r->field_count < r->header_count;
    if (fewer) {
      const char *missing = r->header_names[r->field_count];
      csv_escape(name, sizeof name, missing, strlen(missing), sizeof name);
    }
    set_message(e, r->line_number, "line %zu: row has %zu fields, header has %zu%s%s%s", r->line_number,
                r->field_count, r->header_count, fewer ? ": field '" : " (quote a value that holds a comma)", name,
                fewer ? "' is missing" : "");
    return CSV_BAD_ROW;
  }
  for (size_t i = 0; i < r->field_count; i++)
    if (memchr(r->fields[i], '\0', r->lengths[i]) != NULL) {
      field_error_n(e, r->line_number, r->header_names[i], r->fields[i], r->lengths[i], "holds a NUL byte");
      return CSV_BAD_ROW;
    }
  return CSV_ROW;
}

int csv_reader_next(csv_reader *r, const char **fields, csv_error *e) {
  int got = next_line(r, e);
  if (got <= 0) return got < 0 ? CSV_FAILED : CSV_END;
  int status = split_line(r, e);
  int split = status == 0;
  if (split) status = check_row(r, e);
  /* A bad row that split still hands over the fields it has (NULL past its
   * end): the caller can name the row by its id. Not split: every field NULL,
   * never the previous row's. */
  for (int c = 0; c < r->ncols; c++) {
    int at = r->column_of[c];
    fields[c] = split && at >= 0 && (size_t)at < r->field_count ? r->fields[at] : NULL;
  }
  return status;
}

size_t csv_reader_line(const csv_reader *r) { return r->line_number; }

void csv_reader_free(csv_reader *r) {
  if (r == NULL) return;
  free(r->block), free(r->line), free(r->fields), free(r->lengths);
  free(r->header_text), free(r->header_names), free(r->column_of);
  free(r);
}

/* ---- files ---- */

int csv_input_open(csv_input *in, const char *path, csv_error *e) {
  memset(in, 0, sizeof *in);
  int is_stdin = strcmp(path, "-") == 0;
  in->name = is_stdin ? "<stdin>" : path;
  in->file = is_stdin ? stdin : fopen(path, "rb");
  if (in->file == NULL) {
    char text[CSV_MESSAGE_SIZE / 2];
    csv_escape(text, sizeof text, path, strlen(path), sizeof text);
    set_message(e, 0, "cannot open %s: %s", text, strerror(errno));
    return -1;
  }
  in->reader = csv_reader_stream(in->file, 0);
  if (in->reader == NULL) {
    line_error(e, 0, "out of memory"), e->not_the_data = true;
    return -1;
  }
  return 0;
}

void csv_input_close(csv_input *in) {
  csv_reader_free(in->reader);
  if (in->file && in->file != stdin) fclose(in->file);
  in->reader = NULL, in->file = NULL;
}

/* ---- helpers ---- */

char *csv_copy_fields(const char *const *fields, int n, const char **copies) {
  size_t total = 1;
  for (int c = 0; c < n; c++) total += fields[c] ? strlen(fields[c]) + 1 : 0;
  char *block = malloc(total), *at = block;
  if (block == NULL) return NULL;
  for (int c = 0; c < n; c++) {
    copies[c] = NULL;
    if (fields[c] == NULL) continue;
    size_t len = strlen(fields[c]) + 1;
    memcpy(at, fields[c], len);
    copies[c] = at;
    at += len;
  }
  return block;
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
