#!/usr/bin/env bash
# run.sh - the whole test suite: unit tests and end-to-end tests against a
# real S3 backend with real clients.
#
#   tests/run.sh              normal build in build/
#   tests/run.sh --sanitize   ASan+UBSan build in build-asan/
#
# Uses the backend named by S3_ENDPOINT/S3_ACCESS_KEY/S3_SECRET_KEY if set;
# otherwise starts the local one (deploy/backend.sh, data in run/test-backend)
# and stops it afterwards. ctest's summary is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BUILD=build
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${1:-}" = "--sanitize" ]; then
  BUILD=build-asan
  CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Debug -DS3S_SANITIZE=ON)
fi

deploy/install-deps.sh
cmake -S . -B "$BUILD" "${CMAKE_ARGS[@]}" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null

started=0
if [ -z "${S3_ENDPOINT:-}" ]; then
  export S3SEAL_BACKEND_DIR=${S3SEAL_BACKEND_DIR:-$ROOT/run/test-backend}
  eval "$(deploy/backend.sh start)"
  started=1
fi
export S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY S3_REGION
stop_backend() {
  if [ "$started" = 1 ]; then deploy/backend.sh stop >/dev/null 2>&1 || true; fi
}
trap stop_backend EXIT

# Sanitizers: fail on the first error, and report leaks at exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cd "$BUILD"
ctest --output-on-failure -j2
