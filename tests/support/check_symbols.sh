#!/bin/sh
# Every symbol a greeks library exports starts with gk_ (adr/0001): an
# internal helper exported as hash_bytes or run_command collides with a
# user's own function at link time (found in review: 23 of them). Usage:
# check_symbols.sh LIB.a...; prints the offenders and exits 1 if any. Names
# starting with __ are the compiler's (the sanitizers' __odr_asan_gen_*).
status=0
for lib in "$@"; do
  bad=$(nm -g --defined-only "$lib" | awk 'NF == 3 && $2 ~ /^[TDBRVW]$/ && $3 !~ /^gk_/ && $3 !~ /^(__|\.)/ {print $3}' | sort -u)
  if [ -n "$bad" ]; then
    echo "$lib exports symbols without the gk_ prefix:" >&2
    echo "$bad" | sed 's/^/  /' >&2
    status=1
  fi
done
exit $status
