/*
 * `greeks book migrate --store FROM --to TO` (book_migrate.h): every stream of
 * FROM copied into TO by gk_store_copy, a CSV line per stream as it lands.
 *
 * Steps, each its own function: parse_args (--store, --to, --help and nothing
 * else; every problem a usage error before any I/O), check_source (a SQLite FROM
 * must exist), open_store for each end, then the copy, its progress callback
 * printing "stream,events".
 *
 * Why FROM must exist: the SQLite adapter creates a missing file, so a mistyped
 * path would "copy" an empty store and exit 0, leaving a stray file behind.
 * Why no default store (the other book verbs default to the local SQLite file):
 * a copy names both ends, so that a slip cannot move the wrong store.
 * Why arguments are never echoed whole: a PostgreSQL URL or conninfo may hold a
 * password; errors name a store by gk_store_describe, which leaves it out.
 */
#include "book_migrate.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "book_command.h"
#include "cli_common.h"
#include "csv.h"
#include "greeks/event_store.h"

#define PREFIX "greeks book migrate: "

typedef struct migrate_args {
  const char *from, *to;
  int help;
} migrate_args;

void book_migrate_usage(FILE *out) {
  fputs("usage: greeks book migrate --store FROM --to TO\n"
        "  Copies every book (stream) of FROM into TO: events verbatim, idempotency\n"
        "  records, the latest snapshot; each stream is read back from TO and verified.\n"
        "  FROM, TO: \"sqlite:PATH\", a path, or a PostgreSQL URL or conninfo. TO must not\n"
        "  hold any of FROM's books. Stop FROM's writers first.\n"
        "  Output: CSV \"stream,events\", a line per stream copied. Exit 0 ok, 2 bad usage\n"
        "  or refused (nothing of the refused stream written), 4 a store failed.\n",
        out);
}

static int usage_error(const char *message, const char *value) {
  if (value)
    fprintf(stderr, PREFIX "%s: '%s'\n", message, value);
  else
    fprintf(stderr, PREFIX "%s\n", message);
  fputs("usage: greeks book migrate --store FROM --to TO (see --help)\n", stderr);
  return CLI_EXIT_UNUSABLE;
}


static int store_failed(const char *where, const gk_status *st) {
  fprintf(stderr, PREFIX "%s%s%s (%s)\n", where ? where : "", where ? ": " : "", st->message,
          gk_code_name(st->code));
  return book_exit_for(st->code);
}

/* ---- arguments ---- */

/* An option's name without its "=VALUE" (which may be a password), for errors. */
static int unknown_argument(int i, const char *arg) {
  char name[64];
  if (arg[0] != '-') {
    snprintf(name, sizeof name, "%d", i);
    return usage_error("unexpected argument at position", name);
  }
  snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
  return usage_error("unknown option", name);
}

static int take_store(const char *option, const char *value, const char **slot) {
  if (value == NULL || value[0] == '\0') return usage_error("this option needs a store", option);
  if (*slot) return usage_error("this option is given twice", option);
  *slot = value;
  return 0;
}

static int parse_args(int argc, char **argv, migrate_args *a) {
  for (int i = 1; i < argc; i++) {
    const char *value = NULL;
    int rc;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      a->help = 1;
      rc = 0;
    } else if (cli_take_option(argc, argv, &i, "--store", &value)) {
      rc = take_store("--store", value, &a->from);
    } else if (cli_take_option(argc, argv, &i, "--to", &value)) {
      rc = take_store("--to", value, &a->to);
    } else {
      rc = unknown_argument(i, argv[i]);
    }
    if (rc != 0) return rc;
  }
  if (a->help) return 0;
  if (a->from == NULL) return usage_error("--store FROM is required", NULL);
  if (a->to == NULL) return usage_error("--to TO is required", NULL);
  if (strcmp(a->from, a->to) == 0) return usage_error("--store and --to name the same store", NULL);
  return 0;
}

/* ---- the stores ---- */

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}


const char *book_store_missing(const char *url, const char **path) {
  *path = starts_with(url, "sqlite:") ? url + strlen("sqlite:") : url;
  if (gk_store_url_is_postgres(url)) return NULL; /* gk_store_open_url's rule */
  struct stat info;
  if ((*path)[0] != '\0' && stat(*path, &info) != 0 && errno == ENOENT) return "no such store file";
  /* an empty file is no store: opening it wrote the schema into it */
  if ((*path)[0] != '\0' && stat(*path, &info) == 0 && S_ISREG(info.st_mode) && info.st_size == 0)
    return "the file is empty, not a store";
  return NULL;
}

static int check_source(const char *from) {
  const char *path, *why = book_store_missing(from, &path);
  if (why == NULL) return 0;
  char message[64];
  snprintf(message, sizeof message, "--store: %s", why);
  return usage_error(message, path);
}

static int open_store(const char *option, const char *url, gk_event_store **out) {
  gk_status st;
  *out = gk_store_open_url(url, &st);
  return *out ? 0 : store_failed(option, &st);
}

/* ---- the copy ---- */

typedef struct progress {
  int64_t streams;
} progress;

static void print_stream(void *user, const char *stream, int64_t events) {
  progress *p = user;
  p->streams++;
  csv_write_field(stdout, stream);
  printf(",%lld\n", (long long)events);
  fflush(stdout); /* a long copy shows its progress, and a log keeps what landed */
}

static int copy_all(gk_event_store *from, gk_event_store *to) {
  progress p = {0};
  gk_status st;
  fputs("stream,events\n", stdout);
  /* the stores as opened: a conninfo taken for a file name shows here */
  fprintf(stderr, PREFIX "copying %s to %s\n", gk_store_describe(from), gk_store_describe(to));
  gk_code rc = gk_store_copy(from, to, print_stream, &p, &st);
  if (rc == GK_OK) return CLI_EXIT_OK;
  int code = store_failed(NULL, &st);
  if (p.streams > 0)
    fprintf(stderr, PREFIX "the %lld stream(s) listed on stdout are copied and verified on %s\n",
            (long long)p.streams, gk_store_describe(to));
  /* the stream it stopped in is not listed, but may be on the target in part,
   * and a rerun refuses a target holding any of it (found in review); not so
   * when the target was refused before anything was written */
  if (st.code != GK_ALREADY_EXISTS)
    fprintf(stderr, PREFIX "the stream the copy stopped in may be on %s in part: start again on an empty target\n",
            gk_store_describe(to));
  return code;
}

int book_migrate_command(int argc, char **argv) {
  migrate_args a = {0};
  int rc = parse_args(argc, argv, &a);
  if (rc != 0) return rc;
  if (a.help) {
    book_migrate_usage(stdout);
    return CLI_EXIT_OK;
  }
  rc = check_source(a.from);
  gk_event_store *from = NULL, *to = NULL;
  if (rc == 0) rc = open_store("--store", a.from, &from);
  if (rc == 0) rc = open_store("--to", a.to, &to);
  if (rc == 0) rc = copy_all(from, to);
  gk_store_close(to);
  gk_store_close(from);
  const char *failure = cli_output_failure(stdout);
  if (failure) {
    /* the copy ran: exit 2 says nothing was written (found in review) */
    fprintf(stderr, PREFIX "cannot write the output (%s)%s\n", failure,
            rc == 0 ? "; every stream was copied and verified: see `greeks book list --store` on the target" : "");
    if (rc == 0) rc = BOOK_EXIT_FAILED;
  }
  return rc;
}
