/* `greeks price` and `greeks chain` verbs. */
#ifndef GREEKS_CLI_PRICE_COMMAND_H
#define GREEKS_CLI_PRICE_COMMAND_H

#include <stdio.h>

/* Runs the verb on its arguments (after "price"); returns the process exit code. */
int price_command(int argc, char **argv);
void price_command_usage(FILE *out);

/* `greeks chain` verb: one underlying's market from flags, contracts from CSV. */
int chain_command(int argc, char **argv);
void chain_command_usage(FILE *out);

#endif
