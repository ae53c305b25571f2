#!/usr/bin/env bash
# down.sh - stops what deploy/up.sh started: s3seal (draining in-flight
# requests), then the local backend. Data and keys in ./run are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=$PWD/run
if [ -f "$RUN/s3seal.pid" ]; then
  pid=$(cat "$RUN/s3seal.pid")
  if kill "$pid" 2>/dev/null; then
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    echo "s3seal stopped"
  fi
  rm -f "$RUN/s3seal.pid"
fi
if [ -d "$RUN/backend" ]; then
  S3SEAL_BACKEND_DIR=$RUN/backend deploy/backend.sh stop
fi
