/* Synchronous gRPC calls on the C core: one pluck queue per call. A server
 * stream reads one message per batch, so a slow consumer holds the stream back
 * (gRPC flow control) rather than buffering it here.
 *
 * Several instances: the channel gets a service config (round_robin, and a
 * retryPolicy on UNAVAILABLE for every method) and retries enabled, so balancing
 * and failover are gRPC's own, not a loop here; a retried call is the same
 * message with the same metadata. A list of IP:PORT becomes the C core's
 * ipv4:/ipv6: name (its resolvers take a comma-separated address list); host
 * names go through dns:/// (every address of the name), which a list of them
 * cannot express, so such a list is refused with a pointer to dns:///. Each
 * client starts the list at an item of its own (first_item): round robin only
 * spreads the calls of one channel, and the CLI makes one call per process. */
#include "client.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct gk_client {
  grpc_channel *channel;
  int64_t timeout_ms;
  int attempts; /* per call, resends of greeksd's own UNAVAILABLE included */
  char authorization[1100];
  char request_id[64];
};

/* A PEM file of at most 1 MiB; NULL when unreadable or larger (never truncated). */
static char *read_text_file(const char *path) {
  enum { MAX_BYTES = 1 << 20 };
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char *text = malloc(MAX_BYTES + 1);
  size_t n = text ? fread(text, 1, MAX_BYTES + 1, f) : 0;
  int bad = text == NULL || ferror(f) || n > MAX_BYTES;
  fclose(f);
  if (bad) {
    free(text);
    return NULL;
  }
  text[n] = '\0';
  return text;
}

enum { TARGET_MAX = 2048 };

/* "HOST:PORT" split at its last colon: 4 for an IPv4 literal, 6 for "[v6]",
 * 0 when the host is a name or the port is not 1..65535 digits. */
static int address_family(const char *item, size_t n) {
  char host[64];
  const char *colon = NULL;
  for (size_t i = 0; i < n; i++)
    if (item[i] == ':') colon = item + i;
  if (colon == NULL || colon == item || n - (size_t)(colon - item) < 2 || n - (size_t)(colon - item) > 6) return 0;
  for (const char *p = colon + 1; p < item + n; p++)
    if (!isdigit((unsigned char)*p)) return 0;
  long port = strtol(colon + 1, NULL, 10);
  size_t host_length = (size_t)(colon - item);
  if (port < 1 || port > 65535 || host_length >= sizeof host) return 0;
  memcpy(host, item, host_length);
  host[host_length] = '\0';
  unsigned char binary[16];
  if (inet_pton(AF_INET, host, binary) == 1) return 4;
  if (host_length > 2 && host[0] == '[' && host[host_length - 1] == ']') {
    host[host_length - 1] = '\0';
    if (inet_pton(AF_INET6, host + 1, binary) == 1) return 6;
  }
  return 0;
}

/* Which item of a list to put first: a process makes one call per channel in
 * the CLI, and gRPC's round robin starts on the first address that connects
 * (in practice the first listed), so each process starts at its own item. */
static size_t first_item(size_t count) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  unsigned long long seed = (unsigned long long)now.tv_nsec ^ ((unsigned long long)getpid() << 20);
  seed ^= seed >> 17, seed *= 0x9E3779B97F4A7C15ULL, seed ^= seed >> 29;
  return (size_t)(seed % count);
}

/* Checks every item of a comma-separated list: their family (4 or 6), else 0. */
static int list_family(const char *target, size_t *count, const char **bad, size_t *bad_length) {
  int family = 0;
  *count = 0;
  for (const char *item = target;; item++) {
    size_t n = strcspn(item, ",");
    int f = address_family(item, n);
    *bad = item, *bad_length = n;
    if (f == 0 || (family != 0 && f != family)) return 0;
    family = f;
    ++*count;
    item += n;
    if (*item == '\0') return family;
  }
}

/* `target`'s items from item `first` on, then those before it, comma-separated. */
static void rotate_list(const char *target, size_t first, char *out, size_t size) {
  const char *at = target;
  for (size_t i = 0; i < first; i++) at = strchr(at, ',') + 1;
  if (first == 0) snprintf(out, size, "%s", target);
  else snprintf(out, size, "%s,%.*s", at, (int)(at - target - 1), target);
}

/* The gRPC name for `target`: as given when it is one address or has a scheme;
 * "ipv4:a,b" / "ipv6:a,b" for a list of IP:PORT. -1 (reason in error) else. */
