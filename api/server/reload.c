/*
 * greeksd's configuration snapshots and reloads (server.h, adr/0035).
 *
 * A snapshot is a validated configuration plus what it loaded (the bearer
 * tokens), a version (1 at start, +1 per accepted reload) and a content hash.
 * The server holds the one in force in an _Atomic pointer: a call loads it
 * once when it arrives (rpc_call.snap) and uses it to the end, so a reload in
 * the middle of a call never changes the rules under it. A reload (SIGHUP or a
 * watched file changing; main.c drives both) builds a whole new configuration
 * from every layer, validates it like a start would (secret files' modes and
 * contents included), and only then publishes the next snapshot with one
 * atomic store. A rejected reload changes nothing and says why.
 *
 * What a reload cannot change (the listen address, threads, the book store,
 * ...) stays as started: the new snapshot copies only the reloadable settings
 * over the running ones (greeksd_config_take_reloadable) and logs each other
 * difference as "needs a restart". Replaced snapshots are kept until the
 * server is destroyed: no reader can hold a freed one, and no reference count
 * sits on the per-call path.
 *
 * TLS: a snapshot also holds the certificate and key as read (PEM bytes),
 * checked to parse and to belong together; the gRPC core asks for them at each
 * new handshake (server.c, tls_certificate_fetcher), so a reload whose files
 * hold a new pair rotates the certificate without a restart. An invalid pair
 * rejects the reload like any other error. Switching between plaintext and TLS
 * changes the listener, so that alone still needs a restart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "greeks/isa.h"
#include "greeks/log.h"
#include "server.h"
#include "server_internal.h"
#include "startup.h"

const char *const feature_names[FEATURE_COUNT] = {"dynamic_batching", "avx512", "american_over_grpc", "strategy_agent"};

int feature_enabled(const greeksd_features *f, int index) {
  switch (index) {
  case 0: return f->dynamic_batching;
  case 1: return f->avx512;
  case 2: return f->american_over_grpc;
  default: return f->strategy_agent;
  }
}

/* ---- snapshots ---- */

void snapshot_free(greeksd_snapshot *s) {
  if (s == NULL) return;
  greeksd_free_tokens(s->anonymous_tokens);
  free(s->tls_cert_pem);
  free(s->tls_key_pem);
  for (int i = 0; i < GREEKSD_MAX_TOKENS; i++) greeksd_free_tokens(s->named_tokens[i]);
  free(s);
}

/* The pair read once into the snapshot and checked there: what passed is
 * exactly what the core will be handed, whatever the files do next. */
static int read_tls_pair(greeksd_snapshot *s, const greeksd_config *config, char *error, size_t size) {
  char why[1200];
  s->tls_cert_pem = greeksd_read_file(config->tls_cert, 1 << 20, why, sizeof why);
  s->tls_key_pem = s->tls_cert_pem ? greeksd_read_file(config->tls_key, 1 << 20, why, sizeof why) : NULL;
  if (s->tls_key_pem == NULL || greeksd_tls_pem_check(s->tls_cert_pem, s->tls_key_pem, why, sizeof why) != 0) {
    snprintf(error, size, "TLS ('%s', '%s'): %s", config->tls_cert, config->tls_key, why);
    return -1;
  }
  return 0;
}

static int same_tokens(char **a, char **b) {
  if (a == NULL || b == NULL) return a == b;
  size_t i = 0;
  for (; a[i] && b[i]; i++)
    if (strcmp(a[i], b[i]) != 0) return 0;
  return a[i] == NULL && b[i] == NULL;
}

/* The settings alike, where each was written aside: a comment added above a
 * key moves its FILE:LINE, not its value, and published a new version (found
 * in review). Compared on copies with the sources cleared; a reload is rare. */
static int same_settings(const greeksd_config *a, const greeksd_config *b) {
  greeksd_config *x = malloc(sizeof *x), *y = malloc(sizeof *y);
  int same = 0;
  if (x && y) {
    *x = *a, *y = *b;
    memset(x->source, 0, sizeof x->source), memset(y->source, 0, sizeof y->source);
    for (int i = 0; i < GREEKSD_MAX_TOKENS; i++)
      memset(x->tokens[i].source, 0, sizeof x->tokens[i].source),
          memset(y->tokens[i].source, 0, sizeof y->tokens[i].source);
    same = memcmp(x, y, sizeof *x) == 0;
  }
  free(x), free(y);
  return same; /* out of memory: "changed", which publishes as before */
}

