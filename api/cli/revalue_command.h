/* `greeks revalue` verb. */
#ifndef GREEKS_CLI_REVALUE_COMMAND_H
#define GREEKS_CLI_REVALUE_COMMAND_H

#include <stdio.h>

#include "revalue_input.h"

/* Runs the verb on its arguments (after "revalue"); returns the exit code. */
int revalue_command(int argc, char **argv);
void revalue_command_usage(FILE *out);

/* Opens `path` ("-": stdin) and reads it with market_read (markets != NULL) or
 * positions_read (each bad row printed to stderr naming the file, and left
 * out). Returns 0, or -1 after printing why. Shared with `greeks call
 * revalue`, which must read the same files by the same rules. */
int revalue_read_input(const char *path, gk_model model, market_table *markets, const market_table *known,
                       position_table *positions);

#endif
