#!/usr/bin/env bash
# fleet.sh - a fleet of s3seal instances on one machine, from Debian's
# packages, to try out the layout of a production fleet:
#   - PostgreSQL (deploy/pg.sh), the keystore the instances share;
#   - the S3 backend: the one named by S3_ENDPOINT, S3_ACCESS_KEY and
#     S3_SECRET_KEY (or S3SEAL_BACKEND_ENDPOINT/_ACCESS_KEY/_SECRET_KEY, as for
#     deploy/up.sh), else the local Ceph RGW of deploy/backend.sh (data in
#     ./run/backend; reused when it runs);
#   - three s3seal instances on 127.0.0.1:PORT+1..PORT+3, one master key,
#     each with its admin listener on PORT+101..PORT+103 (/health/ready);
#   - HAProxy on 127.0.0.1:PORT, spreading requests over the instances that
#     answer /health/ready with 200 (checked every second); when none does
#     (the keystore away), over those that run (/health/live).
#
#   eval "$(deploy/fleet.sh start)"   # prints export lines: endpoint, keys
#   deploy/fleet.sh status
#   deploy/fleet.sh stop
#
# Everything lives in ./run/fleet (S3SEAL_FLEET_DIR): configs, keys (mode
# 0600), logs (*.log), pid files (*.pid) and PostgreSQL's data. Running
# `start` again is safe: what runs is left alone (HAProxy is restarted if
# its configuration changed), what stopped (an instance that died,
# PostgreSQL) is started again, keys and data are kept. `stop` stops what
# `start` started (the backend only if it started it) and keeps the data.
#
# Environment: S3SEAL_FLEET_PORT (8080), S3SEAL_FLEET_INSTANCES (3),
# S3SEAL_PG_PORT (PORT+200), S3SEAL_BIN (else build/s3seal, built in Release
# when missing). Progress goes to stderr; stdout carries only the export lines.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${S3SEAL_FLEET_DIR:-$ROOT/run/fleet}
case "$RUN" in /*) ;; *) RUN=$PWD/$RUN ;; esac
PORT=${S3SEAL_FLEET_PORT:-8080}
N=${S3SEAL_FLEET_INSTANCES:-3}
BIN=${S3SEAL_BIN:-$ROOT/build/s3seal}
PG_DIR=$RUN/pg
export S3SEAL_PG_PORT=${S3SEAL_PG_PORT:-$((PORT + 200))}

say() { echo "[fleet] $*" >&2; }
die() { echo "[fleet] error: $*" >&2; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Is the PID in pid file $1 still the program whose command line holds $2?
ours() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" == *"$2"* ]]
}

inst_port() { echo $((PORT + $1)); }
admin_port() { echo $((PORT + 100 + $1)); }
inst_conf() { echo "$RUN/s3seal-$1.yaml"; }

ready() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
    "http://127.0.0.1:$(admin_port "$1")/health/ready" 2>/dev/null | grep -q '^200$'
}

# Stops the process of pid file $1 (command line holding $2): SIGTERM, then
# SIGKILL after $3 seconds.
stop_pid() {
  local pidfile=$1 what=$2 wait_s=$3 pid
  if ours "$pidfile" "$what"; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((wait_s * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "pid $pid still running after $wait_s s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

backend() {
  if [ -z "${S3_ENDPOINT:-}" ] && [ -n "${S3SEAL_BACKEND_ENDPOINT:-}" ]; then
    S3_ENDPOINT=$S3SEAL_BACKEND_ENDPOINT
    S3_ACCESS_KEY=${S3SEAL_BACKEND_ACCESS_KEY:?set S3SEAL_BACKEND_ACCESS_KEY}
    S3_SECRET_KEY=${S3SEAL_BACKEND_SECRET_KEY:?set S3SEAL_BACKEND_SECRET_KEY}
    S3_REGION=${S3SEAL_BACKEND_REGION:-us-east-1}
  fi
  if [ -n "${S3_ENDPOINT:-}" ]; then
    : "${S3_ACCESS_KEY:?S3_ENDPOINT is set: set S3_ACCESS_KEY too}"
    : "${S3_SECRET_KEY:?S3_ENDPOINT is set: set S3_SECRET_KEY too}"
    S3_REGION=${S3_REGION:-us-east-1}
    say "using the backend at $S3_ENDPOINT"
    return
  fi
  local env_lines bdir=$ROOT/run/backend
  if env_lines=$(S3SEAL_BACKEND_DIR=$bdir "$ROOT/deploy/backend.sh" env 2>/dev/null); then
    say "using the running local backend ($bdir)"
  else
    say "starting the local S3 backend (Ceph RGW, data in $bdir)"
    env_lines=$(S3SEAL_BACKEND_DIR=$bdir "$ROOT/deploy/backend.sh" start)
    echo "$bdir" > "$RUN/backend.started"
  fi
  eval "$env_lines"
}

# The keys, made once: the client's access key and secret, the master key.
keys() {
  umask 077
  if [ ! -s "$RUN/client.access_key" ] || [ ! -s "$RUN/client.secret" ]; then
    say "generating the client access key and secret"
    echo "AKIA$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)" > "$RUN/client.access_key"
    head -c 30 /dev/urandom | base64 | tr -d '/+=\n' > "$RUN/client.secret"
  fi
  if [ ! -s "$RUN/master.key" ]; then
    say "generating the master key (32 random bytes), shared by every instance"
    head -c 32 /dev/urandom > "$RUN/master.key"
  fi
  printf '%s' "$S3_SECRET_KEY" > "$RUN/backend.secret"
  chmod 600 "$RUN/client.secret" "$RUN/backend.secret" "$RUN/master.key"
}

# The keystore's database (made once) and its URL.
keystore() {
  local url
  eval "$("$ROOT/deploy/pg.sh" start "$PG_DIR")"
  url=$S3SEAL_PG_URL
  if [ "$(psql "$url" -tAq -c "SELECT 1 FROM pg_database WHERE datname = 's3seal'")" != 1 ]; then
    say "creating the database s3seal"
    psql "$url" -q -c "CREATE DATABASE s3seal" >/dev/null
  fi
  KEYSTORE_URL=${url%/*}/s3seal
}

write_configs() {
  local i
  for i in $(seq 1 "$N"); do
    cat > "$(inst_conf "$i")" <<YAML
# Generated by deploy/fleet.sh (rewritten on every start; the keys it names
# are kept). Every key is described in deploy/s3seal.example.yaml.
listen: 127.0.0.1:$(inst_port "$i")
admin_listen: 127.0.0.1:$(admin_port "$i")
account_id: "111122223333"
backend:
  endpoint: $S3_ENDPOINT
  region: $S3_REGION
  access_key: $S3_ACCESS_KEY
  secret_key_file: $RUN/backend.secret
credentials:
  - access_key: $(cat "$RUN/client.access_key")
    secret_key_file: $RUN/client.secret
    principal: arn:aws:iam::111122223333:user/s3seal-user
keystore:
  url: $KEYSTORE_URL
  master_key_file: $RUN/master.key
audit_log: $RUN/audit-$i.jsonl
YAML
  done
}

start_instance() {
  local i=$1 conf log pid log_start
  conf=$(inst_conf "$i")
  log=$RUN/s3seal-$i.log
  if ours "$RUN/s3seal-$i.pid" " serve -c $conf"; then
    return
  fi
  rm -f "$RUN/s3seal-$i.pid"
  port_in_use "$(inst_port "$i")" && die "127.0.0.1:$(inst_port "$i") is in use (set S3SEAL_FLEET_PORT)"
  port_in_use "$(admin_port "$i")" && die "127.0.0.1:$(admin_port "$i") is in use (set S3SEAL_FLEET_PORT)"
  log_start=$(stat -c %s "$log" 2>/dev/null || echo 0)
  setsid "$BIN" serve -c "$conf" </dev/null >>"$log" 2>&1 &
  pid=$!
  echo "$pid" > "$RUN/s3seal-$i.pid"
  say "started s3seal-$i (pid $pid) on 127.0.0.1:$(inst_port "$i")"
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -c +$((log_start + 1)) "$log" | tail -20 >&2
      rm -f "$RUN/s3seal-$i.pid"
      die "s3seal-$i exited at start-up (log: $log)"
    fi
    ready "$i" && return
    sleep 0.2
  done
  die "s3seal-$i is not ready after 30 s (log: $log; curl http://127.0.0.1:$(admin_port "$i")/health/ready)"
}

write_haproxy() {
  local i
  cat > "$RUN/haproxy.cfg.new" <<CFG
# Generated by deploy/fleet.sh (rewritten on every start; HAProxy restarts
# when it changed).
global
    log stdout format raw local0 info
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-request 30s
    # A connection refused or closed without an answer (an instance that
    # died) is tried on another.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend s3
    bind 127.0.0.1:$PORT
    # With no instance ready (the shared keystore away makes them all not
    # ready at once), the instances that run still serve what needs no
    # keystore and answer 503 ServiceUnavailable for the rest.
    use_backend s3seal-live if { nbsrv(s3seal) eq 0 }
    default_backend s3seal

backend s3seal
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
CFG
  for i in $(seq 1 "$N"); do
    echo "    server s3seal-$i 127.0.0.1:$(inst_port "$i") check port $(admin_port "$i")" >> "$RUN/haproxy.cfg.new"
  done
  cat >> "$RUN/haproxy.cfg.new" <<CFG

backend s3seal-live
    balance roundrobin
    option httpchk GET /health/live
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
CFG
  for i in $(seq 1 "$N"); do
    echo "    server s3seal-$i 127.0.0.1:$(inst_port "$i") check port $(admin_port "$i")" >> "$RUN/haproxy.cfg.new"
  done
}

start_haproxy() {
  command -v haproxy >/dev/null || die "HAProxy is not installed: run deploy/install-deps.sh"
  haproxy -c -q -f "$RUN/haproxy.cfg.new" || die "HAProxy refuses $RUN/haproxy.cfg.new"
  if ours "$RUN/haproxy.pid" "haproxy -f $RUN/haproxy.cfg"; then
    if cmp -s "$RUN/haproxy.cfg.new" "$RUN/haproxy.cfg"; then
      rm -f "$RUN/haproxy.cfg.new"
      return
    fi
    say "restarting HAProxy with its new configuration"
    stop_pid "$RUN/haproxy.pid" "haproxy -f $RUN/haproxy.cfg" 10
  fi
  rm -f "$RUN/haproxy.pid"
  mv "$RUN/haproxy.cfg.new" "$RUN/haproxy.cfg"
  port_in_use "$PORT" && die "127.0.0.1:$PORT is in use by another program (set S3SEAL_FLEET_PORT)"
  setsid haproxy -f "$RUN/haproxy.cfg" -db </dev/null >>"$RUN/haproxy.log" 2>&1 &
  echo "$!" > "$RUN/haproxy.pid"
  say "started HAProxy (pid $!) on 127.0.0.1:$PORT"
  for _ in $(seq 1 50); do
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/" && return
    sleep 0.1
  done
  die "HAProxy does not answer on 127.0.0.1:$PORT (log: $RUN/haproxy.log)"
}

exports() {
  local i list=""
  for i in $(seq 1 "$N"); do list+="${list:+ }http://127.0.0.1:$(inst_port "$i")"; done
  cat <<EOF
export S3SEAL_ENDPOINT=http://127.0.0.1:$PORT
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=$(cat "$RUN/client.access_key")
export AWS_SECRET_ACCESS_KEY=$(cat "$RUN/client.secret")
export AWS_DEFAULT_REGION=$S3_REGION
export S3SEAL_FLEET_INSTANCES="$list"
export S3SEAL_FLEET_CONFIG=$(inst_conf 1)
export S3SEAL_FLEET_PG_DIR=$PG_DIR
EOF
}

start() {
  "$ROOT/deploy/install-deps.sh"
  mkdir -p "$RUN"
  chmod 700 "$RUN"
  if [ ! -x "$BIN" ]; then
    say "building build/s3seal"
    cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$ROOT/build" --target s3seal -j"$(nproc)" >/dev/null
  fi
  backend
  keys
  keystore
  write_configs
  # The schema and the first root key (no-op when they exist).
  "$BIN" -c "$(inst_conf 1)" keystore init >/dev/null
  local i
  for i in $(seq 1 "$N"); do start_instance "$i"; done
  write_haproxy
  start_haproxy
  say "fleet ready at http://127.0.0.1:$PORT ($N instances; logs in $RUN)"
  exports
}

status() {
  local i rc=0 body
  if "$ROOT/deploy/pg.sh" status "$PG_DIR"; then
    echo "postgresql  up    $(cat "$PG_DIR/url")"
  else
    echo "postgresql  down"; rc=1
  fi
  for i in $(seq 1 "$N"); do
    if ours "$RUN/s3seal-$i.pid" " serve -c $(inst_conf "$i")"; then
      body=$(curl -s --max-time 2 "http://127.0.0.1:$(admin_port "$i")/health/ready" || true)
      echo "s3seal-$i    up    127.0.0.1:$(inst_port "$i") pid $(cat "$RUN/s3seal-$i.pid") ${body:-no answer}"
    else
      echo "s3seal-$i    down"; rc=1
    fi
  done
  if ours "$RUN/haproxy.pid" "haproxy -f $RUN/haproxy.cfg"; then
    echo "haproxy     up    127.0.0.1:$PORT pid $(cat "$RUN/haproxy.pid")"
  else
    echo "haproxy     down"; rc=1
  fi
  return $rc
}

stop() {
  local i
  stop_pid "$RUN/haproxy.pid" "haproxy -f $RUN/haproxy.cfg" 10
  # SIGTERM: in-flight requests finish first.
  for i in $(seq 1 "$N"); do
    stop_pid "$RUN/s3seal-$i.pid" " serve -c $(inst_conf "$i")" 60
  done
  "$ROOT/deploy/pg.sh" stop "$PG_DIR"
  if [ -s "$RUN/backend.started" ]; then
    S3SEAL_BACKEND_DIR=$(cat "$RUN/backend.started") "$ROOT/deploy/backend.sh" stop
    rm -f "$RUN/backend.started"
  fi
  say "stopped (data and keys in $RUN are kept)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: deploy/fleet.sh start|stop|status" >&2; exit 2 ;;
esac
