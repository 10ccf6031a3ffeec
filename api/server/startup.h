/*
 * greeksd's start-up checks, run before the server starts: what is refused
 * (exit 2, the message names the flag, the value and the rule) and what is
 * only warned about (logged at WARN; docs/operations.md says what each means).
 *
 * Refused: a token or TLS key file that group or others may read or write; a
 * token file that cannot be read or holds no token; a certificate or key that
 * is not PEM, or a key that does not belong to the certificate.
 * Warned: plaintext on an address that is not loopback; bearer tokens over
 * plaintext; a file-descriptor limit too small for --max-connections.
 */
#ifndef GREEKSD_STARTUP_H
#define GREEKSD_STARTUP_H

#include <stddef.h>

#include "config.h"

/* The refusals, each error naming where the path came from (the flag, the
 * variable, or FILE:LINE and the key): all of them are appended to *errors.
 * Returns 0, or -1 when any was added. Logs nothing: --check-config and a
 * reload run it too. */
int greeksd_startup_check(const greeksd_config *config, greeksd_errors *errors);

/* The TLS pair as read into memory (a snapshot's copy, reload.c): both PEM
 * strings parse, and the key belongs to the certificate. Returns 0, or -1
 * with the rule broken in why[size]. Logs nothing; thread-safe. */
int greeksd_tls_pem_check(const char *cert_pem, const char *key_pem, char *why, size_t size);

/* Logs the warnings (serving only). */
void greeksd_startup_warn(const greeksd_config *config);

/* Raises the soft RLIMIT_NOFILE to the hard limit (each connection is a
 * descriptor); returns the soft limit now in force. */
long greeksd_raise_fd_limit(void);

#endif
