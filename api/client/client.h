/*
 * A small synchronous gRPC client on the gRPC C core, for the CLI's `greeks
 * call` verbs and the load generator. Messages are opaque bytes here: callers
 * pack and unpack them with protobuf-c.
 *
 * Several instances (issue 21): `target` may be one HOST:PORT, a gRPC name with
 * a scheme ("dns:///greeksd:50051" resolves to every address of the name;
 * "ipv4:10.0.0.1:50051,10.0.0.2:50051", read as the bare list it names), or a
 * comma-separated list of IP:PORT ("127.0.0.1:50051,127.0.0.1:50052", each
 * item checked, started at an item of this process's own, turned into an
 * ipv4:/ipv6: name). The
 * channel balances calls round robin over the addresses and retries a call
 * that ends UNAVAILABLE (the instance refused, died or is draining) up to
 * retry_attempts times in all, with backoff, on whichever instance is up: the
 * gRPC retry policy of the service config, so a retry resends the very same
 * request bytes and metadata (idempotency keys included). greeksd's own
 * UNAVAILABLE (draining, its breaker open, its store unreachable) arrives
 * after response headers, which that policy never retries: the client sends
 * such a refused call of a unary method again itself, within the attempts
 * and the deadline (a client stream may have been partly consumed: not sent
 * again); a later attempt's failure keeps what the first refusal said.
 * A call is not retried once the server has sent it a message.
 *
 * Ownership: a gk_client owns its channel; gk_client_reply.bytes is malloc'ed
 * and owned by the caller after a call (free it with gk_client_reply_free).
 * Errors are returned, never printed.
 */
#ifndef GREEKS_CLIENT_H
#define GREEKS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct gk_client_options {
  const char *target;      /* "host:port", a list "ip:port,ip:port" or "dns:///host:port"; required */
  const char *tls_ca_file; /* PEM roots to trust: TLS on when set */
  const char *token;       /* bearer token to send, or NULL */
  int64_t timeout_ms;      /* per call deadline; 0 = none */
  const char *request_id;  /* x-request-id to send, or NULL (the server makes one) */
  int retry_attempts;      /* attempts per call on UNAVAILABLE, 1 (no retry)..5; 0 = GK_CLIENT_DEFAULT_ATTEMPTS */
} gk_client_options;

enum { GK_CLIENT_DEFAULT_ATTEMPTS = 4, GK_CLIENT_MAX_ATTEMPTS = 5 /* gRPC's own cap */ };

typedef struct gk_client gk_client;

/* Creates the channel (connection happens on the first call). NULL with the
 * reason in error[size] when an option is unusable. */
gk_client *gk_client_create(const gk_client_options *options, char *error, size_t size);
void gk_client_destroy(gk_client *client);

typedef struct gk_client_reply {
  int code;               /* grpc_status_code; 0 = OK */
  char details[1024];     /* the server's status message */
  uint8_t *bytes;         /* response message (code 0), NULL otherwise */
  size_t length;
  char request_id[64];    /* x-request-id the server echoed, "" if none */
} gk_client_reply;

/* A unary call to `method` ("/greeks.v1.PricingService/PriceChain"). Returns 0
 * when the call completed (its gRPC status is in reply->code, whatever it is),
 * -1 when it could not be made (reason in reply->details). */
int gk_client_unary(gk_client *client, const char *method, const uint8_t *request, size_t length,
                    gk_client_reply *reply);

/* A client-streaming call: sends `count` messages, half-closes, reads the one
 * response. Same returns as gk_client_unary. */
int gk_client_stream(gk_client *client, const char *method, const uint8_t *const *requests,
                     const size_t *lengths, size_t count, gk_client_reply *reply);

/* Called with each message of a server stream, in order; `bytes` are valid only
 * during the call. Return 0 to go on; nonzero stops the stream (the call is
 * cancelled and reported as code 0, details "stopped by the caller"). */
typedef int gk_client_message_fn(void *user, const uint8_t *bytes, size_t length);

/* A server-streaming call (GetAuditTrail, SubscribeEvents): sends `request`,
 * half-closes, hands each response message to on_message until the stream
 * ends or on_message stops it. Returns 0 when the call completed (its gRPC
 * status in reply->code and reply->details, reply->bytes NULL), -1 when it could
 * not be made (reason in reply->details). Blocks for as long as the stream
 * lasts, bounded by the client's timeout_ms when set. */
int gk_client_server_stream(gk_client *client, const char *method, const uint8_t *request, size_t length,
                            gk_client_message_fn *on_message, void *user, gk_client_reply *reply);

void gk_client_reply_free(gk_client_reply *reply);

/* The name of a gRPC status code ("INVALID_ARGUMENT"). */
const char *gk_client_code_name(int code);

#endif
