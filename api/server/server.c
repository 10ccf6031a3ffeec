/*
 * greeksd's gRPC core plumbing: request slots, the completion-queue threads,
 * per-call metadata (x-request-id, traceparent, bearer token, deadline), the
 * server span and the access log record (adr/0032), replies, the
 * waiting for request messages, and the drain. Who owns a call when is in
 * server_internal.h ("Ownership"); why, and how the drain decides which calls
 * to serve, in adr/0021. The RPCs themselves live in handlers.c and health.c;
 * plaintext connections are accepted by listener.c.
 */
#include "server.h"

#include <grpc/compression.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "listener.h"
#include "greeks/clock.h"
#include "greeks/pool.h"
#include "greeks/isa.h"
#include "greeks/log.h"
#include "greeks/otlp.h"
#include "greeks/pricing.h"
#include "greeks/text.h"
#include "greeks/trace.h"
#include "log_sink.h"
#include "server_internal.h"

static const char *const method_paths[METHOD_COUNT] = {
    "/greeks.v1.PricingService/PriceChain",
    "/greeks.v1.PricingService/PriceBatch",
    "/greeks.v1.PricingService/ImpliedVol",
    "/greeks.v1.PricingService/RevaluePortfolio",
    "/greeks.v1.PricingService/RevaluePortfolioStream",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/greeks.v1.BookService/OpenBook",
    "/greeks.v1.BookService/ExecuteTrade",
    "/greeks.v1.BookService/CorrectTrade",
    "/greeks.v1.BookService/SetRiskLimits",
    "/greeks.v1.BookService/UpdateMarket",
    "/greeks.v1.BookService/UpdateMarketStream",
    "/greeks.v1.BookService/GetBook",
    "/greeks.v1.BookService/GetBookAsOf",
    "/greeks.v1.BookService/GetBookRisk",
    "/greeks.v1.BookService/GenerateHedge",
    "/greeks.v1.BookService/GenerateStrategies",
    "/greeks.v1.BookService/GetAuditTrail",
    "/greeks.v1.BookService/SubscribeEvents",
    "(unregistered)",
};

/* Request slots kept posted per method and server thread: enough that a burst
 * of new calls never waits for a slot to be re-posted. */
enum { SLOTS_PER_THREAD = 32, HEALTH_SLOTS = 4 };

/* Unary methods read one request message before their handler runs. */
static int method_reads_payload(rpc_method m) {
  return m != METHOD_REVALUE_STREAM && m != METHOD_BOOK_MARKET_STREAM && m != METHOD_UNKNOWN;
}
static int method_is_book_stream(rpc_method m) { return m == METHOD_BOOK_AUDIT || m == METHOD_BOOK_SUBSCRIBE; }
static int method_is_health(rpc_method m) { return m == METHOD_HEALTH_CHECK || m == METHOD_HEALTH_WATCH; }
/* Methods whose small calls are answered on the thread that received them: the
 * close is watched by the reply batch unless the handler hands the call off
 * (rpc_watch_close). */
static int method_answers_inline(rpc_method m) { return m == METHOD_PRICE_CHAIN || m == METHOD_PRICE_BATCH; }

/* ---- call lifetime ---- */

static void log_call_end(rpc_call *c);
static grpc_status_code final_code(const rpc_call *c, const char **why);

/* Metrics (server_metrics.c): the call's final code and duration. */
static void record_call_end(rpc_call *c) {
  const char *why;
  server_metrics_call_ended(c, final_code(c, &why));
}

static void free_call(rpc_call *c) {
  greeksd_server *s = c->server;
  if (c->started_ns != 0) record_call_end(c);
  if (c->started_ns != 0) log_call_end(c);
  if (c->job && c->free_job) c->free_job(c->job);
  for (size_t i = 0; c->metadata_sent && i < c->initial_metadata_count; i++) {
    grpc_slice_unref(c->initial_metadata[i].key);
    grpc_slice_unref(c->initial_metadata[i].value);
  }
  if (c->has_status_details) grpc_slice_unref(c->status_details);
  if (c->request_payload) grpc_byte_buffer_destroy(c->request_payload);
  if (c->reply_payload) grpc_byte_buffer_destroy(c->reply_payload);
  if (c->reply_bytes_held) atomic_fetch_sub(&s->unread_reply_bytes, c->reply_bytes_held);
  if (c->watch_payload) grpc_byte_buffer_destroy(c->watch_payload);
  if (c->stream_payload) grpc_byte_buffer_destroy(c->stream_payload);
  grpc_metadata_array_destroy(&c->request_metadata);
  if (c->method == METHOD_UNKNOWN) grpc_call_details_destroy(&c->unknown);
  if (c->call) grpc_call_unref(c->call);
  int admitted = c->admitted, standing = rpc_is_standing(c->method);
  free(c);
  pthread_mutex_lock(&s->lock);
  s->live_calls--;
  if (admitted) s->admitted_calls--;
  if (admitted && standing) s->standing_calls--;
  pthread_cond_broadcast(&s->changed);
  pthread_mutex_unlock(&s->lock);
}

void rpc_ref(rpc_call *c) { atomic_fetch_add(&c->refs, 1); }

void rpc_release(rpc_call *c) {
  if (atomic_fetch_sub(&c->refs, 1) == 1) free_call(c);
}

int rpc_is_cancelled(const rpc_call *c) { return atomic_load(&c->cancelled); }
int rpc_deadline_passed(const rpc_call *c) { return c->deadline_ns != 0 && gk_monotonic_ns() > c->deadline_ns; }

static void init_tag(rpc_tag *t, tag_kind kind, rpc_call *c) {
  t->kind = kind;
  t->call = c;
}

static rpc_call *new_call(greeksd_server *s, rpc_method m) {
  rpc_call *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->server = s;
  c->method = m;
  atomic_init(&c->refs, 1); /* the slot's */
  atomic_init(&c->cancelled, 0);
  atomic_init(&c->answered, 0);
  c->watch_sent_status = -1;
  init_tag(&c->tag_new, TAG_NEW_CALL, c);
  init_tag(&c->tag_message, TAG_MESSAGE, c);
  init_tag(&c->tag_closed, TAG_CLOSED, c);
  init_tag(&c->tag_replied, TAG_REPLIED, c);
  init_tag(&c->tag_received, TAG_RECEIVED, c);
  init_tag(&c->tag_sent, TAG_SENT, c);
  init_tag(&c->tag_streamed, TAG_STREAMED, c);
  grpc_metadata_array_init(&c->request_metadata);
  if (m == METHOD_UNKNOWN) grpc_call_details_init(&c->unknown);
  return c;
}

/* Every method is registered without payload handling: the call is matched
 * when its headers arrive, so the drain knows which calls came before it, even
 * those still uploading their request (adr/0021). */
static void post_request_slot(greeksd_server *s, rpc_method m) {
  rpc_call *c = new_call(s, m);
  if (c == NULL) {
    gk_logf(GK_LOG_ERROR, "greeksd", "out of memory posting a request slot for %s", method_paths[m]);
    return;
  }
  pthread_mutex_lock(&s->lock);
  s->live_calls++;
  pthread_mutex_unlock(&s->lock);
  RPC_HANDOFF_RELEASE(&c->tag_new);
  grpc_call_error e =
      m == METHOD_UNKNOWN
          ? grpc_server_request_call(s->server, &c->call, &c->unknown, &c->request_metadata, s->cq, s->cq, &c->tag_new)
          : grpc_server_request_registered_call(s->server, s->registered[m], &c->call, &c->deadline,
                                                &c->request_metadata, NULL, s->cq, s->cq, &c->tag_new);
  if (e != GRPC_CALL_OK) {
    gk_logf(GK_LOG_ERROR, "greeksd", "could not post a request slot for %s (grpc error %d)", method_paths[m], (int)e);
    free_call(c);
  }
}

