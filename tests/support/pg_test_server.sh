#!/bin/sh
# pg_test_server.sh - a throwaway PostgreSQL 15 server for the event-store contract
# suite (tests/test_event_store.c, run by ctest as the "pg" fixture).
#
#   pg_test_server.sh start DIR   initdb + start; writes a libpq conninfo to DIR/conninfo
#                                 (and prints it); database greeks_test, superuser greeks
#   pg_test_server.sh stop DIR    pg_ctl stop -m fast, then removes the cluster and DIR
#   pg_test_server.sh pause DIR   pg_ctl stop -m fast, keeping the cluster (a store outage)
#   pg_test_server.sh resume DIR  starts the paused cluster again on the same port
#   pg_test_server.sh crash DIR   pg_ctl stop -m immediate, keeping the cluster: a crash
#                                 or power loss (resume then runs crash recovery)
#   pg_test_server.sh freeze DIR  SIGSTOPs the server and its backends (a hang); thaw: SIGCONT
#
# With PG_TEST_PASSWORD set, `start` gives the role that password and requires it
# (scram-sha-256) on 127.0.0.1; the conninfo then goes over TCP with password=...
# (for tests that a secret in the store's address is never logged).
# How: the cluster (data directory, unix socket, server log) lives in a fresh
# mktemp -d directory under /tmp, not in DIR itself, for two reasons: when run as
# root (CI) the server must run as an unprivileged user (postgres refuses root),
# here `nobody`, which needs every parent directory to be traversable, and a build
# directory's parents may not be; and a unix socket path must fit in 107 bytes.
# DIR keeps the handle: DIR/cluster names that directory, DIR/conninfo the way in.
# The server listens on that socket and on 127.0.0.1 at a free port: ports are
# tried from a random base, and a bind failure moves to the next one, so two runs
# on one machine (or a port taken between a check and the bind) cannot collide.
# Trust authentication on both (a test server reachable only from this machine),
# unless PG_TEST_PASSWORD asks for a password on TCP (the socket stays trust);
# fsync stays on, as in production: the suite tests durable commits (initdb's own
# sync of the template files is skipped: the cluster dies with the test run).
# Every wait is bounded: pg_ctl -w -t, and the script gives up after MAX_PORT_TRIES.
set -eu

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
MAX_PORT_TRIES=20
START_TIMEOUT_S=60

die() { echo "pg_test_server.sh: $*" >&2; exit 1; }

# Runs a command as the cluster's owner: `nobody` when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
  else
    "$@"
  fi
}

random_port_base() {
  # 20000..49999: above most services, below the usual ephemeral range.
  n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
  echo $((20000 + n % 30000))
}

# Tries to start the server on $1; 0 when up, 2 when the port was taken, 1 otherwise.
try_start() {
  port=$1
  : >"$CLUSTER/server.log"
  if [ "$(id -u)" -eq 0 ]; then chown nobody:nogroup "$CLUSTER/server.log"; fi
  if as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER/data" -l "$CLUSTER/server.log" -w \
       -t "$START_TIMEOUT_S" -o "-p $port" start </dev/null >/dev/null 2>&1; then
    return 0
  fi
  if grep -q -e 'could not bind' -e 'Address already in use' -e 'could not create lock file' \
       "$CLUSTER/server.log"; then
    return 2
  fi
  return 1
}

# A start that fails part way stops what it started and removes it.
abandon_start() {
  [ "$START_DONE" = yes ] && return 0
  [ -n "${START_DIR:-}" ] && stop "$START_DIR" >/dev/null 2>&1
  return 0
}