/* Everything a call reads from a snapshot: the settings (their hash, and the
 * struct itself but for where each was written), the tokens in force and the
 * TLS pair. */
static int snapshot_same(const greeksd_snapshot *a, const greeksd_snapshot *b) {
  if (strcmp(a->hash, b->hash) != 0 || !same_settings(&a->config, &b->config) || a->auth != b->auth ||
      !snapshot_same_tls(a, b) || !same_tokens(a->anonymous_tokens, b->anonymous_tokens))
    return 0;
  for (int i = 0; i < GREEKSD_MAX_TOKENS; i++)
    if (!same_tokens(a->named_tokens[i], b->named_tokens[i])) return 0;
  return 1;
}

int snapshot_same_tls(const greeksd_snapshot *a, const greeksd_snapshot *b) {
  if (a->tls_cert_pem == NULL || b->tls_cert_pem == NULL) return a->tls_cert_pem == b->tls_cert_pem;
  return strcmp(a->tls_cert_pem, b->tls_cert_pem) == 0 && strcmp(a->tls_key_pem, b->tls_key_pem) == 0;
}

greeksd_snapshot *snapshot_build(const greeksd_config *config, unsigned long long version, char *error, size_t size) {
  greeksd_snapshot *s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(error, size, "out of memory for a configuration snapshot");
    return NULL;
  }
  s->config = *config;
  s->version = version;
  greeksd_config_hash(config, s->hash);
  if (config->token_file[0] != '\0') {
    s->anonymous_tokens = greeksd_load_tokens(config->token_file, error, size);
    if (s->anonymous_tokens == NULL) goto failed;
  }
  for (int i = 0; i < config->token_count; i++) {
    char why[1200];
    s->named_tokens[i] = greeksd_load_tokens(config->tokens[i].file, why, sizeof why);
    if (s->named_tokens[i] == NULL) {
      snprintf(error, size, "token '%s': %s", config->tokens[i].name, why);
      goto failed;
    }
  }
  s->auth = s->anonymous_tokens != NULL || config->token_count > 0;
  if (config->tls_cert[0] != '\0' && read_tls_pair(s, config, error, size) != 0) goto failed;
  return s;
failed:
  snapshot_free(s);
  return NULL;
}

const greeksd_snapshot *server_snapshot(const greeksd_server *server) {
  return atomic_load(&((greeksd_server *)server)->live);
}

const greeksd_config *rpc_config(const rpc_call *call) {
  return call->snap ? &call->snap->config : &server_snapshot(call->server)->config;
}

void snapshot_free_all(greeksd_server *server) {
  snapshot_free(atomic_exchange(&server->live, NULL));
  while (server->retired) {
    greeksd_snapshot *next = server->retired->retired_next;
    snapshot_free(server->retired);
    server->retired = next;
  }
  free(server->stamps);
  server->stamps = NULL;
}

/* features.avx512 off: the widest ISA below AVX-512 this machine runs; on:
 * back to what the process started with (GREEKS_ISA included). The active ISA
 * is an atomic the kernels read per call (kernels/src/dispatch.c). */
void snapshot_apply_isa(greeksd_server *server, const greeksd_config *config) {
  gk_isa want = (gk_isa)server->started_isa;
  if (!config->features.avx512 && want == GK_ISA_AVX512) want = gk_isa_supported(GK_ISA_AVX2) ? GK_ISA_AVX2 : GK_ISA_SCALAR;
  if (gk_isa_active() == want) return;
  if (gk_isa_force(want) == GK_RC_OK)
    gk_logf(GK_LOG_INFO, "config", "kernels now run on %s (features.avx512: %s)", gk_isa_name(want),
            config->features.avx512 ? "true" : "false");
}

/* ---- the public side ---- */

