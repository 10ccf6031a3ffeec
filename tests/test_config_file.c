/*
 * greeksd's configuration model without a server (api/server/config.c and
 * config_file.c, adr/0035): YAML documents applied to the settings table,
 * errors with FILE:LINE, layering by source, the render --print-config shows
 * parsed back by libyaml itself, the reload helpers (restart-only changes,
 * reloadable copy) and the hash. Every expectation is a value or a line the
 * test wrote, or an independent parse (libyaml on the rendered text).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include <cmocka.h>

#include "config.h"

static greeksd_errors errors;

static int apply(greeksd_config *c, const char *text) {
  memset(&errors, 0, sizeof errors);
  return greeksd_config_apply_yaml(c, "t.yaml", text, strlen(text), &errors);
}

static void assert_error(const char *needle) {
  if (strstr(errors.text, needle) == NULL) fail_msg("'%s' not in:\n%s", needle, errors.text);
}

static void a_document_sets_values_and_records_file_and_line(void **state) {
  (void)state;
  static greeksd_config c;
  c = greeksd_config_default();
  assert_int_equal(apply(&c, "# comment\nserver_threads: 7\nlimits:\n  max_contracts: 12\nlog:\n  level: debug\n"
                             "features: {avx512: false}\n"),
                   0);
  assert_int_equal(c.server_threads, 7);
  assert_int_equal(c.max_contracts, 12);
  assert_int_equal(c.log_level, GK_LOG_DEBUG);
  assert_false(c.features.avx512);
  assert_true(c.features.american_over_grpc); /* untouched: still the default */
  assert_string_equal(greeksd_config_source_of(&c, "server_threads"), "t.yaml:2");
  assert_string_equal(greeksd_config_source_of(&c, "limits.max_contracts"), "t.yaml:4");
  assert_string_equal(greeksd_config_source_of(&c, "features.avx512"), "t.yaml:7");
  assert_string_equal(greeksd_config_source_of(&c, "pool_threads"), "default");
}

static void every_error_is_reported_with_its_line_and_rule(void **state) {
  (void)state;
  static greeksd_config c;
  c = greeksd_config_default();
  int n = apply(&c, "nope: 1\n"                      /* 1 unknown */
                    "server_threads: 65\n"            /* 2 range */
                    "log:\n"
                    "  level: [a]\n"                  /* 4 type */
                    "  colour: red\n"                 /* 5 unknown in a section */
                    "limits: 5\n"                     /* 6 a value for a section */
                    "tracing:\n  sample_ratio: 1.5\n" /* 8 range */
                    "password: x\n"                   /* 9 inline secret */
                    "listen:\n"                       /* 10 empty */
                    "server_threads: 3\n");           /* 11 twice */
  assert_int_equal(n, 9);
  assert_int_equal(errors.count, 9);
  assert_error("t.yaml:1: nope: unknown key");
  assert_error("t.yaml:2: server_threads: '65' must be in [0, 64]");
  assert_error("t.yaml:4: log.level: must be a single value, not a list");
  assert_error("t.yaml:5: log.colour: unknown key");
  assert_error("t.yaml:6: limits: must be a mapping of limits.* settings");
  assert_error("t.yaml:8: tracing.sample_ratio: '1.5' must be a number in [0, 1]");
  assert_error("t.yaml:9: password: '<redacted>' is an inline secret");
  assert_error("t.yaml:10: listen: has no value");
  assert_error("t.yaml:11: server_threads: appears twice");
  assert_null(strstr(errors.text, "password: 'x'"));
  assert_int_equal(c.server_threads, 0); /* a refused value leaves the one below it (the default: auto) */
}

static void invalid_yaml_is_one_error_with_its_position(void **state) {
  (void)state;
  static greeksd_config c;
  c = greeksd_config_default();
  assert_int_equal(apply(&c, "a: [1, 2\nb: 3\n"), 1);
  assert_error("t.yaml:");
  assert_error("not valid YAML");
  assert_int_equal(apply(&c, "- just\n- a list\n"), 1);
  assert_error("t.yaml:1: the document must be a mapping of settings, not a list");
  assert_int_equal(apply(&c, "a: 1\nb: 2\n# 3\nc: \"x\xff\"\n"), 1); /* a reader error: its own line, not 1:1 */
  assert_error("t.yaml:4:");
  assert_error("(byte 0xff)");
}

