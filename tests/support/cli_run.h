/*
 * cli_run.h - runs the real `greeks` binary for the CLI suites (test_cli,
 * test_book_cli) with stdout and stderr captured, so that they test what a user
 * runs. GREEKS_TEST_CLI, when set, names another binary (to check that a new
 * test fails on an older build).
 */
#ifndef GREEKS_TEST_CLI_RUN_H
#define GREEKS_TEST_CLI_RUN_H

#include <stddef.h>

typedef struct cli_result {
  int exit_code;
  char out[65536];
  char err[16384];
} cli_result;

/* `cd WORKDIR && env ENV CLI ARGS`; the result lives until the next call.
 * Fails the test when the binary did not exit normally. */
cli_result *cli_run(const char *default_cli, const char *workdir, const char *env,
                    const char *args);

/* Reads a whole file (at most size - 1 bytes, NUL-terminated) and removes it. */
void cli_slurp(const char *path, char *buffer, size_t size);

#endif /* GREEKS_TEST_CLI_RUN_H */
