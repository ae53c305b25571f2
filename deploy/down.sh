#!/usr/bin/env bash
# down.sh - stops what deploy/up.sh started: s3seal (SIGTERM: in-flight
# requests finish first), then the local backend in ./run/backend. The data,
# keys and config in ./run are kept; deploy/up.sh starts them again.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=$PWD/run

if [ -s "$RUN/s3seal.pid" ]; then
  pid=$(cat "$RUN/s3seal.pid")
  if [[ "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" == *"s3seal serve -c $RUN/s3seal.yaml"* ]]; then
    kill -TERM "$pid"
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "[down] s3seal (pid $pid) still draining after 60 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "[down] s3seal stopped" >&2
  else
    echo "[down] s3seal is not running" >&2
  fi
  rm -f "$RUN/s3seal.pid"
fi
if [ -s "$RUN/backend/pids" ]; then
  S3SEAL_BACKEND_DIR=$RUN/backend deploy/backend.sh stop
fi