const greeksd_config *greeksd_server_config(const greeksd_server *server) { return &server_snapshot(server)->config; }
unsigned long long greeksd_server_config_version(const greeksd_server *server) {
  return server_snapshot(server)->version;
}
const char *greeksd_server_config_hash(const greeksd_server *server) { return server_snapshot(server)->hash; }

static void log_needs_restart(const char *key, const char *old_value, const char *new_value, void *user) {
  (void)user;
  gk_logf(GK_LOG_WARN, "config", "%s changed: needs a restart; keeping %s (the new value '%s' applies at the next start)",
          key, old_value[0] ? old_value : "(empty)", new_value);
}

/* Plaintext and TLS listen differently (server.c, start_grpc): a reload keeps
 * the mode the server started in; a new pair in TLS mode is taken. Kept in
 * the candidate itself, before its files are watched and checked: a file
 * that dropped tls.* left the running pair unwatched (a rotation was missed)
 * and unchecked (a 0644 key was taken) (found in review). 1 when it kept. */
static int keep_tls_mode(const greeksd_config *live, greeksd_config *candidate) {
  if ((live->tls_cert[0] == '\0') == (candidate->tls_cert[0] == '\0')) return 0;
  greeksd_config_keep_setting(candidate, live, "tls.cert");
  greeksd_config_keep_setting(candidate, live, "tls.key");
  return 1;
}

static void log_tls_mode_kept(const greeksd_config *live, const char *wanted) {
  gk_logf(GK_LOG_WARN, "config",
          "tls.cert changed: switching between plaintext and TLS needs a restart; keeping %s (the new value '%s' "
          "applies at the next start)",
          live->tls_cert[0] ? live->tls_cert : "plaintext", wanted[0] ? wanted : "plaintext");
}

/* Every error on one line ("; "-separated), for the log record's error field. */
/* Bytes a log line spends on text once escaped (the JSON sink's worst
 * case: a control byte as \u00XX, a byte that is not UTF-8 as \ufffd, a
 * quote or a backslash as two). */
static size_t escaped_cost(const char *text, size_t n) {
  size_t cost = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)text[i];
    cost += b < 0x20 || b == 0x7f || b >= 0x80 ? 6 : b == '"' || b == '\\' ? 2 : 1;
  }
  return cost;
}

/* The errors on one line, '; ' between them, each whole and in file order:
 * as many as fit in ONE_LINE_BUDGET bytes once escaped, then "(N more
 * errors than fit here)", the list's tail as --check-config leaves out. The
 * 8 KiB text fit, but its escaping could pass the log line's 16 KiB and cut
 * the record mid-error, the count lost (found in review). Each error is one
 * line of errors->text (greeksd_errors_add). */
#define ONE_LINE_BUDGET 7000
static void one_line(const greeksd_errors *errors, char *out, size_t size) {
  size_t n = 0, cost = 0;
  int kept = 0, lines = 0, full = 0;
  out[0] = '\0';
  for (const char *line = errors->text; *line != '\0';) {
    size_t length = strcspn(line, "\n");
    if (length > 0) {
      lines++;
      size_t line_cost = escaped_cost(line, length) + 2;
      full = full || cost + line_cost > ONE_LINE_BUDGET || n + length + 3 >= size;
      if (!full) {
        n += (size_t)snprintf(out + n, size - n, "%s%.*s", n ? "; " : "", (int)length, line);
        cost += line_cost, kept++;
      }
    }
    line += length + (line[length] == '\n');
  }
  int left_out = errors->count - errors->shown + (lines - kept);
  if (left_out > 0)
    snprintf(out + n, size - n, "%s(%d more error%s than fit here)", n ? "; " : "", left_out, left_out == 1 ? "" : "s");
}

static void reject(greeksd_server *server, const greeksd_errors *errors, const char *trigger) {
  const greeksd_snapshot *live = server_snapshot(server);
  char joined[8400];
  one_line(errors, joined, sizeof joined);
  gk_log_fields fields = {.error = joined};
  gk_log_record(GK_LOG_ERROR, "config", &fields,
                "configuration reload (%s) rejected: %d error%s; keeping version %llu (hash %s)", trigger,
                errors->count, errors->count == 1 ? "" : "s", live->version, live->hash);
  atomic_fetch_add(&server->reloads_rejected, 1);
}

