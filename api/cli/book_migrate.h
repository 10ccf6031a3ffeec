/*
 * `greeks book migrate --store FROM --to TO`: every stream (book) of one event
 * store copied into another with gk_store_copy (greeks/event_store.h; docs/book.md,
 * "Moving a book from SQLite to PostgreSQL"): the events verbatim, their
 * idempotency records and the latest snapshot, each stream read back from TO and
 * verified. FROM and TO are what gk_store_open_url takes: "sqlite:PATH", a path,
 * or a PostgreSQL URL ("postgresql://...") or conninfo ("host=... dbname=...").
 * A SQLite FROM must exist (a mistyped path is an error, not an empty store).
 *
 * Output: CSV on stdout, the header "stream,events", then a line per stream once
 * it is copied and verified. Errors on stderr as
 * "greeks book migrate: MESSAGE (CODE)".
 *
 * Exit codes (cli_common.h, book_command.h): CLI_EXIT_OK (0) every stream copied;
 * CLI_EXIT_UNUSABLE (2) bad usage, a missing FROM file, or the copy refused: TO
 * already has one of FROM's streams (checked for all before anything is
 * written), or a stream's idempotency records cannot be placed (the streams
 * printed before it are copied); BOOK_EXIT_FAILED (4) a store failed (cannot be
 * opened, I/O, unavailable, damaged, or the copy did not verify): the streams
 * printed are copied and verified, the one named in the error may be on TO in
 * part, and a rerun refuses it (start again on an empty TO).
 */
#ifndef GREEKS_CLI_BOOK_MIGRATE_H
#define GREEKS_CLI_BOOK_MIGRATE_H

#include <stdio.h>

/* argv[0] is the verb ("migrate"), as for book_command; the options follow.
 * Returns the exit code. */
int book_migrate_command(int argc, char **argv);
void book_migrate_usage(FILE *out);

/* NULL when `url` names a PostgreSQL store or an existing, non-empty SQLite
 * file; else why not ("no such store file", "the file is empty, not a store")
 * with *path the file's path: opening a missing file would create an empty
 * store, and a mistyped path would read as one holding no books. */
const char *book_store_missing(const char *url, const char **path);

#endif
