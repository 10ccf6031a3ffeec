/* store_files.c - see store_files.h. */
#define _POSIX_C_SOURCE 200809L
#include "support/store_files.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

void store_temp_path(const char *stem, char *out, size_t size) {
  const char *dir = getenv("TMPDIR");
  snprintf(out, size, "%s/%s_XXXXXX", dir && dir[0] ? dir : "/tmp", stem);
  int fd = mkstemp(out);
  assert_true(fd >= 0);
  close(fd);
  unlink(out); /* the store creates it */
}

void store_remove_files(const char *path) {
  char name[4200];
  unlink(path);
  snprintf(name, sizeof name, "%s-wal", path);
  unlink(name);
  snprintf(name, sizeof name, "%s-shm", path);
  unlink(name);
}
