/*
 * Reading `greeks revalue`'s market and positions files (revalue_input.h):
 * csv_reader gives each row's fields, the functions here turn them into the
 * column arrays gk_revalue_portfolio takes. Markets are indexed by name in an
 * open-addressing table (FNV-1a, linear probing, at most half full), so a book
 * of millions of positions finds its underlyings in constant time each.
 */
#include "revalue_input.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_common.h"

/* ---- market file: underlying,S,r,q ---- */

/* The length of `s` without its trailing spaces. Names and types are trimmed at
 * both ends (cli_skip_spaces the start), as numbers are: "SPX ," in one file
 * and "SPX," in the other are the same underlying. */
static size_t trimmed_length(const char *s) {
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
  return n;
}

static uint64_t hash_name(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

/* The first `len` bytes of `name`: a trimmed field, looked up in place (its
 * trailing spaces are not cut off with a NUL in the reader's row). */
static long find_name(const market_table *m, const char *name, size_t len) {
  if (m->slot_count == 0) return -1;
  for (size_t i = hash_name(name, len) & (m->slot_count - 1);; i = (i + 1) & (m->slot_count - 1)) {
    if (m->slots[i] == UINT32_MAX) return -1;
    const char *known = m->names[m->slots[i]];
    if (strncmp(known, name, len) == 0 && known[len] == '\0') return m->slots[i];
  }
}

long market_find(const market_table *m, const char *name) { return find_name(m, name, strlen(name)); }

static void insert_slot(market_table *m, uint32_t k) {
  size_t i = hash_name(m->names[k], strlen(m->names[k])) & (m->slot_count - 1);
  while (m->slots[i] != UINT32_MAX) i = (i + 1) & (m->slot_count - 1);
  m->slots[i] = k;
}

static int grow_markets(market_table *m) {
  size_t next = m->capacity ? m->capacity * 2 : 64;
  char **names = realloc(m->names, next * sizeof *names);
  if (names) m->names = names;
  double *spot = realloc(m->spot, next * sizeof *spot);
  if (spot) m->spot = spot;
  double *rate = realloc(m->rate, next * sizeof *rate);
  if (rate) m->rate = rate;
  double *yield = realloc(m->yield, next * sizeof *yield);
  if (yield) m->yield = yield;
  if (!names || !spot || !rate || !yield) return -1;
  m->capacity = next;
  return 0;
}

static int grow_slots(market_table *m) {
  size_t next = m->slot_count ? m->slot_count * 2 : 64;
  uint32_t *slots = malloc(next * sizeof *slots);
  if (slots == NULL) return -1;
  memset(slots, 0xff, next * sizeof *slots);
  free(m->slots);
  m->slots = slots;
  m->slot_count = next;
  for (size_t k = 0; k < m->count; k++) insert_slot(m, (uint32_t)k);
  return 0;
}

/* Adds a market named by the first `len` bytes of `name`; rehashes when the
 * table would pass half full. */
static int add_market(market_table *m, const char *name, size_t len, double S, double r, double q) {
  if (m->count == m->capacity && grow_markets(m) != 0) return -1;
  if ((m->count + 1) * 2 > m->slot_count && grow_slots(m) != 0) return -1;
  if ((m->names[m->count] = malloc(len + 1)) == NULL) return -1;
  memcpy(m->names[m->count], name, len);
  m->names[m->count][len] = '\0';
  m->spot[m->count] = S, m->rate[m->count] = r, m->yield[m->count] = q;
  insert_slot(m, (uint32_t)m->count);
  m->count++;
  return 0;
}

void market_free(market_table *m) {
  for (size_t k = 0; k < m->count; k++) free(m->names[k]);
  free(m->names), free(m->spot), free(m->rate), free(m->yield), free(m->slots);
  memset(m, 0, sizeof *m);
}

static int number_field(const char *text, const char *name, size_t line, double *value, csv_error *error) {
  const char *rule = cli_parse_double(text ? text : "", value);
  if (rule == NULL) return 0;
  csv_field_error(error, line, name, text, rule);
  return -1;
}

enum { M_NAME, M_S, M_R, M_Q, M_COLS };

/* One market row into the table; -1 with *error set. */
static int market_row(const char **f, size_t line, gk_model model, market_table *m, csv_error *error) {
  double S, r, q = 0;
  if (number_field(f[M_S], "S", line, &S, error) || number_field(f[M_R], "r", line, &r, error) ||
      (f[M_Q] && gk_model_uses_yield(model) && number_field(f[M_Q], "q", line, &q, error)))
    return -1;
  const char *name = cli_skip_spaces(f[M_NAME]);
  size_t len = trimmed_length(name);
  if (len == 0 || find_name(m, name, len) >= 0) {
    csv_field_error(error, line, "underlying", f[M_NAME], len ? "appears twice" : "empty");
    return -1;
  }
  if (add_market(m, name, len, S, r, q) == 0) return 0;
  error->line = 0;
  snprintf(error->message, sizeof error->message, "out of memory");
  return -1;
}

int market_read(csv_reader *reader, gk_model model, market_table *m, csv_error *error) {
  const csv_column columns[M_COLS] = {
      {"underlying", 1}, {"S", 1}, {"r", 1}, {"q", gk_model_uses_yield(model)}};
  if (csv_reader_header(reader, columns, M_COLS, error) != 0) return -1;
  const char *fields[M_COLS];
  int got;
  while ((got = csv_reader_next(reader, fields, error)) != CSV_END) {
    if (got != CSV_ROW || market_row(fields, csv_reader_line(reader), model, m, error) != 0) return -1;
  }
  if (m->count > 0) return 0;
  error->line = 0;
  snprintf(error->message, sizeof error->message, "no underlyings");
  return -1;
}

/* ---- positions file: id,underlying,type,K,T,sigma,quantity[,multiplier] ---- */

enum { P_ID, P_UNDERLYING, P_TYPE, P_K, P_T, P_SIGMA, P_QUANTITY, P_MULTIPLIER, P_STYLE, P_COLS };

static int reserve_positions(position_table *p) {
  if (p->count < p->capacity) return 0;
  size_t next = p->capacity ? p->capacity * 2 : 4096;
  void **arrays[] = {(void **)&p->underlying, (void **)&p->type, (void **)&p->strike,
                     (void **)&p->expiry, (void **)&p->vol, (void **)&p->quantity,
                     (void **)&p->multiplier, (void **)&p->line, (void **)&p->id_at};
  size_t sizes[] = {sizeof(uint32_t), 1, 8, 8, 8, 8, 8, sizeof(size_t), sizeof(size_t)};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    void *grown = realloc(*arrays[k], next * sizes[k]);
    if (grown == NULL) return -1;
    *arrays[k] = grown;
  }
  p->capacity = next;
  return 0;
}

