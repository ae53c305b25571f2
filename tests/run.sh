#!/usr/bin/env bash
# run.sh - the whole test suite: unit tests, then end-to-end tests with real
# clients (aws-cli, boto3, curl, the JavaScript SDK, s3cmd) through a real
# s3seal in front of a real S3 backend.
#
#   tests/run.sh              normal build in build/ (Release, as deploy/up.sh)
#   tests/run.sh --sanitize   ASan + UBSan build (Debug) in build-asan/
#   tests/run.sh --fuzz [S]   every libFuzzer target for S seconds (default
#                             30) each, clang build in build-fuzz/ (see
#                             tests/fuzz/run.sh); no backend needed
#
# S3SEAL_BUILD_DIR / S3SEAL_BUILD_TYPE change the normal build's directory and
# type, S3SEAL_ASAN_BUILD_DIR the sanitizer build's directory.
#
# The backend: the one named by S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY
# (S3_REGION, default us-east-1) when they are set; else the one named by
# S3SEAL_BACKEND_ENDPOINT/_ACCESS_KEY/_SECRET_KEY (as for deploy/up.sh); else
# the local Ceph RGW of deploy/backend.sh (data in ./run/backend, port
# S3SEAL_BACKEND_PORT, default 9000), reused when it is already running (for
# instance after deploy/up.sh). A backend this script started is stopped at
# the end when CI is set, and otherwise left running for the next run
# (deploy/down.sh stops it).
#
# Everything before the tests goes to stderr; ctest's summary is the last
# thing printed and ctest's exit status is the script's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { echo "[tests] $*" >&2; }

if [ "${1:-}" = --fuzz ]; then
  shift
  [ $# -le 1 ] || { echo "usage: tests/run.sh --fuzz [SECONDS]" >&2; exit 2; }
  deploy/install-deps.sh
  exec tests/fuzz/run.sh "$@"
fi

SANITIZE=0
for arg in "$@"; do
  case "$arg" in
    --sanitize) SANITIZE=1 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: tests/run.sh [--sanitize | --fuzz [SECONDS]]" >&2; exit 2 ;;
  esac
done

if [ "$SANITIZE" = 1 ]; then
  BUILD=${S3SEAL_ASAN_BUILD_DIR:-build-asan}
  CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Debug -DS3S_SANITIZE=ON)
else
  BUILD=${S3SEAL_BUILD_DIR:-build}
  CMAKE_ARGS=(-DCMAKE_BUILD_TYPE="${S3SEAL_BUILD_TYPE:-Release}" -DS3S_SANITIZE=OFF)
fi

deploy/install-deps.sh
say "building $BUILD"
cmake -S . -B "$BUILD" "${CMAKE_ARGS[@]}" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null

started=0
if [ -n "${S3_ENDPOINT:-}" ]; then
  : "${S3_ACCESS_KEY:?S3_ENDPOINT is set: set S3_ACCESS_KEY too}"
  : "${S3_SECRET_KEY:?S3_ENDPOINT is set: set S3_SECRET_KEY too}"
  say "using the backend at $S3_ENDPOINT"
elif [ -n "${S3SEAL_BACKEND_ENDPOINT:-}" ]; then
  S3_ENDPOINT=$S3SEAL_BACKEND_ENDPOINT
  S3_ACCESS_KEY=${S3SEAL_BACKEND_ACCESS_KEY:?set S3SEAL_BACKEND_ACCESS_KEY}
  S3_SECRET_KEY=${S3SEAL_BACKEND_SECRET_KEY:?set S3SEAL_BACKEND_SECRET_KEY}
  S3_REGION=${S3SEAL_BACKEND_REGION:-us-east-1}
  say "using the backend at $S3_ENDPOINT"
else
  export S3SEAL_BACKEND_DIR=${S3SEAL_BACKEND_DIR:-$ROOT/run/backend}
  if env_lines=$(deploy/backend.sh env 2>/dev/null); then
    say "using the running local backend ($S3SEAL_BACKEND_DIR)"
  else
    say "starting the local backend ($S3SEAL_BACKEND_DIR)"
    env_lines=$(deploy/backend.sh start)
    started=1
  fi
  eval "$env_lines"
fi
export S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY
export S3_REGION=${S3_REGION:-us-east-1}

stop_backend() {
  if [ "$started" = 1 ] && [ -n "${CI:-}" ] && [ "${CI:-}" != false ]; then
    "$ROOT/deploy/backend.sh" stop >/dev/null 2>&1 || true
  fi
}
trap stop_backend EXIT
if [ "$started" = 1 ] && { [ -z "${CI:-}" ] || [ "${CI:-}" = false ]; }; then
  say "the backend stays up for the next run; deploy/down.sh or deploy/backend.sh stop stops it"
fi

# Sanitizer builds: stop at the first report, and report leaks at exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cd "$BUILD"
set +e
ctest --output-on-failure -j2
rc=$?
set -e
exit $rc