/* An emptied or half-written file must not reset the configuration: a
 * reload of an emptied file once switched bearer-token auth off. */
static void an_empty_file_a_second_document_or_a_bare_key_is_refused(void **state) {
  (void)state;
  static greeksd_config c;
  c = greeksd_config_default();
  assert_int_equal(apply(&c, ""), 1);
  assert_error("t.yaml: holds no settings");
  assert_int_equal(apply(&c, "# only a comment\n\n"), 1);
  assert_error("holds no settings");
  assert_int_equal(apply(&c, "{}\n"), 0); /* the way to say "no settings" */
  assert_int_equal(apply(&c, "server_threads: 2\n---\nserver_threads: 99\nbogus: 1\n"), 1);
  assert_error("t.yaml:3: a second YAML document");
  assert_int_equal(c.server_threads, 2);
  assert_int_equal(apply(&c, "token_file: /x/t\n"), 0);
  assert_int_equal(apply(&c, "token_file:\n"), 1);
  assert_error("t.yaml:1: token_file: has no value: write \"\" to clear it");
  assert_string_equal(c.token_file, "/x/t");
  assert_int_equal(apply(&c, "port_file: ~\n"), 1);
  assert_error("port_file: has no value");
  assert_int_equal(apply(&c, "limits:\n  max_contracts: 5\nlimits.max_contracts: 6\n"), 1);
  assert_error("t.yaml:3: limits.max_contracts: set twice in one file (first at line 2)");
  assert_int_equal(c.max_contracts, 5);
  assert_int_equal(apply(&c, "token_file: \"\"\n"), 0); /* cleared on purpose */
  assert_string_equal(c.token_file, "");
}

static void named_tokens_replace_the_lower_layer_and_refuse_inline_values(void **state) {
  (void)state;
  static greeksd_config c;
  c = greeksd_config_default();
  assert_int_equal(apply(&c, "tokens:\n  - {name: a, file: /x/a}\n  - name: b\n    file: /x/b\n"), 0);
  assert_int_equal(c.token_count, 2);
  assert_string_equal(c.tokens[1].name, "b");
  assert_string_equal(c.tokens[1].file, "/x/b");
  assert_string_equal(c.tokens[1].source, "t.yaml:3");
  assert_int_equal(apply(&c, "tokens:\n  - {name: c, file: /x/c}\n"), 0); /* an overlay's list replaces */
  assert_int_equal(c.token_count, 1);
  assert_string_equal(c.tokens[0].name, "c");
  assert_int_equal(apply(&c, "tokens:\n  - {name: d, value: abc}\n  - {name: 'bad name', file: /f}\n"), 3);
  assert_error("t.yaml:2: tokens[0].value: '<redacted>' is an inline secret");
  assert_error("tokens[1]: name 'bad name' must be");
  assert_null(strstr(errors.text, "abc"));
  assert_int_equal(apply(&c, "tokens: s3cret\n"), 1);
  assert_null(strstr(errors.text, "s3cret"));
  assert_int_equal(apply(&c, "tls:\n  key: \"-----BEGIN PRIVATE KEY-----\\nMIIE\"\n"), 1);
  assert_error("tls.key: '<redacted>' is an inline secret");
  assert_null(strstr(errors.text, "MIIE"));
}

static void contradictions_name_both_keys(void **state) {
  (void)state;
  static greeksd_config c;
  c = greeksd_config_default();
  assert_int_equal(apply(&c, "tls:\n  cert: /c.pem\nbreaker:\n  window_calls: 5\n  minimum_calls: 6\n"
                             "tokens:\n  - {name: a, file: /1}\n  - {name: a, file: /2}\n"),
                   0);
  memset(&errors, 0, sizeof errors);
  greeksd_config_check_whole(&c, &errors);
  assert_int_equal(errors.count, 3);
  assert_error("t.yaml:2: tls.cert: '/c.pem': TLS needs both a certificate and a key");
  assert_error("t.yaml:5: breaker.minimum_calls: '6' must not exceed breaker.window_calls 5");
  assert_error("t.yaml:8: tokens: 'a' names two token files"); /* the second entry's line */
}

