#!/usr/bin/env bash
# run.sh - the benchmark: the same workloads straight to the backend and
# through s3seal, in one run, printed as one table (metric, direct, s3seal,
# ratio, s3seal's CPU), with s3seal's CPU seconds per GiB and peak RSS. The
# large and 4 KiB PUT/GET also run through s3seal with SSE-S3, compared with
# pass-through and direct in the same run, next to OpenSSL's AES-256-GCM
# speed on one core. The same figures go to tests/bench/results/latest.json.
# Then it runs the benchmark's two other parts: tests/bench/sink.sh (s3seal
# against a sink backend: its own pass-through R, OpenSSL's AES-256-GCM A,
# the limit L = 1/(1/R + 1/A), the encrypting throughput E/L, and R against
# nginx on the same sink) and tests/bench/compare.sh (against nginx on the
# same backend, memory with 10,000 idle connections and 256 transfers,
# workers 1 and 2), and tests/bench/tls.sh (s3seal terminating TLS against
# nginx terminating TLS, and their handshake rates), each with its own table
# and JSON file.
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
# `workers`; unset: its default), BENCH_BUILD_DIR (build-bench, Release),
# BENCH_PARTS ("main sink compare tls": the parts after the main one that run).
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

# shellcheck source=tests/bench/lib.sh
. tests/bench/lib.sh

# ---------------------------------------------------------------- build
bench_build s3seal s3load

# ---------------------------------------------------------------- state
TMP=$(mktemp -d "${TMPDIR:-/tmp}/s3seal-bench.XXXXXX")
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

# ---------------------------------------------------------------- backend
bench_backend

# ---------------------------------------------------------------- s3seal
PORT=$(free_port)
bench_credentials AKIABENCH "$S3_SECRET_KEY"
bench_config "$TMP/s3seal.yaml" "$S3_ENDPOINT" "$S3_ACCESS_KEY" "log_level: info" \
  ${BENCH_WORKERS:+"workers: $BENCH_WORKERS"} \
  "limits:" "  max_connections_per_client: $((CONC + 64))"
# A fresh master key and keystore (root key version 1) for the SSE-S3 rows,
# made as the e2e harness makes them.
bench_s3seal_up
PROXY=http://127.0.0.1:$PORT

BUCKET=bench-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
s3direct s3 mb "s3://$BUCKET" >/dev/null || { BUCKET=""; die "cannot create a bucket on $S3_ENDPOINT"; }

# load direct|s3seal OP SIZE COUNT CONC KEY [--fresh] [--sse]: one s3load
# run, with the CPU s3seal and the backend spent during it; prints one JSON
# object.
load() {
  local where=$1 op=$2 size=$3 count=$4 conc=$5 key=$6 ep ak sk alive=()
  shift 6
  if [ "$where" = direct ]; then ep=$S3_ENDPOINT ak=$S3_ACCESS_KEY sk=$S3_SECRET_KEY
  else ep=$PROXY ak=$AK sk=$SK alive=(--alive "s3seal=$PID"); fi
  bench_load "$where $op $key" "$ep" "$ak" "$sk" \
    --cpu "s3seal_cpu_s=$PID" --cpu "backend_cpu_s=$BE_PID" "${alive[@]}" -- \
    "$op" --bucket "$BUCKET" --key "$key" --size "$size" --count "$count" --concurrency "$conc" \
    --region "$REGION" "$@"
}

# phase [--sse] NAME OP SIZE COUNT CONC KEY [--fresh]: direct (objects
# KEY-d...), then through s3seal (KEY-p...); with --sse, then through s3seal
# with SSE-S3 (KEY-e...) and with SSE-KMS, the default key, audited
# (KEY-k...), as well.
phase() {
  local sse=0
  if [ "$1" = --sse ]; then sse=1; shift; fi
  local name=$1; shift
  local op=$1 size=$2 count=$3 conc=$4 key=$5 d s e=null k=null
  shift 5
  log "$name: direct"
  d=$(load direct "$op" "$size" "$count" "$conc" "$key-d" "$@")
  log "$name: through s3seal"
  s=$(load s3seal "$op" "$size" "$count" "$conc" "$key-p" "$@")
  if [ "$sse" = 1 ]; then
    log "$name: through s3seal, SSE-S3"
    e=$(load s3seal "$op" "$size" "$count" "$conc" "$key-e" "$@" --sse)
    log "$name: through s3seal, SSE-KMS"
    k=$(load s3seal "$op" "$size" "$count" "$conc" "$key-k" "$@" --sse-kms)
  fi
  echo "{\"name\":\"$name\",\"direct\":$d,\"s3seal\":$s,\"sse\":$e,\"kms\":$k}" \
    >> "$TMP/results.jsonl"
}

