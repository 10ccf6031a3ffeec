/*
 * `greeks book <verb> [--store URL] [--now TIME] ...`: the book's use cases
 * (greeks/book_service.h) from the command line, on a local SQLite store by
 * default ($XDG_DATA_HOME/greeks/books.db, else ~/.local/share/greeks/books.db)
 * or any store gk_store_open_url takes. docs/book-cli.md has the verbs, their
 * CSV files and examples.
 *
 * Exit codes: CLI_EXIT_OK (0); CLI_EXIT_UNUSABLE (2): bad usage, an unreadable
 * or malformed file, or a command the book refused (a rule, an unknown book or
 * trade: nothing was written); CLI_EXIT_BAD_ROWS (3): `trade` rejected some
 * trades and executed the others; BOOK_EXIT_FAILED (4): the store failed (I/O,
 * unavailable, damaged, or concurrent writers won every retry): the input may be
 * fine, and re-running is safe (trades carry idempotency keys).
 */
#ifndef GREEKS_CLI_BOOK_COMMAND_H
#define GREEKS_CLI_BOOK_COMMAND_H

#include <stdio.h>

#include "greeks/book.h"
#include "greeks/status.h"

enum { BOOK_EXIT_FAILED = 4 };

/* The exit code of a gk_code, the same for every book verb: refusals (the
 * input's fault or the book's rule) CLI_EXIT_UNUSABLE, the store's failures
 * BOOK_EXIT_FAILED. */
int book_exit_for(gk_code code);

/* A short human text for one event (an audit row's summary), at most `size`
 * bytes with the NUL. */
void book_event_summary(const gk_event *event, char *out, size_t size);

/* argv[0] is the verb. Returns the exit code. */
int book_command(int argc, char **argv);
void book_command_usage(FILE *out);

#endif
