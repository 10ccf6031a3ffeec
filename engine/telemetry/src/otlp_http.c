/*
 * The OTLP/HTTP JSON exporter (greeks/otlp.h): encodes a batch of spans into
 * one JSON body with a growing buffer, and POSTs it with one libcurl easy
 * handle kept for the exporter's life (its connection is reused from batch to
 * batch). Why JSON and libcurl rather than protobuf and gRPC: see
 * adr/0032-structured-logs-and-otlp-tracing.md.
 */
#include "greeks/otlp.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/json.h"

/* ---- a growing text buffer ---- */

typedef struct text {
  char *data;
  size_t length, capacity;
  bool failed;
} text;

static bool reserve(text *t, size_t more) {
  if (t->failed) return false;
  if (t->length + more + 1 <= t->capacity) return true;
  size_t capacity = t->capacity ? t->capacity : 4096;
  while (capacity < t->length + more + 1) capacity *= 2;
  char *data = realloc(t->data, capacity);
  if (data == NULL) {
    t->failed = true;
    return false;
  }
  t->data = data;
  t->capacity = capacity;
  return true;
}

static void put(text *t, const char *s) {
  size_t n = strlen(s);
  if (!reserve(t, n)) return;
  memcpy(t->data + t->length, s, n + 1);
  t->length += n;
}

__attribute__((format(printf, 2, 3))) static void putf(text *t, const char *format, ...) {
  char piece[96];
  va_list args;
  va_start(args, format);
  vsnprintf(piece, sizeof piece, format, args);
  va_end(args);
  put(t, piece);
}

/* A JSON string, quoted and escaped. */
static void put_string(text *t, const char *s) {
  size_t n = strlen(s);
  if (!reserve(t, n * GK_JSON_ESCAPE_FACTOR + 2)) return;
  t->data[t->length++] = '"';
  t->length += gk_json_escape(t->data + t->length, t->capacity - t->length, s, n);
  t->data[t->length++] = '"';
  t->data[t->length] = '\0';
}

static void put_hex(text *t, const uint8_t *bytes, size_t count) {
  char hex[2 * GK_TRACE_ID_BYTES + 1];
  gk_trace_hex(bytes, count, hex);
  put_string(t, hex);
}

/* ---- the OTLP JSON mapping ---- */

static void put_string_attribute(text *t, const char *key, const char *value) {
  put(t, "{\"key\":");
  put_string(t, key);
  put(t, ",\"value\":{\"stringValue\":");
  put_string(t, value);
  put(t, "}}");
}

static void put_attributes(text *t, const gk_span *s) {
  put(t, ",\"attributes\":[");
  for (size_t i = 0; i < s->attribute_count; i++) {
    const gk_span_attribute *a = &s->attributes[i];
    if (i > 0) put(t, ",");
    if (!a->is_int) {
      put_string_attribute(t, a->key, a->string_value);
      continue;
    }
    put(t, "{\"key\":");
    put_string(t, a->key);
    putf(t, ",\"value\":{\"intValue\":\"%lld\"}}", (long long)a->int_value);
  }
  put(t, "]");
}

static bool is_root(const gk_span *s) {
  for (int i = 0; i < GK_SPAN_ID_BYTES; i++)
    if (s->parent_span_id[i]) return false;
  return true;
}

static void put_span(text *t, const gk_span *s) {
  put(t, "{\"traceId\":");
  put_hex(t, s->context.trace_id, GK_TRACE_ID_BYTES);
  put(t, ",\"spanId\":");
  put_hex(t, s->context.span_id, GK_SPAN_ID_BYTES);
  if (!is_root(s)) {
    put(t, ",\"parentSpanId\":");
    put_hex(t, s->parent_span_id, GK_SPAN_ID_BYTES);
  }
  if (s->trace_state[0]) {
    put(t, ",\"traceState\":");
    put_string(t, s->trace_state);
  }
  put(t, ",\"name\":");
  put_string(t, s->name);
  putf(t, ",\"kind\":%d,\"startTimeUnixNano\":\"%lld\",\"endTimeUnixNano\":\"%lld\"", (int)s->kind,
       (long long)s->start_unix_ns, (long long)s->end_unix_ns);
  put_attributes(t, s);
  putf(t, ",\"status\":{\"code\":%d", (int)s->status);
  if (s->status_message[0]) {
    put(t, ",\"message\":");
    put_string(t, s->status_message);
  }
  put(t, "}}");
}

