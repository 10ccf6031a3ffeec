/*
 * greeksd's YAML configuration files (config.h, adr/0035): libyaml loads the
 * document into nodes, each with its line, and one walk hands every scalar at
 * a known key to the settings table (config.c) with "FILE:LINE" as its source.
 * Whatever the table does not know is an error, as is a list or mapping where
 * a value belongs, a value where a mapping belongs, an empty value, a key twice
 * in one mapping, and a secret written inline (a token, a password, a PEM
 * block): secrets live in files of their own, mode 0600, never in a file that
 * is shown, copied and committed. A value that looks like a secret is never
 * echoed in the error.
 *
 * Pure: no I/O (the caller reads the file), no globals, no logging.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config.h"

typedef struct walk {
  greeksd_config *config;
  yaml_document_t *document;
  const char *path;
  greeksd_errors *errors;
  int tokens_seen; /* the file's tokens list replaces lower layers' */
  /* every full key this file set, with its line: "limits.max_contracts" and
   * "limits: {max_contracts}" are one key, and a file sets it once */
  char (*keys)[160];
  size_t *key_lines;
  int key_count;
} walk;

enum { WALK_MAX_KEYS = 256 };

/* 1 (and the error) when this file already set `full`. */
static int set_twice(walk *w, const yaml_node_t *key_node, const char *full);

static size_t line_of(const yaml_node_t *node) { return node->start_mark.line + 1; }

static const char *scalar_of(const yaml_node_t *node) { return (const char *)node->data.scalar.value; }

static const char *type_name(yaml_node_type_t type) {
  return type == YAML_MAPPING_NODE ? "a mapping" : type == YAML_SEQUENCE_NODE ? "a list" : "a value";
}

/* A key or value that must never be in a configuration file. */
static int names_a_secret(const char *key) {
  static const char *const words[] = {"token", "password", "secret", "passphrase", "private_key"};
  const char *last = strrchr(key, '.');
  last = last ? last + 1 : key;
  if (strcmp(last, "token_file") == 0 || strcmp(last, "tokens") == 0) return 0;
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (strstr(last, words[i]) != NULL) return 1;
  return 0;
}

static int is_pem(const char *value) { return strstr(value, "-----BEGIN") != NULL; }

/* An empty plain scalar or ~ / null: YAML's "no value". */
static int is_null(const yaml_node_t *node) {
  if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
  const char *v = scalar_of(node);
  return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
         strcmp(v, "NULL") == 0;
}

static void error_at(walk *w, const yaml_node_t *node, const char *key, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
static void error_at(walk *w, const yaml_node_t *node, const char *key, const char *format, ...) {
  char rule[512];
  va_list args;
  va_start(args, format);
  vsnprintf(rule, sizeof rule, format, args);
  va_end(args);
  greeksd_errors_add(w->errors, "%s:%zu: %s: %s", w->path, line_of(node), key, rule);
}

static void inline_secret(walk *w, const yaml_node_t *node, const char *key) {
  greeksd_errors_add(w->errors,
                     "%s:%zu: %s: '<redacted>' is an inline secret: a secret is never written in the configuration; "
                     "put it in a file of its own (mode 0600) and name the file",
                     w->path, line_of(node), key);
}

static void walk_mapping(walk *w, const yaml_node_t *node, const char *prefix);

static int has_earlier_key(walk *w, const yaml_node_t *mapping, const yaml_node_pair_t *pair) {
  const yaml_node_t *key = yaml_document_get_node(w->document, pair->key);
  for (const yaml_node_pair_t *p = mapping->data.mapping.pairs.start; p < pair; p++) {
    const yaml_node_t *k = yaml_document_get_node(w->document, p->key);
    if (k && k->type == YAML_SCALAR_NODE && strcmp(scalar_of(k), scalar_of(key)) == 0) return 1;
  }
  return 0;
}

/* One item of `tokens`: {name: NAME, file: PATH}. */
static void walk_token(walk *w, const yaml_node_t *item, const char *key) {
  if (item->type != YAML_MAPPING_NODE) {
    error_at(w, item, key, "must be {name: NAME, file: PATH}, not %s", type_name(item->type));
    return;
  }
  const char *name = NULL, *file = NULL;
  for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(w->document, p->key), *v = yaml_document_get_node(w->document, p->value);
    if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE) continue;
    char full[160];
    snprintf(full, sizeof full, "%s.%s", key, scalar_of(k));
    if (names_a_secret(full) || strcmp(scalar_of(k), "value") == 0) {
      inline_secret(w, k, full);
      continue;
    }
    if (strcmp(scalar_of(k), "name") != 0 && strcmp(scalar_of(k), "file") != 0) {
      error_at(w, k, full, "unknown key: a token is {name: NAME, file: PATH}%s", "");
      continue;
    }
    if (v->type != YAML_SCALAR_NODE || is_null(v)) {
      error_at(w, v, full, "must be a non-empty value, not %s", v->type == YAML_SCALAR_NODE ? "empty" : type_name(v->type));
      continue;
    }
    if (strcmp(scalar_of(k), "name") == 0) name = scalar_of(v);
    else file = scalar_of(v);
  }
  if (name == NULL || file == NULL) {
    error_at(w, item, key, "needs both name and file (missing %s)", name == NULL ? "name" : "file");
    return;
  }
  char source[GREEKSD_SOURCE_SIZE], why[256];
  snprintf(source, sizeof source, "%s:%zu", w->path, line_of(item));
  if (greeksd_config_add_token(w->config, name, file, source, w->tokens_seen++ == 0, why, sizeof why) != 0)
    error_at(w, item, key, "%s", why);
}

