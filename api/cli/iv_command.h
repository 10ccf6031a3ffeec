/* `greeks iv` verb. */
#ifndef GREEKS_CLI_IV_COMMAND_H
#define GREEKS_CLI_IV_COMMAND_H

#include <stdio.h>

/* Runs the verb on its arguments (after "iv"); returns the exit code. */
int iv_command(int argc, char **argv);
void iv_command_usage(FILE *out);

#endif
