# shellcheck shell=bash
# shellcheck disable=SC2034  # BACKEND_STARTED, REGION, BE_PID, AK, SK: for the sourcing script
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
