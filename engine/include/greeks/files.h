/*
 * Paths that name one file: the guard every writer of a file the user names
 * (the CLI's --grid and --*-out files, greeksd's port files) puts in front of
 * the files the same run reads or keeps (inputs, the book store, the
 * configuration). One mistyped path (`--grid books.db`) replaced a journal
 * with a grid CSV and exited 0 (found in review).
 */
#ifndef GREEKS_FILES_H
#define GREEKS_FILES_H

#include <stdbool.h>

/* True when paths a and b name the same regular file: where both exist, the
 * same device and inode (links and symlinks included; a terminal, pipe or
 * other device is never a clash); where neither exists, the
 * same absolute path once each directory is resolved (so "./x" and "x" are one
 * file). Where only one exists they are different files. NULL or "" names no
 * file (false). */
bool gk_paths_name_one_file(const char *a, const char *b);

#endif