/* ---- metadata ---- */

static int slice_equals(grpc_slice slice, const char *text) {
  size_t n = strlen(text);
  return GRPC_SLICE_LENGTH(slice) == n && memcmp(GRPC_SLICE_START_PTR(slice), text, n) == 0;
}

/* Writes v as 16 lower-case hex digits (no terminator). */
static void put_hex64(char *out, uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  for (int k = 15; k >= 0; k--, v >>= 4) out[k] = digits[v & 15];
}

/* A caller's id is kept when it is 1..GK_ID_SIZE-1 printable characters without
 * spaces, so it can go into logs and metadata as is; otherwise a new one. */
static void take_request_id(rpc_call *c) {
  for (size_t i = 0; i < c->request_metadata.count; i++) {
    const grpc_metadata *md = &c->request_metadata.metadata[i];
    if (!slice_equals(md->key, "x-request-id")) continue;
    size_t n = GRPC_SLICE_LENGTH(md->value);
    const uint8_t *v = GRPC_SLICE_START_PTR(md->value);
    int ok = n >= 1 && n < GK_ID_SIZE;
    for (size_t k = 0; ok && k < n; k++) ok = v[k] > 0x20 && v[k] < 0x7f;
    if (ok) {
      memcpy(c->request_id, v, n);
      c->request_id[n] = '\0';
      return;
    }
  }
  greeksd_server *s = c->server;
  uint64_t serial = atomic_fetch_add_explicit(&s->request_id_counter, 1, memory_order_relaxed);
  put_hex64(c->request_id, s->request_id_prefix);
  put_hex64(c->request_id + 16, serial);
  c->request_id[32] = '\0';
}

static const grpc_slice *find_metadata(const rpc_call *c, const char *key) {
  for (size_t i = 0; i < c->request_metadata.count; i++)
    if (slice_equals(c->request_metadata.metadata[i].key, key)) return &c->request_metadata.metadata[i].value;
  return NULL;
}

/* W3C Trace Context: a valid traceparent is continued (its sampled flag
 * honoured, its tracestate kept when printable and at most 256 characters);
 * an absent or invalid one starts a new trace. The server span starts now. */
static void take_trace(rpc_call *c) {
  greeksd_server *s = c->server;
  gk_trace_context incoming;
  const grpc_slice *parent = find_metadata(c, "traceparent");
  int continued = parent != NULL && gk_traceparent_parse((const char *)GRPC_SLICE_START_PTR(*parent),
                                                         GRPC_SLICE_LENGTH(*parent), &incoming, NULL) == GK_OK;
  gk_trace_context context = gk_tracer_begin(s->tracer, continued ? &incoming : NULL);
  gk_span_start(s->tracer, &c->span, &context, c->method == METHOD_UNKNOWN ? "unregistered" : method_paths[c->method] + 1,
                GK_SPAN_SERVER);
  const grpc_slice *state = continued ? find_metadata(c, "tracestate") : NULL;
  size_t n = state ? GRPC_SLICE_LENGTH(*state) : 0;
  int printable = n < sizeof c->span.trace_state;
  for (size_t k = 0; printable && k < n; k++) printable = GRPC_SLICE_START_PTR(*state)[k] >= 0x20 && GRPC_SLICE_START_PTR(*state)[k] < 0x7f;
  if (n > 0 && printable) memcpy(c->span.trace_state, GRPC_SLICE_START_PTR(*state), n), c->span.trace_state[n] = '\0';
  gk_span_set_string(&c->span, "rpc.system", "grpc");
  gk_span_set_string(&c->span, "greeks.request_id", c->request_id);
}

gk_trace_context rpc_trace_of(const rpc_call *c) { return gk_span_context(&c->span); }

void rpc_correlation_id(const rpc_call *c, char out[GK_ID_SIZE]) {
  if (gk_trace_context_valid(&c->span.context)) gk_trace_hex(c->span.context.trace_id, GK_TRACE_ID_BYTES, out);
  else snprintf(out, GK_ID_SIZE, "%s", c->request_id);
}

/* Remaining time to the call's deadline, on our monotonic clock. */
static void take_deadline(rpc_call *c) {
  gpr_timespec deadline = c->deadline;
  if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) == 0) {
    c->deadline_ns = 0;
    return;
  }
  gpr_timespec now = gpr_now(deadline.clock_type);
  gpr_timespec left = gpr_time_sub(deadline, now);
  /* Centuries away (Go and Java clients send ~292 years for "none"): no
   * deadline. Its nanoseconds would overflow, and did, into one long past. */
  if (left.tv_sec >= (INT64_MAX - c->started_ns) / GK_NS_PER_S - 1) {
    c->deadline_ns = 0;
    return;
  }
  int64_t left_ns = (int64_t)left.tv_sec * GK_NS_PER_S + left.tv_nsec;
  c->deadline_ns = c->started_ns + left_ns;
  if (c->deadline_ns == 0) c->deadline_ns = 1;
}

/* ---- replies ---- */

static grpc_status_code grpc_code_of(const gk_status *status) { return (grpc_status_code)gk_status_grpc_code(status); }

static const char *method_name(rpc_method m) { return strrchr(method_paths[m], '/') + 1; }

/* An unknown method's path, printable and bounded, for the log and the reply. */
static void unknown_path(const rpc_call *c, char *out, size_t size) {
  size_t n = GRPC_SLICE_LENGTH(c->unknown.method), k = 0;
  const uint8_t *p = GRPC_SLICE_START_PTR(c->unknown.method);
  for (size_t i = 0; i < n && k + 1 < size; i++) out[k++] = p[i] > 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
  out[k] = '\0';
}

/* A client cancel this close to the deadline is the deadline's: the client's
 * own clock ends the call (it resets the stream) a little before the server's
 * copy of the deadline, taken from the rounded grpc-timeout header when the
 * headers arrived, so deadline-ended streams were counted CANCELLED, spending
 * no error budget (found in review: 3 of 8 subscriptions with a 0.5 s
 * deadline). 50 ms, or 1% of a longer timeout: the client's own delay
 * between setting its deadline and sending the headers counts too, and on a
 * loaded 2-core host it passed 20 ms (1 of 8 in make test). */
static int cancelled_at_the_deadline(const rpc_call *c) {
  if (c->deadline_ns == 0) return 0;
  int64_t timeout = c->deadline_ns - c->started_ns, slack = 50 * GK_NS_PER_MS;
  if (timeout / 100 > slack) slack = timeout / 100;
  return gk_monotonic_ns() + slack > c->deadline_ns;
}

/* How the call really ended: a client that went away or a deadline that
 * passed ends the call whatever the server tried to send. */
static grpc_status_code final_code(const rpc_call *c, const char **why) {
  *why = NULL;
  if (c->closed && c->close_cancelled) {
    if (atomic_load(&c->server_cancel_code) == GRPC_STATUS_RESOURCE_EXHAUSTED)
      return *why = "the request message did not arrive within --receive-timeout-ms", GRPC_STATUS_RESOURCE_EXHAUSTED;
    /* grpc_server_cancel_all_calls answers UNAVAILABLE ("Cancelling all
     * calls"): record what the client got */
    if (atomic_load(&c->server->drain_cancelled)) return *why = "cancelled by the drain timeout", GRPC_STATUS_UNAVAILABLE;
    if (cancelled_at_the_deadline(c)) return *why = "the deadline passed", GRPC_STATUS_DEADLINE_EXCEEDED;
    return *why = "the client cancelled the call", GRPC_STATUS_CANCELLED;
  }
  if (atomic_load(&c->answered)) return c->reply_code;
  return *why = "never answered", GRPC_STATUS_UNKNOWN;
}

/* The server span ends with the call: its gRPC code, and ERROR for the codes
 * OpenTelemetry counts as a server's failure. */
