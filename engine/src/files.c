/*
 * files.c - whether two paths name one file (greeks/files.h).
 *
 * stat() follows symlinks, so a link to a store is the store. A path that
 * does not exist yet (an output about to be created) can still be a store's
 * companion that SQLite creates later (books.db-wal): the comparison then
 * falls back to the absolute path, with the directory resolved by realpath()
 * (the file itself cannot be: it is not there).
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "greeks/files.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The absolute path of `path` with its directory resolved, into out; false
 * when the directory cannot be resolved or the result does not fit. */
static bool absolute_path_of(const char *path, char out[PATH_MAX]) {
  const char *slash = strrchr(path, '/');
  char directory[PATH_MAX], resolved[PATH_MAX];
  const char *name = slash ? slash + 1 : path;
  if (slash == path) snprintf(directory, sizeof directory, "/");
  else if (slash) snprintf(directory, sizeof directory, "%.*s", (int)(slash - path), path);
  else snprintf(directory, sizeof directory, ".");
  if (realpath(directory, resolved) == NULL) return false;
  int n = snprintf(out, PATH_MAX, "%s/%s", strcmp(resolved, "/") == 0 ? "" : resolved, name);
  return n > 0 && n < PATH_MAX;
}

bool gk_paths_name_one_file(const char *a, const char *b) {
  if (a == NULL || b == NULL || a[0] == '\0' || b[0] == '\0') return false;
  struct stat sa, sb;
  bool has_a = stat(a, &sa) == 0, has_b = stat(b, &sb) == 0;
  /* regular files only: a terminal or a pipe is no file to overwrite, and
   * --grid-out /dev/stdout beside --positions-out /dev/stderr on one terminal
   * (or one `2>&1` pipe) was refused (found in review) */
  if (has_a && has_b) return S_ISREG(sa.st_mode) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  if (has_a || has_b) return false;
  char pa[PATH_MAX], pb[PATH_MAX];
  if (!absolute_path_of(a, pa) || !absolute_path_of(b, pb)) return strcmp(a, b) == 0;
  return strcmp(pa, pb) == 0;
}
