/*
 * greeksd: the pricing service. Parses its configuration (config.h: defaults,
 * --config FILE and its --environment overlay, GREEKSD_*, flags), validates
 * all of it, starts the server, then waits for signals: SIGTERM or SIGINT
 * shut down gracefully (exit 0); SIGHUP reloads the configuration, and so does
 * a change to a watched file (the configuration files and the token files,
 * polled every second while waiting). A second SIGTERM or SIGINT during the
 * drain, a second or more after the first, ends the process at once (exit
 * 128 + the signal's number). A reload is built from every layer again
 * and validated in full before it replaces anything (reload.c, adr/0035).
 * Exit 2 on a bad configuration (start-up checks included: startup.h), 1 when
 * the server cannot start. --check-config and --print-config exit 0 or 2
 * without starting anything.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "greeks/clock.h"
#include "greeks/isa.h"
#include "greeks/log.h"
#include "log_sink.h"
#include "server.h"
#include "startup.h"

#ifndef GREEKS_VERSION
#error "GREEKS_VERSION must be defined by the build"
#endif

static int write_port_file(const char *path, int port) {
  if (path[0] == '\0') return 0;
  char temporary[1100];
  snprintf(temporary, sizeof temporary, "%s.tmp", path);
  FILE *f = fopen(temporary, "w");
  if (f == NULL) return -1;
  fprintf(f, "%d\n", port);
  if (fclose(f) != 0) return -1;
  return rename(temporary, path); /* readers never see a half-written file */
}

/* A port file that cannot be written stops the start: whoever asked for it
 * (a supervisor, a test harness) waits for it, forever, while greeksd served
 * with a warning that gave no reason (found in review). */
static int refuse_port_file(greeksd_server *server, const char *flag, const char *path) {
  gk_logf(GK_LOG_ERROR, "greeksd", "%s: cannot write '%s': %s: stopping", flag, path, strerror(errno));
  greeksd_server_shutdown(server);
  return 1;
}

/* Prints every error, one per line, each naming its source, value and rule:
 * plain lines while the log format is not known yet (the configuration did not
 * parse), else records in the chosen format (a JSON pipeline read the reason a
 * pod would not start as a line that was not JSON: found in review). */
static int refuse(const greeksd_errors *errors, bool logged) {
  if (logged) gk_logf(GK_LOG_ERROR, "greeksd", "%d configuration error%s:", errors->count, errors->count == 1 ? "" : "s");
  else fprintf(stderr, "greeksd: %d configuration error%s:\n", errors->count, errors->count == 1 ? "" : "s");
  for (const char *line = errors->text; *line;) {
    const char *end = strchr(line, '\n');
    int n = end ? (int)(end - line) : (int)strlen(line);
    if (logged) gk_logf(GK_LOG_ERROR, "greeksd", "%.*s", n, line);
    else fprintf(stderr, "greeksd: %.*s\n", n, line);
    line += n + (end != NULL);
  }
  int left_out = errors->count - errors->shown;
  if (left_out > 0) {
    if (logged) gk_logf(GK_LOG_ERROR, "greeksd", "(%d more error%s than fit here)", left_out, left_out == 1 ? "" : "s");
    else fprintf(stderr, "greeksd: (%d more error%s than fit here)\n", left_out, left_out == 1 ? "" : "s");
  }
  return 2;
}

/* --check-config and --print-config: the same validation as a start. */
static int check_or_print(const greeksd_config *config, greeksd_action action) {
  greeksd_errors *errors = calloc(1, sizeof *errors);
  if (errors == NULL) return 2;
  int rc = greeksd_startup_check(config, errors) == 0 ? 0 : refuse(errors, false);
  free(errors);
  if (rc != 0) return rc;
  extern char **environ;
  char unknown[1024];
  if (greeksd_config_unknown_variables(environ, unknown, sizeof unknown) > 0)
    fprintf(stderr, "greeksd: warning: ignored: %s: no greeksd setting reads it (the variables: greeksd --help)\n",
            unknown);
  char hash[17];
  greeksd_config_hash(config, hash);
  if (action == GREEKSD_PRINT_CONFIG) {
    char *text = greeksd_config_render(config);
    if (text == NULL) return 2;
    fputs(text, stdout);
    printf("# hash: %s\n", hash);
    free(text);
  } else {
    printf("greeksd: configuration OK (hash %s; base %s, overlay %s)\n", hash,
           config->config_file[0] ? config->config_file : "none", config->overlay_file[0] ? config->overlay_file : "none");
  }
  return 0;
}

