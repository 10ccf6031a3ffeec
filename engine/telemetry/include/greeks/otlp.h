/*
 * greeks/otlp.h - the OTLP/HTTP JSON span exporter: an adapter for the
 * tracer's exporter port (gk_span_exporter, greeks/trace.h), in its own library
 * (greeks_otlp) so that the engine's core does not link libcurl.
 *
 * Each batch becomes one ExportTraceServiceRequest in the OTLP JSON mapping
 * (resourceSpans / scopeSpans / spans; trace and span ids as lowercase hex;
 * times and 64-bit integers as decimal strings; kind and status code as
 * numbers), POSTed to <endpoint>/v1/traces with Content-Type application/json.
 * A 2xx answer is success; anything else, a refused connection or the timeout
 * fails the batch (the tracer counts its spans dropped). No retry: the next
 * batch is newer and more useful than an old one sent again.
 *
 * Thread safety: the exporter runs on the tracer's export thread only.
 */
#ifndef GREEKS_OTLP_H
#define GREEKS_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include "greeks/status.h"
#include "greeks/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Who sent the spans: OpenTelemetry resource attributes. Strings are copied
 * (each cut at 255 bytes); NULL leaves an attribute out, except service.name,
 * which is then "unknown_service" as the specification says. Several
 * instances of one service write into one trace store: service.instance.id
 * tells their spans apart (a collector's traces otherwise name only
 * "greeksd"). */
typedef struct gk_otlp_resource {
  const char *service_name;        /* service.name */
  const char *service_version;     /* service.version */
  const char *service_instance_id; /* service.instance.id: unique per running process */
  const char *host_name;           /* host.name */
} gk_otlp_resource;

typedef struct gk_otlp_options {
  const char *endpoint; /* "http://127.0.0.1:4318": /v1/traces is appended (unless already there) */
  gk_otlp_resource resource;
  int64_t timeout_ms; /* per POST, connecting included; >= 1 */
} gk_otlp_options;

/* The JSON body for spans[0..count): a malloc'd, NUL-terminated string (the
 * caller frees it) and its length in *length; NULL when memory runs out. */
char *gk_otlp_encode_json(const gk_span *spans, size_t count, const gk_otlp_resource *resource, size_t *length);

/* url with its user information (scheme://USER:PASSWORD@host/...: a
 * collector's Basic credentials) written as REDACTED, the rest as it is, into
 * out (size bytes, NUL-terminated; a longer url is cut): how an endpoint is
 * shown in messages and configuration dumps. */
void gk_otlp_url_shown(const char *url, char *out, size_t size);

/* 0 when url is an endpoint the exporter can POST to: http:// or https://, a
 * host, a port 1..65535 if one is given, a well-formed path and no query or
 * fragment (libcurl's URL parser, the one the exporter uses); else -1 and why it is not (at most n
 * bytes, never the URL's credentials). A typo ("http://", a port 99999, a
 * space) was accepted and then cost every span (found in review). */
int gk_otlp_endpoint_problem(const char *url, char *why, size_t n);

/* Fills *exporter with an HTTP exporter (libcurl). GK_INVALID_ARGUMENT for an
 * endpoint gk_otlp_endpoint_problem refuses, or a timeout below 1 ms;
 * GK_RESOURCE_EXHAUSTED when libcurl cannot start. The tracer destroys it. */
gk_code gk_otlp_exporter_create(const gk_otlp_options *options, gk_span_exporter *exporter, gk_status *status);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_OTLP_H */