/* A port file on a file greeksd reads or keeps: `--port-file` on the store's
 * path passed --check-config and greeksd wrote the port over the open journal
 * (found in review). The store (by inode where it exists: here through a
 * link; by path for a companion not yet made), the configuration, a token
 * file, and the two port files on one file are each refused. */
static void a_port_file_never_names_a_file_greeksd_keeps(void **state) {
  (void)state;
  static greeksd_config c;
  char dir[] = "/tmp/greeks_config_port_XXXXXX", store[128], link[128], yaml[1024];
  assert_non_null(mkdtemp(dir));
  snprintf(store, sizeof store, "%s/books.db", dir);
  snprintf(link, sizeof link, "%s/link", dir);
  FILE *f = fopen(store, "w");
  assert_non_null(f);
  fclose(f);
  assert_int_equal(symlink(store, link), 0);
  const char *cases[][2] = {{link, "names the book store (book_store) or one of its files"},
                            {"%s/books.db-wal", "names the book store (book_store) or one of its files"},
                            {"%s/greeksd.yaml", "names the configuration file (--config)"},
                            {"%s/tokens", "names the token file (token_file)"}};
  for (int i = 0; i < 4; i++) {
    char port_file[160];
    if (i == 0) snprintf(port_file, sizeof port_file, "%s", link);
    else snprintf(port_file, sizeof port_file, "%s/%s", dir, strchr(cases[i][0], '/') + 1);
    c = greeksd_config_default();
    snprintf(c.config_file, sizeof c.config_file, "%s/greeksd.yaml", dir);
    snprintf(yaml, sizeof yaml, "book_store: sqlite:%s\ntoken_file: %s/tokens\nport_file: %s\n", store, dir, port_file);
    assert_int_equal(apply(&c, yaml), 0);
    greeksd_config_check_whole(&c, &errors);
    assert_int_equal(errors.count, 1);
    assert_error("t.yaml:3: port_file: '");
    assert_error(cases[i][1]);
  }
  c = greeksd_config_default();
  snprintf(yaml, sizeof yaml, "port_file: %s/p\nmetrics_port_file: %s/./p\n", dir, dir);
  assert_int_equal(apply(&c, yaml), 0);
  greeksd_config_check_whole(&c, &errors);
  assert_int_equal(errors.count, 1);
  assert_error("t.yaml:2: metrics_port_file: '");
  assert_error("is also port_file: the two ports need two files");
  c = greeksd_config_default(); /* apart, nothing is said */
  snprintf(yaml, sizeof yaml, "book_store: sqlite:%s\nport_file: %s/port\n", store, dir);
  assert_int_equal(apply(&c, yaml), 0);
  greeksd_config_check_whole(&c, &errors);
  assert_int_equal(errors.count, 0);
  remove(link), remove(store), rmdir(dir);
}

/* libyaml, reading what --print-config wrote: the value at section.key. */
static int rendered_value(const char *text, const char *section, const char *key, char *out, size_t size) {
  yaml_parser_t p;
  yaml_document_t d;
  int found = 0;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
  assert_true(yaml_parser_load(&p, &d));
  yaml_node_t *node = yaml_document_get_root_node(&d);
  for (int level = 0; level < 2 && node && !found; level++) {
    const char *want = level == 0 && section ? section : key;
    yaml_node_t *next = NULL;
    for (yaml_node_pair_t *q = node->data.mapping.pairs.start; q < node->data.mapping.pairs.top; q++) {
      yaml_node_t *k = yaml_document_get_node(&d, q->key);
      if (strcmp((const char *)k->data.scalar.value, want) == 0) next = yaml_document_get_node(&d, q->value);
    }
    node = next;
    if (node && (section == NULL || level == 1)) {
      snprintf(out, size, "%s", (const char *)node->data.scalar.value);
      found = 1;
    }
  }
  yaml_document_delete(&d);
  yaml_parser_delete(&p);
  return found;
}