static void apply_logging(const greeksd_config *next, void *sink) {
  greeksd_log_configure(sink, next->log_format, next->log_level);
}

/* Builds the configuration again from every layer and hands it to the
 * server, which validates it in full before anything changes. */
static void reload(greeksd_server *server, greeksd_log_sink *sink, int argc, char **argv, const char *trigger) {
  greeksd_config *candidate = malloc(sizeof *candidate);
  greeksd_errors *errors = malloc(sizeof *errors);
  if (candidate == NULL || errors == NULL) {
    gk_logf(GK_LOG_ERROR, "config", "configuration reload (%s): out of memory; nothing changed", trigger);
  } else {
    greeksd_action action;
    greeksd_config_parse(argc, argv, candidate, &action, errors);
    greeksd_server_reload(server, candidate, errors, trigger, apply_logging, sink);
  }
  free(candidate);
  free(errors);
}

/* A signal this soon after the first is the same stop delivered twice: a
 * wrapper such as coreutils' timeout sends it to the process and to its group
 * (found in review: one `kill` skipped the drain in 2 runs of 3). */
#define SECOND_SIGNAL_AFTER_NS (1000 * GK_NS_PER_MS)

/* Runs during the drain. An operator who signals again does not want to wait
 * for it (a call that will not end, a store that stopped answering: see
 * docs/operations.md, "Draining"), so the second SIGTERM or SIGINT exits now,
 * as a SIGKILL would but with a line saying so. That is safe for the same
 * reason SIGKILL is: an answer is sent only after its commit, and a command
 * left unanswered can be resent with its idempotency key. The thread starts
 * right after the first signal is taken. */