/* Whether a single target is one that must end in :PORT: a bare HOST:PORT,
 * dns:, ipv4: and ipv6: names. Other schemes name no port (unix:PATH,
 * xds:///NAME, which the linked gRPC resolves: refused once; found in
 * review). */
static bool names_a_port(const char *target) {
  static const char *const with_port[] = {"dns:", "ipv4:", "ipv6:"};
  for (size_t i = 0; i < sizeof with_port / sizeof with_port[0]; i++)
    if (strncmp(target, with_port[i], strlen(with_port[i])) == 0) return true;
  static const char *const without[] = {"unix:", "unix-abstract:", "xds:", "google-c2p:", "vsock:"};
  for (size_t i = 0; i < sizeof without / sizeof without[0]; i++)
    if (strncmp(target, without[i], strlen(without[i])) == 0) return false;
  return strstr(target, "://") == NULL; /* another scheme://: its resolver's business */
}

static int channel_target(const char *target, char *out, size_t size, char *error, size_t error_size) {
  if (strlen(target) >= TARGET_MAX) {
    snprintf(error, error_size, "--target: longer than %d characters", TARGET_MAX - 1);
    return -1;
  }
  /* An ipv4:/ipv6: list is the bare list it names, checked and rotated the
   * same way: passed as written, a bad item came back as the gRPC core's log
   * lines and exit 4, and every list went to its first item (found in review). */
  int named = 0;
  if ((strncmp(target, "ipv4:", 5) == 0 || strncmp(target, "ipv6:", 5) == 0) && strchr(target, ',') != NULL)
    named = target[3] == '4' ? 4 : 6;
  const char *list = named ? target + 5 : target;
  if (!named && (strchr(target, ',') == NULL || strchr(target, '/') || strncmp(target, "ipv4:", 5) == 0 ||
                 strncmp(target, "ipv6:", 5) == 0)) {
    /* a port past 65535 went to gRPC, which took it modulo 65536: 105525
     * reached another greeksd on 39989 and opened a book there (found in
     * review). Only a trailing ":DIGITS" is a port (unix:/path has none). */
    const char *colon = strrchr(target, ':');
    size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;
    /* and a target without one ("127.0.0.1:", "localhost") dialed port 0 or
     * gRPC's default 443, and its UNAVAILABLE read as "outcome unknown,
     * re-run" (exit 4) for a usage error (found in review) */
    if (names_a_port(target) && strchr(target, ',') == NULL && (digits == 0 || colon[1 + digits] != '\0')) {
      snprintf(error, error_size,
               "--target '%s': no port: HOST:PORT, dns:///NAME:PORT, ipv4:IP:PORT or [IPV6]:PORT (port 1..65535), "
               "or unix:PATH",
               target);
      return -1;
    }
    if (digits > 0 && colon[1 + digits] == '\0' && strchr(target, ',') == NULL) {
      long port = digits > 6 ? 0 : strtol(colon + 1, NULL, 10);
      if (port < 1 || port > 65535) {
        snprintf(error, error_size, "--target '%s': the port must be 1..65535", target);
        return -1;
      }
    }
    snprintf(out, size, "%s", target);
    return 0;
  }
  size_t count, bad_length;
  const char *bad;
  int family = list_family(list, &count, &bad, &bad_length);
  if (family != 0 && named && family != named) family = 0, bad = list, bad_length = strcspn(list, ",");
  if (family == 0) {
    /* the item at fault: "127.0.0.1:70000" was told about families (found in review) */
    snprintf(error, error_size,
             "--target '%s': item '%.*s' is not an IP:PORT address (port 1..65535) of the list's family; a list "
             "takes IP:PORT addresses of one family (127.0.0.1:50051,127.0.0.1:50052); for a host name use "
             "dns:///NAME:PORT, which reaches every address of the name",
             target, (int)bad_length, bad);
    return -1;
  }
  char rotated[TARGET_MAX];
  rotate_list(list, first_item(count), rotated, sizeof rotated);
  snprintf(out, size, "%s:%s", family == 4 ? "ipv4" : "ipv6", rotated);
  return 0;
}