static void end_server_span(rpc_call *c, grpc_status_code code, const char *error) {
  gk_span_set_int(&c->span, "rpc.grpc.status_code", (int64_t)code);
  if (c->book_id[0]) gk_span_set_string(&c->span, "greeks.book_id", c->book_id);
  if (code == GRPC_STATUS_UNKNOWN || code == GRPC_STATUS_DEADLINE_EXCEEDED || code == GRPC_STATUS_UNIMPLEMENTED ||
      code == GRPC_STATUS_INTERNAL || code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DATA_LOSS)
    gk_span_set_error(&c->span, error[0] ? error : greeksd_grpc_code_name(code));
  gk_span_end(c->server->tracer, &c->span);
}

/* The access log record: one per call, DEBUG when it succeeded, INFO when not. */
static void log_access(rpc_call *c, const char *path, grpc_status_code code, int64_t micros, const char *error) {
  if (!gk_log_enabled(code == GRPC_STATUS_OK ? GK_LOG_DEBUG : GK_LOG_INFO)) return; /* at info, every good call */
  char trace_id[GK_TRACE_ID_HEX_SIZE], span_id[GK_SPAN_ID_HEX_SIZE], correlation[GK_ID_SIZE];
  gk_log_fields f = {.request_id = c->request_id, .method = path, .has_code = true, .code = (int)code,
                     .has_duration = true, .duration_us = micros};
  if (gk_trace_context_valid(&c->span.context)) {
    gk_trace_hex(c->span.context.trace_id, GK_TRACE_ID_BYTES, trace_id);
    gk_trace_hex(c->span.context.span_id, GK_SPAN_ID_BYTES, span_id);
    f.trace_id = trace_id, f.span_id = span_id;
  }
  rpc_correlation_id(c, correlation);
  f.correlation_id = correlation;
  f.book_id = c->book_id[0] ? c->book_id : NULL;
  f.error = error[0] ? error : NULL;
  char *peer = c->call ? grpc_call_get_peer(c->call) : NULL;
  /* "fd:N": our own listener's connection; "unknown": gRPC's answer once the
   * call was cancelled (it read as a peer named "unknown": found in review) */
  f.peer = peer && strncmp(peer, "fd:", 3) != 0 && strcmp(peer, "unknown") != 0 ? peer : NULL;
  gk_log_record(code == GRPC_STATUS_OK ? GK_LOG_DEBUG : GK_LOG_INFO, "access", &f, "%s %s in %lld us%s%s%s", path,
                greeksd_grpc_code_name((int)code), (long long)micros, c->token_name ? " (token " : "",
                c->token_name ? c->token_name : "", c->token_name ? ")" : "");
  gpr_free(peer);
}

/* What a handler answered beyond its own reaction to a cancellation it took
 * for the client's ("the client cancelled the call[: how far it got]"): a
 * drain or a receive timeout cancels the call too, and the reaction then
 * named the wrong party (found in review). */
static const char *answer_beyond_the_cancel(const char *details) {
  static const char reaction[] = "the client cancelled the call";
  if (strncmp(details, reaction, sizeof reaction - 1) != 0) return details;
  const char *rest = details + sizeof reaction - 1;
  while (*rest == ':' || *rest == ' ') rest++;
  return rest;
}

static void log_call_end(rpc_call *c) {
  greeksd_server *s = c->server;
  const char *why;
  grpc_status_code code = final_code(c, &why);
  atomic_fetch_add(code == GRPC_STATUS_OK ? &s->calls_ok : &s->calls_failed, 1);
  char path[128], details[256] = "", error[512] = "";
  if (c->method == METHOD_UNKNOWN) unknown_path(c, path, sizeof path);
  else snprintf(path, sizeof path, "%s", method_name(c->method));
  if (code != GRPC_STATUS_OK && c->has_status_details)
    snprintf(details, sizeof details, "%.*s", (int)GRPC_SLICE_LENGTH(c->status_details),
             (const char *)GRPC_SLICE_START_PTR(c->status_details));
  int64_t micros = (gk_monotonic_ns() - c->started_ns) / GK_NS_PER_US;
  /* With a cancellation, what the server had answered (e.g. how far a
   * revaluation got) is kept after "answered=": the client never sees it.
   * Not the handler's own reaction to the cancellation ("the client cancelled
   * the call" after a drain or a deadline said who cancelled, wrongly). */
  const char *answered = why ? answer_beyond_the_cancel(details) : details;
  if (why != NULL || details[0])
    snprintf(error, sizeof error, "%s%s%s", why ? why : details, why && answered[0] ? "; answered=" : "",
             why ? answered : "");
  end_server_span(c, code, error);
  log_access(c, path, code, micros, error);
}

/* x-request-id; with a trace, traceparent (the server span as the parent of
 * whatever the client does next) and x-trace-id. */
grpc_op rpc_initial_metadata_op(rpc_call *c) {
  size_t n = 0;
  c->initial_metadata[n].key = grpc_slice_from_static_string("x-request-id");
  c->initial_metadata[n++].value = grpc_slice_from_copied_string(c->request_id);
  if (gk_trace_context_valid(&c->span.context)) {
    char traceparent[GK_TRACEPARENT_SIZE], trace_id[GK_TRACE_ID_HEX_SIZE];
    gk_traceparent_format(&c->span.context, traceparent);
    gk_trace_hex(c->span.context.trace_id, GK_TRACE_ID_BYTES, trace_id);
    c->initial_metadata[n].key = grpc_slice_from_static_string("traceparent");
    c->initial_metadata[n++].value = grpc_slice_from_copied_string(traceparent);
    c->initial_metadata[n].key = grpc_slice_from_static_string("x-trace-id");
    c->initial_metadata[n++].value = grpc_slice_from_copied_string(trace_id);
  }
  c->initial_metadata_count = n;
  c->metadata_sent = 1;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_INITIAL_METADATA;
  op.data.send_initial_metadata.count = n;
  op.data.send_initial_metadata.metadata = c->initial_metadata;
  return op;
}

/* The details as UTF-8: a client decodes grpc-message as UTF-8 and, when it
 * is not, shows all of it as Latin-1; a message cut inside a character of a
 * client's own text came back as mojibake (found in review). */
static grpc_slice clean_details(const char *details) {
  size_t n = strlen(details);
  if (gk_text_is_clean((const uint8_t *)details, n)) return grpc_slice_from_copied_string(details);
  char *text = malloc(n + 1);
  if (text == NULL) return grpc_slice_from_static_string("(details not UTF-8; out of memory cleaning them)");
  memcpy(text, details, n + 1);
  gk_text_make_clean(text);
  grpc_slice slice = grpc_slice_from_copied_string(text);
  free(text);
  return slice;
}

/* Whether `bytes` more of replies may wait for their clients. A reply stays
 * in the core until its client reads it, outside the resource quota (which
 * counts what the core reads): 40 connections that never read their
 * revaluations' answers took greeksd from 44 to 543 MB under a 64 MiB limit,
 * growing with every call (found in review). So the replies not yet read are
 * held to --memory-limit-mb as well; a reply past it is dropped for a short
 * RESOURCE_EXHAUSTED. Counted from the reply's start to its call's end. */
static int reply_fits(rpc_call *c, size_t bytes, char *why, size_t size) {
  greeksd_server *s = c->server;
  size_t limit = (size_t)s->config.memory_limit_bytes;
  size_t held = atomic_fetch_add(&s->unread_reply_bytes, bytes);
  if (held + bytes <= limit) {
    c->reply_bytes_held = bytes;
    return 1;
  }
  atomic_fetch_sub(&s->unread_reply_bytes, bytes);
  snprintf(why, size,
           "the reply (%.1f MiB) would take the replies not yet read by their clients past %.0f MiB "
           "(--memory-limit-mb; %.1f MiB held): retry later (clients that stop reading hold theirs)",
           (double)bytes / 1048576.0, (double)limit / 1048576.0, (double)held / 1048576.0);
  return 0;
}

