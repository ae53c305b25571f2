#!/usr/bin/env bash
# run.sh - the benchmark: the same workloads straight to the backend and
# through s3seal, in one run, printed as one table (metric, direct, s3seal,
# ratio, s3seal's CPU), with s3seal's CPU seconds per GiB and peak RSS. The
# same figures go to tests/bench/results/latest.json.
#
#   tests/bench/run.sh
#
# Backend: the one named by S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY
# (S3_REGION) when they are set; otherwise the project's local Ceph RGW
# (deploy/backend.sh), reused if it is already running, else started and
# stopped again at the end.
#
# Settings (environment): BENCH_LARGE_MB (1024), BENCH_SMALL_COUNT (2000),
# BENCH_CONCURRENCY (64), BENCH_LAT_COUNT (200), BENCH_WORKERS (s3seal's
# `workers`; unset: its default), BENCH_BUILD_DIR (build-bench, Release).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
ROOT=$PWD
LARGE_MB=${BENCH_LARGE_MB:-1024}
SMALL_COUNT=${BENCH_SMALL_COUNT:-2000}
CONC=${BENCH_CONCURRENCY:-64}
LAT_COUNT=${BENCH_LAT_COUNT:-200}
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
SMALL=4096
T_START=$SECONDS

log() { echo "[bench] $*" >&2; }
die() { echo "[bench] error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- build
# A separate Release tree, so the developers' build/ keeps its own type.
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  log "configuring $BUILD (Release)"
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DS3S_BENCH=ON >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target s3seal s3load >/dev/null || die "build failed"
BIN=$BUILD/s3seal
LOAD=$BUILD/tests/bench/s3load

# ---------------------------------------------------------------- state
TMP=$(mktemp -d "${TMPDIR:-/tmp}/s3seal-bench.XXXXXX")
PID=""
BACKEND_STARTED=0
BUCKET=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PID" 2>/dev/null; then
      log "s3seal did not exit 10 s after SIGTERM; killing it"
      kill -KILL "$PID"
    fi
    wait "$PID" 2>/dev/null
  fi
  if [ -n "$BUCKET" ]; then
    s3direct s3 rb --force "s3://$BUCKET" >/dev/null 2>&1 || log "could not remove bucket $BUCKET"
  fi
  if [ "$BACKEND_STARTED" = 1 ]; then
    deploy/backend.sh stop >/dev/null 2>&1 || log "could not stop the backend"
  fi
  if [ "$rc" != 0 ] && [ -s "$TMP/s3seal.log" ]; then
    log "last lines of s3seal's log:"
    tail -n 40 "$TMP/s3seal.log" >&2
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- backend
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
s3direct() {
  env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" \
    AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_DEFAULT_REGION="$REGION" \
    aws --endpoint-url "$S3_ENDPOINT" "$@"
}
command -v aws >/dev/null || die "aws-cli is needed to create the bucket (deploy/install-deps.sh)"

# The backend's process, when it listens on this machine: its CPU per GiB is
# the yardstick for s3seal's.
BE_PORT=${S3_ENDPOINT##*:}
BE_PORT=${BE_PORT%%/*}
BE_PID=$(ss -Hltnp "sport = :$BE_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true)

# ---------------------------------------------------------------- s3seal
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AK="AKIABENCH$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)"
SK=$(head -c 30 /dev/urandom | base64 | tr -d '/+=')
umask 077
printf '%s' "$S3_SECRET_KEY" > "$TMP/backend.secret"
printf '%s' "$SK" > "$TMP/client.secret"
{
  echo "listen: 127.0.0.1:$PORT"
  echo "log_level: info"
  [ -n "${BENCH_WORKERS:-}" ] && echo "workers: $BENCH_WORKERS"
  cat <<YAML
backend:
  endpoint: $S3_ENDPOINT
  region: $REGION
  access_key: $S3_ACCESS_KEY
  secret_key_file: $TMP/backend.secret
credentials:
  - access_key: $AK
    secret_key_file: $TMP/client.secret
    principal: arn:aws:iam::111122223333:user/bench
keystore:
  path: $TMP/keystore.db
  master_key_file: $TMP/master.key
YAML
} > "$TMP/s3seal.yaml"
# A fresh master key and keystore (root key version 1), as the e2e harness does.
"$BIN" -c "$TMP/s3seal.yaml" keystore init >"$TMP/keystore-init.log" 2>&1 || {
  cat "$TMP/keystore-init.log" >&2; die "s3seal keystore init failed"; }
"$BIN" serve -c "$TMP/s3seal.yaml" 2>"$TMP/s3seal.log" &
PID=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$TMP/s3seal.log" && break
  kill -0 "$PID" 2>/dev/null || die "s3seal exited at start"
  sleep 0.1
done
grep -q "listening on" "$TMP/s3seal.log" || die "s3seal did not say 'listening on' within 10 s"
PROXY=http://127.0.0.1:$PORT

BUCKET=bench-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
s3direct s3 mb "s3://$BUCKET" >/dev/null || { BUCKET=""; die "cannot create a bucket on $S3_ENDPOINT"; }

HZ=$(getconf CLK_TCK)
ticks() { [ -n "$1" ] && awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# load direct|s3seal OP SIZE COUNT CONC KEY [--fresh]: one s3load run, with
# the CPU s3seal and the backend spent during it; prints one JSON object.
load() {
  local where=$1 op=$2 size=$3 count=$4 conc=$5 key=$6 fresh=${7:-} ep ak sk
  if [ "$where" = direct ]; then ep=$S3_ENDPOINT ak=$S3_ACCESS_KEY sk=$S3_SECRET_KEY
  else ep=$PROXY ak=$AK sk=$SK; fi
  local p0 b0 p1 b1 out rc=0
  p0=$(ticks "$PID") b0=$(ticks "$BE_PID")
  out=$(S3LOAD_SECRET_KEY=$sk "$LOAD" "$op" --endpoint "$ep" --access-key "$ak" \
        --bucket "$BUCKET" --key "$key" --size "$size" --count "$count" --concurrency "$conc" \
        --region "$REGION" $fresh 2>"$TMP/load.err") || rc=$?
  p1=$(ticks "$PID") b1=$(ticks "$BE_PID")
  if [ -s "$TMP/load.err" ]; then
    log "$where $op $key: s3load reported:"
    sed 's/^/    /' "$TMP/load.err" >&2
  fi
  if [ "$where" = s3seal ] && ! kill -0 "$PID" 2>/dev/null; then
    die "s3seal exited during '$op $key' (see its log below)"
  fi
  [ -n "$out" ] || die "s3load $op $key against $where gave no result (exit $rc)"
  python3 -c 'import json,sys
d = json.loads(sys.argv[1]); hz = int(sys.argv[4])
d["s3seal_cpu_s"] = (int(sys.argv[2]) - int(sys.argv[3])) / hz
d["backend_cpu_s"] = (int(sys.argv[5]) - int(sys.argv[6])) / hz
print(json.dumps(d))' "$out" "$p1" "$p0" "$HZ" "$b1" "$b0"
}

# phase NAME OP SIZE COUNT CONC KEY [--fresh]: direct, then through s3seal.
phase() {
  local name=$1; shift
  local op=$1 size=$2 count=$3 conc=$4 key=$5 fresh=${6:-} d s
  log "$name: direct"
  d=$(load direct "$op" "$size" "$count" "$conc" "$key-d" $fresh)
  log "$name: through s3seal"
  s=$(load s3seal "$op" "$size" "$count" "$conc" "$key-p" $fresh)
  echo "{\"name\":\"$name\",\"direct\":$d,\"s3seal\":$s}" >> "$TMP/results.jsonl"
}

log "backend $S3_ENDPOINT${BE_PID:+ (pid $BE_PID)}, s3seal $PROXY (pid $PID), bucket $BUCKET"
log "large: ${LARGE_MB} MiB; small: $SMALL_COUNT x 4 KiB at concurrency $CONC; latency: $LAT_COUNT GETs"
LARGE=$((LARGE_MB * 1024 * 1024))
phase large_put put "$LARGE" 1 1 large
phase large_get get "$LARGE" 1 1 large
phase small_put put "$SMALL" "$SMALL_COUNT" "$CONC" small
phase small_get get "$SMALL" "$SMALL_COUNT" "$CONC" small
# The objects read here are small-{d,p}-0 .. -(LAT_COUNT-1) from small_put.
[ "$LAT_COUNT" -le "$SMALL_COUNT" ] || die "BENCH_LAT_COUNT must not exceed BENCH_SMALL_COUNT"
phase latency_get get "$SMALL" "$LAT_COUNT" 1 small
phase latency_get_fresh get "$SMALL" "$LAT_COUNT" 1 small --fresh
RSS_KB=$(awk '/^VmHWM/{print $2}' "/proc/$PID/status")
ELAPSED=$((SECONDS - T_START))

mkdir -p tests/bench/results
status=0
python3 - "$TMP/results.jsonl" "$RSS_KB" "$LARGE_MB" "$SMALL_COUNT" "$CONC" "$LAT_COUNT" \
  "$ELAPSED" "$S3_ENDPOINT" "${BENCH_WORKERS:-}" "$(git rev-parse --short HEAD 2>/dev/null || true)" \
  <<'PY' || status=$?
import json, sys, time
rows = [json.loads(l) for l in open(sys.argv[1])]
rss_mib = int(sys.argv[2]) / 1024
large_mb, small_count, conc, lat_count = (int(a) for a in sys.argv[3:7])
by = {r["name"]: r for r in rows}
GIB = 2 ** 30

table = []
def row(metric, unit, d, s, cpu=None, cpu_unit="", errors=0, higher_is_better=True):
    ratio = s / d if d else None
    table.append({"metric": metric, "unit": unit, "direct": d, "s3seal": s, "ratio": ratio,
                  "s3seal_cpu": cpu, "s3seal_cpu_unit": cpu_unit, "errors": errors})

for name, label in (("large_put", f"PUT {large_mb} MiB"), ("large_get", f"GET {large_mb} MiB")):
    d, s = by[name]["direct"], by[name]["s3seal"]
    gib = s["bytes"] / GIB
    row(label, "MiB/s", d["mib_s"], s["mib_s"], s["s3seal_cpu_s"] / gib if gib else None,
        "s/GiB", d["errors"] + s["errors"])
for name, label in (("small_put", f"PUT 4 KiB x{small_count} c={conc}"),
                    ("small_get", f"GET 4 KiB x{small_count} c={conc}")):
    d, s = by[name]["direct"], by[name]["s3seal"]
    row(label, "req/s", d["req_s"], s["req_s"],
        s["s3seal_cpu_s"] * 1e6 / s["requests"] if s["requests"] else None, "us/req",
        d["errors"] + s["errors"])
for name, label in (("latency_get", "GET 4 KiB c=1 keep-alive"),
                    ("latency_get_fresh", "GET 4 KiB c=1 new conn.")):
    d, s = by[name]["direct"], by[name]["s3seal"]
    for q in ("p50", "p99"):
        row(f"{label} {q}", "ms", d[q + "_ms"], s[q + "_ms"], errors=d["errors"] + s["errors"])

def fmt(v, unit):
    if v is None:
        return "-"
    return f"{v:.2f}" if unit == "ms" or v < 100 else f"{v:.1f}"

print()
print(f"{'metric':<36}{'unit':>6}{'direct':>11}{'s3seal':>11}{'ratio':>7}{'s3seal CPU':>19}")
print("-" * 90)
for t in table:
    cpu = f"{t['s3seal_cpu']:.2f} {t['s3seal_cpu_unit']}" if t["s3seal_cpu"] is not None else ""
    ratio = f"{t['ratio']:.2f}" if t["ratio"] is not None else "-"
    errs = f"  ({t['errors']} errors)" if t["errors"] else ""
    print(f"{t['metric']:<36}{t['unit']:>6}{fmt(t['direct'], t['unit']):>11}"
          f"{fmt(t['s3seal'], t['unit']):>11}{ratio:>7}{cpu:>19}{errs}")
print("-" * 90)
print(f"{'s3seal peak RSS (VmHWM)':<36}{'MiB':>6}{'':>11}{rss_mib:>11.1f}")
be = []
for name in ("large_put", "large_get"):
    d, s = by[name]["direct"], by[name]["s3seal"]
    if d["backend_cpu_s"] or s["backend_cpu_s"]:
        be.append(f"{name.split('_')[1].upper()} {d['backend_cpu_s'] / (d['bytes'] / GIB):.2f} direct, "
                  f"{s['backend_cpu_s'] / (s['bytes'] / GIB):.2f} via s3seal")
if be:
    print("backend CPU s/GiB (large): " + "; ".join(be))
print("load generator CPU s/GiB (large): " + "; ".join(
    f"{n.split('_')[1].upper()} {by[n]['direct']['client_cpu_s'] / (by[n]['direct']['bytes'] / GIB):.2f}"
    for n in ("large_put", "large_get") if by[n]["direct"]["bytes"]))
print(f"wall time of the run: {sys.argv[7]} s")

out = {
    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "commit": sys.argv[10], "backend": sys.argv[8], "s3seal_workers": sys.argv[9] or "default",
    "settings": {"large_mb": large_mb, "small_count": small_count, "concurrency": conc,
                 "latency_count": lat_count},
    "rows": table, "s3seal_peak_rss_mib": rss_mib, "seconds": int(sys.argv[7]), "raw": rows,
}
with open("tests/bench/results/latest.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
errors = sum(t["errors"] for t in table)
sys.exit(1 if errors else 0)
PY
log "JSON: tests/bench/results/latest.json"
exit $status
