#!/usr/bin/env bash
# pg.sh - a PostgreSQL server from Debian's packages on 127.0.0.1, for a
# keystore shared by a fleet (deploy/fleet.sh) and for the keystore's tests
# (tests/pg.sh). Not a tuned production server.
#
#   deploy/pg.sh start DIR [--throwaway]  initdb on the first start, then start
#                           it (on S3SEAL_PG_PORT, else the port it had, else a
#                           free one); writes its URL to DIR/url and prints
#                           `export S3SEAL_PG_URL=...`
#   deploy/pg.sh stop DIR      stop it; the data is kept for the next start
#   deploy/pg.sh restart DIR   pg_ctl restart (fast): every session is cut
#   deploy/pg.sh status DIR    exit 0 if it runs
#   deploy/pg.sh url DIR       print its URL (postgresql://postgres@127.0.0.1:PORT/postgres)
#   deploy/pg.sh destroy DIR   stop it and remove its data and DIR
#
# DIR holds the URL, the port and the name of the server's data folder. The
# server runs as the caller or, for root (CI), as the `postgres` system user
# the package creates (initdb refuses root); its data folder is DIR/data when
# that user can reach it, else a new folder under /var/tmp (/tmp with
# --throwaway). It trusts connections from 127.0.0.1 only (and its socket in
# its folder). --throwaway turns fsync off: for test data only.
# Without PostgreSQL's binaries, `start` says so and exits 3.
set -euo pipefail

cmd=${1:-}
DIR=${2:-}
THROWAWAY=0
[ "${3:-}" != --throwaway ] || THROWAWAY=1
[ -n "$cmd" ] && [ -n "$DIR" ] || {
  echo "usage: deploy/pg.sh start|stop|restart|status|url|destroy DIR [--throwaway]" >&2
  exit 2
}
case "$DIR" in /*) ;; *) DIR=$PWD/$DIR ;; esac
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
running() {
  [ -n "$BIN" ] && [ -n "$DATA" ] && [ -f "$DATA/data/postmaster.pid" ] &&
    as_owner "$BIN/pg_ctl" -D "$DATA/data" status >/dev/null 2>&1
}

# A data folder the server's user can own: DIR/data if it can reach it.
new_datadir() {
  local d
  if [ "$THROWAWAY" = 0 ]; then
    mkdir -p "$DIR/data"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$DIR/data"
    if as_owner test -w "$DIR/data"; then
      echo "$DIR/data"
      return
    fi
    rmdir "$DIR/data"
    d=$(mktemp -d /var/tmp/s3seal-pgdata-XXXXXX)
  else
    d=$(mktemp -d /tmp/s3seal-pgdata-XXXXXX)
  fi
  echo "$d"
}

start() {
  if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    say "PostgreSQL's binaries are not installed (deploy/install-deps.sh installs them)"
    rm -f "$DIR/url"
    exit 3
  fi
  mkdir -p "$DIR"
  if running && [ -f "$DIR/url" ]; then
    echo "export S3SEAL_PG_URL=$(cat "$DIR/url")"
    return
  fi
  local port=${S3SEAL_PG_PORT:-$(cat "$DIR/port" 2>/dev/null || true)}
  if [ -z "$port" ]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  fi
  if [ -z "$DATA" ] || [ ! -f "$DATA/data/PG_VERSION" ]; then
    [ -z "$DATA" ] || [ "$DATA" = "$DIR/data" ] || rm -rf "$DATA"
    DATA=$(new_datadir)
    echo "$DATA" >"$DIR/datadir"
    mkdir -p "$DATA/sock"
    [ "$(id -u)" -ne 0 ] || chown -R postgres: "$DATA"
    local sync=()
    [ "$THROWAWAY" = 0 ] || sync=(--no-sync)
    as_owner "$BIN/initdb" -D "$DATA/data" -U postgres -A trust -E UTF8 --locale=C "${sync[@]}" \
      >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = '$DATA/sock'"
      echo "max_connections = 300"
      if [ "$THROWAWAY" = 1 ]; then
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
      fi
    } | as_owner tee -a "$DATA/data/postgresql.conf" >/dev/null
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    say "127.0.0.1:$port is in use by another program (set S3SEAL_PG_PORT)"
    exit 1
  fi
  echo "$port" >"$DIR/port"
  if ! as_owner "$BIN/pg_ctl" -D "$DATA/data" -l "$DATA/data/log" -o "-p $port" -w -t 60 \
      start >/dev/null; then
    tail -n 20 "$DATA/data/log" >&2 || true
    exit 1
  fi
  echo "postgresql://postgres@127.0.0.1:$port/postgres" >"$DIR/url"
  say "PostgreSQL $(basename "$(dirname "$BIN")") on 127.0.0.1:$port (data in $DATA)"
  echo "export S3SEAL_PG_URL=$(cat "$DIR/url")"
}

stop() {
  if running; then
    as_owner "$BIN/pg_ctl" -D "$DATA/data" -m fast -w stop >/dev/null || true
  fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  restart)
    running || { say "not running ($DIR)"; exit 1; }
    as_owner "$BIN/pg_ctl" -D "$DATA/data" -l "$DATA/data/log" -m fast -w -t 60 restart >/dev/null
    ;;
  status) running ;;
  url)
    running && [ -f "$DIR/url" ] || { say "not running ($DIR)"; exit 1; }
    cat "$DIR/url"
    ;;
  destroy)
    stop
    [ -z "$DATA" ] || rm -rf "$DATA"
    rm -rf "$DIR"
    ;;
  *)
    echo "usage: deploy/pg.sh start|stop|restart|status|url|destroy DIR [--throwaway]" >&2
    exit 2
    ;;
esac