static void the_render_is_yaml_that_reads_back_to_the_same_configuration(void **state) {
  (void)state;
  static greeksd_config c, back;
  c = greeksd_config_default();
  assert_int_equal(apply(&c, "listen: \"[::1]:7\"\nlimits: {max_contracts: 99}\nlog: {format: text}\n"
                             "book_store: \"postgresql://u:hunter2@h/db\"\ntracing: {sample_ratio: 0.25}\n"
                             "tokens: [{name: n1, file: /t/n1}]\n"),
                   0);
  char *text = greeksd_config_render(&c);
  assert_non_null(text);
  char value[256];
  assert_true(rendered_value(text, NULL, "listen", value, sizeof value));
  assert_string_equal(value, "[::1]:7");
  assert_true(rendered_value(text, "limits", "max_contracts", value, sizeof value));
  assert_string_equal(value, "99");
  assert_true(rendered_value(text, NULL, "book_store", value, sizeof value));
  assert_string_equal(value, "postgresql://u:REDACTED@h/db");
  assert_null(strstr(text, "hunter2"));
  assert_non_null(strstr(text, "max_contracts: 99  # t.yaml:2\n"));
  /* Applied again (the store aside, redacted on purpose), it is the same configuration. */
  back = greeksd_config_default();
  assert_int_equal(apply(&back, text), 0);
  char h1[17], h2[17];
  snprintf(back.book_store, sizeof back.book_store, "%s", c.book_store);
  greeksd_config_hash(&c, h1);
  greeksd_config_hash(&back, h2);
  assert_string_equal(h1, h2);
  assert_int_equal(back.token_count, 1);
  assert_string_equal(back.tokens[0].file, "/t/n1");
  free(text);
}

static int restart_count;
static char restart_keys[256];
static void note_restart(const char *key, const char *old_value, const char *new_value, void *user) {
  (void)user;
  restart_count++;
  size_t n = strlen(restart_keys);
  snprintf(restart_keys + n, sizeof restart_keys - n, "%s:%s->%s;", key, old_value, new_value);
}

/* The store's URL is shown without its password, but a change of the password
 * alone still needs a restart and is reported, the secret never shown. */
static void a_changed_store_password_alone_is_a_restart_change(void **state) {
  (void)state;
  static greeksd_config running, next;
  running = greeksd_config_default();
  next = greeksd_config_default();
  assert_int_equal(apply(&running, "book_store: postgresql://desk:old-secret@db.internal/books\n"), 0);
  assert_int_equal(apply(&next, "book_store: postgresql://desk:new-secret@db.internal/books\n"), 0);
  restart_count = 0;
  restart_keys[0] = '\0';
  assert_int_equal(greeksd_config_restart_changes(&running, &next, note_restart, NULL), 1);
  assert_non_null(strstr(restart_keys, "book_store:"));
  assert_non_null(strstr(restart_keys, "with different credentials;"));
  assert_null(strstr(restart_keys, "secret"));
  /* the same URL twice: no change */
  assert_int_equal(greeksd_config_restart_changes(&running, &running, note_restart, NULL), 0);
}

/* A collector's credentials in tracing.otlp_endpoint's user information are
 * shown REDACTED (--print-config, a reload's restart warning, a refused
 * value), and a change of them alone is still a restart change (they were
 * printed in clear: found in review). */
static void otlp_endpoint_credentials_are_never_shown(void **state) {
  (void)state;
  static greeksd_config running, next;
  running = greeksd_config_default();
  next = greeksd_config_default();
  assert_int_equal(apply(&running, "tracing:\n  otlp_endpoint: https://tenant:S3CRET-one@otlp.example.com/otlp\n"), 0);
  assert_int_equal(apply(&next, "tracing:\n  otlp_endpoint: https://tenant:S3CRET-two@otlp.example.com/otlp\n"), 0);
  restart_count = 0;
  restart_keys[0] = '\0';
  assert_int_equal(greeksd_config_restart_changes(&running, &next, note_restart, NULL), 1);
  assert_non_null(strstr(restart_keys, "https://REDACTED@otlp.example.com/otlp"));
  assert_non_null(strstr(restart_keys, "with different credentials;"));
  assert_null(strstr(restart_keys, "S3CRET"));
  char shown[256];
  greeksd_redact_url("http://a:b@h:4318/x@y?z", shown, sizeof shown);
  assert_string_equal(shown, "http://REDACTED@h:4318/x@y?z"); /* an '@' in the path is not the user part */
  greeksd_redact_url("http://h:4318", shown, sizeof shown);
  assert_string_equal(shown, "http://h:4318");
}