/* The service config: round robin over the addresses; UNAVAILABLE retried. */
static void service_config(int attempts, char *out, size_t size) {
  int n = snprintf(out, size, "{\"loadBalancingConfig\":[{\"round_robin\":{}}]");
  if (attempts > 1)
    n += snprintf(out + n, size - (size_t)n,
                  ",\"methodConfig\":[{\"name\":[{}],\"retryPolicy\":{\"maxAttempts\":%d,"
                  "\"initialBackoff\":\"0.1s\",\"maxBackoff\":\"1s\",\"backoffMultiplier\":2,"
                  "\"retryableStatusCodes\":[\"UNAVAILABLE\"]}}]",
                  attempts);
  snprintf(out + n, size - (size_t)n, "}");
}

static int check_options(const gk_client_options *o, char *error, size_t size) {
  if (o == NULL || o->target == NULL || o->target[0] == '\0') {
    snprintf(error, size, "--target: a HOST:PORT is required");
    return -1;
  }
  if (o->token && strlen(o->token) > 1000) {
    snprintf(error, size, "--token-file: the bearer token is longer than 1000 characters");
    return -1;
  }
  if (o->retry_attempts < 0 || o->retry_attempts > GK_CLIENT_MAX_ATTEMPTS) {
    snprintf(error, size, "--retry-attempts %d: must be 1..%d (1 = no retry)", o->retry_attempts,
             GK_CLIENT_MAX_ATTEMPTS);
    return -1;
  }
  return 0;
}

static grpc_channel_credentials *credentials_for(const gk_client_options *o, char *error, size_t size) {
  if (o->tls_ca_file == NULL) return grpc_insecure_credentials_create();
  char *roots = read_text_file(o->tls_ca_file);
  if (roots == NULL) {
    snprintf(error, size, "--tls-ca '%s': cannot read the file (or it is over 1 MiB)", o->tls_ca_file);
    return NULL;
  }
  /* a DER file or a key failed every call with "empty address list" and the
   * core's internals, exit 4 "safe to re-run" (found in review) */
  if (strstr(roots, "-----BEGIN CERTIFICATE-----") == NULL) {
    snprintf(error, size, "--tls-ca '%s': holds no PEM certificate (-----BEGIN CERTIFICATE-----)", o->tls_ca_file);
    free(roots);
    return NULL;
  }
  grpc_channel_credentials *creds = grpc_ssl_credentials_create(roots, NULL, NULL, NULL);
  free(roots);
  return creds;
}

gk_client *gk_client_create(const gk_client_options *o, char *error, size_t size) {
  char target[TARGET_MAX + 8], config[512];
  if (check_options(o, error, size) != 0 || channel_target(o->target, target, sizeof target, error, size) != 0)
    return NULL;
  gk_client *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(error, size, "out of memory");
    return NULL;
  }
  grpc_init();
  grpc_channel_credentials *creds = credentials_for(o, error, size);
  if (creds == NULL) {
    free(c);
    grpc_shutdown();
    return NULL;
  }
  c->attempts = o->retry_attempts ? o->retry_attempts : GK_CLIENT_DEFAULT_ATTEMPTS;
  service_config(c->attempts, config, sizeof config);
  /* A list's channel name is "ipv4:a,b", which TLS checked against the
   * server's certificate as a whole and never matched: the instances of a
   * list share one certificate, checked against the list's first address. */
  char authority[TARGET_MAX];
  const char *first = strncmp(o->target, "ipv4:", 5) == 0 || strncmp(o->target, "ipv6:", 5) == 0 ? o->target + 5
                                                                                                : o->target;
  snprintf(authority, sizeof authority, "%.*s", (int)strcspn(first, ","), first);
  int tls_list = o->tls_ca_file != NULL && strchr(target, ',') != NULL; /* an ipv4:/ipv6: list named or made */
  grpc_arg args[5] = {
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = -1}},
      {GRPC_ARG_STRING, (char *)GRPC_ARG_SERVICE_CONFIG, {.string = config}},
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_ENABLE_RETRIES, {.integer = 1}},
      /* A request up to 64 MiB stays retryable (gRPC's default keeps 256 KiB). */
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_PER_RPC_RETRY_BUFFER_SIZE, {.integer = 64 << 20}},
      {GRPC_ARG_STRING, (char *)GRPC_ARG_DEFAULT_AUTHORITY, {.string = authority}},
  };
  grpc_channel_args channel_args = {tls_list ? 5u : 4u, args};
  c->channel = grpc_channel_create(target, creds, &channel_args);
  grpc_channel_credentials_release(creds);
  c->timeout_ms = o->timeout_ms;
  if (o->token) snprintf(c->authorization, sizeof c->authorization, "Bearer %s", o->token);
  if (o->request_id) snprintf(c->request_id, sizeof c->request_id, "%s", o->request_id);
  return c;
}

