#!/usr/bin/env bash
# run.sh - builds every libFuzzer target (clang, ASan + UBSan) and fuzzes
# each for a bounded time; any crash, leak, timeout or sanitizer report
# fails the run.
#
#   tests/fuzz/run.sh [SECONDS]     (or: tests/run.sh --fuzz [SECONDS])
#
# SECONDS per target, default 30. The targets are those registered in
# tests/fuzz/CMakeLists.txt (s3s_fuzz), found through ctest's fuzz label, so
# a new target is fuzzed without a change here. Each starts from its
# committed seeds in tests/fuzz/corpus/NAME (only read) and keeps what it
# finds in a work corpus in the build tree (BUILD/tests/fuzz/corpus/NAME),
# which the next run starts from too. A failing input is written to
# BUILD/tests/fuzz/artifacts/NAME/ and its path printed; reproduce with
# BUILD/tests/fuzz/fuzz_NAME PATH. S3SEAL_FUZZ_BUILD_DIR changes the build
# directory (default build-fuzz), S3SEAL_FUZZ_ONLY (a name or a regular
# expression) the targets run.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

say() { echo "[fuzz] $*" >&2; }

SECONDS_EACH=${1:-30}
case "$SECONDS_EACH" in
  ''|*[!0-9]*|0) echo "usage: tests/fuzz/run.sh [SECONDS > 0]" >&2; exit 2 ;;
esac
BUILD=${S3SEAL_FUZZ_BUILD_DIR:-build-fuzz}

command -v clang >/dev/null || { echo "[fuzz] clang is needed (deploy/install-deps.sh)" >&2; exit 2; }
say "building $BUILD (clang, libFuzzer, ASan + UBSan)"
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DS3S_FUZZ=ON >/dev/null
mapfile -t NAMES < <(cd "$BUILD" && ctest -N -L fuzz | sed -n 's/^ *Test *#[0-9]*: fuzz\.\(.*\)$/\1/p')
if [ -n "${S3SEAL_FUZZ_ONLY:-}" ]; then
  mapfile -t NAMES < <(printf '%s\n' "${NAMES[@]}" | grep -E -x "$S3SEAL_FUZZ_ONLY" || true)
fi
[ ${#NAMES[@]} -gt 0 ] || { echo "[fuzz] no fuzz targets found" >&2; exit 2; }
cmake --build "$BUILD" -j"$(nproc)" --target "${NAMES[@]/#/fuzz_}" >/dev/null

# Every sanitizer report ends the input with an error; leaks are reports.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

say "${#NAMES[@]} targets, ${SECONDS_EACH} s each: ${NAMES[*]}"
failed=()
for name in "${NAMES[@]}"; do
  dir=$ROOT/$BUILD/tests/fuzz
  seeds=$ROOT/tests/fuzz/corpus/$name
  work=$dir/corpus/$name
  art=$dir/artifacts/$name/
  log=$dir/logs/$name.log
  mkdir -p "$work" "$art" "$(dirname "$log")"
  args=(-max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=25 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$art")
  [ -f "tests/fuzz/$name.dict" ] && args+=(-dict="$ROOT/tests/fuzz/$name.dict")
  [ -d "$seeds" ] || seeds=
  set +e
  # libFuzzer stops itself at max_total_time; the outer limit is for a hang
  # outside any one input.
  timeout -k 10 $((SECONDS_EACH + 120)) "$dir/fuzz_$name" "${args[@]}" "$work" ${seeds:+"$seeds"} \
    >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if [ "$rc" -ne 0 ] || grep -q -E 'runtime error:|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer' "$log"; then
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    say "FAIL $name (exit $rc): ${crash:-no input written}; log: $log"
    grep -m 1 -E 'ERROR: |runtime error:|deadly signal|Timeout|out-of-memory' "$log" >&2 || tail -n 20 "$log" >&2
    failed+=("$name${crash:+ ($crash)}")
  else
    say "ok   $name: ${execs:-?} inputs, corpus $(find "$work" -type f | wc -l) files"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  printf '[fuzz] FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
say "all ${#NAMES[@]} targets ran ${SECONDS_EACH} s each without a finding"
