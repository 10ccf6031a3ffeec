/*
 * store_files.h - temporary SQLite store paths for the store suites
 * (test_event_store, test_store_copy): a fresh name under $TMPDIR (or /tmp) that
 * the store creates, and the removal of the file with its WAL and shared-memory
 * companions.
 */
#ifndef GREEKS_TEST_STORE_FILES_H
#define GREEKS_TEST_STORE_FILES_H

#include <stddef.h>

/* A unique path "<dir>/<stem>_XXXXXX" that does not exist yet; fails the test
 * when none can be made. */
void store_temp_path(const char *stem, char *out, size_t size);
/* Removes PATH, PATH-wal and PATH-shm (missing ones are fine). */
void store_remove_files(const char *path);

#endif /* GREEKS_TEST_STORE_FILES_H */
