/*
 * CSV for the CLI verbs: a reader that parses from memory or from a stream and
 * returns every problem as a csv_error (it prints nothing), and a field writer.
 *
 * The rules (README, "CSV input"):
 * - A line ends at LF, CRLF or a lone CR (old Mac files); a stream is read in
 *   blocks, so a CRLF split across two blocks is still one line end.
 * - A UTF-8 byte order mark at the very start of the input is skipped.
 * - Lines holding only spaces or tabs are skipped; line numbers count them.
 * - Fields are separated by commas and may be enclosed in double quotes ("" is a
 *   literal quote). A quoted field may not span lines.
 * - The first non-blank line is the header. Columns are found by name (spaces
 *   around a name are ignored), in any order; unknown columns are ignored,
 *   however many there are. A column the verb reads may appear only once.
 * - Every row has exactly as many fields as the header: a row with more (a
 *   decimal comma "0,5" makes two) or fewer is a bad row, never a shifted one.
 * - A field holding a NUL byte is a bad row naming the field.
 * A bad row is reported and the reader goes on with the next line; a header
 * problem makes the input unusable.
 *
 * Why from memory: the same code runs on a buffer in the fuzz targets
 * (fuzz/fuzz_csv_*.c) and on files and stdin in the CLI.
 */
#ifndef GREEKS_CLI_CSV_H
#define GREEKS_CLI_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CSV_MESSAGE_SIZE 256

/* What went wrong, for the caller to print: `message` is one printable line
 * (control bytes and invalid UTF-8 in quoted values are escaped as \xHH, long
 * values cut with "...") such as "line 7: field 'sigma' value '0\x00.2': holds
 * a NUL byte". */
typedef struct csv_error {
  size_t line; /* 1-based line of the problem; 0 when it is about no line */
  char message[CSV_MESSAGE_SIZE];
  bool not_the_data; /* a read error or out of memory: nothing wrong with the input */
} csv_error;

/* Whether csv_reader_header's error is about the header (a column missing or
 * twice, no header at all), which the expected columns explain, and not a
 * read error or out of memory ("read error: Is a directory (expected
 * id,type,...)" pointed at the columns; found in review). */
static inline int csv_error_about_header(const csv_error *e) { return !e->not_the_data; }

/* csv_reader_next's answers. */
enum {
  CSV_END = 0,       /* no more rows */
  CSV_ROW = 1,       /* a row; its fields are set */
  CSV_BAD_ROW = -1,  /* a row that cannot be read; error set; reading may go on */
  CSV_FAILED = -2,   /* a read error or out of memory; error set; stop */
};

/* A column a verb reads. A NULL name is a column the verb does not read in this
 * mode (its field stays NULL). */
typedef struct csv_column {
  const char *name;
  int required;
} csv_column;

typedef struct csv_reader csv_reader;

/* A reader over `size` bytes at `data`, which must outlive it (NUL bytes are
 * data, not an end). Returns NULL when out of memory. */
csv_reader *csv_reader_memory(const char *data, size_t size);

/* A reader over an open stream, read `block_size` bytes at a time (0: 64 KiB).
 * The stream stays the caller's. Returns NULL when out of memory. */
csv_reader *csv_reader_stream(FILE *stream, size_t block_size);

/* Reads the header and maps `columns` (ncols of them) to its fields. Returns 0,
 * or -1 with *error set: empty input, a header that cannot be split, a column
 * read twice, a required column missing, a read error. */
int csv_reader_header(csv_reader *r, const csv_column *columns, int ncols, csv_error *error);

/* The next non-blank row after the header: fields[c] is column c's text, a
 * NUL-terminated string valid until the next call (NULL for a column the header
 * lacks). Returns CSV_ROW, CSV_END, CSV_BAD_ROW or CSV_FAILED. */
int csv_reader_next(csv_reader *r, const char **fields, csv_error *error);

/* Whether the header has verb column c (after csv_reader_header). */
int csv_reader_has_column(const csv_reader *r, int c);

/* The line number of the last line read (the row just returned). */
size_t csv_reader_line(const csv_reader *r);

/* Frees the reader (NULL is a no-op); a stream is left open. */
void csv_reader_free(csv_reader *r);

/* A file named on the command line: "-" is stdin, shown as "<stdin>". */
typedef struct csv_input {
  const char *name; /* for messages */
  FILE *file;       /* closed by csv_input_close unless it is stdin */
  csv_reader *reader;
} csv_input;

/* Opens `path` for reading. Returns 0, or -1 with *error set (the file cannot be
 * opened, out of memory). csv_input_close is safe to call either way. */
int csv_input_open(csv_input *in, const char *path, csv_error *error);
void csv_input_close(csv_input *in);

/* Sets *error to "line N: field 'FIELD' value 'VALUE': RULE" with the value
 * escaped and cut as described at csv_error. */
void csv_field_error(csv_error *error, size_t line, const char *field, const char *value, const char *rule);

/* Writes `len` bytes of `value` to `out` (`size` bytes, always terminated)
 * escaped as in csv_error messages, at most `max_shown` source bytes followed
 * by "..." when cut. Returns the length written. */
size_t csv_escape(char *out, size_t size, const char *value, size_t len, size_t max_shown);

/* One allocation holding copies of the `n` strings in `fields` (NULL entries stay
 * NULL in `copies`); free it with free(). Returns NULL when out of memory. */
char *csv_copy_fields(const char *const *fields, int n, const char **copies);

/* Writes `text` as one CSV field, quoting it when it holds a comma, quote or
 * line break. */
void csv_write_field(FILE *out, const char *text);

#endif /* GREEKS_CLI_CSV_H */
