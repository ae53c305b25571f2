#!/usr/bin/env bash
# listing.sh - listing a bucket of many encrypted objects, straight from the
# backend and through s3seal, in the same run.
#
#   tests/bench/listing.sh
#
# Puts BENCH_LIST_OBJECTS (10000) objects of 1 KiB through s3seal with
# SSE-S3 (each gets its catalog entry), checks one is ciphertext on the
# backend, then lists the whole bucket (ListObjectsV2, pages of 1000)
# BENCH_LIST_ROUNDS (5) times each way, interleaved. Through s3seal every
# page is rewritten from the catalog (one keystore lookup per page), so the
# sizes are the plaintext's. Prints the median time of a whole listing each
# way, their ratio, and s3seal's CPU per page; writes
# tests/bench/results/listing.json. Backend and build as tests/bench/run.sh.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=${BENCH_LIST_OBJECTS:-10000}
ROUNDS=${BENCH_LIST_ROUNDS:-5}
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}

log() { echo "[bench] $*" >&2; }
die() { echo "[bench] error: $*" >&2; exit 1; }

. tests/bench/lib.sh

bench_build s3seal s3load

TMP=$(mktemp -d "${TMPDIR:-/tmp}/s3seal-bench-list.XXXXXX")
PID=""
BACKEND_STARTED=0
BUCKET=""
cleanup() {
  local rc=$?
  set +e
  stop_pid "$PID" s3seal
  if [ -n "$BUCKET" ]; then
    s3direct s3 rb --force "s3://$BUCKET" >/dev/null 2>&1 || log "could not remove bucket $BUCKET"
  fi
  if [ "$BACKEND_STARTED" = 1 ]; then
    deploy/backend.sh stop >/dev/null 2>&1 || log "could not stop the backend"
  fi
  [ "$rc" = 0 ] || bench_tail_logs s3seal.log
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_backend

PORT=$(free_port)
bench_credentials AKIABENCH "$S3_SECRET_KEY"
bench_config "$TMP/s3seal.yaml" "$S3_ENDPOINT" "$S3_ACCESS_KEY" "log_level: warn" \
  "limits:" "  max_connections_per_client: 128"
bench_s3seal_up
PROXY=http://127.0.0.1:$PORT

BUCKET=bench-list-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
s3direct s3 mb "s3://$BUCKET" >/dev/null || { BUCKET=""; die "cannot create a bucket on $S3_ENDPOINT"; }

log "putting $N objects of 1 KiB through s3seal (SSE-S3)"
bench_load "put" "$PROXY" "$AK" "$SK" --alive "s3seal=$PID" -- \
  put --bucket "$BUCKET" --key obj --size 1024 --count "$N" --concurrency 32 \
  --region "$REGION" --sse >/dev/null

log "listing $N objects, $ROUNDS rounds each way"
mkdir -p tests/bench/results
python3 - "$S3_ENDPOINT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$PROXY" "$AK" "$SK" "$BUCKET" \
  "$N" "$ROUNDS" "$PID" "$BENCH_HZ" "$REGION" <<'PY'
import json, statistics, sys, time
import boto3
from botocore.config import Config

(be, bak, bsk, px, pak, psk, bucket, n, rounds, pid, hz, region) = sys.argv[1:]
n, rounds, hz = int(n), int(rounds), int(hz)
cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
direct = boto3.client("s3", endpoint_url=be, aws_access_key_id=bak, aws_secret_access_key=bsk,
                      region_name=region, config=cfg)
proxy = boto3.client("s3", endpoint_url=px, aws_access_key_id=pak, aws_secret_access_key=psk,
                     region_name=region, config=cfg)

def ticks():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

def list_all(c):
    t0, sizes, pages, token = time.monotonic(), [], 0, None
    while True:
        kw = {"Bucket": bucket, "MaxKeys": 1000}
        if token:
            kw["ContinuationToken"] = token
        page = c.list_objects_v2(**kw)
        pages += 1
        sizes += [o["Size"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return time.monotonic() - t0, sizes, pages
        token = page["NextContinuationToken"]

# The backend holds ciphertext; s3seal lists the plaintext's sizes.
_, stored, _ = list_all(direct)
_, plain, _ = list_all(proxy)
if len(stored) != n or len(plain) != n:
    sys.exit(f"listed {len(stored)} objects directly and {len(plain)} through s3seal, not {n}")
if set(stored) != {1024 + 16} or set(plain) != {1024}:
    sys.exit(f"sizes: stored {sorted(set(stored))}, through s3seal {sorted(set(plain))}")
d_times, s_times, cpu, pages = [], [], 0, 0
for _ in range(rounds):
    d_times.append(list_all(direct)[0])
    t = ticks()
    secs, _, p = list_all(proxy)
    cpu += ticks() - t
    s_times.append(secs)
    pages += p
d, s = statistics.median(d_times), statistics.median(s_times)
out = {"objects": n, "rounds": rounds, "direct_s": d, "s3seal_s": s, "ratio": s / d,
       "s3seal_cpu_ms_per_page": cpu / hz * 1000 / pages,
       "direct_all_s": d_times, "s3seal_all_s": s_times, "when": time.time()}
with open("tests/bench/results/listing.json", "w") as f:
    json.dump(out, f, indent=1)
print(f"{'listing ' + str(n) + ' objects (median of ' + str(rounds) + ')':44} "
      f"{'direct':>9} {'s3seal':>9} {'ratio':>7} {'s3seal CPU':>14}")
print(f"{'ListObjectsV2, pages of 1000':44} {d * 1000:7.0f}ms {s * 1000:7.0f}ms "
      f"{s / d:7.3f} {out['s3seal_cpu_ms_per_page']:8.2f}ms/page")
PY