void rpc_reply(rpc_call *c, grpc_status_code code, const char *details, grpc_byte_buffer *response) {
  if (atomic_exchange(&c->answered, 1)) {
    gk_logf(GK_LOG_ERROR, "greeksd", "request_id=%s: bug: a second answer (code %d, %s) was dropped", c->request_id,
            (int)code, details ? details : "");
    if (response) grpc_byte_buffer_destroy(response);
    return;
  }
  char too_much[256];
  if (response != NULL && !reply_fits(c, grpc_byte_buffer_length(response), too_much, sizeof too_much)) {
    grpc_byte_buffer_destroy(response);
    response = NULL;
    code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    details = too_much;
  }
  c->reply_payload = response;
  c->reply_code = code;
  c->status_details = clean_details(details ? details : "");
  c->has_status_details = 1;
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (!c->metadata_sent) ops[n++] = rpc_initial_metadata_op(c);
  if (response != NULL) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = response;
    n++;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n].data.send_status_from_server.status_details = &c->status_details;
  n++;
  int closes = !c->close_watched; /* this batch completes once the client's close is in too */
  if (closes) {
    c->close_watched = 1;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->close_cancelled;
    n++;
  }
  c->reply_closes = closes;
  rpc_ref(c); /* the reply batch's */
  RPC_HANDOFF_RELEASE(&c->tag_replied);
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->tag_replied, NULL);
  if (e != GRPC_CALL_OK) {
    gk_logf(GK_LOG_ERROR, "greeksd", "request_id=%s: could not start the reply (grpc error %d)", c->request_id, (int)e);
    rpc_release(c);
  }
}

/* The status's message, and its field and value where the message leaves the
 * value out (docs/api.md: an error names the field, the value and the rule;
 * "trade_id may hold only letters..." said which rule, not which id). */
void rpc_reply_status(rpc_call *c, const gk_status *status) {
  char details[sizeof status->message + sizeof status->field + sizeof status->value + 32];
  int n = snprintf(details, sizeof details, "%s", status->message);
  if (n > 0 && (size_t)n < sizeof details && status->value[0] && !strstr(status->message, status->value))
    snprintf(details + n, sizeof details - (size_t)n, " (%s%s'%s')", status->field, status->field[0] ? ": " : "",
             status->value);
  rpc_reply(c, grpc_code_of(status), details, NULL);
}

grpc_byte_buffer *rpc_buffer_from(uint8_t *bytes, size_t length) {
  grpc_slice slice = grpc_slice_new(bytes, length, free);
  grpc_byte_buffer *buffer = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return buffer;
}

/* ---- waiting for a request message (a unary call's, or a revaluation
 * stream's next chunk) ----
 *
 * A client may declare a message of up to 4 GiB and send it slowly; the core
 * holds the stream until it is complete. Calls waiting for their message are
 * listed, and the health thread cancels those that wait longer than
 * --receive-timeout-ms (rpc_cancel_slow_uploads). */

void rpc_await_message(rpc_call *c) {
  greeksd_server *s = c->server;
  pthread_mutex_lock(&s->lock);
  c->awaiting_since_ns = gk_monotonic_ns();
  c->awaiting_next = s->awaiting;
  s->awaiting = c;
  pthread_mutex_unlock(&s->lock);
}

void rpc_message_arrived(rpc_call *c) {
  greeksd_server *s = c->server;
  pthread_mutex_lock(&s->lock);
  for (rpc_call **p = &s->awaiting; *p; p = &(*p)->awaiting_next)
    if (*p == c) {
      *p = c->awaiting_next;
      break;
    }
  c->awaiting_since_ns = 0;
  pthread_mutex_unlock(&s->lock);
}

int rpc_cancelled_by_server(const rpc_call *c) { return atomic_load(&c->server_cancel_code) != 0; }

/* Each call's limit is its own snapshot's: a reload never changes the rules
 * under a call in flight (a stream opened at 20 s was cut at 1 s by a reload:
 * found in review). */
void rpc_cancel_slow_uploads(greeksd_server *s) {
  int64_t now = gk_monotonic_ns();
  pthread_mutex_lock(&s->lock);
  for (rpc_call *c = s->awaiting; c; c = c->awaiting_next) { /* each holds its RECV_MESSAGE reference */
    int64_t limit = rpc_config(c)->receive_timeout_ms * GK_NS_PER_MS;
    if (c->awaiting_since_ns != 0 && now - c->awaiting_since_ns > limit) {
      c->awaiting_since_ns = 0; /* once */
      atomic_store(&c->server_cancel_code, GRPC_STATUS_RESOURCE_EXHAUSTED); /* for the access log and metrics */
      gk_logf(GK_LOG_INFO, "greeksd", "request_id=%s: the request message did not arrive within %lld ms: cancelled",
              c->request_id, (long long)(limit / GK_NS_PER_MS));
      grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                   "the request message did not arrive within --receive-timeout-ms", NULL);
    }
  }
  pthread_mutex_unlock(&s->lock);
}

int rpc_is_standing(int method) { return method == METHOD_HEALTH_WATCH || method == METHOD_BOOK_SUBSCRIBE; }

/* Idle: no call in flight but the standing streams, which wait for hours
 * between messages (a probe's Watch, a risk screen's subscription). Counting
 * them kept a burst's peak for as long as one was open (221 MB held against
 * 100 once the Watch closed: found in review). */
void rpc_trim_when_idle(greeksd_server *s) {
  int64_t now = gk_monotonic_ns();
  if (now - s->last_trim_ns < 10 * GK_NS_PER_S) return;
  pthread_mutex_lock(&s->lock);
  int idle = s->admitted_calls == s->standing_calls;
  pthread_mutex_unlock(&s->lock);
  if (!idle) return;
  s->last_trim_ns = now;
  malloc_trim(64 << 20); /* keeps 64 MiB for the next burst */
  atomic_fetch_add(&s->heap_trims, 1);
}

static void receive_message(rpc_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->request_payload;
  rpc_ref(c); /* the batch's */
  rpc_await_message(c);
  RPC_HANDOFF_RELEASE(&c->tag_message);
  if (grpc_call_start_batch(c->call, &op, 1, &c->tag_message, NULL) != GRPC_CALL_OK) {
    rpc_message_arrived(c);
    rpc_release(c);
    rpc_reply(c, GRPC_STATUS_INTERNAL, "could not read the request message", NULL);
  }
}

/* ---- new calls ---- */

void rpc_watch_close(rpc_call *c) {
  if (c->close_watched) return;
  c->close_watched = 1;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->close_cancelled;
  rpc_ref(c);
  RPC_HANDOFF_RELEASE(&c->tag_closed);
  if (grpc_call_start_batch(c->call, &op, 1, &c->tag_closed, NULL) != GRPC_CALL_OK) rpc_release(c);
}

typedef void (*method_handler)(rpc_call *call);
static const method_handler handlers[METHOD_REGISTERED_COUNT] = {
    handle_price_chain,          handle_price_batch,     handle_implied_vol,
    handle_revalue,              handle_revalue_stream_start, handle_health_check,
    handle_health_watch,         handle_book_open,       handle_book_execute,
    handle_book_correct,         handle_book_limits,     handle_book_market,
    handle_book_market_stream_start, handle_book_get,    handle_book_get_as_of,
    handle_book_risk,            handle_book_hedge,      handle_book_strategies,
    handle_book_audit,           handle_book_subscribe,
};

/* A call that arrives after SIGTERM is refused; health calls are answered
 * (NOT_SERVING) so that probes see the drain. */