void gk_client_destroy(gk_client *c) {
  if (c == NULL) return;
  grpc_channel_destroy(c->channel);
  free(c);
  grpc_shutdown();
}

void gk_client_reply_free(gk_client_reply *r) {
  free(r->bytes);
  r->bytes = NULL;
  r->length = 0;
}

static uint8_t *flatten(grpc_byte_buffer *buffer, size_t *length) {
  grpc_byte_buffer_reader reader;
  *length = 0;
  if (buffer == NULL || !grpc_byte_buffer_reader_init(&reader, buffer)) return NULL;
  grpc_slice all = grpc_byte_buffer_reader_readall(&reader); /* decompressed */
  grpc_byte_buffer_reader_destroy(&reader);
  size_t n = GRPC_SLICE_LENGTH(all);
  uint8_t *bytes = malloc(n ? n : 1);
  if (bytes) {
    memcpy(bytes, GRPC_SLICE_START_PTR(all), n);
    *length = n;
  }
  grpc_slice_unref(all);
  return bytes;
}

static void copy_slice(char *dst, size_t size, grpc_slice s) {
  size_t n = GRPC_SLICE_LENGTH(s) < size - 1 ? GRPC_SLICE_LENGTH(s) : size - 1;
  memcpy(dst, GRPC_SLICE_START_PTR(s), n);
  dst[n] = '\0';
}

typedef struct call_state {
  grpc_completion_queue *cq;
  grpc_call *call;
  grpc_metadata metadata[2];
  size_t metadata_count;
  grpc_metadata_array initial, trailing;
  grpc_byte_buffer *response;
  grpc_status_code status;
  grpc_slice details;
} call_state;

static int run_batch(call_state *s, grpc_op *ops, size_t n, void *tag) {
  if (grpc_call_start_batch(s->call, ops, n, tag, NULL) != GRPC_CALL_OK) {
    /* refused before sending (a header the core will not send): no status
     * would ever come, and the caller's receive waited out the deadline */
    grpc_call_cancel_with_status(s->call, GRPC_STATUS_INTERNAL, "the client could not send the call", NULL);
    return -1;
  }
  grpc_event ev = grpc_completion_queue_pluck(s->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success ? 0 : -1;
}

/* The deadline of a call made now: --timeout-ms from now, or none. */
static gpr_timespec call_deadline(const gk_client *c) {
  return c->timeout_ms > 0 ? gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(c->timeout_ms, GPR_TIMESPAN))
                           : gpr_inf_future(GPR_CLOCK_REALTIME);
}

static void open_call_until(gk_client *c, call_state *s, const char *method, gpr_timespec deadline) {
  memset(s, 0, sizeof *s);
  s->cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_slice path = grpc_slice_from_static_string(method);
  s->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, path, NULL, deadline, NULL);
  grpc_slice_unref(path);
  if (c->authorization[0]) {
    s->metadata[s->metadata_count].key = grpc_slice_from_static_string("authorization");
    s->metadata[s->metadata_count++].value = grpc_slice_from_copied_string(c->authorization);
  }
  if (c->request_id[0]) {
    s->metadata[s->metadata_count].key = grpc_slice_from_static_string("x-request-id");
    s->metadata[s->metadata_count++].value = grpc_slice_from_copied_string(c->request_id);
  }
  grpc_metadata_array_init(&s->initial);
  grpc_metadata_array_init(&s->trailing);
}

static void open_call(gk_client *c, call_state *s, const char *method) { open_call_until(c, s, method, call_deadline(c)); }

static void copy_request_id(const call_state *s, gk_client_reply *r);

/* Reads initial metadata, the response and the status; fills the reply. */
static int finish_call(call_state *s, gk_client_reply *r) {
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[0].data.recv_initial_metadata.recv_initial_metadata = &s->initial;
  ops[1].op = GRPC_OP_RECV_MESSAGE;
  ops[1].data.recv_message.recv_message = &s->response;
  ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[2].data.recv_status_on_client.trailing_metadata = &s->trailing;
  ops[2].data.recv_status_on_client.status = &s->status;
  ops[2].data.recv_status_on_client.status_details = &s->details;
  if (run_batch(s, ops, 3, &s->response) != 0) {
    snprintf(r->details, sizeof r->details, "the call could not be completed");
    return -1;
  }
  r->code = (int)s->status;
  copy_slice(r->details, sizeof r->details, s->details);
  copy_request_id(s, r); /* greeksd's UNAVAILABLE carries it in the trailers */
  if (s->status == GRPC_STATUS_OK) r->bytes = flatten(s->response, &r->length);
  return 0;
}

