/* Bearer-token authentication and small file helpers for greeksd. Tokens are
 * secrets: they are never logged, and comparisons take the same time wherever
 * the first difference is. */
#ifndef GREEKSD_AUTH_H
#define GREEKSD_AUTH_H

#include <stddef.h>

/* Reads a whole text file (at most max_bytes, no NUL byte) as a NUL-terminated
 * string the caller frees. NULL with the reason in error[size]. */
char *greeksd_read_file(const char *path, size_t max_bytes, char *error, size_t size);

/* Loads tokens, one per line (blank lines and lines starting with '#' skipped,
 * surrounding spaces trimmed), as a NULL-terminated array the caller frees with
 * greeksd_free_tokens. NULL with the reason when the file is unreadable or holds
 * no token. */
char **greeksd_load_tokens(const char *path, char *error, size_t size);
void greeksd_free_tokens(char **tokens);

/* Checks an "authorization" metadata value (header may be NULL when absent).
 * Returns NULL when it is "Bearer <token>" with a known token (the scheme in
 * any case, then one or more spaces), else the reason (a static string that
 * never contains the token). */
const char *greeksd_auth_check(char *const *tokens, const char *header, size_t length);

/* The same over several token sets (the anonymous --token-file set and each
 * named file): NULL when the token is in some set, with *matched its index
 * (the last matching set). Every token of every set is compared, so the time
 * does not tell which set (or whether any) held it. */
const char *greeksd_auth_check_sets(char **const *sets, size_t count, const char *header, size_t length,
                                    size_t *matched);

#endif
