# shellcheck shell=bash
# shellcheck disable=SC2034  # BACKEND_STARTED, REGION, BE_PID, AK, SK, NGINX_EP...: for the sourcing script
# lib.sh - what the benchmark's scripts (run.sh, sink.sh, compare.sh) share,
# sourced by each once it has its log/die functions (and, before calling
# them, TMP, its temp dir, and BACKEND_STARTED=0):
#   bench_build TARGETS      configures (once) and builds BUILD (Release,
#                            -DS3S_BENCH=ON; a tree of its own, so the
#                            developers' build/ keeps its type); sets BIN
#                            and LOAD
#   bench_backend            the backend: S3_ENDPOINT, S3_ACCESS_KEY,
#                            S3_SECRET_KEY when set, else the local Ceph RGW
#                            (reused, or started: BACKEND_STARTED=1); sets
#                            REGION and BE_PID (the backend's process when it
#                            listens here, for its CPU figures)
#   s3direct ARGS            aws-cli straight to the backend
#   free_port                a free TCP port on 127.0.0.1
#   bench_credentials PREFIX BACKEND_SECRET
#                            fresh client keys AK and SK, and the secret
#                            files the config names
#   bench_config FILE BACKEND_ENDPOINT BACKEND_AK [TOP-LEVEL LINES]
#                            s3seal's config listening on PORT: the lines
#                            given (log_level, workers, limits...), one
#                            client credential, a keystore and an audit log
#                            in TMP (as in production)
#   bench_s3seal_up          `keystore init` on TMP/s3seal.yaml, then s3seal
#                            serving it (stderr to TMP/s3seal.log) until its
#                            port PORT accepts connections; sets PID
#   ticks PID...             utime + stime of the processes together, in
#                            clock ticks (BENCH_HZ a second); an empty or
#                            finished PID counts 0
#   stop_pid PID [WHAT]      SIGTERM, up to 10 s for it to exit, then SIGKILL
#   bench_tail_logs FILE...  the last 40 lines of each non-empty TMP/FILE, on
#                            stderr (what a failed run's clean-up shows)
#   bench_load WHAT ENDPOINT AK SK [OPTIONS] -- OP [S3LOAD ARGS]
#                            one s3load run with the CPU given processes spent
#                            during it; prints s3load's JSON result with them
#   bench_nginx UPSTREAM [CERT KEY]
#                            nginx (NGINX: BENCH_NGINX or /usr/sbin/nginx) as
#                            a plain reverse proxy to UPSTREAM (host:port),
#                            from TMP/nginx, terminating TLS with CERT and
#                            KEY when given; sets NGINX_EP, NGX_PID (master)
#                            and NGX_WORKER

bench_build() {
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    log "configuring $BUILD (Release)"
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DS3S_BENCH=ON >/dev/null
  fi
  cmake --build "$BUILD" -j"$(nproc)" --target "$@" >/dev/null || die "build failed"
  BIN=$BUILD/s3seal
  LOAD=$BUILD/tests/bench/s3load
}