static int admit(rpc_call *c) {
  greeksd_server *s = c->server;
  pthread_mutex_lock(&s->lock);
  if (!atomic_load(&s->draining)) {
    c->admitted = 1;
    s->admitted_calls++;
    if (rpc_is_standing(c->method)) s->standing_calls++;
  }
  pthread_mutex_unlock(&s->lock);
  return c->admitted || method_is_health(c->method);
}

/* The token sets of `snap` into sets[]; their count. */
static size_t token_sets_of(const greeksd_snapshot *snap, char **sets[1 + GREEKSD_MAX_TOKENS]) {
  size_t count = 0;
  sets[count++] = snap->anonymous_tokens;
  for (int i = 0; i < snap->config.token_count; i++) sets[count++] = snap->named_tokens[i];
  return count;
}

const char *rpc_token_revoked(rpc_call *c) {
  const greeksd_snapshot *live = server_snapshot(c->server);
  if (live == c->snap || c->snap == NULL || !live->auth) return NULL;
  char **sets[1 + GREEKSD_MAX_TOKENS];
  size_t count = token_sets_of(live, sets), matched = 0;
  const grpc_slice *auth = find_metadata(c, "authorization");
  if (greeksd_auth_check_sets(sets, count, auth ? (const char *)GRPC_SLICE_START_PTR(*auth) : NULL,
                              auth ? GRPC_SLICE_LENGTH(*auth) : 0, &matched) == NULL)
    return NULL;
  return c->snap->auth ? "the bearer token this stream authenticated with was revoked by a reload"
                       : "a reload turned bearer tokens on and this stream started without one";
}

/* The bearer token, against every set of the call's snapshot: the anonymous
 * --token-file set (index 0) and each named file. A named match is kept for
 * the access log (the name, never the token). Returns 0 when it matched. */
static int authenticate(rpc_call *c) {
  const greeksd_snapshot *snap = c->snap;
  char **sets[1 + GREEKSD_MAX_TOKENS];
  size_t count = token_sets_of(snap, sets), matched = 0;
  const grpc_slice *auth = find_metadata(c, "authorization");
  const char *why = greeksd_auth_check_sets(sets, count, auth ? (const char *)GRPC_SLICE_START_PTR(*auth) : NULL,
                                            auth ? GRPC_SLICE_LENGTH(*auth) : 0, &matched);
  if (why != NULL) {
    rpc_reply(c, GRPC_STATUS_UNAUTHENTICATED, why, NULL);
    return -1;
  }
  if (matched > 0) c->token_name = snap->config.tokens[matched - 1].name;
  return 0;
}

/* Checks that need only the headers; returns 0 when the call goes on. */
static int screen_call(rpc_call *c) {
  if (c->method == METHOD_UNKNOWN) {
    char path[128], details[256];
    unknown_path(c, path, sizeof path);
    snprintf(details, sizeof details, "unknown method '%s': this server has greeks.v1.PricingService, greeks.v1.BookService and grpc.health.v1.Health",
             path);
    rpc_reply(c, GRPC_STATUS_UNIMPLEMENTED, details, NULL);
    return -1;
  }
  if (!admit(c)) {
    rpc_reply(c, GRPC_STATUS_UNAVAILABLE, "the server is draining (shutting down): retry on another instance", NULL);
    return -1;
  }
  if (!method_is_health(c->method) && c->snap->auth && authenticate(c) != 0) return -1;
  if ((c->method == METHOD_BOOK_HEDGE || c->method == METHOD_BOOK_STRATEGIES) &&
      !c->snap->config.features.strategy_agent) {
    rpc_reply(c, GRPC_STATUS_FAILED_PRECONDITION,
              "the strategy agent is turned off on this server (features.strategy_agent: false): no hedge or "
              "strategy is generated",
              NULL);
    return -1;
  }
  if (c->deadline_ns != 0 && c->deadline_ns <= c->started_ns) {
    /* "nothing was priced" was said of book commands too (found in review) */
    rpc_reply(c, GRPC_STATUS_DEADLINE_EXCEEDED,
              c->method < METHOD_HEALTH_CHECK ? "the deadline had passed when the call arrived; nothing was priced"
                                              : "the deadline had passed when the call arrived; nothing was run or "
                                                "recorded",
              NULL);
    return -1;
  }
  return 0;
}

static void start_call(rpc_call *c) {
  c->snap = server_snapshot(c->server); /* this call's rules, to its end (adr/0035) */
  c->started_ns = gk_monotonic_ns();
  server_metrics_call_started(c);
  take_request_id(c);
  take_trace(c);
  if (c->method != METHOD_UNKNOWN) take_deadline(c);
  if (!method_answers_inline(c->method)) rpc_watch_close(c);
  if (screen_call(c) != 0) return;
  if (method_reads_payload(c->method)) receive_message(c);
  else handlers[c->method](c);
}

static void on_new_call(rpc_call *c, bool success) {
  greeksd_server *s = c->server;
  if (success && !atomic_load(&s->stopping)) post_request_slot(s, c->method);
  if (success) start_call(c);
  rpc_release(c); /* the slot's reference, held while start_call ran */
}

/* A unary call's request message: NULL when the client half-closed without
 * one or the call ended first. */
static void on_message(rpc_call *c, bool success) {
  rpc_message_arrived(c);
  if (!success || c->request_payload == NULL) {
    if (atomic_load(&c->server_cancel_code) == GRPC_STATUS_RESOURCE_EXHAUSTED)
      rpc_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "the request message did not arrive within --receive-timeout-ms",
                NULL);
    else if (!success || rpc_is_cancelled(c))
      rpc_reply(c, GRPC_STATUS_CANCELLED, "the call ended before its request message arrived", NULL);
    else rpc_reply(c, GRPC_STATUS_INVALID_ARGUMENT, "the call carried no request message", NULL);
  } else {
    handlers[c->method](c);
  }
  rpc_release(c); /* the RECV_MESSAGE batch's */
}

static void on_closed(rpc_call *c, bool success) {
  (void)success;
  c->closed = 1;
  if (c->close_cancelled) atomic_store(&c->cancelled, 1);
  if (c->method == METHOD_HEALTH_WATCH) health_watch_closed(c);
  if (method_is_book_stream(c->method)) book_stream_closed(c);
  rpc_release(c);
}

static void on_shutdown(greeksd_server *s) {
  pthread_mutex_lock(&s->lock);
  s->shutdown_done = 1;
  pthread_cond_broadcast(&s->changed);
  pthread_mutex_unlock(&s->lock);
}

/* The fields the core read or wrote in the batch whose completion this is
 * (see RPC_HANDOFF_FRESH); nothing outside a ThreadSanitizer build. */
static void rpc_handoff_fields(const rpc_tag *tag) {
  rpc_call *c = tag->call;
  (void)c;
  switch (tag->kind) {
    case TAG_NEW_CALL:
      RPC_HANDOFF_FRESH(c->call);
      RPC_HANDOFF_FRESH(c->deadline);
      RPC_HANDOFF_FRESH(c->request_metadata);
      RPC_HANDOFF_FRESH(c->unknown);
      break;
    case TAG_MESSAGE:
    case TAG_RECEIVED: RPC_HANDOFF_FRESH(c->request_payload); break;
    case TAG_CLOSED: RPC_HANDOFF_FRESH(c->close_cancelled); break;
    case TAG_REPLIED:
    case TAG_SENT:
    case TAG_STREAMED:
      RPC_HANDOFF_FRESH(c->close_cancelled); /* a reply batch may carry the close */
      RPC_HANDOFF_FRESH(c->stream_payload);
      RPC_HANDOFF_FRESH(c->initial_metadata);
      RPC_HANDOFF_FRESH(c->status_details);
      RPC_HANDOFF_FRESH(c->reply_payload);
      RPC_HANDOFF_FRESH(c->watch_payload);
      break;
    case TAG_SHUTDOWN: break;
  }
}

