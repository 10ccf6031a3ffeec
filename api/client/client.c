/* Synchronous gRPC calls on the C core: one pluck queue per call. A server
 * stream reads one message per batch, so a slow consumer holds the stream back
 * (gRPC flow control) rather than buffering it here. */
#include "client.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gk_client {
  grpc_channel *channel;
  int64_t timeout_ms;
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

gk_client *gk_client_create(const gk_client_options *o, char *error, size_t size) {
  if (o == NULL || o->target == NULL || o->target[0] == '\0') {
    snprintf(error, size, "--target: a HOST:PORT is required");
    return NULL;
  }
  if (o->token && strlen(o->token) > 1000) {
    snprintf(error, size, "the bearer token is longer than 1000 characters");
    return NULL;
  }
  gk_client *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(error, size, "out of memory");
    return NULL;
  }
  grpc_init();
  grpc_channel_credentials *creds;
  if (o->tls_ca_file) {
    char *roots = read_text_file(o->tls_ca_file);
    if (roots == NULL) {
      snprintf(error, size, "--tls-ca '%s': cannot read the file (or it is over 1 MiB)", o->tls_ca_file);
      free(c);
      grpc_shutdown();
      return NULL;
    }
    creds = grpc_ssl_credentials_create(roots, NULL, NULL, NULL);
    free(roots);
  } else {
    creds = grpc_insecure_credentials_create();
  }
  grpc_arg arg = {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = -1}};
  grpc_channel_args args = {1, &arg};
  c->channel = grpc_channel_create(o->target, creds, &args);
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
  if (grpc_call_start_batch(s->call, ops, n, tag, NULL) != GRPC_CALL_OK) return -1;
  grpc_event ev = grpc_completion_queue_pluck(s->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success ? 0 : -1;
}

static void open_call(gk_client *c, call_state *s, const char *method) {
  memset(s, 0, sizeof *s);
  s->cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec deadline = c->timeout_ms > 0
                              ? gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(c->timeout_ms, GPR_TIMESPAN))
                              : gpr_inf_future(GPR_CLOCK_REALTIME);
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
  for (size_t i = 0; i < s->initial.count; i++) {
    grpc_slice key = s->initial.metadata[i].key;
    if (GRPC_SLICE_LENGTH(key) == 12 && memcmp(GRPC_SLICE_START_PTR(key), "x-request-id", 12) == 0)
      copy_slice(r->request_id, sizeof r->request_id, s->initial.metadata[i].value);
  }
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

int gk_client_stream(gk_client *c, const char *method, const uint8_t *const *requests, const size_t *lengths,
                     size_t count, gk_client_reply *r) {
  memset(r, 0, sizeof *r);
  call_state s;
  open_call(c, &s, method);
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
  close_call(&s);
  return rc;
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