/* An endpoint the exporter cannot post to is refused before the start: "http://",
 * a port 99999 or a space passed, and every span was then dropped behind one
 * warning (found in review). The message keeps the credentials out. */
static void an_otlp_endpoint_the_exporter_cannot_use_is_refused(void **state) {
  (void)state;
  static greeksd_config c;
  static const struct {
    const char *yaml, *rule;
  } bad[] = {
      {"tracing: {otlp_endpoint: 'http://'}\n", "No host part"},
      {"tracing: {otlp_endpoint: 'http://alice:pw@h:99999'}\n", "the port must be 1..65535"},
      {"tracing: {otlp_endpoint: 'http://h:0'}\n", "the port must be 1..65535"},
      {"tracing: {otlp_endpoint: 'http://127.0.0.1:4318/a b'}\n", "is not a URL the exporter can post to"},
      {"tracing: {otlp_endpoint: 'ftp://h:4318'}\n", "must start with http:// or https://"},
      {"tracing: {otlp_endpoint: 'http://h:4318/otlp?tenant=a'}\n", "must not carry a query or a fragment"},
      {"tracing: {otlp_endpoint: 'http://h:4318#x'}\n", "must not carry a query or a fragment"},
      {"tracing: {otlp_endpoint: 'http://h:4318/otlp#'}\n", "must not carry a query or a fragment"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    c = greeksd_config_default();
    assert_int_not_equal(apply(&c, bad[i].yaml), 0);
    assert_error("t.yaml:1: tracing.otlp_endpoint:");
    assert_error(bad[i].rule);
    assert_null(strstr(errors.text, ":pw@"));
  }
  static const char *const good[] = {"http://otel-collector:4318", "https://u:k@otlp.example.com/otlp/v1/traces",
                                     "http://[::1]:4318", "''"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    char yaml[200];
    snprintf(yaml, sizeof yaml, "tracing:\n  otlp_endpoint: %s\n", good[i]);
    c = greeksd_config_default();
    if (apply(&c, yaml) != 0) fail_msg("%s refused:\n%s", good[i], errors.text);
  }
}

static void a_reload_takes_only_the_reloadable_settings(void **state) {
  (void)state;
  static greeksd_config running, next;
  running = greeksd_config_default();
  next = greeksd_config_default();
  assert_int_equal(apply(&next, "listen: 0.0.0.0:1\nlimits: {max_contracts: 5, max_connections: 7}\n"
                                "features: {strategy_agent: false}\ntokens: [{name: r, file: /r}]\n"),
                   0);
  restart_count = 0;
  restart_keys[0] = '\0';
  assert_int_equal(greeksd_config_restart_changes(&running, &next, note_restart, NULL), 2);
  assert_string_equal(restart_keys, "listen:127.0.0.1:50051->0.0.0.0:1;limits.max_connections:1000->7;");
  char changed[256];
  greeksd_config_reload_changes(&running, &next, changed, sizeof changed);
  assert_string_equal(changed, "tokens, limits.max_contracts, features.strategy_agent");
  char before[17], after[17];
  greeksd_config_hash(&running, before);
  greeksd_config_take_reloadable(&running, &next);
  greeksd_config_hash(&running, after);
  assert_string_not_equal(before, after);
  assert_string_equal(running.listen, "127.0.0.1:50051");
  assert_int_equal(running.max_connections, 1000);
  assert_int_equal(running.max_contracts, 5);
  assert_false(running.features.strategy_agent);
  assert_int_equal(running.token_count, 1);
  assert_string_equal(greeksd_config_source_of(&running, "limits.max_contracts"), "t.yaml:2");
  assert_string_equal(greeksd_config_source_of(&running, "listen"), "default");
}

static void the_overlay_sits_beside_the_base_file(void **state) {
  (void)state;
  char out[256];
  greeksd_config_overlay_path("/etc/greeksd/greeksd.yaml", "prod", out, sizeof out);
  assert_string_equal(out, "/etc/greeksd/greeksd.prod.yaml");
  greeksd_config_overlay_path("conf/app.yml", "dev", out, sizeof out);
  assert_string_equal(out, "conf/app.dev.yaml");
  greeksd_config_overlay_path("noext", "staging", out, sizeof out);
  assert_string_equal(out, "noext.staging.yaml");
}

/* Numbers are decimal, ports digits, IPv6 hosts bracketed: what passes the
 * check is what a start can use. */
static void numbers_and_addresses_are_read_strictly(void **state) {
  (void)state;
  static greeksd_config c;
  c = greeksd_config_default();
  assert_int_equal(apply(&c, "breaker:\n  failure_rate_percent: 0x32\n"), 1);
  assert_error("failure_rate_percent: '0x32'");
  assert_int_equal(apply(&c, "limits:\n  max_message_bytes: 99999999999999999999\n"), 1);
  assert_error("must be in [");
  assert_int_equal(apply(&c, "server_threads: \" 2\"\n"), 1);
  assert_error("is not an integer");
  static const char *const refused[] = {"::45678", "127.0.0.1: 80", "localhost:+80", "127.0.0.1:-0",
                                        "http://x:80", "a b c:1", ":80", "localhost"};
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    char text[96];
    snprintf(text, sizeof text, "listen: \"%s\"\n", refused[i]);
    if (apply(&c, text) != 1) fail_msg("listen '%s' was accepted", refused[i]);
  }
  static const char *const taken[] = {"[::1]:0", "127.0.0.1:50051", "localhost:0", "0.0.0.0:65535"};
  for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++) {
    char text[96];
    snprintf(text, sizeof text, "listen: \"%s\"\n", taken[i]);
    if (apply(&c, text) != 0) fail_msg("listen '%s' was refused: %s", taken[i], errors.text);
  }
}

