/* greeksd's start-up checks (startup.h): refusals first, then warnings. */
#include "startup.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "auth.h"
#include "greeks/log.h"
#include "listener.h"

/* Descriptors greeksd needs besides its connections (log, listener, gRPC's
 * eventfds and epoll sets, the pool's threads). */
enum { FD_RESERVE = 64 };

/* A secret must be readable by its owner only: group or other bits refused. */
static int check_private(const char *flag, const char *path, char *error, size_t size) {
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(error, size, "%s: '%s' cannot be read: %s", flag, path, strerror(errno));
    return -1;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    snprintf(error, size, "%s: '%s' has mode %04o: a secret must be private to its owner (chmod 600 '%s')", flag, path,
             (unsigned)(st.st_mode & 07777), path);
    return -1;
  }
  return 0;
}

static int check_tokens(const char *path, char *error, size_t size) {
  if (check_private("--token-file", path, error, size) != 0) return -1;
  char why[1200];
  char **tokens = greeksd_load_tokens(path, why, sizeof why);
  if (tokens == NULL) {
    if (strncmp(why, "--token-file", 12) == 0) snprintf(error, size, "%s", why);
    else snprintf(error, size, "--token-file: %s", why);
    return -1;
  }
  greeksd_free_tokens(tokens);
  return 0;
}

static X509 *read_certificate(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  return cert;
}

static EVP_PKEY *read_key(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
  fclose(f);
  return key;
}

/* The pair must parse and match: gRPC would only say it cannot listen. */
static int check_tls_pair(const char *cert_path, const char *key_path, char *error, size_t size) {
  if (check_private("--tls-key", key_path, error, size) != 0) return -1;
  X509 *cert = read_certificate(cert_path);
  EVP_PKEY *key = cert ? read_key(key_path) : NULL;
  int rc = 0;
  if (cert == NULL) {
    snprintf(error, size, "--tls-cert: '%s' is not a readable PEM certificate", cert_path);
    rc = -1;
  } else if (key == NULL) {
    snprintf(error, size, "--tls-key: '%s' is not a readable PEM private key (an encrypted key is not supported)",
             key_path);
    rc = -1;
  } else if (X509_check_private_key(cert, key) != 1) {
    snprintf(error, size, "--tls-key: '%s' does not belong to the certificate in --tls-cert '%s'", key_path,
             cert_path);
    rc = -1;
  }
  ERR_clear_error();
  EVP_PKEY_free(key);
  X509_free(cert);
  return rc;
}

long greeksd_raise_fd_limit(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
  if (limit.rlim_cur < limit.rlim_max) {
    struct rlimit raised = {limit.rlim_max, limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur == RLIM_INFINITY ? -1 : (long)limit.rlim_cur;
}

static void warn_about(const greeksd_config *c) {
  int plaintext = c->tls_cert[0] == '\0';
  if (plaintext && !greeksd_address_is_loopback(c->listen))
    gk_logf(GK_LOG_WARN, "startup",
            "plaintext on '%s', which is not a loopback address: anyone on the network can read and send requests "
            "(use --tls-cert/--tls-key, or listen on 127.0.0.1 behind a TLS proxy)",
            c->listen);
  if (plaintext && c->token_file[0] != '\0')
    gk_logf(GK_LOG_WARN, "startup",
            "bearer tokens over plaintext: every token crosses the network in clear text (use --tls-cert/--tls-key)");
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      (long)limit.rlim_cur < (long)c->max_connections + FD_RESERVE)
    gk_logf(GK_LOG_WARN, "startup",
            "the file-descriptor limit (%ld) is below --max-connections %d + %d: connections will wait for "
            "descriptors (raise `ulimit -n` or lower --max-connections)",
            (long)limit.rlim_cur, c->max_connections, FD_RESERVE);
}

int greeksd_startup_check(const greeksd_config *c, char *error, size_t size) {
  if (c->token_file[0] != '\0' && check_tokens(c->token_file, error, size) != 0) return -1;
  if (c->tls_cert[0] != '\0' && check_tls_pair(c->tls_cert, c->tls_key, error, size) != 0) return -1;
  warn_about(c);
  return 0;
}
