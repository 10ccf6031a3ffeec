/* greeksd's start-up checks (startup.h): refusals first, then warnings. */
#include "startup.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "auth.h"
#include "greeks/log.h"
#include "listener.h"

/* Descriptors greeksd needs besides its connections (log, listener, gRPC's
 * eventfds and epoll sets, the pool's threads), and the metrics listener's
 * 256 connections (http_listener.c). */
enum { FD_RESERVE = 64 + 256 };

/* A secret must be readable by its owner only: group or other bits refused.
 * `label` names where the path came from (config.h, greeksd_config_label). */
static int check_private(const char *label, const char *path, greeksd_errors *e) {
  struct stat st;
  if (stat(path, &st) != 0) {
    greeksd_errors_add(e, "%s: '%s' cannot be read: %s", label, path, strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) { /* a FIFO hung the start; a directory was told to chmod 600 (found in review) */
    greeksd_errors_add(e, "%s: '%s' is not a regular file (a FIFO, directory or device): a secret is a file", label,
                       path);
    return -1;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    greeksd_errors_add(e, "%s: '%s' has mode %04o: a secret must be private to its owner (chmod 600 '%s')", label,
                       path, (unsigned)(st.st_mode & 07777), path);
    return -1;
  }
  return 0;
}

static void check_tokens(const char *label, const char *path, greeksd_errors *e) {
  if (check_private(label, path, e) != 0) return;
  char why[1200];
  char **tokens = greeksd_load_tokens(path, why, sizeof why);
  if (tokens == NULL) {
    const char *reason = strncmp(why, "--token-file ", 13) == 0 ? why + 13 : why; /* "'PATH': holds no token" */
    greeksd_errors_add(e, "%s: %s", label, reason);
    return;
  }
  greeksd_free_tokens(tokens);
}

/* OpenSSL's passphrase callback: none. With a NULL callback OpenSSL asks for
 * an encrypted key's passphrase on the terminal: a start under a terminal
 * hung, and a reload blocked the main thread and every signal with it (found
 * in review). An encrypted key is not supported: it simply does not read. */
static int no_passphrase(char *buffer, int size, int writing, void *user) {
  (void)buffer, (void)size, (void)writing, (void)user;
  return 0;
}

/* NULL when a TLS server context takes the pair as gRPC's TLS layer will,
 * else why not (written to why). OpenSSL's security level refuses pairs that
 * parse and match (a SHA-1 signature: "ca md too weak"; a short key): gRPC
 * then kept the old certificate while the reload logged the new one in
 * force, and a start said only that it could not listen (found in review).
 * `certs`: the certificate file's text, the leaf first, then its chain. */
static const char *tls_refuses(BIO *certs, EVP_PKEY *key, char *why, size_t size) {
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  X509 *leaf = ctx ? PEM_read_bio_X509(certs, NULL, no_passphrase, NULL) : NULL;
  const char *part = ctx == NULL ? "a TLS context" : leaf == NULL || SSL_CTX_use_certificate(ctx, leaf) != 1
                                                        ? "the certificate" : NULL;
  for (X509 *link; part == NULL && (link = PEM_read_bio_X509(certs, NULL, no_passphrase, NULL)) != NULL;)
    if (SSL_CTX_add0_chain_cert(ctx, link) != 1) X509_free(link), part = "a certificate of its chain";
  if (part == NULL) {
    ERR_clear_error(); /* the chain's end reads as "no start line" */
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1) part = "the key";
  }
  if (part != NULL) {
    unsigned long error = ERR_peek_last_error();
    const char *reason = error ? ERR_reason_error_string(error) : NULL;
    snprintf(why, size, "%s is refused by TLS: %s", part, reason ? reason : "no reason given");
  }
  X509_free(leaf);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return part ? why : NULL;
}

static X509 *read_certificate(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  X509 *cert = PEM_read_X509(f, NULL, no_passphrase, NULL);
  fclose(f);
  return cert;
}

static EVP_PKEY *read_key(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
  fclose(f);
  return key;
}

/* "expired on DATE" or "is not valid before DATE" for a certificate outside
 * its validity now, else NULL: an expired pair was accepted at start and
 * swapped in by a reload without a word, and every verifying client then
 * failed its handshake (found in review). */
static const char *certificate_out_of_date(const X509 *cert, char *out, size_t size) {
  const ASN1_TIME *not_after = X509_get0_notAfter(cert), *not_before = X509_get0_notBefore(cert);
  int expired = not_after && X509_cmp_current_time(not_after) < 0;
  int early = !expired && not_before && X509_cmp_current_time(not_before) > 0;
  if (!expired && !early) return NULL;
  char date[64] = "";
  BIO *text = BIO_new(BIO_s_mem());
  if (text && ASN1_TIME_print(text, expired ? not_after : not_before)) {
    int n = BIO_read(text, date, (int)sizeof date - 1);
    date[n > 0 ? n : 0] = '\0';
  }
  BIO_free(text);
  snprintf(out, size, "%s %s", expired ? "expired on" : "is not valid before", date);
  return out;
}