/* Appends `len` bytes of `text` and a NUL to the ids arena. */
static int append_text(position_table *p, const char *text, size_t len) {
  while (p->ids_used + len + 1 > p->ids_capacity) {
    size_t next = p->ids_capacity ? p->ids_capacity * 2 : 65536;
    char *grown = realloc(p->ids, next);
    if (grown == NULL) return -1;
    p->ids = grown;
    p->ids_capacity = next;
  }
  memcpy(p->ids + p->ids_used, text, len);
  p->ids[p->ids_used + len] = '\0';
  p->ids_used += len + 1;
  return 0;
}

/* The number columns whose text is kept, in arena order after the id. */
static const char *const kept_columns[] = {"K", "T", "sigma", "quantity", "multiplier"};

/* Keeps the row's id and its number fields as typed (trimmed): an error found
 * later, by the engine, then shows what the user wrote ('1e400'), not the
 * double it became ('inf'). */
static int store_texts(position_table *p, const char **f) {
  p->id_at[p->count] = p->ids_used;
  if (append_text(p, f[P_ID], strlen(f[P_ID])) != 0) return -1;
  for (int c = P_K; c <= P_MULTIPLIER; c++) {
    const char *text = cli_skip_spaces(f[c] ? f[c] : "");
    if (append_text(p, text, trimmed_length(text)) != 0) return -1;
  }
  return 0;
}

const char *position_text(const position_table *p, size_t k, const char *column) {
  const char *text = p->ids + p->id_at[k];
  for (size_t c = 0; c < sizeof kept_columns / sizeof kept_columns[0]; c++) {
    text += strlen(text) + 1; /* past the id, then past each column before */
    if (strcmp(column, kept_columns[c]) == 0) return text;
  }
  return NULL;
}

void positions_free(position_table *p) {
  free(p->underlying), free(p->type), free(p->strike), free(p->expiry), free(p->vol);
  free(p->quantity), free(p->multiplier), free(p->line), free(p->id_at), free(p->ids);
  memset(p, 0, sizeof *p);
}

/* 1 when the first `len` bytes of `text` are `word`, in any case. */
/* Parses one record into slot p->count; -1 with *error set when a field cannot
 * be read. */
