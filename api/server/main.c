/*
 * greeksd: the pricing service. Parses its configuration, starts the server,
 * waits for SIGTERM or SIGINT and shuts down gracefully (exit 0). Exit 2 on a
 * bad configuration (start-up checks included: startup.h), 1 when the server
 * cannot start.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
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

int main(int argc, char **argv) {
  greeksd_config config;
  char error[1400];
  int parsed = greeksd_config_parse(argc, argv, &config, error, sizeof error);
  if (parsed == 1) return 0;
  if (parsed != 0) {
    fprintf(stderr, "greeksd: %s\n", error);
    return 2;
  }
  gk_rc rc = gk_isa_init();
  if (rc != GK_RC_OK) {
    fprintf(stderr, "greeksd: %s\n", gk_rc_message(rc));
    return 2;
  }
  greeksd_log_sink log_sink; /* one line per record on stderr, text or JSON (log_sink.h) */
  greeksd_log_install(&log_sink, config.log_format, config.log_level);
  long fd_limit = greeksd_raise_fd_limit();
  if (greeksd_startup_check(&config, error, sizeof error) != 0) {
    fprintf(stderr, "greeksd: %s\n", error);
    return 2;
  }
  /* Requests and responses of large chains are hundreds of KiB. glibc would
   * mmap and unmap each one, and the page faults of fresh pages cost more than
   * the pricing (measured: 12% of the server's time at 4096 contracts); keeping
   * them in the heap reuses warm pages. Free memory above 64 MiB at the top of
   * the heap goes back to the system, and the health thread trims the rest
   * when the server is idle (server.c), so a burst (a stream flood, a huge
   * book) does not keep its memory for good. */
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  /* Signals are taken by sigwait below, never by a handler: every thread
   * created from here on inherits the mask. */
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
  signal(SIGPIPE, SIG_IGN);

  int port = 0;
  greeksd_server *server = greeksd_server_start(&config, &port, error, sizeof error);
  if (server == NULL) {
    fprintf(stderr, "greeksd: %s\n", error);
    return 1;
  }
  int metrics_port = greeksd_server_metrics_port(server);
  /* The metrics port first: a reader that sees the gRPC port file finds both. */
  if (metrics_port != 0 && write_port_file(config.metrics_port_file, metrics_port) != 0)
    gk_logf(GK_LOG_WARN, "greeksd", "could not write the metrics port to '%s'", config.metrics_port_file);
  if (metrics_port != 0) gk_logf(GK_LOG_INFO, "greeksd", "metrics, /healthz and /readyz on http://%s (port %d)",
                                 config.metrics_listen, metrics_port);
  if (write_port_file(config.port_file, port) != 0)
    gk_logf(GK_LOG_WARN, "greeksd", "could not write the port to '%s'", config.port_file);
  gk_logf(GK_LOG_INFO, "greeksd",
          "greeks %s serving on %s (port %d, isa %s, %s%s; %d server threads, %d streams per connection, %d "
          "connections, fd limit %ld)",
          GREEKS_VERSION, config.listen, port, gk_isa_name(gk_isa_active()), config.tls_cert[0] ? "TLS" : "plaintext",
          config.token_file[0] ? ", bearer tokens required" : "", config.server_threads, config.max_concurrent_streams,
          config.max_connections, fd_limit);
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  gk_logf(GK_LOG_INFO, "greeksd", "%s received: shutting down", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  long cancelled = greeksd_server_shutdown(server);
  if (cancelled > 0) gk_logf(GK_LOG_WARN, "greeksd", "%ld calls were cancelled by the drain timeout", cancelled);
  return 0;
}