static void close_call(call_state *s) {
  for (size_t i = 0; i < s->metadata_count; i++) {
    grpc_slice_unref(s->metadata[i].key);
    grpc_slice_unref(s->metadata[i].value);
  }
  if (s->response) grpc_byte_buffer_destroy(s->response);
  grpc_slice_unref(s->details);
  grpc_metadata_array_destroy(&s->initial);
  grpc_metadata_array_destroy(&s->trailing);
  grpc_call_unref(s->call);
  grpc_completion_queue_shutdown(s->cq);
  while (grpc_completion_queue_pluck(s->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(s->cq);
}

static int send_message(call_state *s, const uint8_t *bytes, size_t length, int first, int last) {
  grpc_slice slice = grpc_slice_from_copied_buffer((const char *)bytes, length);
  grpc_byte_buffer *buffer = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (first) {
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = s->metadata_count;
    ops[n].data.send_initial_metadata.metadata = s->metadata;
    n++;
  }
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n].data.send_message.send_message = buffer;
  n++;
  if (last) ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  int rc = run_batch(s, ops, n, buffer);
  grpc_byte_buffer_destroy(buffer);
  return rc;
}

/* One attempt of a client-streaming (or unary) call until `deadline`; sets
 * *refused when greeksd itself answered UNAVAILABLE (it had sent headers). */
static int stream_once(gk_client *c, const char *method, const uint8_t *const *requests, const size_t *lengths,
                       size_t count, gpr_timespec deadline, gk_client_reply *r, int *refused) {
  memset(r, 0, sizeof *r);
  call_state s;
  open_call_until(c, &s, method, deadline);
  int sent_all = 1;
  if (count == 0) {
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = s.metadata_count;
    ops[0].data.send_initial_metadata.metadata = s.metadata;
    ops[1].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    sent_all = run_batch(&s, ops, 2, &s) == 0;
  }
  /* A failed send means the server already ended the call: its status says why. */
  for (size_t i = 0; i < count && sent_all; i++)
    sent_all = send_message(&s, requests[i], lengths[i], i == 0, i + 1 == count) == 0;
  int rc = finish_call(&s, r);
  *refused = rc == 0 && r->code == GRPC_STATUS_UNAVAILABLE && s.initial.count > 0;
  close_call(&s);
  return rc;
}

/* greeksd's own UNAVAILABLE (draining, its breaker open, its store
 * unreachable) comes with response headers, which commit a gRPC call: the
 * channel's retry policy retries only what failed before them (a refused
 * connection, a killed instance). Such a refusal ran nothing, so the same
 * request (its idempotency key included) is sent again, round robin moving
 * it to the next instance, within the attempts and the call's deadline
 * (found in review: 8 of 10 calls to a draining instance and a healthy one
 * failed). A call of several messages is not sent again (see below). */
/* Keeps what the first refusal said when a later attempt failed otherwise:
 * "it may have been recorded" was replaced by the last attempt's "cannot
 * reconnect" (found in review). */
static void keep_first_refusal(gk_client_reply *r, const char *first) {
  if (first[0] == '\0' || strcmp(first, r->details) == 0) return;
  size_t n = strlen(r->details);
  snprintf(r->details + n, sizeof r->details - n, " (the first attempt: %s)", first);
}

int gk_client_stream(gk_client *c, const char *method, const uint8_t *const *requests, const size_t *lengths,
                     size_t count, gk_client_reply *r) {
  gpr_timespec deadline = call_deadline(c);
  int64_t backoff_ms = 100;
  char first[sizeof r->details] = "";
  /* a client stream may have been partly consumed: an UpdateMarketStream's
   * tick recorded, then "N messages recorded; send the rest to another
   * instance", which a resend of a keyless tick would record twice (found
   * in review). Only a call of one message to a unary method is sent again. */
  size_t length = strlen(method);
  int resendable = count <= 1 && !(length >= 6 && strcmp(method + length - 6, "Stream") == 0);
  for (int attempt = 1;; attempt++) {
    int refused = 0;
    int rc = stream_once(c, method, requests, lengths, count, deadline, r, &refused);
    if (attempt > 1) keep_first_refusal(r, first);
    if (!refused || !resendable || attempt >= c->attempts) return rc;
    if (attempt == 1) snprintf(first, sizeof first, "%s", r->details);
    gpr_timespec resume = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(backoff_ms, GPR_TIMESPAN));
    if (gpr_time_cmp(resume, deadline) >= 0) return rc;
    gk_client_reply_free(r);
    gpr_sleep_until(resume);
    backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
  }
}

