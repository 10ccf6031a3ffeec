/* `greeks call`: the pricing service's RPCs over gRPC, from the command line. */
#ifndef GREEKS_CLI_CALL_COMMAND_H
#define GREEKS_CLI_CALL_COMMAND_H

#include <stdio.h>

int call_command(int argc, char **argv);
void call_command_usage(FILE *out);

#endif