/* The pair must parse and match: gRPC would only say it cannot listen. */
static void check_tls_pair(const greeksd_config *c, greeksd_errors *e) {
  char cert_label[GREEKSD_SOURCE_SIZE + 64], key_label[GREEKSD_SOURCE_SIZE + 64];
  greeksd_config_label(c, "tls.cert", cert_label, sizeof cert_label);
  greeksd_config_label(c, "tls.key", key_label, sizeof key_label);
  /* both files' errors, not the key's alone (the operator fixes one, then
   * learns of the other at the next start) */
  int key_private = check_private(key_label, c->tls_key, e) == 0;
  X509 *cert = read_certificate(c->tls_cert);
  EVP_PKEY *key = cert && key_private ? read_key(c->tls_key) : NULL;
  FILE *probe = cert == NULL ? fopen(c->tls_cert, "r") : NULL;
  int cannot_open = cert == NULL && probe == NULL ? errno : 0;
  if (probe) fclose(probe);
  if (cannot_open) /* a missing file said "not a readable PEM certificate" (found in review) */
    greeksd_errors_add(e, "%s: '%s' cannot be read: %s", cert_label, c->tls_cert, strerror(cannot_open));
  else if (cert == NULL)
    greeksd_errors_add(e, "%s: '%s' is not a readable PEM certificate", cert_label, c->tls_cert);
  else if (key_private && key == NULL) /* a key not private is said by check_private */
    greeksd_errors_add(e, "%s: '%s' is not a readable PEM private key (an encrypted key is not supported)", key_label,
                       c->tls_key);
  else if (key != NULL && X509_check_private_key(cert, key) != 1)
    greeksd_errors_add(e, "%s: '%s' does not belong to the certificate in %s '%s'", key_label, c->tls_key, cert_label,
                       c->tls_cert);
  char dated[96], refused[256];
  if (cert != NULL && certificate_out_of_date(cert, dated, sizeof dated))
    greeksd_errors_add(e, "%s: '%s' %s: clients that verify it would refuse every handshake", cert_label,
                       c->tls_cert, dated);
  BIO *file = key != NULL && X509_check_private_key(cert, key) == 1 ? BIO_new_file(c->tls_cert, "r") : NULL;
  if (file != NULL && tls_refuses(file, key, refused, sizeof refused))
    greeksd_errors_add(e, "%s: '%s': %s", cert_label, c->tls_cert, refused);
  BIO_free(file);
  ERR_clear_error();
  EVP_PKEY_free(key);
  X509_free(cert);
}

/* The same rule on the bytes a snapshot holds: the files may have changed
 * since check_tls_pair read them, and what gRPC is handed must be what passed. */
int greeksd_tls_pem_check(const char *cert_pem, const char *key_pem, char *why, size_t size) {
  BIO *bio = BIO_new_mem_buf(cert_pem, -1);
  X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, no_passphrase, NULL) : NULL;
  BIO_free(bio);
  bio = cert ? BIO_new_mem_buf(key_pem, -1) : NULL;
  EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
  BIO_free(bio);
  int ok = cert != NULL && key != NULL && X509_check_private_key(cert, key) == 1;
  char dated[96];
  if (!ok)
    snprintf(why, size, "%s", cert == NULL  ? "tls.cert: the certificate read is not a PEM certificate"
                              : key == NULL ? "tls.key: the key read is not a PEM private key"
                                            : "tls.key: the key read does not belong to the certificate read");
  else if (certificate_out_of_date(cert, dated, sizeof dated)) {
    snprintf(why, size, "tls.cert: the certificate read %s", dated);
    ok = 0;
  } else {
    char refused[256];
    bio = BIO_new_mem_buf(cert_pem, -1);
    if (bio == NULL || tls_refuses(bio, key, refused, sizeof refused)) {
      snprintf(why, size, "tls.cert: %s", bio ? refused : "out of memory");
      ok = 0;
    }
    BIO_free(bio);
  }
  ERR_clear_error();
  EVP_PKEY_free(key);
  X509_free(cert);
  return ok ? 0 : -1;
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

extern char **environ;

static void warn_about(const greeksd_config *c) {
  char unknown[1024];
  if (greeksd_config_unknown_variables(environ, unknown, sizeof unknown) > 0)
    gk_logf(GK_LOG_WARN, "startup", "ignored: %s: no greeksd setting reads it (the variables: greeksd --help)", unknown);
  int plaintext = c->tls_cert[0] == '\0';
  if (plaintext && !greeksd_address_is_loopback(c->listen))
    gk_logf(GK_LOG_WARN, "startup",
            "plaintext on '%s', which is not a loopback address: anyone on the network can read and send requests "
            "(use --tls-cert/--tls-key, or listen on 127.0.0.1 behind a TLS proxy)",
            c->listen);
  if (plaintext && (c->token_file[0] != '\0' || c->token_count > 0))
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

int greeksd_startup_check(const greeksd_config *c, greeksd_errors *e) {
  int before = e->count;
  char label[GREEKSD_SOURCE_SIZE + 64];
  if (c->token_file[0] != '\0') check_tokens(greeksd_config_label(c, "token_file", label, sizeof label), c->token_file, e);
  for (int i = 0; i < c->token_count; i++) {
    const char *source = c->tokens[i].source;
    if (source[0] == '-' || strncmp(source, "GREEKSD_", 8) == 0)
      snprintf(label, sizeof label, "%s: token '%s'", source, c->tokens[i].name);
    else snprintf(label, sizeof label, "%s: tokens[%s].file", source, c->tokens[i].name);
    check_tokens(label, c->tokens[i].file, e);
  }
  if (c->tls_cert[0] != '\0' && c->tls_key[0] != '\0') check_tls_pair(c, e);
  return e->count > before ? -1 : 0;
}

void greeksd_startup_warn(const greeksd_config *c) { warn_about(c); }