static void *serve_completions(void *arg) {
  greeksd_server *s = arg;
  (void)gk_thread_set_name("gk-cq");
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    rpc_tag *tag = ev.tag;
    RPC_HANDOFF_ACQUIRE(tag);
    rpc_handoff_fields(tag);
    switch (tag->kind) {
      case TAG_NEW_CALL: on_new_call(tag->call, ev.success); break;
      case TAG_MESSAGE: on_message(tag->call, ev.success); break;
      case TAG_CLOSED: on_closed(tag->call, ev.success); break;
      case TAG_REPLIED:
        if (tag->call->reply_closes) on_closed(tag->call, ev.success); /* releases the batch's reference */
        else rpc_release(tag->call);
        break;
      case TAG_RECEIVED:
        if (tag->call->method == METHOD_BOOK_MARKET_STREAM) handle_book_market_stream_chunk(tag->call, ev.success);
        else handle_revalue_stream_chunk(tag->call, ev.success);
        break;
      case TAG_SENT: health_watch_sent(tag->call, ev.success); break;
      case TAG_STREAMED: book_stream_sent(tag->call, ev.success); break;
      case TAG_SHUTDOWN: on_shutdown(s); break;
    }
  }
  return NULL;
}

/* ---- start and stop ---- */

/* The gRPC core calls this on its own threads when it builds the listener and
 * then at every new handshake (adr/0035, TLS rotation): the pair of the
 * snapshot in force, handed over only when its PEM bytes differ from what the
 * core already has. Connections already up keep the certificate they began
 * with. Snapshots live until the server is destroyed, so tls_in_force never
 * dangles; the core copies the PEM strings it is given. */
static grpc_ssl_certificate_config_reload_status tls_certificate_fetcher(void *user,
                                                                         grpc_ssl_server_certificate_config **config) {
  greeksd_server *s = user;
  const greeksd_snapshot *snap = server_snapshot(s);
  if (snap->tls_cert_pem == NULL) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL; /* never: the mode is kept */
  grpc_ssl_certificate_config_reload_status result = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  pthread_mutex_lock(&s->tls_lock);
  const greeksd_snapshot *in_force = s->tls_in_force;
  if (in_force != snap) {
    if (in_force == NULL || !snapshot_same_tls(in_force, snap)) {
      grpc_ssl_pem_key_cert_pair pair = {snap->tls_key_pem, snap->tls_cert_pem};
      /* gRPC 1.51 asserts the client roots are set even when no client
       * certificate is requested: our own certificate, never used to verify. */
      *config = grpc_ssl_server_certificate_config_create(snap->tls_cert_pem, &pair, 1);
      result = *config ? GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW : GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
    }
    if (result != GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL) s->tls_in_force = snap;
  }
  pthread_mutex_unlock(&s->tls_lock);
  if (result == GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW && in_force != NULL)
    gk_logf(GK_LOG_INFO, "config", "TLS: new handshakes now get the certificate of configuration version %llu ('%s')",
            snap->version, snap->config.tls_cert);
  return result;
}

void greeksd_breaker_config(const greeksd_config *config, gk_breaker_config *out) {
  const greeksd_breaker *b = &config->breaker;
  out->window_size = b->window_calls;
  out->minimum_calls = b->minimum_calls;
  out->failure_rate_threshold = b->failure_rate_percent;
  out->slow_call_rate_threshold = b->slow_call_rate_percent;
  out->slow_call_duration_ns = b->slow_call_ms * GK_NS_PER_MS;
  out->wait_in_open_ns = b->wait_in_open_ms * GK_NS_PER_MS;
}

static grpc_server_credentials *make_credentials(greeksd_server *s, char *error, size_t size) {
  if (s->config.tls_cert[0] == '\0') return grpc_insecure_server_credentials_create();
  grpc_ssl_server_credentials_options *options = grpc_ssl_server_credentials_create_options_using_config_fetcher(
      GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, tls_certificate_fetcher, s);
  grpc_server_credentials *creds = options ? grpc_ssl_server_credentials_create_with_options(options) : NULL;
  if (creds == NULL) snprintf(error, size, "--tls-cert/--tls-key: gRPC refused the certificate or key");
  return creds;
}

static int start_engine(greeksd_server *s, char *error, size_t size) {
  gk_status status;
  gk_pool_options options = gk_pool_options_default();
  options.threads = greeksd_pool_threads(&s->config);
  options.scratch_bytes = gk_chain_scratch_bytes();
  options.nice = s->config.bulk_nice; /* large requests and revaluations yield to small calls (adr/0038) */
  options.yield_every_ns = s->config.bulk_yield_us * GK_NS_PER_US;
  options.name = "gk-pool";
  if (gk_pool_create(&options, &s->pool, &status) != GK_OK) {
    snprintf(error, size, "cannot start the worker pool: %s", status.message);
    return -1;
  }
  gk_pricing_agent_config pricing = gk_pricing_agent_config_default();
  pricing.tracer = s->tracer;
  pricing.batching = s->config.features.dynamic_batching;
  greeksd_breaker_config(&s->config, &pricing.breaker);
  pricing.fallback_to_scalar = s->config.breaker.fallback_to_scalar;
  s->started_isa = (int)gk_isa_active();
  snapshot_apply_isa(s, &s->config);
  if (gk_pricing_agent_start(s->pool, &pricing, &s->pricing, &status) != GK_OK) {
    snprintf(error, size, "cannot start the pricing agent: %s", status.message);
    return -1;
  }
  /* Test hook: GREEKSD_TEST_FAULT=fail makes every kernel call fail, so the
   * integration tests can drive the circuit breaker open end to end (health
   * NOT_SERVING, calls UNAVAILABLE). Never meant for production: it is logged. */
  const char *fault = getenv("GREEKSD_TEST_FAULT");
  if (fault != NULL && strcmp(fault, "fail") == 0) {
    gk_pricing_agent_inject_fault(s->pricing, GK_FAULT_FAIL, 0);
    gk_logf(GK_LOG_WARN, "greeksd", "GREEKSD_TEST_FAULT=fail: every pricing call fails (test hook)");
  }
  /* GREEKSD_TEST_FAULT=slow_subscribe: SubscribeEvents pauses 300 ms between
   * listing its stream and subscribing, where a client that leaves once left
   * a subscription to a freed call (tests/grpc/test_book_service.py). */
  if (fault != NULL && strcmp(fault, "slow_subscribe") == 0) {
    s->test_subscribe_pause_ms = 300;
    gk_logf(GK_LOG_WARN, "greeksd", "GREEKSD_TEST_FAULT=slow_subscribe: subscriptions pause 300 ms (test hook)");
  }
  if (compute_agent_start(s, &status) != GK_OK) {
    snprintf(error, size, "cannot start the compute agent: %s", status.message);
    return -1;
  }
  if (intake_agent_start(s, &status) != GK_OK) {
    snprintf(error, size, "cannot start the intake agent: %s", status.message);
    return -1;
  }
  return book_side_start(s, error, size);
}

static grpc_arg integer_argument(const char *key, int value) {
  grpc_arg a;
  memset(&a, 0, sizeof a);
  a.type = GRPC_ARG_INTEGER;
  a.key = (char *)key;
  a.value.integer = value;
  return a;
}

enum { SERVER_ARGUMENT_COUNT = 12 };