static int parse_position(const char **f, size_t line, const market_table *m, position_table *p,
                          csv_error *error) {
  size_t k = p->count;
  if (cli_word_is(f[P_TYPE], "call")) p->type[k] = GK_CALL;
  else if (cli_word_is(f[P_TYPE], "put")) p->type[k] = GK_PUT;
  else {
    csv_field_error(error, line, "type", f[P_TYPE], "must be call or put");
    return -1;
  }
  /* Revaluation prices European positions; `greeks price` reads the same
   * column, so an American row here would otherwise be valued as European
   * without a word. */
  const char *style = f[P_STYLE] ? cli_skip_spaces(f[P_STYLE]) : "";
  if (*style != '\0' && !cli_word_is(style, "european")) {
    csv_field_error(error, line, "style", f[P_STYLE],
                    cli_word_is(style, "american")
                        ? "revaluation prices European positions only (price American ones with greeks price)"
                        : "must be european (revaluation prices European positions only)");
    return -1;
  }
  const char *name = cli_skip_spaces(f[P_UNDERLYING]);
  long u = find_name(m, name, trimmed_length(name));
  if (u < 0) {
    csv_field_error(error, line, "underlying", f[P_UNDERLYING], "not in the market file");
    return -1;
  }
  p->underlying[k] = (uint32_t)u;
  p->multiplier[k] = 1.0;
  if (number_field(f[P_K], "K", line, &p->strike[k], error) || number_field(f[P_T], "T", line, &p->expiry[k], error) ||
      number_field(f[P_SIGMA], "sigma", line, &p->vol[k], error) ||
      number_field(f[P_QUANTITY], "quantity", line, &p->quantity[k], error) ||
      (f[P_MULTIPLIER] && *cli_skip_spaces(f[P_MULTIPLIER]) != '\0' && number_field(f[P_MULTIPLIER], "multiplier", line, &p->multiplier[k], error)))
    return -1;
  return 0;
}

static int out_of_memory(csv_error *error) {
  error->line = 0;
  snprintf(error->message, sizeof error->message, "out of memory reading positions");
  return -1;
}

int positions_read(csv_reader *reader, const market_table *m, position_table *p, position_problem_fn *problem,
                   void *user, csv_error *error) {
  const csv_column columns[P_COLS] = {{"id", 1}, {"underlying", 1}, {"type", 1},     {"K", 1},
                                      {"T", 1},  {"sigma", 1},      {"quantity", 1}, {"multiplier", 0},
                                      {"style", 0}};
  if (csv_reader_header(reader, columns, P_COLS, error) != 0) return -1;
  const char *fields[P_COLS];
  csv_error bad;
  int got;
  while ((got = csv_reader_next(reader, fields, &bad)) != CSV_END) {
    if (got == CSV_FAILED) {
      *error = bad;
      return -1;
    }
    if (reserve_positions(p) != 0) return out_of_memory(error);
    size_t line = csv_reader_line(reader);
    if (got == CSV_BAD_ROW || parse_position(fields, line, m, p, &bad) != 0) {
      problem(user, &bad);
      p->unreadable++;
      continue;
    }
    p->line[p->count] = line;
    if (store_texts(p, fields) != 0) return out_of_memory(error);
    p->count++;
  }
  return 0;
}

/* The value a message shows for position k's `field`: the text the file had,
 * not the double it became (1e400 is inf once read). A quantity of several
 * columns (sigma*sqrt(T)) shows those columns, as `greeks price` does. */
static void position_field_value(const position_table *p, size_t k, const char *field, char *value,
                                 size_t size) {
  const char *text = position_text(p, k, field);
  if (text != NULL) snprintf(value, size, "%s", text);
  else if (strcmp(field, "sigma*sqrt(T)") == 0)
    /* 32 bytes each: both stay within what a message shows of a value. */
    snprintf(value, size, "sigma=%.32s T=%.32s", position_text(p, k, "sigma"), position_text(p, k, "T"));
  else value[0] = '\0';
}

void position_problem_text(const position_table *p, const market_table *m, size_t k, const char *field,
                           const char *rule, char *message, size_t size) {
  char value[128];
  if (strcmp(field, "S") == 0 || strcmp(field, "r") == 0 || strcmp(field, "q") == 0) {
    uint32_t u = p->underlying[k];
    double v = field[0] == 'S' ? m->spot[u] : field[0] == 'r' ? m->rate[u] : m->yield[u];
    char name[64];
    csv_escape(name, sizeof name, m->names[u], strlen(m->names[u]), 40);
    snprintf(message, size, "line %zu: underlying '%s' field '%s' value '%.17g': %s", p->line[k], name, field, v,
             rule);
    return;
  }
  position_field_value(p, k, field, value, sizeof value);
  csv_error e;
  csv_field_error(&e, p->line[k], field, value, rule);
  snprintf(message, size, "%s", e.message);
}