/* The pricing breaker's thresholds, live (gk_breaker_reconfigure); its window's
 * size is a restart setting, so the shape always matches here. */
static void apply_breaker(greeksd_server *server, const greeksd_config *config) {
  gk_breaker *breaker = gk_pricing_agent_breaker(server->pricing);
  gk_breaker_config c = gk_breaker_config_for_pricing();
  greeksd_breaker_config(config, &c);
  gk_status status;
  if (breaker && gk_breaker_reconfigure(breaker, &c, &status) != GK_OK)
    gk_logf(GK_LOG_ERROR, "config", "the pricing breaker kept its thresholds: %s", status.message);
}

int greeksd_server_reload(greeksd_server *server, const greeksd_config *asked, const greeksd_errors *parse_errors,
                          const char *trigger, greeksd_reload_hook *apply_logging, void *hook_arg) {
  greeksd_snapshot *live = atomic_load(&server->live), *next = NULL;
  greeksd_config *candidate = malloc(sizeof *candidate), *merged = malloc(sizeof *merged);
  greeksd_errors *errors = malloc(sizeof *errors);
  if (candidate == NULL || merged == NULL || errors == NULL) {
    free(candidate), free(merged), free(errors);
    return -1;
  }
  *candidate = *asked;
  int tls_mode_kept = keep_tls_mode(&live->config, candidate);
  greeksd_server_watch_files(server, candidate); /* a rejected file is not re-read until it changes again */
  *errors = *parse_errors;
  /* the file as written, its new pair included (applied at the next start:
   * kept unchecked, a missing pair passed and the restart failed; found in
   * review), then the pair kept in force */
  if (errors->count == 0) greeksd_startup_check(asked, errors);
  if (errors->count == 0 && tls_mode_kept) greeksd_startup_check(candidate, errors);
  if (errors->count == 0) {
    *merged = live->config;
    greeksd_config_take_reloadable(merged, candidate);
    /* the running settings a reload keeps (the breaker's window, ...) beside
     * the new ones it takes: a pair a start would refuse is refused here */
    greeksd_config_check_whole(merged, errors);
    if (merged->breaker.minimum_calls > merged->breaker.window_calls &&
        candidate->breaker.window_calls != merged->breaker.window_calls)
      /* the line above names the running window by its old FILE:LINE, where
       * the file now says something else (found in review) */
      greeksd_errors_add(errors, "breaker.window_calls: the new %d takes effect only at a restart; a reload checks "
                         "breaker.minimum_calls against the running %d", candidate->breaker.window_calls,
                         merged->breaker.window_calls);
  }
  if (errors->count == 0) {
    char why[1400];
    next = snapshot_build(merged, live->version + 1, why, sizeof why);
    if (next == NULL) greeksd_errors_add(errors, "%s", why);
  }
  free(merged);
  if (errors->count != 0) {
    reject(server, errors, trigger);
    free(errors), free(candidate);
    return -1;
  }
  free(errors);
  if (tls_mode_kept) log_tls_mode_kept(&live->config, asked->tls_cert);
  if (apply_logging) apply_logging(&next->config, hook_arg); /* what follows is logged as the reload asks */
  greeksd_config_restart_changes(&live->config, candidate, log_needs_restart, NULL);
  free(candidate);
  char changed[1024];
  greeksd_config_reload_changes(&live->config, &next->config, changed, sizeof changed);
  if (!snapshot_same_tls(live, next)) {
    size_t n = strlen(changed);
    snprintf(changed + n, sizeof changed - n, "%sthe TLS certificate and key (new handshakes get them)", n ? ", " : "");
  }
  if (snapshot_same(live, next)) {
    /* Nothing to publish: retired snapshots are kept for the process's life
     * (a call may hold one), so a SIGHUP every minute from a sidecar grew it
     * by ~49 KB each (found in review). */
    snapshot_free(next);
    atomic_fetch_add(&server->reloads_accepted, 1);
    gk_logf(GK_LOG_INFO, "config", "configuration reload (%s): nothing changed; keeping version %llu (hash %s)",
            trigger, live->version, live->hash);
    return 0;
  }
  snapshot_apply_isa(server, &next->config);
  apply_breaker(server, &next->config);
  live->retired_next = server->retired; /* only this thread writes retired */
  server->retired = live;
  atomic_store(&server->live, next);
  book_side_reauthorize(server); /* a revoked token's idle subscriptions end now */
  atomic_fetch_add(&server->reloads_accepted, 1);
  gk_logf(GK_LOG_INFO, "config", "configuration reloaded (%s): version %llu (hash %s), was %llu (hash %s); changed: %s",
          trigger, next->version, next->hash, live->version, live->hash,
          changed[0] ? changed : "no setting (token files re-read)");
  return 0;
}

