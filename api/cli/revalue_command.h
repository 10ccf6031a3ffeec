/* `greeks revalue` verb. */
#ifndef GREEKS_CLI_REVALUE_COMMAND_H
#define GREEKS_CLI_REVALUE_COMMAND_H

#include <stdio.h>

/* Runs the verb on its arguments (after "revalue"); returns the exit code. */
int revalue_command(int argc, char **argv);
void revalue_command_usage(FILE *out);

#endif