# check_stored KEY SIZE encrypted|plain: asks the backend itself (not s3seal)
# whether object KEY, SIZE bytes of plaintext, is stored in s3seal's format
# (sse/FORMAT.md: s3seal-version metadata, 16 bytes of tag per segment) or
# as it was sent; the bench stops if not, since its figures would then not
# measure what their rows say.
check_stored() {
  local key=$1 size=$2 want=$3 head
  head=$(s3direct s3api head-object --bucket "$BUCKET" --key "$key") ||
    die "head-object $key straight on the backend failed"
  python3 - "$head" "$key" "$size" "$want" >> "$TMP/stored.jsonl" <<'PY' ||
import json, sys
head, key, size, want = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
meta, stored = head.get("Metadata", {}), head.get("ContentLength")
out = {"key": key, "plaintext_bytes": size, "stored_bytes": stored,
       "metadata": {k: v for k, v in meta.items() if k != "s3seal-dek"}}
if want == "encrypted":
    if meta.get("s3seal-version") != "1":
        sys.exit(f"{key} is NOT stored encrypted: the backend shows no s3seal-version "
                 f"metadata ({meta})")
    seg = int(meta.get("s3seal-segment", "65536"))
    expect = size + 16 * max(1, -(-size // seg))
    if stored != expect:
        sys.exit(f"{key}: the backend holds {stored} bytes, not the {expect} of "
                 f"{size} bytes sealed in {seg}-byte segments")
    print(f"[bench] {key}: stored encrypted ({meta.get('s3seal-alg')}, key "
          f"{meta.get('s3seal-key')}, {stored} bytes for {size})", file=sys.stderr)
elif any(k.startswith("s3seal-") for k in meta) or stored != size:
    sys.exit(f"{key} was sent without encryption but is stored as {stored} bytes "
             f"with metadata {meta}")
print(json.dumps(out))
PY
    die "the stored object does not match (see above)"
}

log "backend $S3_ENDPOINT${BE_PID:+ (pid $BE_PID)}, s3seal $PROXY (pid $PID), bucket $BUCKET"
log "large: ${LARGE_MB} MiB; small: $SMALL_COUNT x 4 KiB at concurrency $CONC; latency: $LAT_COUNT GETs"
LARGE=$((LARGE_MB * 1024 * 1024))
phase --sse large_put put "$LARGE" 1 1 large
check_stored large-e "$LARGE" encrypted
check_stored large-p "$LARGE" plain
phase --sse large_get get "$LARGE" 1 1 large
phase --sse small_put put "$SMALL" "$SMALL_COUNT" "$CONC" small
check_stored small-e-0 "$SMALL" encrypted
phase --sse small_get get "$SMALL" "$SMALL_COUNT" "$CONC" small
# The objects read here are small-{d,p}-0 .. -(LAT_COUNT-1) from small_put.
[ "$LAT_COUNT" -le "$SMALL_COUNT" ] || die "BENCH_LAT_COUNT must not exceed BENCH_SMALL_COUNT"
phase latency_get get "$SMALL" "$LAT_COUNT" 1 small
phase latency_get_fresh get "$SMALL" "$LAT_COUNT" 1 small --fresh
RSS_KB=$(awk '/^VmHWM/{print $2}' "/proc/$PID/status")

# The AEAD's own speed on one core, while the load is idle: the floor under
# s3seal's CPU per GiB encrypted. Its last line reads "AES-256-GCM 3579098.50k",
# in 1000s of bytes per second.
AES_KBPS=""
if command -v openssl >/dev/null; then
  log "openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3"
  AES_KBPS=$(openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3 2>/dev/null |
             awk '$1 == "AES-256-GCM" && $2 ~ /^[0-9.]+k$/ { sub(/k$/, "", $2); print $2 }' ||
             true)
  [ -n "$AES_KBPS" ] || log "could not read the AES-256-GCM figure from openssl speed"
else
  log "no openssl command: the AES-256-GCM row is left empty"
fi
ELAPSED=$((SECONDS - T_START))

mkdir -p tests/bench/results
status=0
python3 - "$TMP/results.jsonl" "$RSS_KB" "$LARGE_MB" "$SMALL_COUNT" "$CONC" "$LAT_COUNT" \
  "$ELAPSED" "$S3_ENDPOINT" "${BENCH_WORKERS:-}" "$(git rev-parse --short HEAD 2>/dev/null || true)" \
  "$AES_KBPS" "$TMP/stored.jsonl" <<'PY' || status=$?
import json, sys, time
rows = [json.loads(l) for l in open(sys.argv[1])]
rss_mib = int(sys.argv[2]) / 1024
large_mb, small_count, conc, lat_count = (int(a) for a in sys.argv[3:7])
aes_bps = float(sys.argv[11]) * 1000 if sys.argv[11] else None
stored = [json.loads(l) for l in open(sys.argv[12])]
by = {r["name"]: r for r in rows}
GIB = 2 ** 30

table = []
def row(metric, unit, d, s, cpu=None, cpu_unit="", errors=0, plain=None):
    table.append({"metric": metric, "unit": unit, "direct": d, "s3seal": s,
                  "ratio": s / d if d else None,
                  "s3seal_plain": plain, "vs_plain": s / plain if plain else None,
                  "s3seal_cpu": cpu, "s3seal_cpu_unit": cpu_unit, "errors": errors})

# Each workload: direct vs through s3seal, then (when it ran) s3seal with
# SSE-S3 vs direct and vs s3seal's pass-through of the same run.
def legs(name):
    r = by[name]
    yield "", r["s3seal"], r["direct"]["errors"] + r["s3seal"]["errors"], None
    if r.get("sse"):
        yield ", SSE-S3", r["sse"], r["sse"]["errors"], r["s3seal"]
    if r.get("kms"):
        yield ", SSE-KMS", r["kms"], r["kms"]["errors"], r["s3seal"]

for name, label in (("large_put", f"PUT {large_mb} MiB"), ("large_get", f"GET {large_mb} MiB")):
    d = by[name]["direct"]
    for suffix, s, errors, plain in legs(name):
        gib = s["bytes"] / GIB
        row(label + suffix, "MiB/s", d["mib_s"], s["mib_s"],
            s["s3seal_cpu_s"] / gib if gib else None, "s/GiB", errors,
            plain["mib_s"] if plain else None)
for name, label in (("small_put", f"PUT 4 KiB x{small_count} c={conc}"),
                    ("small_get", f"GET 4 KiB x{small_count} c={conc}")):
    d = by[name]["direct"]
    for suffix, s, errors, plain in legs(name):
        row(label + suffix, "req/s", d["req_s"], s["req_s"],
            s["s3seal_cpu_s"] * 1e6 / s["requests"] if s["requests"] else None, "us/req",
            errors, plain["req_s"] if plain else None)
for name, label in (("latency_get", "GET 4 KiB c=1 keep-alive"),
                    ("latency_get_fresh", "GET 4 KiB c=1 new conn.")):
    d, s = by[name]["direct"], by[name]["s3seal"]
    for q in ("p50", "p99"):
        row(f"{label} {q}", "ms", d[q + "_ms"], s[q + "_ms"], errors=d["errors"] + s["errors"])

# What SSE-S3 adds to s3seal's CPU per GiB, and the AEAD's own cost per GiB.
aes = None
if aes_bps:
    aes = {"command": "openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3",
           "bytes_per_s": aes_bps, "mib_s": aes_bps / 2 ** 20, "cpu_s_per_gib": GIB / aes_bps}
sse_extra, kms_extra = {}, {}
for name in ("large_put", "large_get"):
    r = by[name]
    for leg, extra in (("sse", sse_extra), ("kms", kms_extra)):
        if r.get(leg) and r[leg]["bytes"] and r["s3seal"]["bytes"]:
            extra[name.split("_")[1]] = (r[leg]["s3seal_cpu_s"] / (r[leg]["bytes"] / GIB) -
                                         r["s3seal"]["s3seal_cpu_s"] / (r["s3seal"]["bytes"] / GIB))

def fmt(v, unit):
    if v is None:
        return "-"
    return f"{v:.2f}" if unit == "ms" or v < 100 else f"{v:.1f}"

W = 46
print()
print(f"{'metric':<{W}}{'unit':>6}{'direct':>10}{'s3seal':>10}{'ratio':>7}{'vs plain':>9}"
      f"{'s3seal CPU':>15}")
print("-" * (W + 57))
for t in table:
    cpu = f"{t['s3seal_cpu']:.2f} {t['s3seal_cpu_unit']}" if t["s3seal_cpu"] is not None else ""
    ratio = f"{t['ratio']:.2f}" if t["ratio"] is not None else "-"
    vs_plain = f"{t['vs_plain']:.2f}" if t["vs_plain"] is not None else ""
    errs = f"  ({t['errors']} errors)" if t["errors"] else ""
    print(f"{t['metric']:<{W}}{t['unit']:>6}{fmt(t['direct'], t['unit']):>10}"
          f"{fmt(t['s3seal'], t['unit']):>10}{ratio:>7}{vs_plain:>9}{cpu:>15}{errs}")
print("-" * (W + 57))
print(f"{'s3seal peak RSS (VmHWM)':<{W}}{'MiB':>6}{'':>10}{rss_mib:>10.1f}")
if aes:
    floor = f"{aes['cpu_s_per_gib']:.2f} s/GiB"
    print(f"{'OpenSSL AES-256-GCM, 64 KiB blocks, one core':<{W}}{'MiB/s':>6}{'':>10}"
          f"{aes['mib_s']:>10.1f}{'':>16}{floor:>15}")
else:
    print("OpenSSL AES-256-GCM, 64 KiB blocks, one core: not measured")
for label, extra in (("SSE-S3", sse_extra), ("SSE-KMS", kms_extra)):
    if extra:
        print(f"{label} adds to s3seal's CPU s/GiB (large): " +
              "; ".join(f"{op.upper()} {v:+.2f}" for op, v in extra.items()) +
              (f" (the AES-256-GCM floor is {aes['cpu_s_per_gib']:.2f})" if aes else ""))
be = []
for name in ("large_put", "large_get"):
    r = by[name]
    if any(r[k] and r[k]["backend_cpu_s"] for k in ("direct", "s3seal", "sse") if k in r):
        per = lambda k: r[k]["backend_cpu_s"] / (r[k]["bytes"] / GIB)
        be.append(f"{name.split('_')[1].upper()} {per('direct'):.2f} direct, "
                  f"{per('s3seal'):.2f} via s3seal" +
                  (f", {per('sse'):.2f} SSE-S3" if r.get("sse") else ""))
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
    "rows": table, "s3seal_peak_rss_mib": rss_mib, "openssl_aes_256_gcm": aes,
    "sse_extra_cpu_s_per_gib": sse_extra, "kms_extra_cpu_s_per_gib": kms_extra,
    "stored_checks": stored,
    "seconds": int(sys.argv[7]), "raw": rows,
}
with open("tests/bench/results/latest.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
errors = sum(t["errors"] for t in table)
sys.exit(1 if errors else 0)
PY
log "JSON: tests/bench/results/latest.json"

# The other parts of the benchmark, unless BENCH_PARTS says otherwise
# ("main" alone, or any of "main sink compare tls"): s3seal against a sink
# backend (its own limit against the AEAD's, tests/bench/sink.sh),
# against nginx on the same backend, with memory and workers
# (tests/bench/compare.sh), and over TLS against nginx terminating TLS
# (tests/bench/tls.sh), on the backend this run used.
PARTS=${BENCH_PARTS:-main sink compare tls}
for part in sink compare tls; do
  case " $PARTS " in
    *" $part "*)
      log "tests/bench/$part.sh"
      S3_ENDPOINT=$S3_ENDPOINT S3_ACCESS_KEY=$S3_ACCESS_KEY S3_SECRET_KEY=$S3_SECRET_KEY \
        S3_REGION=$REGION BENCH_BUILD_DIR=$BUILD "tests/bench/$part.sh" || status=1
      ;;
  esac
done
exit $status