start() {
  [ -x "$PG_BIN/initdb" ] || die "no $PG_BIN/initdb (install postgresql-15)"
  mkdir -p "$1"
  dir=$(cd "$1" && pwd) # absolute: we cd / below
  # A previous run killed before its cleanup left a server behind: stop it first.
  if [ -f "$dir/cluster" ]; then stop "$dir" >/dev/null 2>&1 || true; mkdir -p "$dir"; fi
  START_DONE=no
  START_DIR=$dir
  trap abandon_start EXIT
  CLUSTER=$(mktemp -d /tmp/greeks-pg.XXXXXX)
  chmod 755 "$CLUSTER"
  echo "$CLUSTER" >"$dir/cluster"
  if [ "$(id -u)" -eq 0 ]; then chown nobody:nogroup "$CLUSTER"; fi
  cd / # the owner may not be allowed into the caller's directory

  auth_host=trust pwfile=
  if [ -n "${PG_TEST_PASSWORD:-}" ]; then
    auth_host=scram-sha-256 pwfile=$CLUSTER/pwfile
    printf '%s\n' "$PG_TEST_PASSWORD" >"$pwfile"
    if [ "$(id -u)" -eq 0 ]; then chown nobody:nogroup "$pwfile"; fi
  fi
  as_owner "$PG_BIN/initdb" -D "$CLUSTER/data" -U greeks --auth-local=trust --auth-host="$auth_host" \
    ${pwfile:+--pwfile="$pwfile"} --encoding=UTF8 --locale=C --no-sync >"$CLUSTER/initdb.log" 2>&1 ||
    { cat "$CLUSTER/initdb.log" >&2; die "initdb failed"; }
  cat >>"$CLUSTER/data/postgresql.conf" <<EOF
# pg_test_server.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$CLUSTER'
fsync = on
synchronous_commit = on
max_connections = 100
log_min_messages = warning
EOF

  base=${PG_TEST_PORT_BASE:-$(random_port_base)} # fixed base: for testing this script
  i=0
  while :; do
    [ "$i" -lt "$MAX_PORT_TRIES" ] || die "no free port from $base after $MAX_PORT_TRIES tries"
    port=$((base + i))
    rc=0
    try_start "$port" || rc=$?
    [ "$rc" -eq 0 ] && break
    if [ "$rc" -ne 2 ]; then
      tail -n 30 "$CLUSTER/server.log" >&2
      die "the server did not start on port $port (log above)"
    fi
    i=$((i + 1))
  done

  "$PG_BIN/pg_isready" -q -h "$CLUSTER" -p "$port" -t 30 ||
    die "the server on port $port is not ready after 30 s"
  "$PG_BIN/createdb" -h "$CLUSTER" -p "$port" -U greeks greeks_test ||
    die "createdb greeks_test failed"
  rm -f "$CLUSTER/pwfile"
  conninfo="host=$CLUSTER port=$port dbname=greeks_test user=greeks connect_timeout=10"
  if [ -n "${PG_TEST_PASSWORD:-}" ]; then
    conninfo="host=127.0.0.1 port=$port dbname=greeks_test user=greeks password=$PG_TEST_PASSWORD connect_timeout=10"
  fi
  echo "$conninfo" >"$dir/conninfo"
  echo "$port" >"$dir/port"
  START_DONE=yes
  echo "$conninfo"
}

stop() {
  dir=$1
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/cluster" ] || { rm -rf "$dir"; return 0; }
  cluster=$(cat "$dir/cluster")
  case $cluster in
    /tmp/greeks-pg.*) ;;
    *) die "$dir/cluster names '$cluster', not a directory this script made" ;;
  esac
  cd /
  if [ -f "$cluster/data/postmaster.pid" ]; then
    as_owner "$PG_BIN/pg_ctl" -D "$cluster/data" -w -t 30 -m fast stop >/dev/null 2>&1 ||
      as_owner "$PG_BIN/pg_ctl" -D "$cluster/data" -w -t 30 -m immediate stop >/dev/null 2>&1 ||
      echo "pg_test_server.sh: could not stop the server in $cluster" >&2
  fi
  rm -rf "$cluster" "$dir"
}

# The cluster directory DIR names, checked to be one this script made.
cluster_of() {
  [ -f "$1/cluster" ] || die "$1 holds no cluster (run start first)"
  cluster=$(cat "$1/cluster")
  case $cluster in
    /tmp/greeks-pg.*) ;;
    *) die "$1/cluster names '$cluster', not a directory this script made" ;;
  esac
  echo "$cluster"
}

# Stops the server but keeps the cluster: clients see connection refused.
pause() {
  CLUSTER=$(cluster_of "$1")
  cd /
  as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER/data" -w -t 30 -m fast stop >/dev/null 2>&1 ||
    die "could not stop the server in $CLUSTER"
}

# Stops the server without a checkpoint or a goodbye to its clients (SIGQUIT):
# what a crash, an OOM kill or a power loss leaves; resume recovers from the WAL.
crash() {
  CLUSTER=$(cluster_of "$1")
  cd /
  as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER/data" -w -t 30 -m immediate stop >/dev/null 2>&1 ||
    die "could not stop the server in $CLUSTER"
}

# Starts a paused cluster again on its port (DIR/port); no other port will do,
# since clients hold the conninfo.
resume() {
  CLUSTER=$(cluster_of "$1")
  port=$(cat "$1/port")
  cd /
  rc=0
  try_start "$port" || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 30 "$CLUSTER/server.log" >&2
    die "the server did not start again on port $port (log above)"
  fi
  "$PG_BIN/pg_isready" -q -h "$CLUSTER" -p "$port" -t 30 ||
    die "the server on port $port is not ready after 30 s"
}

# Freezes (SIGSTOP) or thaws (SIGCONT) the server and every backend: clients'
# connections stay open and nothing answers, as on a dead network or a hung host.
signal_cluster() {
  CLUSTER=$(cluster_of "$2")
  postmaster=$(head -n 1 "$CLUSTER/data/postmaster.pid")
  kill "-$1" "$postmaster"
  for child in $(pgrep -P "$postmaster"); do kill "-$1" "$child" 2>/dev/null || true; done
}

usage="usage: pg_test_server.sh start|stop|pause|resume|crash|freeze|thaw DIR"
[ $# -eq 2 ] || die "$usage"
case $1 in
  start) start "$2" ;;
  stop) stop "$2" ;;
  pause) pause "$2" ;;
  resume) resume "$2" ;;
  crash) crash "$2" ;;
  freeze) signal_cluster STOP "$2" ;;
  thaw) signal_cluster CONT "$2" ;;
  *) die "$usage" ;;
esac