static void put_resource_attribute(text *t, const char *key, const char *value) {
  if (value == NULL) return;
  put(t, ",");
  put_string_attribute(t, key, value);
}

char *gk_otlp_encode_json(const gk_span *spans, size_t count, const gk_otlp_resource *resource, size_t *length) {
  static const gk_otlp_resource none = {0};
  if (resource == NULL) resource = &none;
  text t = {0};
  put(&t, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  put_string_attribute(&t, "service.name", resource->service_name ? resource->service_name : "unknown_service");
  put_resource_attribute(&t, "service.version", resource->service_version);
  put_resource_attribute(&t, "service.instance.id", resource->service_instance_id);
  put_resource_attribute(&t, "host.name", resource->host_name);
  put(&t, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"greeks\"},\"spans\":[");
  for (size_t i = 0; i < count; i++) {
    if (i > 0) put(&t, ",");
    put_span(&t, &spans[i]);
  }
  put(&t, "]}]}]}");
  if (t.failed) {
    free(t.data);
    return NULL;
  }
  if (length) *length = t.length;
  return t.data;
}

/* ---- HTTP ---- */

typedef struct exporter {
  CURL *curl;
  struct curl_slist *headers;
  char url[1100];
  char shown[1100]; /* url for messages: its user information (credentials) REDACTED */
  char service_name[256], service_version[256], service_instance_id[256], host_name[256];
  gk_otlp_resource resource; /* points into the copies above */
} exporter;

static size_t discard_body(char *data, size_t size, size_t count, void *user) {
  (void)data, (void)user;
  return size * count;
}

static gk_code export_spans(void *user, const gk_span *spans, size_t count, gk_status *status) {
  exporter *e = user;
  size_t length = 0;
  char *body = gk_otlp_encode_json(spans, count, &e->resource, &length);
  if (body == NULL)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "otlp: out of memory encoding spans");
  curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(e->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)length);
  CURLcode rc = curl_easy_perform(e->curl);
  long http = 0;
  curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &http);
  curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, NULL);
  free(body);
  if (rc != CURLE_OK)
    return gk_status_set(status, GK_UNAVAILABLE, "otlp_endpoint", e->shown, GK_STATUS_NO_INDEX,
                         "otlp: POST %s failed: %s", e->shown, curl_easy_strerror(rc));
  if (http < 200 || http > 299)
    return gk_status_set(status, GK_UNAVAILABLE, "otlp_endpoint", e->shown, GK_STATUS_NO_INDEX,
                         "otlp: POST %s answered HTTP %ld", e->shown, http);
  return GK_OK;
}

static void destroy_exporter(void *user) {
  exporter *e = user;
  if (e == NULL) return;
  curl_slist_free_all(e->headers);
  if (e->curl) curl_easy_cleanup(e->curl);
  free(e);
}

/* Export failures wrote a tracing vendor's API key into the log (found in
 * review): every message shows the endpoint through this. */
void gk_otlp_url_shown(const char *url, char *out, size_t size) {
  if (size == 0) return;
  const char *authority = strstr(url, "://");
  authority = authority ? authority + 3 : url;
  size_t end = strcspn(authority, "/?#");
  const char *at = NULL;
  for (size_t i = 0; i < end; i++)
    if (authority[i] == '@') at = authority + i;
  int n = at == NULL ? snprintf(out, size, "%s", url)
                     : snprintf(out, size, "%.*sREDACTED%s", (int)(authority - url), url, at);
  if (n < 0) out[0] = '\0'; /* a longer url is cut: it is only shown */
}

