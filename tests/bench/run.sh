#!/usr/bin/env bash
# run.sh - the benchmark: the same workloads straight to the backend and
# through s3seal, in one run, printed as one table with ratios, plus s3seal's
# own CPU seconds per GiB and peak RSS. A JSON copy goes to
# tests/bench/results/latest.json.
#
# Uses the backend named by S3_ENDPOINT/S3_ACCESS_KEY/S3_SECRET_KEY, or starts
# the local one (deploy/backend.sh). Settings: BENCH_LARGE_MB (1024),
# BENCH_SMALL_COUNT (2000), BENCH_CONCURRENCY (64), BENCH_LAT_COUNT (200).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
LARGE_MB=${BENCH_LARGE_MB:-1024}
SMALL_COUNT=${BENCH_SMALL_COUNT:-2000}
CONC=${BENCH_CONCURRENCY:-64}
LAT_COUNT=${BENCH_LAT_COUNT:-200}

cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DS3S_TESTS=ON >/dev/null
cmake --build build-bench -j"$(nproc)" --target s3seal s3load >/dev/null
BIN=$ROOT/build-bench/s3seal
LOAD=$ROOT/build-bench/tests/bench/s3load

started=0
if [ -z "${S3_ENDPOINT:-}" ]; then
  export S3SEAL_BACKEND_DIR=${S3SEAL_BACKEND_DIR:-$ROOT/run/bench-backend}
  eval "$(deploy/backend.sh start)"
  started=1
fi
TMP=$(mktemp -d)
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  [ "$started" = 1 ] && deploy/backend.sh stop >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AK="AKIABENCH$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)"
SK=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf '%s' "$S3_SECRET_KEY" > "$TMP/backend.secret"
cat > "$TMP/s3seal.yaml" <<YAML
listen: 127.0.0.1:$PORT
log_level: warn
backend:
  endpoint: $S3_ENDPOINT
  region: ${S3_REGION:-us-east-1}
  access_key: $S3_ACCESS_KEY
  secret_key_file: $TMP/backend.secret
credentials:
  - access_key: $AK
    secret_key: $SK
keystore:
  path: $TMP/keystore.db
  master_key_file: $TMP/master.key
YAML
"$BIN" serve -c "$TMP/s3seal.yaml" 2>"$TMP/s3seal.log" &
PID=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
curl -s -o /dev/null "http://127.0.0.1:$PORT/" || { cat "$TMP/s3seal.log"; exit 1; }

PROXY=http://127.0.0.1:$PORT
BUCKET=bench-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_DEFAULT_REGION=${S3_REGION:-us-east-1} \
  aws --endpoint-url "$S3_ENDPOINT" s3 mb "s3://$BUCKET" >/dev/null

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)

# load DIRECT|PROXY op size count conc key -> JSON line (and CPU delta when proxied)
load() {
  local where=$1 op=$2 size=$3 count=$4 conc=$5 key=$6 ep ak sk
  if [ "$where" = direct ]; then ep=$S3_ENDPOINT ak=$S3_ACCESS_KEY sk=$S3_SECRET_KEY
  else ep=$PROXY ak=$AK sk=$SK; fi
  local c0; c0=$(cpu_ticks)
  local out
  out=$(S3LOAD_ACCESS_KEY=$ak S3LOAD_SECRET_KEY=$sk "$LOAD" "$op" --endpoint "$ep" \
        --bucket "$BUCKET" --key "$key" --size "$size" --count "$count" --concurrency "$conc" \
        --region "${S3_REGION:-us-east-1}")
  local c1; c1=$(cpu_ticks)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["s3seal_cpu_s"]=(int(sys.argv[2])-int(sys.argv[3]))/int(sys.argv[4]); print(json.dumps(d))' \
    "$out" "$c1" "$c0" "$HZ"
}

echo "[bench] backend $S3_ENDPOINT, s3seal $PROXY, large ${LARGE_MB} MiB, small ${SMALL_COUNT}x4KiB at concurrency $CONC" >&2
LARGE=$((LARGE_MB * 1024 * 1024))
R=$TMP/results.jsonl
{
  echo "{\"name\":\"large_put\",\"direct\":$(load direct put $LARGE 1 1 large-d),\"s3seal\":$(load proxy put $LARGE 1 1 large-p)}"
  echo "{\"name\":\"large_get\",\"direct\":$(load direct get $LARGE 1 1 large-d),\"s3seal\":$(load proxy get $LARGE 1 1 large-p)}"
  echo "{\"name\":\"small_put\",\"direct\":$(load direct put 4096 $SMALL_COUNT $CONC small-d),\"s3seal\":$(load proxy put 4096 $SMALL_COUNT $CONC small-p)}"
  echo "{\"name\":\"small_get\",\"direct\":$(load direct get 4096 $SMALL_COUNT $CONC small-d),\"s3seal\":$(load proxy get 4096 $SMALL_COUNT $CONC small-p)}"
  echo "{\"name\":\"latency_get\",\"direct\":$(load direct get 4096 $LAT_COUNT 1 small-d),\"s3seal\":$(load proxy get 4096 $LAT_COUNT 1 small-p)}"
} > "$R"
RSS_KB=$(awk '/VmHWM/{print $2}' "/proc/$PID/status")

mkdir -p tests/bench/results
python3 - "$R" "$RSS_KB" "$LARGE_MB" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rss_mb = int(sys.argv[2]) / 1024
print()
print(f"{'metric':<28}{'direct':>14}{'s3seal':>14}{'ratio':>8}{'s3seal CPU':>22}")
table = []
for r in rows:
    d, s = r["direct"], r["s3seal"]
    if r["name"].startswith("large"):
        metric, dv, sv = r["name"] + " MiB/s", d["mib_s"], s["mib_s"]
        cpu = s["s3seal_cpu_s"] / (s["bytes"] / 2**30) if s["bytes"] else 0
        unit = "s/GiB"
    elif r["name"] == "latency_get":
        for q in ("p50_ms", "p99_ms"):
            ratio = s[q] / d[q] if d[q] else 0
            print(f"{'4KiB GET latency ' + q:<28}{d[q]:>14.2f}{s[q]:>14.2f}{ratio:>8.2f}")
            table.append({"metric": "get_4k_" + q, "direct": d[q], "s3seal": s[q], "ratio": ratio})
        continue
    else:
        metric, dv, sv = r["name"] + " req/s", d["req_s"], s["req_s"]
        cpu = s["s3seal_cpu_s"] * 1e6 / s["requests"] if s["requests"] else 0
        unit = "us/request"
    ratio = sv / dv if dv else 0
    errs = d["errors"] + s["errors"]
    print(f"{metric:<28}{dv:>14.1f}{sv:>14.1f}{ratio:>8.2f}{cpu:>11.2f} {unit:<10}" +
          (f"  ({errs} errors)" if errs else ""))
    table.append({"metric": metric, "direct": dv, "s3seal": sv, "ratio": ratio,
                  "s3seal_cpu": cpu, "s3seal_cpu_unit": unit, "errors": errs})
print(f"{'s3seal peak RSS MiB':<28}{'':>14}{rss_mb:>14.1f}")
out = {"large_mb": int(sys.argv[3]), "rows": table, "s3seal_peak_rss_mib": rss_mb, "raw": rows}
json.dump(out, open("tests/bench/results/latest.json", "w"), indent=1)
PY
echo "[bench] JSON: tests/bench/results/latest.json" >&2
