#!/usr/bin/env bash
# pg.sh - a throwaway PostgreSQL from Debian's packages, for the keystore's
# tests on its PostgreSQL back end (deploy/pg.sh runs it).
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
PG=$(cd "$(dirname "$0")/../deploy" && pwd)/pg.sh

print_env() { echo "export S3SEAL_TEST_PG_URL=$(cat "$DIR/url")"; }

case "$cmd" in
  start)
    if "$PG" status "$DIR" && [ -f "$DIR/url" ]; then
      print_env
      exit 0
    fi
    "$PG" destroy "$DIR"
    rc=0
    env -u S3SEAL_PG_PORT "$PG" start "$DIR" --throwaway >/dev/null || rc=$?
    [ "$rc" -ne 3 ] || exit 0 # no PostgreSQL: the tests skip
    [ "$rc" -eq 0 ] || exit "$rc"
    print_env
    ;;
  env)
    "$PG" status "$DIR" && [ -f "$DIR/url" ] || { echo "[pg] not running ($DIR)" >&2; exit 1; }
    print_env
    ;;
  stop)
    "$PG" destroy "$DIR"
    ;;
  *)
    echo "usage: tests/pg.sh start|env|stop [DIR]" >&2
    exit 2
    ;;
esac