int gk_client_unary(gk_client *c, const char *method, const uint8_t *request, size_t length, gk_client_reply *r) {
  const uint8_t *requests[1] = {request};
  return gk_client_stream(c, method, requests, &length, 1, r);
}

/* ---- server streams ---- */

/* x-request-id from the initial metadata, else from the trailers (a call that
 * fails before any message may send trailers only). */
static void copy_request_id(const call_state *s, gk_client_reply *r) {
  const grpc_metadata_array *arrays[2] = {&s->initial, &s->trailing};
  for (size_t a = 0; a < 2 && !r->request_id[0]; a++)
    for (size_t i = 0; i < arrays[a]->count; i++) {
      grpc_slice key = arrays[a]->metadata[i].key;
      if (GRPC_SLICE_LENGTH(key) == 12 && memcmp(GRPC_SLICE_START_PTR(key), "x-request-id", 12) == 0)
        copy_slice(r->request_id, sizeof r->request_id, arrays[a]->metadata[i].value);
    }
}

static int receive_initial_metadata(call_state *s) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_INITIAL_METADATA;
  op.data.recv_initial_metadata.recv_initial_metadata = &s->initial;
  return run_batch(s, &op, 1, &s->initial);
}

/* The next message into *message (NULL: the stream has ended). */
static int receive_message(call_state *s, grpc_byte_buffer **message) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = message;
  *message = NULL;
  return run_batch(s, &op, 1, message);
}

static int receive_status(call_state *s, gk_client_reply *r) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op.data.recv_status_on_client.trailing_metadata = &s->trailing;
  op.data.recv_status_on_client.status = &s->status;
  op.data.recv_status_on_client.status_details = &s->details;
  if (run_batch(s, &op, 1, &s->status) != 0) {
    snprintf(r->details, sizeof r->details, "the call could not be completed");
    return -1;
  }
  r->code = (int)s->status;
  copy_slice(r->details, sizeof r->details, s->details);
  copy_request_id(s, r);
  return 0;
}

enum { STREAM_RAN, STREAM_STOPPED, STREAM_OUT_OF_MEMORY };

/* Hands messages to on_message until the stream ends or it says stop. */
static int pump_messages(call_state *s, gk_client_message_fn *on_message, void *user) {
  for (;;) {
    grpc_byte_buffer *message;
    if (receive_message(s, &message) != 0 || message == NULL) return STREAM_RAN;
    size_t n;
    uint8_t *bytes = flatten(message, &n);
    grpc_byte_buffer_destroy(message);
    int out_of_memory = bytes == NULL, stop = out_of_memory || on_message(user, bytes, n) != 0;
    free(bytes);
    if (stop) {
      grpc_call_cancel(s->call, NULL);
      return out_of_memory ? STREAM_OUT_OF_MEMORY : STREAM_STOPPED;
    }
  }
}

int gk_client_server_stream(gk_client *c, const char *method, const uint8_t *request, size_t length,
                            gk_client_message_fn *on_message, void *user, gk_client_reply *r) {
  memset(r, 0, sizeof *r);
  call_state s;
  open_call(c, &s, method);
  int how = STREAM_RAN;
  /* A failed send means the server already ended the call: its status says why. */
  if (send_message(&s, request, length, 1, 1) == 0 && receive_initial_metadata(&s) == 0)
    how = pump_messages(&s, on_message, user);
  int rc = receive_status(&s, r);
  if (rc == 0 && how != STREAM_RAN) {
    r->code = how == STREAM_STOPPED ? GRPC_STATUS_OK : GRPC_STATUS_RESOURCE_EXHAUSTED;
    snprintf(r->details, sizeof r->details, "%s", how == STREAM_STOPPED ? "stopped by the caller"
                                                                        : "out of memory reading a message");
  }
  close_call(&s);
  return rc;
}

const char *gk_client_code_name(int code) {
  static const char *const names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                      "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? names[code] : "UNKNOWN";
}
