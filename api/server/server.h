/*
 * greeksd: the gRPC server object. One process has one; main.c creates it,
 * waits for SIGTERM/SIGINT and shuts it down.
 */
#ifndef GREEKSD_SERVER_H
#define GREEKSD_SERVER_H

#include <stddef.h>

#include "config.h"

typedef struct greeksd_server greeksd_server;

/* Creates the pool and agents, binds the listen address and starts serving.
 * Returns NULL with the reason in error[error_size]. *port receives the bound
 * port. */
greeksd_server *greeksd_server_start(const greeksd_config *config, int *port, char *error,
                                     size_t error_size);

/* Graceful shutdown: reports NOT_SERVING, stops accepting, lets in-flight calls
 * finish within the drain timeout (then cancels the rest), stops the agents and
 * frees everything. Returns the number of calls cancelled by the timeout. */
long greeksd_server_shutdown(greeksd_server *server);

/* The HTTP listener's bound port (/metrics, /healthz, /readyz), 0 when it is
 * off or its default address was taken. */
int greeksd_server_metrics_port(const greeksd_server *server);

#endif