/* The store's password never shown, however libpq would read it. */
static void a_store_password_is_redacted_in_every_form_libpq_reads(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"host=db dbname=x password = hunter2", "host=db dbname=x password = REDACTED"},
      {"host=db password='hunter 2' user=u", "host=db password=REDACTED user=u"},
      {"password='a\\'b c' host=h", "password=REDACTED host=h"},
      {"password=hunter2", "password=REDACTED"},
      {"postgresql://u:secret@h:5432/db?sslmode=require&password=two", "postgresql://u:REDACTED@h:5432/db?sslmode=require&password=REDACTED"},
      {"postgresql://u@h/db", "postgresql://u@h/db"},
      {"host=db sslpassword=KEYPASS", "host=db sslpassword=REDACTED"},
      {"postgresql://u@db/x?sslpassword=KEYPASS&sslmode=verify-full", "postgresql://u@db/x?sslpassword=REDACTED&sslmode=verify-full"},
      {"host=db dbname=x password_hint=keep", "host=db dbname=x password_hint=keep"},
      {"/var/lib/greeks/books.db", "/var/lib/greeks/books.db"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[256];
    greeksd_redact_store(cases[i][0], out, sizeof out);
    assert_string_equal(out, cases[i][1]);
  }
  char tiny[12]; /* cut short: still terminated, still no secret */
  greeksd_redact_store("password = hunter2", tiny, sizeof tiny);
  assert_null(strstr(tiny, "hunter"));
  assert_true(strlen(tiny) < sizeof tiny);
}

/* A store value that names no store is refused where it is set, with its
 * password redacted: a typo in a conninfo's first keyword made greeksd serve
 * from a new, empty SQLite file of that name (found in review). */
static void a_store_that_would_become_a_new_file_is_refused(void **state) {
  (void)state;
  static greeksd_config c;
  c = greeksd_config_default();
  assert_int_not_equal(apply(&c, "book_store: \"hots=db.example dbname=books password=hunter2\"\n"), 0);
  assert_error("t.yaml:1: book_store: 'hots=db.example dbname=books password=REDACTED'");
  assert_error("'hots' is no libpq keyword");
  assert_null(strstr(errors.text, "hunter2"));
  assert_int_not_equal(apply(&c, "book_store: mysql:books\n"), 0);
  assert_error("'mysql:' is no store scheme");
  assert_int_equal(apply(&c, "book_store: \"sqlite:mysql:books\"\n"), 0);
  assert_int_equal(apply(&c, "book_store: \"user=greeks host=db dbname=books\"\n"), 0);
}

