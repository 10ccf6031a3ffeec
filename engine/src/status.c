#include "greeks/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "greeks/text.h"

void gk_status_clear(gk_status *status) {
  if (status == NULL) return;
  memset(status, 0, sizeof *status);
  status->index = GK_STATUS_NO_INDEX;
}

static gk_category category_of(gk_code code) {
  switch (code) {
    case GK_OK: return GK_CATEGORY_NONE;
    case GK_INVALID_ARGUMENT: return GK_CATEGORY_VALIDATION;
    case GK_RESOURCE_EXHAUSTED: return GK_CATEGORY_RESOURCE;
    case GK_UNAVAILABLE: return GK_CATEGORY_UNAVAILABLE;
    case GK_DEADLINE_EXCEEDED: return GK_CATEGORY_TIMEOUT;
    case GK_CANCELLED: return GK_CATEGORY_CANCELLED;
    case GK_INTERNAL: return GK_CATEGORY_INTERNAL;
    case GK_IO_ERROR: return GK_CATEGORY_IO;
    case GK_NOT_FOUND: return GK_CATEGORY_NOT_FOUND;
    case GK_ALREADY_EXISTS: return GK_CATEGORY_ALREADY_EXISTS;
    case GK_FAILED_PRECONDITION: return GK_CATEGORY_PRECONDITION;
    case GK_ABORTED: return GK_CATEGORY_CONFLICT;
    case GK_DATA_LOSS: return GK_CATEGORY_DATA_LOSS;
  }
  return GK_CATEGORY_INTERNAL;
}

/* Retrying helps when the cause is load, time or a concurrent writer, not the
 * request itself. */
static bool transient_code(gk_code code) {
  return code == GK_RESOURCE_EXHAUSTED || code == GK_UNAVAILABLE ||
         code == GK_DEADLINE_EXCEEDED || code == GK_ABORTED;
}

gk_code gk_status_set(gk_status *status, gk_code code, const char *field, const char *value,
                      int64_t index, const char *format, ...) {
  if (status == NULL) return code;
  gk_status_clear(status);
  status->code = code;
  status->category = category_of(code);
  status->transient = transient_code(code);
  status->index = index;
  if (field) snprintf(status->field, sizeof status->field, "%s", field);
  if (value) snprintf(status->value, sizeof status->value, "%s", value);
  va_list args;
  va_start(args, format);
  vsnprintf(status->message, sizeof status->message, format, args);
  va_end(args);
  /* a value or message cut inside a client's character would not be UTF-8,
   * and a gRPC client decodes the whole message as Latin-1 (found in review) */
  gk_text_make_clean(status->field);
  gk_text_make_clean(status->value);
  gk_text_make_clean(status->message);
  return code;
}

const char *gk_code_name(gk_code code) {
  static const char *const names[] = {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED",
                                      "UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED",
                                      "INTERNAL", "IO_ERROR", "NOT_FOUND",
                                      "ALREADY_EXISTS", "FAILED_PRECONDITION", "ABORTED",
                                      "DATA_LOSS"};
  return (unsigned)code < sizeof names / sizeof names[0] ? names[code] : "UNKNOWN";
}

const char *gk_category_name(gk_category category) {
  static const char *const names[] = {"none", "validation", "pricing", "resource",
                                      "unavailable", "timeout", "cancelled", "internal", "io",
                                      "not_found", "already_exists", "precondition",
                                      "conflict", "data_loss"};
  return (unsigned)category < sizeof names / sizeof names[0] ? names[category] : "unknown";
}

void gk_status_set_request_id(gk_status *status, const char *request_id) {
  if (status == NULL) return;
  snprintf(status->request_id, sizeof status->request_id, "%s", request_id ? request_id : "");
}

int gk_category_grpc_code(gk_category category) {
  enum { OK = 0, CANCELLED = 1, UNKNOWN = 2, INVALID_ARGUMENT = 3, DEADLINE_EXCEEDED = 4,
         NOT_FOUND = 5, ALREADY_EXISTS = 6, RESOURCE_EXHAUSTED = 8,
         FAILED_PRECONDITION = 9, ABORTED = 10, INTERNAL = 13, UNAVAILABLE = 14,
         DATA_LOSS = 15 };
  switch (category) {
    case GK_CATEGORY_NONE: return OK;
    case GK_CATEGORY_VALIDATION: return INVALID_ARGUMENT;
    case GK_CATEGORY_PRICING: return INTERNAL;
    case GK_CATEGORY_RESOURCE: return RESOURCE_EXHAUSTED;
    case GK_CATEGORY_UNAVAILABLE: return UNAVAILABLE;
    case GK_CATEGORY_TIMEOUT: return DEADLINE_EXCEEDED;
    case GK_CATEGORY_CANCELLED: return CANCELLED;
    case GK_CATEGORY_INTERNAL: return INTERNAL;
    case GK_CATEGORY_IO: return UNAVAILABLE;
    case GK_CATEGORY_NOT_FOUND: return NOT_FOUND;
    case GK_CATEGORY_ALREADY_EXISTS: return ALREADY_EXISTS;
    case GK_CATEGORY_PRECONDITION: return FAILED_PRECONDITION;
    case GK_CATEGORY_CONFLICT: return ABORTED;
    case GK_CATEGORY_DATA_LOSS: return DATA_LOSS;
  }
  return UNKNOWN;
}

int gk_status_grpc_code(const gk_status *status) {
  return status ? gk_category_grpc_code(status->category) : 0;
}
