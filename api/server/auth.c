/* Bearer tokens for greeksd: loaded at start and on each reload (reload.c),
 * compared in constant time. */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* greeks call's limit on a token (api/client/client.c) */
#define GREEKSD_TOKEN_MAX_LENGTH 1000

/* A regular file only, opened without blocking: a FIFO put in a token
 * file's place blocked the thread that also handles SIGTERM and reloads, and
 * a directory said only "cannot read" (found in review). */
char *greeksd_read_file(const char *path, size_t max_bytes, char *error, size_t size) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    snprintf(error, size, "'%s': cannot open: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(error, size, "'%s': is not a regular file (a FIFO, directory or device)", path);
    close(fd);
    return NULL;
  }
  FILE *f = fdopen(fd, "rb");
  if (f == NULL) {
    snprintf(error, size, "'%s': cannot open: %s", path, strerror(errno));
    close(fd);
    return NULL;
  }
  char *text = malloc(max_bytes + 1);
  size_t n = text ? fread(text, 1, max_bytes + 1, f) : 0;
  int failed = text == NULL || ferror(f);
  fclose(f);
  if (failed || n > max_bytes) {
    snprintf(error, size, "'%s': %s", path, failed ? "cannot read" : "is too large");
    free(text);
    return NULL;
  }
  /* a text file: a NUL cut the rest off unseen (a UTF-16 token file became
   * the one-letter token "d", and the tokens after a NUL were dropped: found
   * in review) */
  if (memchr(text, '\0', n) != NULL) {
    snprintf(error, size, "'%s': holds a NUL byte: a secret file is plain text (UTF-16? save it as ASCII)", path);
    free(text);
    return NULL;
  }
  text[n] = '\0';
  return text;
}

void greeksd_free_tokens(char **tokens) {
  if (tokens == NULL) return;
  for (char **t = tokens; *t; t++) free(*t);
  free(tokens);
}

static char *trimmed_copy(const char *begin, const char *end) {
  while (begin < end && (*begin == ' ' || *begin == '\t' || *begin == '\r')) begin++;
  while (end > begin && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
  if (begin == end || *begin == '#') return NULL;
  size_t n = (size_t)(end - begin);
  char *copy = malloc(n + 1);
  if (copy) {
    memcpy(copy, begin, n);
    copy[n] = '\0';
  }
  return copy;
}

char **greeksd_load_tokens(const char *path, char *error, size_t size) {
  char *text = greeksd_read_file(path, 1 << 20, error, size);
  if (text == NULL) return NULL;
  size_t lines = 1;
  for (const char *p = text; *p; p++) lines += *p == '\n';
  char **tokens = calloc(lines + 1, sizeof *tokens);
  size_t count = 0;
  size_t line_number = 0, bad_line = 0;
  const char *bad_rule = NULL;
  for (const char *line = text; tokens && *line && bad_line == 0;) {
    const char *end = strchr(line, '\n');
    if (end == NULL) end = line + strlen(line);
    line_number++;
    char *token = trimmed_copy(line, end);
    /* what a client can send in an authorization header (printable ASCII),
     * and no longer than `greeks call` sends: a token outside that passed
     * --check-config and no client could ever match it (found in review) */
    for (const char *c = token; c && *c && bad_line == 0; c++)
      if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
        bad_line = line_number, bad_rule = "holds a byte that is not printable ASCII (a UTF-8 character, a BOM, a "
                                           "control character)";
    if (token && bad_line == 0 && strlen(token) > GREEKSD_TOKEN_MAX_LENGTH)
      bad_line = line_number, bad_rule = "is longer than 1000 characters";
    if (token && bad_line == 0) tokens[count++] = token;
    else free(token);
    line = *end ? end + 1 : end;
  }
  free(text);
  if (bad_line) { /* the value is never printed */
    snprintf(error, size, "--token-file '%s': the token on line %zu %s", path, bad_line, bad_rule);
    greeksd_free_tokens(tokens);
    return NULL;
  }
  if (tokens == NULL || count == 0) {
    snprintf(error, size, "--token-file '%s': %s", path, tokens ? "holds no token" : "out of memory");
    greeksd_free_tokens(tokens);
    return NULL;
  }
  return tokens;
}

/* Compares every byte of the longer string, so the time does not reveal how
 * much of a guess was right. */
static int same_secret(const char *known, const char *given, size_t given_length) {
  size_t known_length = strlen(known);
  size_t n = known_length > given_length ? known_length : given_length;
  unsigned diff = (unsigned)(known_length ^ given_length);
  for (size_t i = 0; i < n; i++) {
    unsigned char a = i < known_length ? (unsigned char)known[i] : 0;
    unsigned char b = i < given_length ? (unsigned char)given[i] : 0;
    diff |= (unsigned)(a ^ b);
  }
  return diff == 0;
}

/* The token of an "authorization" value: the scheme "Bearer", in any case
 * (RFC 7235: auth-schemes are case-insensitive; a client that sent "bearer"
 * was refused: found in review), then one or more spaces. NULL where the
 * value is not that. */
static const char *bearer_token_of(const char *header, size_t length, size_t *token_length) {
  static const char scheme[] = "bearer";
  size_t n = sizeof scheme - 1, at = n;
  if (length <= n || strncasecmp(header, scheme, n) != 0 || header[n] != ' ') return NULL;
  while (at < length && header[at] == ' ') at++;
  if (at == length) return NULL;
  *token_length = length - at;
  return header + at;
}

#define NOT_BEARER "the 'authorization' metadata is not 'Bearer <token>'"
#define NO_HEADER "missing 'authorization' metadata: send 'authorization: Bearer <token>'"

const char *greeksd_auth_check_sets(char **const *sets, size_t count, const char *header, size_t length,
                                    size_t *matched) {
  if (header == NULL) return NO_HEADER;
  size_t given_length = 0;
  const char *given = bearer_token_of(header, length, &given_length);
  if (given == NULL) return NOT_BEARER;
  int match = 0;
  for (size_t k = 0; k < count; k++) {
    int in_set = 0;
    for (char *const *t = sets[k]; t && *t; t++) in_set |= same_secret(*t, given, given_length);
    if (in_set) *matched = k;
    match |= in_set;
  }
  return match ? NULL : "the bearer token is not valid";
}

const char *greeksd_auth_check(char *const *tokens, const char *header, size_t length) {
  char **const sets[1] = {(char **)tokens};
  size_t matched = 0;
  return greeksd_auth_check_sets(sets, 1, header, length, &matched);
}
