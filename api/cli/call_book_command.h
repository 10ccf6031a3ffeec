/*
 * `greeks call [connection options] book VERB ...`: greeks.v1.BookService
 * (proto/greeks/v1/book.proto) from the command line, over gRPC to greeksd.
 * The verbs mirror the offline `greeks book` verbs (book_command.h): the same
 * CSV files in (book_input.h reads them), the same CSV out where the answer is
 * the same, the same exit codes; plus the service's own verbs (subscribe,
 * hedge, strategies). docs/book-cli.md, "greeks call book".
 *
 * Exit codes: CLI_EXIT_OK (0); CLI_EXIT_UNUSABLE (2): bad usage or input, or a
 * command the server refused (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
 * FAILED_PRECONDITION, OUT_OF_RANGE, and UNAUTHENTICATED, PERMISSION_DENIED,
 * UNIMPLEMENTED: re-running the same command cannot succeed); CLI_EXIT_BAD_ROWS
 * (3): `trade` had some trades rejected, the others executed; BOOK_EXIT_FAILED
 * (4): the call failed on the way or on the server (UNAVAILABLE,
 * DEADLINE_EXCEEDED, ABORTED, RESOURCE_EXHAUSTED, INTERNAL, DATA_LOSS, ...):
 * the input may be fine and re-running is safe.
 */
#ifndef GREEKS_CLI_CALL_BOOK_COMMAND_H
#define GREEKS_CLI_CALL_BOOK_COMMAND_H

#include <stdio.h>

#include "client.h"

/* argv[0] is the book verb; `connection` says where and how to call (its
 * strings stay the caller's). Prints CSV to stdout, errors to stderr; returns
 * the exit code. */
int call_book_command(const gk_client_options *connection, int argc, char **argv);

void call_book_usage(FILE *out);

#endif