int gk_otlp_endpoint_problem(const char *url, char *why, size_t n) {
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
    snprintf(why, n, "must start with http:// or https:// (e.g. http://127.0.0.1:4318)");
    return -1;
  }
  if (strlen(url) > 1000) {
    snprintf(why, n, "is longer than 1000 characters");
    return -1;
  }
  CURLU *parsed = curl_url();
  if (parsed == NULL) {
    snprintf(why, n, "cannot be parsed: out of memory");
    return -1;
  }
  char *port = NULL, *query = NULL, *fragment = NULL;
  CURLUcode rc = curl_url_set(parsed, CURLUPART_URL, url, 0);
  if (rc == CURLUE_OK && curl_url_get(parsed, CURLUPART_PORT, &port, 0) == CURLUE_OK && strtol(port, NULL, 10) == 0)
    rc = CURLUE_BAD_PORT_NUMBER;
  /* /v1/traces is appended to the URL: after a query or a fragment it would
   * post to the wrong path (found in review) */
  int tail = rc == CURLUE_OK && (curl_url_get(parsed, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
                                 curl_url_get(parsed, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK ||
                                 strpbrk(url, "?#") != NULL); /* libcurl reports no empty fragment: "h/otlp#" */
  curl_free(port), curl_free(query), curl_free(fragment);
  curl_url_cleanup(parsed);
  if (tail) {
    snprintf(why, n, "must not carry a query or a fragment (?..., #...): the exporter appends /v1/traces");
    return -1;
  }
  if (rc == CURLUE_OK) return 0;
  snprintf(why, n, "is not a URL the exporter can post to: %s",
           rc == CURLUE_BAD_PORT_NUMBER ? "the port must be 1..65535" : curl_url_strerror(rc));
  return -1;
}

static gk_code check_options(const gk_otlp_options *o, gk_status *status) {
  if (o == NULL || o->endpoint == NULL)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "endpoint", NULL, GK_STATUS_NO_INDEX, "otlp: an endpoint is required");
  char why[160];
  if (gk_otlp_endpoint_problem(o->endpoint, why, sizeof why) != 0) {
    char shown[1100];
    gk_otlp_url_shown(o->endpoint, shown, sizeof shown);
    return gk_status_set(status, GK_INVALID_ARGUMENT, "endpoint", shown, GK_STATUS_NO_INDEX,
                         "otlp: the endpoint '%.200s' %s", shown, why);
  }
  if (o->timeout_ms < 1)
    return gk_status_set(status, GK_INVALID_ARGUMENT, "timeout_ms", NULL, GK_STATUS_NO_INDEX,
                         "otlp: timeout_ms %lld must be at least 1", (long long)o->timeout_ms);
  return GK_OK;
}

/* <endpoint>/v1/traces, unless the endpoint already names that path. */
static void traces_url(const char *endpoint, char *out, size_t size) {
  size_t n = strlen(endpoint);
  while (n > 0 && endpoint[n - 1] == '/') n--;
  const char *suffix = "/v1/traces";
  size_t k = strlen(suffix);
  if (n >= k && strncmp(endpoint + n - k, suffix, k) == 0) snprintf(out, size, "%.*s", (int)n, endpoint);
  else snprintf(out, size, "%.*s%s", (int)n, endpoint, suffix);
}

/* value copied into buffer (cut to fit); NULL stays NULL (the attribute is left out). */
static const char *copy_attribute(const char *value, char *buffer, size_t size) {
  if (value == NULL) return NULL;
  snprintf(buffer, size, "%s", value);
  return buffer;
}

gk_code gk_otlp_exporter_create(const gk_otlp_options *o, gk_span_exporter *out, gk_status *status) {
  memset(out, 0, sizeof *out);
  gk_code code = check_options(o, status);
  if (code != GK_OK) return code;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "otlp: libcurl did not start");
  exporter *e = calloc(1, sizeof *e);
  if (e == NULL || (e->curl = curl_easy_init()) == NULL ||
      (e->headers = curl_slist_append(NULL, "Content-Type: application/json")) == NULL) {
    destroy_exporter(e);
    return gk_status_set(status, GK_RESOURCE_EXHAUSTED, NULL, NULL, GK_STATUS_NO_INDEX, "otlp: libcurl did not start");
  }
  traces_url(o->endpoint, e->url, sizeof e->url);
  gk_otlp_url_shown(e->url, e->shown, sizeof e->shown);
  e->resource.service_name = copy_attribute(o->resource.service_name, e->service_name, sizeof e->service_name);
  e->resource.service_version = copy_attribute(o->resource.service_version, e->service_version, sizeof e->service_version);
  e->resource.service_instance_id =
      copy_attribute(o->resource.service_instance_id, e->service_instance_id, sizeof e->service_instance_id);
  e->resource.host_name = copy_attribute(o->resource.host_name, e->host_name, sizeof e->host_name);
  curl_easy_setopt(e->curl, CURLOPT_URL, e->url);
  curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, e->headers);
  curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
  curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
  curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
  curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt(e->curl, CURLOPT_PROTOCOLS_STR, "http,https");
  out->export_spans = export_spans;
  out->destroy = destroy_exporter;
  out->user = e;
  return GK_OK;
}
