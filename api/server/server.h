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

/* Reload (reload.c, adr/0035): `candidate` is a configuration built from
 * every layer again, `errors` what building it found. Validates it in full
 * (start-up checks of the secret files included); when anything is wrong,
 * logs every error at ERROR, counts the rejection and keeps the configuration
 * in force. Otherwise logs each setting that needs a restart ("listen changed:
 * needs a restart; keeping ..."), builds the next snapshot (version + 1) from
 * the reloadable settings and publishes it atomically. `trigger` names what
 * asked ("SIGHUP", "file change"). Returns 0 when accepted. Call from one
 * thread at a time (main's). */
typedef void greeksd_reload_hook(const greeksd_config *next, void *arg);
/* `apply_logging` (may be NULL) runs once the reload is accepted, before its
 * INFO line: so a reload that raises the level or changes the format
 * announces itself in the new settings (it was written under the old ones,
 * and a level raised from warn to info never logged its own reload: found in
 * review). */
int greeksd_server_reload(greeksd_server *server, const greeksd_config *candidate, const greeksd_errors *errors,
                          const char *trigger, greeksd_reload_hook *apply_logging, void *hook_arg);

/* The configuration in force (the live snapshot's); valid until shutdown. */
const greeksd_config *greeksd_server_config(const greeksd_server *server);
unsigned long long greeksd_server_config_version(const greeksd_server *server);
const char *greeksd_server_config_hash(const greeksd_server *server);

/* service.instance.id of this process (tracing.service_instance_id, else a
 * UUID drawn at start); owned by the server. */
const char *greeksd_server_instance_id(const greeksd_server *server);

/* Whether a watched file (--config, its overlay, the token files) changed
 * since the last call (or the last reload): size, mtime or inode. Main thread. */
int greeksd_server_files_changed(greeksd_server *server);

/* Remembers the watched files of `config` as they are now. */
void greeksd_server_watch_files(greeksd_server *server, const greeksd_config *config);

#endif