/* Channel arguments: the limits of docs/operations.md. */
static void server_arguments(greeksd_server *s, grpc_arg args[SERVER_ARGUMENT_COUNT]) {
  args[0] = integer_argument(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, (int)s->config.max_message_bytes);
  args[1] = integer_argument(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, -1); /* bounded by max_contracts */
  /* Advertised in SETTINGS: a client cannot hold more streams than this open on
   * one connection, so a stream flood costs bounded memory. */
  args[2] = integer_argument(GRPC_ARG_MAX_CONCURRENT_STREAMS, s->config.max_concurrent_streams);
  /* A second greeksd on the same address must fail to bind, not share it. */
  args[3] = integer_argument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  args[4] = integer_argument(GRPC_ARG_MAX_METADATA_SIZE, 16 * 1024);
  memset(&args[5], 0, sizeof args[5]);
  args[5].type = GRPC_ARG_POINTER; /* the core takes its own reference */
  args[5].key = (char *)GRPC_ARG_RESOURCE_QUOTA;
  args[5].value.pointer.p = s->quota;
  args[5].value.pointer.vtable = grpc_resource_quota_arg_vtable();
  /* Off by default: with the probe, the window grows until a client sends a
   * revaluation's megabytes in one burst, which the loopback and the reading
   * thread each spend milliseconds on while small calls wait (adr/0041). */
  args[6] = integer_argument(GRPC_ARG_HTTP2_BDP_PROBE, s->config.bdp_probe ? 1 : 0);
  /* Identity only: the core inflates a compressed message whole before it
   * compares it with the receive limit, outside the resource quota, so 875 KB
   * of gzip sent without a token (to Health, which needs none) took 1 GB and
   * 8 s of a thread (found in review). A compressed request is UNIMPLEMENTED. */
  args[7] = integer_argument(GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET, 1 << GRPC_COMPRESS_NONE);
  /* A connection that answers nothing, not even a ping, is closed after
   * KEEPALIVE_TIME + KEEPALIVE_TIMEOUT: sockets that never sent the HTTP/2
   * preface held --max-connections slots forever (found in review). Clients
   * answer pings by themselves; idle ones cost a ping every 30 s. */
  args[8] = integer_argument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args[9] = integer_argument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args[10] = integer_argument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  /* Clients' own keepalive pings: the core's default accepts one every 5
   * minutes while no data flows and closes the connection at the third
   * faster one, so grpc-go/java/js clients with a 10-30 s keepalive lost
   * their subscriptions, Watches and long American calls every minute or so,
   * logged as client cancels (found in review). Faster than this still
   * strikes: a ping flood stays bounded. */
  args[11] = integer_argument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                              s->config.min_client_ping_interval_ms);
}

static void create_grpc_server(greeksd_server *s) {
  s->quota = grpc_resource_quota_create("greeksd");
  grpc_resource_quota_resize(s->quota, s->config.memory_limit_bytes);
  grpc_arg args[SERVER_ARGUMENT_COUNT];
  server_arguments(s, args);
  grpc_channel_args channel_args = {SERVER_ARGUMENT_COUNT, args};
  s->server = grpc_server_create(&channel_args, NULL);
  s->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s->server, s->cq, NULL);
  for (int m = 0; m < METHOD_REGISTERED_COUNT; m++)
    s->registered[m] = grpc_server_register_method(s->server, method_paths[m], NULL, GRPC_SRM_PAYLOAD_NONE, 0);
}

/* Plaintext: greeksd's own listener, which caps connections and survives
 * EMFILE (adr/0022). TLS: the core's listener (grpc 1.51 takes only insecure
 * credentials on accepted descriptors). */
/* An error about `key` prefixed with where the operator set it ("--listen",
 * "GREEKSD_LISTEN", "FILE:LINE: listen"): it named --listen whatever the source. */
void greeksd_error_for_setting(const greeksd_config *config, const char *key, char *error, size_t size) {
  char why[512], label[320];
  snprintf(why, sizeof why, "%s", error);
  snprintf(error, size, "%s: %s", greeksd_config_label(config, key, label, sizeof label), why);
}

static int start_grpc(greeksd_server *s, int *port, char *error, size_t size) {
  create_grpc_server(s);
  if (s->config.tls_cert[0] == '\0') {
    s->listener = greeksd_listener_bind(s->config.listen, s->config.max_connections, port, error, size);
    if (s->listener == NULL) return greeksd_error_for_setting(&s->config, "listen", error, size), -1;
    grpc_server_start(s->server);
    greeksd_listener_start(s->listener, s->server);
    return 0;
  }
  grpc_server_credentials *creds = make_credentials(s, error, size);
  if (creds == NULL) return -1;
  *port = grpc_server_add_http2_port(s->server, s->config.listen, creds);
  grpc_server_credentials_release(creds);
  if (*port == 0) {
    snprintf(error, size, "cannot listen on '%s' (address in use, or not an address of this host)",
             s->config.listen);
    return greeksd_error_for_setting(&s->config, "listen", error, size), -1;
  }
  grpc_server_start(s->server);
  return 0;
}

static void post_all_slots(greeksd_server *s) {
  for (int m = 0; m < METHOD_COUNT; m++) {
    int slots = method_is_health(m) || m == METHOD_UNKNOWN ? HEALTH_SLOTS : SLOTS_PER_THREAD * greeksd_server_threads(&s->config);
    for (int k = 0; k < slots; k++) post_request_slot(s, (rpc_method)m);
  }
}

/* This process's name in the trace store: the configured one, else a random
 * UUID version 4 (RFC 9562), as OpenTelemetry's resource conventions advise
 * for service.instance.id. Drawn at each start: a restarted process is
 * another instance. */
static void name_this_instance(greeksd_server *s) {
  if (s->config.service_instance_id[0] != '\0') {
    snprintf(s->instance_id, sizeof s->instance_id, "%s", s->config.service_instance_id);
  } else {
    uint8_t b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) { /* no entropy: still distinct from the other processes */
      uint64_t mix[2] = {(uint64_t)gk_monotonic_ns() ^ s->request_id_prefix, ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL)};
      memcpy(b, mix, sizeof b);
    }
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80); /* RFC 9562 variant */
    snprintf(s->instance_id, sizeof s->instance_id,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4],
             b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  }
  if (gethostname(s->host_name, sizeof s->host_name) != 0) s->host_name[0] = '\0';
  s->host_name[sizeof s->host_name - 1] = '\0'; /* a truncated name need not be terminated */
}

const char *greeksd_server_instance_id(const greeksd_server *server) { return server->instance_id; }

/* The tracer (adr/0032): ids always; an OTLP exporter with --otlp-endpoint. */
static int start_tracer(greeksd_server *s, char *error, size_t size) {
  gk_tracer_options o = gk_tracer_options_default();
  o.sample_ratio = s->config.trace_sample_ratio;
  o.queue_capacity = s->config.trace_queue_spans;
  if (o.batch_max > o.queue_capacity) o.batch_max = o.queue_capacity;
  o.shutdown_budget_ns = (int64_t)s->config.otlp_timeout_ms * GK_NS_PER_MS; /* operations.md's stop-timeout sizing */
  gk_status status;
  if (s->config.otlp_endpoint[0] != '\0') {
    gk_otlp_options otlp = {.endpoint = s->config.otlp_endpoint,
                            .resource = {.service_name = "greeksd",
                                         .service_version = GREEKS_VERSION,
                                         .service_instance_id = s->instance_id,
                                         .host_name = s->host_name[0] ? s->host_name : NULL},
                            .timeout_ms = s->config.otlp_timeout_ms};
    if (gk_otlp_exporter_create(&otlp, &o.exporter, &status) != GK_OK) {
      snprintf(error, size, "--otlp-endpoint: %s", status.message);
      return -1;
    }
  }
  if (gk_tracer_create(&o, &s->tracer, &status) != GK_OK) {
    if (o.exporter.destroy) o.exporter.destroy(o.exporter.user);
    snprintf(error, size, "cannot start the tracer: %s", status.message);
    return -1;
  }
  return 0;
}

