/* cli_run.c - see cli_run.h. */
#define _POSIX_C_SOURCE 200809L
#include "support/cli_run.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

void cli_slurp(const char *path, char *buffer, size_t size) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  size_t n = fread(buffer, 1, size - 1, f);
  buffer[n] = '\0';
  fclose(f);
  remove(path);
}

cli_result *cli_run(const char *default_cli, const char *workdir, const char *env,
                    const char *args) {
  static cli_result result;
  const char *cli = getenv("GREEKS_TEST_CLI");
  if (cli == NULL || *cli == '\0') cli = default_cli;
  char out_path[] = "/tmp/greeks_cli_out_XXXXXX", err_path[] = "/tmp/greeks_cli_err_XXXXXX";
  int fd_out = mkstemp(out_path), fd_err = mkstemp(err_path);
  assert_true(fd_out >= 0 && fd_err >= 0);
  close(fd_out);
  close(fd_err);
  size_t size = 8192;
  char *command = malloc(size);
  assert_non_null(command);
  snprintf(command, size, "cd '%s' && env %s '%s' %s >'%s' 2>'%s'", workdir, env, cli, args,
           out_path, err_path);
  int status = system(command);
  free(command);
  assert_true(WIFEXITED(status));
  result.exit_code = WEXITSTATUS(status);
  cli_slurp(out_path, result.out, sizeof result.out);
  cli_slurp(err_path, result.err, sizeof result.err);
  return &result;
}
