#!/usr/bin/env bash
# pg.sh - a throwaway PostgreSQL from Debian's packages, for the keystore's
# tests on its PostgreSQL back end.
#
#   tests/pg.sh start [DIR]   initdb in a new folder (a fresh one each time), start
#                             it on a free port of 127.0.0.1, write its URL to
#                             DIR/url and print `export S3SEAL_TEST_PG_URL=...`
#   tests/pg.sh env [DIR]     print that line for the running one
#   tests/pg.sh stop [DIR]    stop it and remove DIR
#
# DIR defaults to $S3SEAL_PG_DIR, else /tmp/s3seal-pg-$UID; it holds the URL
# and the name of the server's own folder, a new one under /tmp (which the
# server's user can reach wherever DIR is). The server trusts connections
# from 127.0.0.1 only (and its socket in its folder), has fsync off (test
# data only) and runs as the caller, or, for root (CI), as the `postgres`
# system user the package creates (initdb refuses root).
# Without PostgreSQL's binaries, `start` says so and exits 0 without a URL:
# the tests that need it then report themselves skipped.
set -euo pipefail

cmd=${1:-}
DIR=${2:-${S3SEAL_PG_DIR:-/tmp/s3seal-pg-$(id -u)}}
say() { echo "[pg] $*" >&2; }

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

DATA=$(cat "$DIR/datadir" 2>/dev/null || true)
running() { [ -n "$BIN" ] && [ -n "$DATA" ] && [ -f "$DATA/data/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DATA/data" status >/dev/null 2>&1; }

print_env() { echo "export S3SEAL_TEST_PG_URL=$(cat "$DIR/url")"; }

case "$cmd" in
  start)
    if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
      say "PostgreSQL's binaries are not installed (deploy/install-deps.sh installs them)"
      rm -f "$DIR/url"
      exit 0
    fi
    if running && [ -f "$DIR/url" ]; then
      print_env
      exit 0
    fi
    [ -z "$DATA" ] || rm -rf "$DATA"
    rm -rf "$DIR"
    mkdir -p "$DIR"
    DATA=$(mktemp -d /tmp/s3seal-pgdata-XXXXXX)
    echo "$DATA" >"$DIR/datadir"
    mkdir -p "$DATA/sock"
    [ "$(id -u)" -ne 0 ] || chown -R postgres: "$DATA"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$BIN/initdb" -D "$DATA/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
      >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
    cat >>"$DATA/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DATA/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
EOF
    if ! as_owner "$BIN/pg_ctl" -D "$DATA/data" -l "$DATA/data/log" -w -t 60 start >/dev/null; then
      tail -n 20 "$DATA/data/log" >&2 || true
      exit 1
    fi
    echo "postgresql://postgres@127.0.0.1:$port/postgres" >"$DIR/url"
    say "PostgreSQL $(basename "$(dirname "$BIN")") on 127.0.0.1:$port (data in $DATA)"
    print_env
    ;;
  env)
    running && [ -f "$DIR/url" ] || { say "not running ($DIR)"; exit 1; }
    print_env
    ;;
  stop)
    if running; then
      as_owner "$BIN/pg_ctl" -D "$DATA/data" -m fast -w stop >/dev/null || true
    fi
    [ -z "$DATA" ] || rm -rf "$DATA"
    rm -rf "$DIR"
    ;;
  *)
    echo "usage: tests/pg.sh start|env|stop [DIR]" >&2
    exit 2
    ;;
esac
