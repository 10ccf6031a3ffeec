/*
 * greeks/status.h - the one error type of the engine and the layers above it.
 *
 * A gk_status says what went wrong (code), what kind of failure it is (category),
 * whether retrying can help (transient), in words (message) and where (field,
 * value, element index). It is a plain value with fixed-size buffers: no
 * allocation, safe to copy, fine to keep on the stack. Every engine function that
 * can fail takes an optional `gk_status *` (NULL when the caller only wants the
 * code) and returns the code.
 */
#ifndef GREEKS_STATUS_H
#define GREEKS_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gk_code {
  GK_OK = 0,
  GK_INVALID_ARGUMENT,  /* the caller's input breaks a rule; do not retry as is */
  GK_RESOURCE_EXHAUSTED,/* out of memory, queue full, message too large */
  GK_UNAVAILABLE,       /* a dependency is down or shedding load; retry later */
  GK_DEADLINE_EXCEEDED, /* the deadline passed before the work finished */
  GK_CANCELLED,         /* the caller cancelled */
  GK_INTERNAL,          /* a bug or broken invariant */
  GK_IO_ERROR,          /* reading or writing a file or stream failed */
  GK_NOT_FOUND,         /* the named book, trade or strategy does not exist */
  GK_ALREADY_EXISTS,    /* the book or trade id is taken */
  GK_FAILED_PRECONDITION, /* the state forbids it: an expired instrument, a hard limit */
  GK_ABORTED,           /* a concurrent writer won (expected version); retry */
  GK_DATA_LOSS,         /* stored data is corrupted or truncated */
} gk_code;

typedef enum gk_category {
  GK_CATEGORY_NONE = 0,
  GK_CATEGORY_VALIDATION,
  GK_CATEGORY_PRICING,
  GK_CATEGORY_RESOURCE,
  GK_CATEGORY_UNAVAILABLE,
  GK_CATEGORY_TIMEOUT,
  GK_CATEGORY_CANCELLED,
  GK_CATEGORY_INTERNAL,
  GK_CATEGORY_IO,
  GK_CATEGORY_NOT_FOUND,
  GK_CATEGORY_ALREADY_EXISTS,
  GK_CATEGORY_PRECONDITION,
  GK_CATEGORY_CONFLICT,
  GK_CATEGORY_DATA_LOSS,
} gk_category;

#define GK_STATUS_NO_INDEX (-1)

typedef struct gk_status {
  gk_code code;
  gk_category category;
  bool transient;    /* true when the same request may succeed later */
  char message[256]; /* complete English sentence(s), never empty on error */
  char field[32];    /* offending input, "" if none */
  char value[64];    /* its value as text, "" if none */
  int64_t index;     /* element index, GK_STATUS_NO_INDEX if none */
  char request_id[64]; /* the request this happened in, "" if unknown */
} gk_status;

/* Resets *status to GK_OK (no-op for NULL). */
void gk_status_clear(gk_status *status);

/* Fills *status (if not NULL) and returns `code`. The category and transience
 * follow from the code; `field`, `value` may be NULL; `index` may be
 * GK_STATUS_NO_INDEX. The message is printf-formatted and truncated to fit. */
gk_code gk_status_set(gk_status *status, gk_code code, const char *field, const char *value,
                      int64_t index, const char *format, ...)
    __attribute__((format(printf, 6, 7)));

/* Copies `request_id` into the status's context (no-op for NULL). */
void gk_status_set_request_id(gk_status *status, const char *request_id);

/* The gRPC status code (grpc_status_code's numeric value) a category maps to:
 *   none -> OK (0)                 validation -> INVALID_ARGUMENT (3)
 *   pricing -> INTERNAL (13)       resource -> RESOURCE_EXHAUSTED (8)
 *   unavailable -> UNAVAILABLE (14)  timeout -> DEADLINE_EXCEEDED (4)
 *   cancelled -> CANCELLED (1)     internal -> INTERNAL (13)
 *   io -> UNAVAILABLE (14): a failing disk or stream is the server's condition,
 *   retryable elsewhere, not the caller's mistake.
 *   not_found -> NOT_FOUND (5)     already_exists -> ALREADY_EXISTS (6)
 *   precondition -> FAILED_PRECONDITION (9)   conflict -> ABORTED (10)
 *   data_loss -> DATA_LOSS (15) */
int gk_category_grpc_code(gk_category category);

/* gk_category_grpc_code(status->category); OK for NULL. */
int gk_status_grpc_code(const gk_status *status);

/* Static name of a code ("INVALID_ARGUMENT", ...) and of a category. */
const char *gk_code_name(gk_code code);
const char *gk_category_name(gk_category category);

#ifdef __cplusplus
}
#endif

#endif /* GREEKS_STATUS_H */
