/*
 * greeksd's plaintext listener: it accepts TCP connections itself and hands
 * each to the gRPC core (grpc_server_add_channel_from_fd), so that it can cap
 * the number of open connections and ride out a lack of file descriptors
 * (EMFILE), two things the core's own listener in grpc 1.51 cannot do: it
 * closes its socket for good on the first failed accept (adr/0022).
 *
 * Connections beyond the cap wait in the kernel's backlog until others close;
 * a closed connection is noticed within LISTENER_POLL_MS. Internal to greeksd.
 */
#ifndef GREEKSD_LISTENER_H
#define GREEKSD_LISTENER_H

#include <grpc/grpc.h>
#include <stddef.h>

typedef struct greeksd_listener greeksd_listener;

/* Binds `address` (HOST:PORT, [V6]:PORT; port 0 picks one, written to *port)
 * without SO_REUSEPORT, so a second server on the same address fails here.
 * Returns NULL with the reason (naming --listen) in error[size]. */
greeksd_listener *greeksd_listener_bind(const char *address, int max_connections, int *port, char *error,
                                        size_t size);

/* Starts the accepting thread; `server` must have been started. */
void greeksd_listener_start(greeksd_listener *listener, grpc_server *server);

/* Stops accepting and closes the listening socket. NULL and repeats are fine. */
void greeksd_listener_stop(greeksd_listener *listener);

/* Frees a stopped listener. NULL is fine. */
void greeksd_listener_free(greeksd_listener *listener);

/* 1 when every address HOST resolves to is a loopback one, 0 otherwise (or
 * when it does not resolve). */
int greeksd_address_is_loopback(const char *address);

#endif