bench_backend() {
  if [ -z "${S3_ENDPOINT:-}" ]; then
    if env_lines=$(deploy/backend.sh env 2>/dev/null); then
      eval "$env_lines"
      log "using the running local backend at $S3_ENDPOINT"
    else
      log "starting the local backend (deploy/backend.sh)"
      env_lines=$(deploy/backend.sh start) || die "the backend did not start"
      eval "$env_lines"
      BACKEND_STARTED=1
    fi
  fi
  : "${S3_ACCESS_KEY:?S3_ACCESS_KEY is not set}" "${S3_SECRET_KEY:?S3_SECRET_KEY is not set}"
  REGION=${S3_REGION:-us-east-1}
  command -v aws >/dev/null || die "aws-cli is needed to create the bucket (deploy/install-deps.sh)"
  local hostport=${S3_ENDPOINT#*://}
  hostport=${hostport%%/*}
  BE_PORT=${hostport##*:}
  BE_PID=$(ss -Hltnp "sport = :$BE_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 |
           cut -d= -f2 || true)
}

s3direct() {
  env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" \
    AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_DEFAULT_REGION="$REGION" \
    aws --endpoint-url "$S3_ENDPOINT" "$@"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_credentials() {
  AK="$1$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)"
  SK=$(head -c 30 /dev/urandom | base64 | tr -d '/+=')
  umask 077
  printf '%s' "$2" > "$TMP/backend.secret"
  printf '%s' "$SK" > "$TMP/client.secret"
}

bench_config() {
  local file=$1 endpoint=$2 backend_ak=$3
  shift 3
  {
    # shellcheck disable=SC2153 # PORT: set by the sourcing script
    echo "listen: 127.0.0.1:$PORT"
    local line
    for line in "$@"; do echo "$line"; done
    cat <<YAML
backend:
  endpoint: $endpoint
  region: $REGION
  access_key: $backend_ak
  secret_key_file: $TMP/backend.secret
credentials:
  - access_key: $AK
    secret_key_file: $TMP/client.secret
    principal: arn:aws:iam::111122223333:user/bench
keystore:
  path: $TMP/keystore.db
  master_key_file: $TMP/master.key
audit_log: $TMP/audit.jsonl
YAML
  } > "$file"
}

bench_s3seal_up() {
  "$BIN" -c "$TMP/s3seal.yaml" keystore init >"$TMP/keystore-init.log" 2>&1 || {
    cat "$TMP/keystore-init.log" >&2; die "s3seal keystore init failed"; }
  "$BIN" serve -c "$TMP/s3seal.yaml" 2>>"$TMP/s3seal.log" &
  PID=$!
  local _
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || die "s3seal exited at start"
    sleep 0.1
  done
  die "s3seal did not accept connections on port $PORT within 10 s"
}

BENCH_HZ=$(getconf CLK_TCK)
NGINX=${BENCH_NGINX:-/usr/sbin/nginx}

ticks() {
  local t=0 p
  for p in "$@"; do
    [ -n "$p" ] && [ -r "/proc/$p/stat" ] &&
      t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

stop_pid() {
  local pid=$1 what=${2:-process $1}
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$what did not exit 10 s after SIGTERM; killing it"
    kill -KILL "$pid"
  fi
  wait "$pid" 2>/dev/null || true
}

bench_tail_logs() {
  local f
  for f in "$@"; do
    [ -s "$TMP/$f" ] && { log "last lines of $f:"; tail -n 40 "$TMP/$f" >&2; }
  done
  return 0
}

# bench_cmp NAME OP SIZE COUNT CONC KEY [opts]: nginx, s3seal and s3seal
# with SSE-S3, the three interleaved, $REPEAT times, through the calling
# script's own `load VIA NAME OP SIZE COUNT CONC KEY [opts]` (VIA nginx,
# s3seal or sse; objects KEY-n, KEY-p, KEY-e).
bench_cmp() {
  local name=$1 op=$2 size=$3 count=$4 conc=$5 key=$6 i
  shift 6
  for i in $(seq 1 "$REPEAT"); do
    log "$name ($i/$REPEAT): nginx, s3seal, s3seal SSE-S3"
    load nginx "$name" "$op" "$size" "$count" "$conc" "$key-n" "$@"
    load s3seal "$name" "$op" "$size" "$count" "$conc" "$key-p" "$@"
    load sse "$name" "$op" "$size" "$count" "$conc" "$key-e" "$@"
  done
}

# bench_load WHAT ENDPOINT AK SK [OPTIONS] -- OP [S3LOAD ARGS]: runs
# `s3load OP --endpoint ENDPOINT --access-key AK S3LOAD ARGS` (the secret SK
# through the environment, not on the command line) and prints its JSON
# result with, in this order, a string FIELD for each `--set FIELD=VALUE`
# and, for each `--cpu FIELD=PIDS` (a space-separated list, may be empty),
# the user + system CPU seconds those processes spent during the run. With
# `--alive NAME=PID` it dies if that process is gone afterwards. WHAT names
# the run in messages; s3load's stderr is shown under it.
bench_load() {
  local what=$1 ep=$2 ak=$3 sk=$4 spec i out rc=0
  shift 4
  local sets=() cpus=() alive=() t0=() t1=() fields=()
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
    [ "$#" -ge 2 ] || die "bench_load: $1 needs a value"
    case $1 in
      --set) sets+=("$2") ;;
      --cpu) cpus+=("$2") ;;
      --alive) alive+=("$2") ;;
      *) die "bench_load: unknown option $1" ;;
    esac
    shift 2
  done
  if [ "${1:-}" != -- ] || [ "$#" -lt 2 ]; then die "bench_load: no '-- OP' after the options"; fi
  shift
  # shellcheck disable=SC2086 # a list of PIDs
  for spec in "${cpus[@]}"; do t0+=("$(ticks ${spec#*=})"); done
  out=$(S3LOAD_SECRET_KEY=$sk "$LOAD" "$1" --endpoint "$ep" --access-key "$ak" "${@:2}" \
        2>"$TMP/load.err") || rc=$?
  # shellcheck disable=SC2086
  for spec in "${cpus[@]}"; do t1+=("$(ticks ${spec#*=})"); done
  if [ -s "$TMP/load.err" ]; then
    log "$what: s3load reported:"
    sed 's/^/    /' "$TMP/load.err" >&2
  fi
  for spec in "${alive[@]}"; do
    kill -0 "${spec#*=}" 2>/dev/null || die "${spec%%=*} exited during $what"
  done
  [ -n "$out" ] || die "s3load gave no result for $what (exit $rc)"
  for spec in "${sets[@]}"; do fields+=(s "${spec%%=*}" "${spec#*=}"); done
  for i in "${!cpus[@]}"; do fields+=(c "${cpus[i]%%=*}" "$((t1[i] - t0[i]))"); done
  python3 -c 'import json, sys
d = json.loads(sys.argv[1]); hz = int(sys.argv[2]); f = sys.argv[3:]
for kind, name, value in zip(f[0::3], f[1::3], f[2::3]):
    d[name] = int(value) / hz if kind == "c" else value
print(json.dumps(d))' "$out" "$BENCH_HZ" "${fields[@]}"
}

# bench_nginx UPSTREAM: a plain reverse proxy, listening on a free port: the
# client's signed request goes to UPSTREAM as sent. SigV4 signs Host, so Host
# is passed on unchanged ($http_host) and a client signs with the upstream's
# credentials for nginx's address. Bodies stream both ways (no request
# buffering, in-memory response buffers of 64 KiB, never a temp file), and
# upstream connections are kept alive. One worker process, to compare with
# one s3seal worker; unprivileged, everything in TMP/nginx.
bench_nginx() {
  local upstream=$1 cert=${2:-} key=${3:-} ssl="" scheme=http
  [ -x "$NGINX" ] || die "no nginx at $NGINX (BENCH_NGINX)"
  NPORT=$(free_port)
  mkdir -p "$TMP/nginx"
  if [ -n "$cert" ]; then
    # As s3seal's tls: TLS 1.2 and 1.3, session tickets, no session cache.
    ssl=" ssl;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;
    ssl_session_cache off"
    scheme=https
  fi
  cat > "$TMP/nginx/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/client_body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  keepalive_requests 100000;
  keepalive_timeout 60s;
  upstream backend {
    server $upstream;
    keepalive 64;
    keepalive_requests 100000;
  }
  server {
    listen 127.0.0.1:$NPORT$ssl;
    client_max_body_size 0;
    client_body_buffer_size 64k;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_request_buffering off;
      proxy_buffering on;
      proxy_buffer_size 64k;
      proxy_buffers 8 64k;
      proxy_busy_buffers_size 128k;
      proxy_max_temp_file_size 0;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }
}
NGINX
  "$NGINX" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" -t \
    >"$TMP/nginx/test.log" 2>&1 || { cat "$TMP/nginx/test.log" >&2; die "nginx -t failed"; }
  # shellcheck disable=SC2094 # nginx and its stderr both append to the log
  "$NGINX" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" \
    >>"$TMP/nginx/error.log" 2>&1 &
  NGX_PID=$!
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$NPORT") 2>/dev/null && break
    kill -0 "$NGX_PID" 2>/dev/null || die "nginx exited at start"
    sleep 0.1
  done
  NGX_WORKER=$(pgrep -P "$NGX_PID" | head -n 1 || true)
  [ -n "$NGX_WORKER" ] || die "nginx has no worker process"
  NGINX_EP=$scheme://127.0.0.1:$NPORT
}