static void *exit_at_a_second_signal(void *drain_over) {
  const atomic_bool *drained = drain_over;
  int64_t first_ns = gk_monotonic_ns();
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  int signal_number = 0;
  for (;;) {
    /* a timed wait, to end with the drain: a thread still blocked in a
     * signal wait at exit cost 1 s per stop under ThreadSanitizer (its gRPC
     * suites took twice as long), and cancelling one there it reports */
    struct timespec poll = {0, 20 * 1000 * 1000};
    signal_number = sigtimedwait(&stop, NULL, &poll);
    if (signal_number < 0) {
      if (atomic_load(drained)) return NULL;
      continue;
    }
    if (gk_monotonic_ns() - first_ns >= SECOND_SIGNAL_AFTER_NS) break;
    gk_logf(GK_LOG_INFO, "greeksd",
            "%s within a second of the first taken as the same stop: the drain goes on (signal again to exit now)",
            signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  }
  gk_logf(GK_LOG_WARN, "greeksd",
          "second %s during the drain: exiting now (status %d) without waiting for the calls in flight; answered "
          "commands are journaled, an unanswered one can be resent with its idempotency key",
          signal_number == SIGTERM ? "SIGTERM" : "SIGINT", 128 + signal_number);
  fflush(stderr);
  _exit(128 + signal_number);
}

int main(int argc, char **argv) {
  static greeksd_config config; /* ~50 KiB: sources and token files included */
  static greeksd_errors errors;
  greeksd_action action = GREEKSD_SERVE;
  int parsed = greeksd_config_parse(argc, argv, &config, &action, &errors);
  if (parsed == GREEKSD_HELP) return 0;
  if (parsed < 0) return refuse(&errors, false);
  gk_rc rc = gk_isa_init();
  if (rc != GK_RC_OK) { /* only GREEKS_ISA can make it fail: name it and its value */
    const char *forced = getenv("GREEKS_ISA");
    fprintf(stderr, "greeksd: GREEKS_ISA='%s' (environment): %s\n", forced ? forced : "", gk_rc_message(rc));
    return 2;
  }
  if (action != GREEKSD_SERVE) return check_or_print(&config, action);
  /* one line per record on stderr, text or JSON (log_sink.h); static: it
   * outlives main's frame, as every thread's last log line may */
  static greeksd_log_sink log_sink;
  greeksd_log_install(&log_sink, config.log_format, config.log_level);
  long fd_limit = greeksd_raise_fd_limit();
  if (greeksd_startup_check(&config, &errors) != 0) return refuse(&errors, true);
  greeksd_startup_warn(&config);
  /* Requests and responses of large chains are hundreds of KiB. glibc would
   * mmap and unmap each one, and the page faults of fresh pages cost more than
   * the pricing (measured: 12% of the server's time at 4096 contracts); keeping
   * them in the heap reuses warm pages. Free memory above 64 MiB at the top of
   * the heap goes back to the system, and the health thread trims the rest
   * when the server is idle (server.c), so a burst (a stream flood, a huge
   * book) does not keep its memory for good. */
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  /* Signals are taken by sigtimedwait below, never by a handler: every thread
   * created from here on inherits the mask. */
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, NULL);
  signal(SIGPIPE, SIG_IGN);

  char error[1400];
  int port = 0;
  greeksd_server *server = greeksd_server_start(&config, &port, error, sizeof error);
  if (server == NULL) {
    gk_logf(GK_LOG_ERROR, "greeksd", "%s", error);
    return 1;
  }
  int metrics_port = greeksd_server_metrics_port(server);
  /* The metrics port first: a reader that sees the gRPC port file finds both. */
  if (metrics_port != 0 && write_port_file(config.metrics_port_file, metrics_port) != 0)
    return refuse_port_file(server, "--metrics-port-file", config.metrics_port_file);
  if (metrics_port != 0) gk_logf(GK_LOG_INFO, "greeksd", "metrics, /healthz and /readyz on http://%s (port %d)",
                                 config.metrics_listen, metrics_port);
  gk_logf(GK_LOG_INFO, "config", "configuration version %llu (hash %s): base %s, overlay %s",
          greeksd_server_config_version(server), greeksd_server_config_hash(server),
          config.config_file[0] ? config.config_file : "none", config.overlay_file[0] ? config.overlay_file : "none");
  if (write_port_file(config.port_file, port) != 0) return refuse_port_file(server, "--port-file", config.port_file);
  gk_logf(GK_LOG_INFO, "greeksd",
          "greeks %s serving on %s (port %d, isa %s, %s%s; %d server threads, %d streams per connection, %d "
          "connections, fd limit %ld; instance %s)",
          GREEKS_VERSION, config.listen, port, gk_isa_name(gk_isa_active()), config.tls_cert[0] ? "TLS" : "plaintext",
          config.token_file[0] || config.token_count ? ", bearer tokens required" : "", greeksd_server_threads(&config),
          config.max_concurrent_streams, config.max_connections, fd_limit, greeksd_server_instance_id(server));
  int signal_number = 0;
  for (;;) {
    struct timespec poll = {1, 0}; /* the watched files are looked at once a second */
    signal_number = sigtimedwait(&signals, NULL, &poll);
    if (signal_number == SIGTERM || signal_number == SIGINT) break;
    if (signal_number == SIGHUP) reload(server, &log_sink, argc, argv, "SIGHUP");
    else if (greeksd_server_files_changed(server)) reload(server, &log_sink, argc, argv, "file change");
  }
  gk_logf(GK_LOG_INFO, "greeksd", "%s received: shutting down", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  pthread_t impatience;
  atomic_bool drained = false;
  int watching = pthread_create(&impatience, NULL, exit_at_a_second_signal, &drained) == 0;
  long cancelled = greeksd_server_shutdown(server);
  if (cancelled > 0) gk_logf(GK_LOG_WARN, "greeksd", "%ld calls were cancelled by the drain timeout", cancelled);
  atomic_store(&drained, true);
  if (watching) pthread_join(impatience, NULL);
  return 0;
}
