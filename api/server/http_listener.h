/*
 * greeksd's HTTP listener (libmicrohttpd): a small plaintext HTTP/1.1 server
 * beside the gRPC port, for what is scraped and probed over HTTP: /metrics,
 * /healthz and /readyz (probes.c routes them). Transport only: it parses, asks
 * the route for a reply and sends it; it knows no path.
 *
 * One internal polling thread answers every request (a scrape or a probe is a
 * short, bounded piece of work); at most 32 connections, each closed after
 * 10 s idle. Only GET and HEAD are served (405 otherwise).
 */
#ifndef GREEKSD_HTTP_LISTENER_H
#define GREEKSD_HTTP_LISTENER_H

#include <stddef.h>

typedef struct greeksd_http_reply {
  int status;               /* HTTP status; 200 unless the route sets another */
  const char *content_type; /* a static string */
  char *body;               /* from malloc; the listener frees it (NULL: empty body) */
  size_t length;
} greeksd_http_reply;

/* Fills *reply for `path` (the request's path, without query). Runs on the
 * listener's thread. */
typedef void (*greeksd_http_route)(void *user, const char *path, greeksd_http_reply *reply);

typedef struct greeksd_http greeksd_http;

/* Listens on HOST:PORT (a numeric address or a name; port 0 picks a free one,
 * written to *port) and serves until greeksd_http_stop. NULL with the reason
 * in error[size] when the address cannot be bound. */
greeksd_http *greeksd_http_start(const char *listen, greeksd_http_route route, void *user, int *port, char *error,
                                 size_t size);

/* Stops listening, waits for the request in progress, frees. NULL is a no-op. */
void greeksd_http_stop(greeksd_http *http);

#endif