/* A GREEKSD_ variable no setting reads is named, with the one it likely
 * meant: GREEKSD_DRAIN_TIMEOUT left the drain at its default without a word
 * (found in review). The settings' own, the files' and the test hooks' are
 * known. */
static void variables_no_setting_reads_are_named(void **state) {
  (void)state;
  char *environment[] = {"GREEKSD_DRAIN_TIMEOUT=60000", "GREEKSD_DRAIN_TIMEOUT_MS=1", "GREEKSD_CONFIG=c.yaml",
                         "GREEKSD_ENVIRONMENT=prod", "GREEKSD_TEST_FAULT=fail", "GREEKSD=/usr/bin/greeksd",
                         "GREEKSD_BOGUS=1", "PATH=/bin", NULL};
  char out[512];
  assert_int_equal(greeksd_config_unknown_variables(environment, out, sizeof out), 2);
  assert_string_equal(out, "GREEKSD_DRAIN_TIMEOUT (GREEKSD_DRAIN_TIMEOUT_MS?), GREEKSD_BOGUS");
  char *clean[] = {"GREEKSD_LISTEN=127.0.0.1:1", "GREEKSD_BOOK_STORE=sqlite:b.db", NULL};
  assert_int_equal(greeksd_config_unknown_variables(clean, out, sizeof out), 0);
  assert_string_equal(out, "");
}

/* More errors than the text holds: each shown one whole, the rest counted
 * (a reload's record ended mid-key, the errors after it unsaid; found in
 * review). 200 unknown keys of ~60 bytes, then a bad value. */
static void errors_past_the_text_are_left_out_whole_and_counted(void **state) {
  (void)state;
  static char text[32768];
  size_t used = 0;
  for (int i = 0; i < 200; i++)
    used += (size_t)snprintf(text + used, sizeof text - used, "unknown_key_%03d_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx: 1\n", i);
  snprintf(text + used, sizeof text - used, "drain_timeout_ms: abc\n");
  greeksd_config c = greeksd_config_default();
  assert_int_not_equal(apply(&c, text), 0);
  assert_int_equal(errors.count, 201);
  assert_true(errors.shown > 10 && errors.shown < errors.count);
  int lines = 0;
  for (const char *line = errors.text; *line; lines++) {
    const char *end = strchr(line, '\n');
    assert_non_null(end); /* every shown error ends its line */
    static const char whole_end[] = "unknown key (see docs/operations.md, Configuration)\n";
    if ((size_t)(end + 1 - line) < sizeof whole_end - 1 || memcmp(end + 1 - (sizeof whole_end - 1), whole_end, sizeof whole_end - 1) != 0)
      fail_msg("cut: %.*s", (int)(end - line), line);
    line = end + 1;
  }
  assert_int_equal(lines, errors.shown);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(errors_past_the_text_are_left_out_whole_and_counted),
      cmocka_unit_test(a_document_sets_values_and_records_file_and_line),
      cmocka_unit_test(a_store_that_would_become_a_new_file_is_refused),
      cmocka_unit_test(variables_no_setting_reads_are_named),
      cmocka_unit_test(every_error_is_reported_with_its_line_and_rule),
      cmocka_unit_test(invalid_yaml_is_one_error_with_its_position),
      cmocka_unit_test(an_empty_file_a_second_document_or_a_bare_key_is_refused),
      cmocka_unit_test(named_tokens_replace_the_lower_layer_and_refuse_inline_values),
      cmocka_unit_test(contradictions_name_both_keys),
      cmocka_unit_test(a_port_file_never_names_a_file_greeksd_keeps),
      cmocka_unit_test(the_render_is_yaml_that_reads_back_to_the_same_configuration),
      cmocka_unit_test(otlp_endpoint_credentials_are_never_shown),
      cmocka_unit_test(an_otlp_endpoint_the_exporter_cannot_use_is_refused),
      cmocka_unit_test(a_reload_takes_only_the_reloadable_settings),
      cmocka_unit_test(a_changed_store_password_alone_is_a_restart_change),
      cmocka_unit_test(the_overlay_sits_beside_the_base_file),
      cmocka_unit_test(a_store_password_is_redacted_in_every_form_libpq_reads),
      cmocka_unit_test(numbers_and_addresses_are_read_strictly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