/* ---- watching the files ---- */

/* Mode, owner and ctime too: `chmod 600` on a secret file a reload refused
 * for its mode changes nothing else, and the fix went unseen until a SIGHUP
 * (found in review). */
typedef struct file_state {
  int exists;
  dev_t device;
  ino_t inode;
  off_t size;
  mode_t mode;
  uid_t owner;
  struct timespec mtime, ctime;
} file_state;

/* A watched file: its state when last read (baseline) and at the last poll
 * (seen). A change is acted on only once two polls a second apart agree on
 * it: an editor or `cat >` writes a file in several steps, and a reload of
 * the half-written (or empty) file is refused at best and, where the
 * half is valid YAML, applied. */
typedef struct file_stamp {
  char path[1100];
  file_state baseline, seen;
} file_stamp;

static void stamp(file_state *f, const char *path) {
  struct stat st;
  memset(f, 0, sizeof *f);
  if (stat(path, &st) != 0) return;
  f->exists = 1;
  f->device = st.st_dev, f->inode = st.st_ino, f->size = st.st_size, f->mtime = st.st_mtim;
  f->mode = st.st_mode, f->owner = st.st_uid, f->ctime = st.st_ctim;
}

static int same_stamp(const file_state *a, const file_state *b) {
  return a->exists == b->exists && a->device == b->device && a->inode == b->inode && a->size == b->size &&
         a->mode == b->mode && a->owner == b->owner && a->mtime.tv_sec == b->mtime.tv_sec &&
         a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
         a->ctime.tv_nsec == b->ctime.tv_nsec;
}

void greeksd_server_watch_files(greeksd_server *server, const greeksd_config *c) {
  const char *paths[5 + GREEKSD_MAX_TOKENS];
  int n = 0;
  if (c->tls_cert[0]) paths[n++] = c->tls_cert; /* a rotated certificate is picked up like a token file */
  if (c->tls_key[0]) paths[n++] = c->tls_key;
  if (c->config_file[0]) paths[n++] = c->config_file;
  if (c->overlay_file[0]) paths[n++] = c->overlay_file;
  if (c->token_file[0]) paths[n++] = c->token_file;
  for (int i = 0; i < c->token_count; i++) paths[n++] = c->tokens[i].file;
  file_stamp *stamps = n ? calloc((size_t)n, sizeof *stamps) : NULL;
  if (n && stamps == NULL) return;
  for (int i = 0; i < n; i++) {
    snprintf(stamps[i].path, sizeof stamps[i].path, "%s", paths[i]);
    stamp(&stamps[i].baseline, paths[i]);
    stamps[i].seen = stamps[i].baseline;
  }
  free(server->stamps);
  server->stamps = stamps;
  server->stamp_count = n;
}

/* 1 when a watched file differs from its baseline and has not changed since
 * the previous poll (a settled change); a file still changing waits. */
int greeksd_server_files_changed(greeksd_server *server) {
  int settled = 0, moving = 0;
  for (int i = 0; i < server->stamp_count; i++) {
    file_stamp *f = &server->stamps[i];
    file_state now;
    stamp(&now, f->path);
    if (!same_stamp(&now, &f->seen)) moving = 1;
    else if (!same_stamp(&now, &f->baseline)) settled = 1;
    f->seen = now;
  }
  return settled && !moving;
}