static void walk_tokens(walk *w, const yaml_node_t *node) {
  if (node->type == YAML_SCALAR_NODE && is_null(node)) {
    error_at(w, node, "tokens", "has no value: write [] for no named tokens%s", "");
    return;
  }
  if (node->type != YAML_SEQUENCE_NODE) {
    error_at(w, node, "tokens", "must be a list of {name: NAME, file: PATH}, not %s (a token is never inline)",
             type_name(node->type));
    return;
  }
  char source[GREEKSD_SOURCE_SIZE], why[8];
  snprintf(source, sizeof source, "%s:%zu", w->path, line_of(node));
  greeksd_config_add_token(w->config, NULL, NULL, source, 1, why, sizeof why); /* this layer's list, even [] */
  w->tokens_seen = 1;
  int index = 0;
  for (yaml_node_item_t *i = node->data.sequence.items.start; i < node->data.sequence.items.top; i++, index++) {
    yaml_node_t *item = yaml_document_get_node(w->document, *i);
    char key[32];
    snprintf(key, sizeof key, "tokens[%d]", index);
    if (item) walk_token(w, item, key);
  }
}

static void walk_value(walk *w, const char *full, const yaml_node_t *key_node, const yaml_node_t *value) {
  if (strcmp(full, "tokens") == 0) {
    walk_tokens(w, value);
    return;
  }
  if (greeksd_config_is_section(full)) {
    if (value->type == YAML_MAPPING_NODE) walk_mapping(w, value, full);
    else error_at(w, value, full, "must be a mapping of %s.* settings", full);
    return;
  }
  if (names_a_secret(full)) {
    inline_secret(w, key_node, full);
    return;
  }
  if (value->type != YAML_SCALAR_NODE) {
    if (!greeksd_config_has_key(full))
      error_at(w, key_node, full, "unknown key (see docs/operations.md, Configuration)%s", "");
    else error_at(w, value, full, "must be a single value, not %s", type_name(value->type));
    return;
  }
  const char *text = scalar_of(value);
  if (strcmp(full, "tls.key") == 0 && is_pem(text)) {
    inline_secret(w, value, full);
    return;
  }
  if (!greeksd_config_has_key(full)) {
    error_at(w, key_node, full, "unknown key (see docs/operations.md, Configuration)%s", "");
    return;
  }
  if (is_null(value)) { /* "key:" alone is a line cut short, not a choice: clearing takes "" */
    error_at(w, value, full, "has no value: write \"\" to clear it%s", "");
    return;
  }
  if (set_twice(w, key_node, full)) return;
  char source[GREEKSD_SOURCE_SIZE], why[256];
  snprintf(source, sizeof source, "%s:%zu", w->path, line_of(value));
  int rc = greeksd_config_set_key(w->config, full, text, source, why, sizeof why);
  if (rc == 1) error_at(w, key_node, full, "unknown key (see docs/operations.md, Configuration)%s", "");
  else if (rc != 0 && is_pem(text)) inline_secret(w, value, full);
  else if (rc != 0) {
    char shown[512];
    greeksd_errors_add(w->errors, "%s: %s: '%s' %s", source, full,
                       greeksd_config_value_shown(full, text, shown, sizeof shown), why);
  }
}

static int set_twice(walk *w, const yaml_node_t *key_node, const char *full) {
  for (int i = 0; i < w->key_count; i++)
    if (strcmp(w->keys[i], full) == 0) {
      error_at(w, key_node, full, "set twice in one file (first at line %zu)", w->key_lines[i]);
      return 1;
    }
  if (w->keys != NULL && w->key_count < WALK_MAX_KEYS) {
    snprintf(w->keys[w->key_count], sizeof w->keys[0], "%s", full);
    w->key_lines[w->key_count++] = line_of(key_node);
  }
  return 0;
}