/* After the last call and agent: the last spans go out, the counters are told. */
static void stop_tracer(greeksd_server *s) {
  gk_tracer_counters final;
  gk_tracer_destroy(s->tracer, &final);
  s->tracer = NULL;
  if (s->config.otlp_endpoint[0] != '\0')
    gk_logf(GK_LOG_INFO, "tracer",
            "traces: %llu spans exported, %llu dropped (%llu with the queue full, %llu in failed exports, %llu left at "
            "shutdown after a failed export)",
            (unsigned long long)final.exported,
            (unsigned long long)(final.dropped_queue_full + final.dropped_export_failed + final.dropped_at_shutdown),
            (unsigned long long)final.dropped_queue_full, (unsigned long long)final.dropped_export_failed,
            (unsigned long long)final.dropped_at_shutdown);
}

static void destroy(greeksd_server *s) {
  probes_stop(s); /* the HTTP listener reads the parts stopped below */
  book_side_stop(s);
  if (s->intake) gk_agent_stop(s->intake, GK_NS_PER_S); /* it submits to the two below */
  if (s->compute) gk_agent_stop(s->compute, GK_NS_PER_S);
  if (s->pricing) gk_pricing_agent_stop(s->pricing, GK_NS_PER_S);
  gk_pool_destroy(s->pool);
  stop_tracer(s);
  greeksd_listener_stop(s->listener);
  if (s->server) grpc_server_destroy(s->server);
  if (s->cq) {
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(s->cq);
  }
  greeksd_listener_free(s->listener);
  if (s->quota) grpc_resource_quota_unref(s->quota);
  snapshot_free_all(s);
  free(s->threads);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->changed);
  pthread_mutex_destroy(&s->watch_lock);
  server_metrics_free(s);
  pthread_mutex_destroy(&s->probe_lock);
  pthread_mutex_destroy(&s->tls_lock);
  free(s);
  grpc_shutdown();
}

greeksd_server *greeksd_server_start(const greeksd_config *config, int *port, char *error, size_t size) {
  greeksd_server *s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(error, size, "out of memory");
    return NULL;
  }
  s->config = *config;
  if (getrandom(&s->request_id_prefix, sizeof s->request_id_prefix, 0) != (ssize_t)sizeof s->request_id_prefix)
    s->request_id_prefix = (uint64_t)gk_monotonic_ns() ^ ((uint64_t)getpid() << 32); /* no entropy: still distinct */
  atomic_init(&s->request_id_counter, 1);
  name_this_instance(s);
  pthread_mutex_init(&s->lock, NULL);
  gk_cond_init_monotonic(&s->changed); /* the drain's waits: not stretched by a wall-clock step */
  pthread_mutex_init(&s->watch_lock, NULL);
  pthread_mutex_init(&s->probe_lock, NULL);
  pthread_mutex_init(&s->tls_lock, NULL);
  init_tag(&s->tag_shutdown, TAG_SHUTDOWN, NULL);
  grpc_init();
  if (server_metrics_create(s, error, size) != 0) { /* before the engine: the journal's listener counts into it */
    destroy(s);
    return NULL;
  }
  greeksd_snapshot *first = snapshot_build(config, 1, error, size); /* version 1 (reload.c) */
  if (first == NULL) {
    destroy(s);
    return NULL;
  }
  atomic_store(&s->live, first);
  greeksd_server_watch_files(s, config);
  if (start_tracer(s, error, size) != 0 || start_engine(s, error, size) != 0 || start_grpc(s, port, error, size) != 0) {
    destroy(s);
    return NULL;
  }
  int wanted = greeksd_server_threads(config);
  s->threads = calloc((size_t)wanted, sizeof *s->threads);
  if (s->threads == NULL) {
    snprintf(error, size, "out of memory");
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->tag_shutdown);
    grpc_server_cancel_all_calls(s->server);
    destroy(s);
    return NULL;
  }
  s->thread_count = 0;
  for (int t = 0; t < wanted; t++) {
    if (pthread_create(&s->threads[t], NULL, serve_completions, s) != 0) break;
    s->thread_count++; /* shutdown joins only the threads that started */
  }
  if (s->thread_count == 0) { /* no slot is posted yet: only the shutdown tag to wait for */
    snprintf(error, size, "cannot start a server thread");
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->tag_shutdown);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).tag != &s->tag_shutdown) {
    }
    destroy(s);
    return NULL;
  }
  post_all_slots(s);
  if (health_start(s) != 0) gk_logf(GK_LOG_WARN, "greeksd", "health watcher thread did not start; Watch streams will not see changes");
  if (server_metrics_register(s, error, size) != 0 || probes_start(s, error, size) != 0) {
    char reason[512];
    snprintf(reason, sizeof reason, "%s", error);
    greeksd_server_shutdown(s);
    snprintf(error, size, "%s", reason);
    return NULL;
  }
  return s;
}

/* Waits until pred(s) holds or until `until_ns` (0: no limit). Returns pred(s). */
static int wait_for(greeksd_server *s, int (*pred)(greeksd_server *), int64_t until_ns) {
  pthread_mutex_lock(&s->lock);
  while (!pred(s)) {
    int64_t now = gk_monotonic_ns();
    if (until_ns != 0 && now >= until_ns) break;
    int64_t step = until_ns != 0 && until_ns - now < 50 * GK_NS_PER_MS ? until_ns - now : 50 * GK_NS_PER_MS;
    struct timespec ts = gk_monotonic_deadline(step);
    pthread_cond_timedwait(&s->changed, &s->lock, &ts);
  }
  int done = pred(s);
  pthread_mutex_unlock(&s->lock);
  return done;
}

static int is_shut_down(greeksd_server *s) { return s->shutdown_done; }
static int has_no_calls(greeksd_server *s) { return s->live_calls == 0; }
static int has_no_admitted_calls(greeksd_server *s) { return s->admitted_calls == 0; }

/* The drain (adr/0021): calls that arrived before the signal (uploading ones
 * included) get --drain-timeout-ms to finish; calls arriving meanwhile are
 * refused UNAVAILABLE and health answers NOT_SERVING. Then the core shuts down
 * (GOAWAY) and whatever is left is cancelled. */
long greeksd_server_shutdown(greeksd_server *s) {
  pthread_mutex_lock(&s->lock);
  atomic_store(&s->draining, 1);
  long admitted = s->admitted_calls;
  pthread_mutex_unlock(&s->lock);
  int64_t drain_ms = server_snapshot(s)->config.drain_timeout_ms; /* reloadable */
  gk_logf(GK_LOG_INFO, "greeksd", "draining: %ld calls in flight have %lld ms; new calls get UNAVAILABLE", admitted,
          (long long)drain_ms);
  book_side_drain(s); /* subscriptions end now (UNAVAILABLE, with where to resume) */
  long cancelled = 0;
  if (!wait_for(s, has_no_admitted_calls, gk_monotonic_ns() + drain_ms * GK_NS_PER_MS)) {
    pthread_mutex_lock(&s->lock);
    cancelled = s->admitted_calls;
    pthread_mutex_unlock(&s->lock);
    gk_logf(GK_LOG_WARN, "greeksd", "drain timeout: cancelling the %ld calls still in flight", cancelled);
    atomic_store(&s->drain_cancelled, 1);
  }
  atomic_store(&s->stopping, 1);
  greeksd_listener_stop(s->listener);
  grpc_server_shutdown_and_notify(s->server, s->cq, &s->tag_shutdown);
  grpc_server_cancel_all_calls(s->server); /* only calls not finished by now */
  wait_for(s, is_shut_down, 0);
  wait_for(s, has_no_calls, 0);
  health_stop(s);
  grpc_completion_queue_shutdown(s->cq);
  for (int t = 0; t < s->thread_count; t++) pthread_join(s->threads[t], NULL);
  gk_logf(GK_LOG_INFO, "greeksd", "stopped: %llu calls answered OK, %llu with an error",
          (unsigned long long)atomic_load(&s->calls_ok), (unsigned long long)atomic_load(&s->calls_failed));
  grpc_server_destroy(s->server);
  s->server = NULL;
  grpc_completion_queue_destroy(s->cq);
  s->cq = NULL;
  destroy(s);
  return cancelled;
}
