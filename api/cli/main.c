/* The `greeks` command line: offline access to the pricing use cases. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "book_command.h"
#include "call_command.h"
#include "cli_common.h"
#include "greeks/isa.h"
#include "greeks/log.h"
#include "iv_command.h"
#include "price_command.h"
#include "revalue_command.h"

#ifndef GREEKS_VERSION
#error "GREEKS_VERSION must be defined by the build"
#endif

static void usage(FILE *out) {
  fputs("usage: greeks <command> [options]\n"
        "commands:\n"
        "  price     price European options and Greeks from a CSV file\n"
        "  chain     price one underlying's option chain (market from flags)\n"
        "  revalue   revalue a portfolio: Greeks, aggregates and a scenario P&L grid\n"
        "  iv        implied vols from option prices (bsm, black76, gk or bachelier; american too)\n"
        "  call      the same over gRPC: send a file to greeksd (see 'greeks call --help')\n"
        "  book      trade books on a local store: open, trade, market, show, risk, audit\n"
        "  --version print the version and the instruction set in use\n"
        "Run 'greeks price --help' for the options of a command.\n",
        out);
}

static int print_version(void) {
  if (cli_check_isa() != 0) return CLI_EXIT_UNUSABLE;
  printf("greeks %s (isa %s)\n", GREEKS_VERSION, gk_isa_name(gk_isa_active()));
  return CLI_EXIT_OK;
}

/* Library events (warnings and errors) go to stderr, after the CLI's own messages. */
static void log_to_stderr(void *user, gk_log_level level, const char *component, const char *message) {
  (void)user;
  if (level >= GK_LOG_WARN) fprintf(stderr, "greeks: %s: %s: %s\n", gk_log_level_name(level), component, message);
}

static int run_command(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_UNUSABLE;
  }
  const char *command = argv[1];
  if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0) return print_version();
  if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 || strcmp(command, "help") == 0) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(command, "price") == 0) return price_command(argc - 2, argv + 2);
  if (strcmp(command, "chain") == 0) return chain_command(argc - 2, argv + 2);
  if (strcmp(command, "revalue") == 0) return revalue_command(argc - 2, argv + 2);
  if (strcmp(command, "iv") == 0) return iv_command(argc - 2, argv + 2);
  if (strcmp(command, "call") == 0) return call_command(argc - 2, argv + 2);
  if (strcmp(command, "book") == 0) return book_command(argc - 2, argv + 2);
  fprintf(stderr, "greeks: unknown command '%s'\n", command);
  usage(stderr);
  return CLI_EXIT_UNUSABLE;
}

int main(int argc, char **argv) {
  /* A closed pipe is a write error the commands report (exit 4 after a
   * write: "what the command did is recorded"), not a silent death by
   * SIGPIPE after the store was written (`| head` ended a trades file with
   * exit 141 and no word; found in review). */
  signal(SIGPIPE, SIG_IGN);
  gk_log_set_sink(log_to_stderr, NULL);
  int status = run_command(argc, argv);
  /* A command that succeeded, or answered some rows (exit 3), has written all
   * it says it wrote: --help or --version into a full disk is a failure too,
   * and so is `call price-batch` whose answered rows were lost (it exited 3,
   * "the others were answered"; found in review). The paths that check their
   * own writes have said so and returned 2 or 4. */
  const char *failure = status == CLI_EXIT_OK || status == CLI_EXIT_BAD_ROWS ? cli_output_failure(stdout) : NULL;
  if (failure) {
    fprintf(stderr, "greeks: write error: %s\n", failure);
    return CLI_EXIT_UNUSABLE;
  }
  return status;
}
