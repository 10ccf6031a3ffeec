#include "cli_common.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeks/isa.h"

const char *cli_skip_spaces(const char *s) {
  while (*s && isspace((unsigned char)*s)) s++;
  return s;
}

int cli_take_option(int argc, char **argv, int *i, const char *name, const char **value) {
  size_t len = strlen(name);
  const char *arg = argv[*i];
  if (strncmp(arg, name, len) != 0) return 0;
  if (arg[len] == '=') {
    *value = arg + len + 1;
    return 1;
  }
  if (arg[len] != '\0') return 0;
  *value = *i + 1 < argc ? argv[++*i] : NULL;
  return 1;
}

int cli_usage_error(const char *message, const char *value) {
  fprintf(stderr, "greeks: %s: '%s'\n", message, value ? value : "(missing)");
  return 2;
}

int cli_force_isa(const char *name) {
  gk_isa isa;
  gk_rc rc = name ? gk_isa_from_name(name, &isa) : GK_RC_ISA_UNKNOWN;
  if (rc == GK_RC_OK) rc = gk_isa_force(isa);
  if (rc != GK_RC_OK) {
    fprintf(stderr, "greeks: --isa '%s': %s\n", name ? name : "(missing)", gk_rc_message(rc));
    return -1;
  }
  return 0;
}

int cli_check_isa(void) {
  gk_rc rc = gk_isa_init();
  if (rc != GK_RC_OK) {
    const char *forced = getenv("GREEKS_ISA");
    fprintf(stderr, "greeks: GREEKS_ISA='%s': %s\n", forced ? forced : "", gk_rc_message(rc));
    return -1;
  }
  return 0;
}