static void walk_mapping(walk *w, const yaml_node_t *node, const char *prefix) {
  for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(w->document, p->key), *v = yaml_document_get_node(w->document, p->value);
    if (k == NULL || v == NULL) continue;
    if (k->type != YAML_SCALAR_NODE) {
      error_at(w, k, prefix[0] ? prefix : "(top)", "a key must be a plain name, not %s", type_name(k->type));
      continue;
    }
    char full[160];
    snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", scalar_of(k));
    if (has_earlier_key(w, node, p)) {
      error_at(w, k, full, "appears twice in one mapping%s", "");
      continue;
    }
    walk_value(w, full, k, v);
  }
}

/* The line and column of a byte offset (a reader error has no mark, only an offset). */
static void position_of(const char *text, size_t length, size_t offset, size_t *line, size_t *column) {
  *line = 1, *column = 1;
  for (size_t i = 0; i < offset && i < length; i++) {
    if (text[i] == '\n') (*line)++, *column = 1;
    else (*column)++;
  }
}

static void parse_error(greeksd_errors *errors, const char *path, const yaml_parser_t *parser, const char *text,
                        size_t length) {
  size_t line = parser->problem_mark.line + 1, column = parser->problem_mark.column + 1;
  if (parser->error == YAML_READER_ERROR) { /* libyaml sets problem_offset and the byte, not the mark */
    position_of(text, length, parser->problem_offset, &line, &column);
    greeksd_errors_add(errors, "%s:%zu:%zu: not valid YAML: %s (byte 0x%02x)", path, line, column,
                       parser->problem ? parser->problem : "unreadable text", (unsigned)parser->problem_value & 0xff);
    return;
  }
  greeksd_errors_add(errors, "%s:%zu:%zu: not valid YAML: %s%s%s", path, line, column,
                     parser->problem ? parser->problem : "parse error", parser->context ? " " : "",
                     parser->context ? parser->context : "");
}

/* A second document ("---" after the first) would be ignored: refused instead,
 * so no setting is silently dropped. */
static void refuse_second_document(greeksd_errors *errors, const char *path, yaml_parser_t *parser, const char *text,
                                   size_t length) {
  yaml_document_t next;
  if (!yaml_parser_load(parser, &next)) {
    parse_error(errors, path, parser, text, length);
    return;
  }
  yaml_node_t *root = yaml_document_get_root_node(&next);
  if (root != NULL)
    greeksd_errors_add(errors, "%s:%zu: a second YAML document: a configuration file holds one (no '---' between settings)",
                       path, line_of(root));
  yaml_document_delete(&next);
}

int greeksd_config_apply_yaml(greeksd_config *config, const char *path, const char *text, size_t length,
                              greeksd_errors *errors) {
  int before = errors->count;
  yaml_parser_t parser;
  yaml_document_t document;
  if (!yaml_parser_initialize(&parser)) {
    greeksd_errors_add(errors, "%s: out of memory for the YAML parser", path);
    return errors->count - before;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, length);
  if (!yaml_parser_load(&parser, &document)) {
    parse_error(errors, path, &parser, text, length);
    yaml_parser_delete(&parser);
    return errors->count - before;
  }
  yaml_node_t *root = yaml_document_get_root_node(&document);
  walk w = {config, &document, path, errors, 0, calloc(WALK_MAX_KEYS, 160), calloc(WALK_MAX_KEYS, sizeof(size_t)), 0};
  if (w.keys == NULL || w.key_lines == NULL) free(w.keys), free(w.key_lines), w.keys = NULL, w.key_lines = NULL;
  if (root == NULL || (root->type == YAML_SCALAR_NODE && is_null(root)))
    greeksd_errors_add(errors,
                       "%s: holds no settings (an empty document): write {} for a file without settings (a file "
                       "caught half-written, or emptied by mistake, must not reset the configuration)",
                       path);
  else if (root->type == YAML_MAPPING_NODE) walk_mapping(&w, root, "");
  else
    greeksd_errors_add(errors, "%s:%zu: the document must be a mapping of settings, not %s", path, line_of(root),
                       type_name(root->type));
  free(w.keys), free(w.key_lines);
  yaml_document_delete(&document);
  if (root != NULL) refuse_second_document(errors, path, &parser, text, length);
  yaml_parser_delete(&parser);
  return errors->count - before;
}
