#!/usr/bin/env bash
# tls.sh - s3seal terminating TLS itself (tls: in its config) against nginx
# terminating TLS in front of the same backend, one worker each, the same
# certificate (ECDSA P-256) and the same TLS 1.3 suite (BENCH_TLS_SUITE,
# pinned by the clients). Prints one table and writes
# tests/bench/results/tls-s3.json (tls-sink.json with the sink backend).
#
#   tests/bench/tls.sh
#
# Rows, each leg BENCH_TLS_REPEAT times interleaved, the median kept:
#   PUT / GET of one BENCH_TLS_LARGE_MB MiB object on one connection and
#   4 KiB GET at concurrency 64 on keep-alive connections, through nginx
#   (pass-through), s3seal (pass-through) and s3seal with SSE-S3 (the
#   encrypting proxy, the row the target is about: >= 0.9 of nginx);
#   the TLS handshake rate: `openssl s_time -new` (full handshakes, one
#   client process) for BENCH_TLS_HS_SECONDS against each server, with the
#   server's CPU per handshake.
# kTLS: s3seal runs TLS on its event loop between buffers of its own, so
# the kernel's TLS cannot take its records; the JSON says whether this kernel
# and OpenSSL offer kTLS at all (tcp_available_ulp lists tls).
#
# Backend as in run.sh: S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY (S3_REGION)
# when set, else the local Ceph RGW (deploy/backend.sh), reused or started;
# with BENCH_TLS_BACKEND=sink, tests/bench/sink.c instead (as sink.sh uses
# it: PUT bodies dropped, the objects the GETs read kept in memory), so that
# the proxies, not the backend, are what is measured.
# Settings (environment): BENCH_TLS_LARGE_MB (256), BENCH_TLS_SMALL_COUNT
# (2000), BENCH_TLS_REPEAT (3), BENCH_TLS_HS_SECONDS (5), BENCH_TLS_SUITE
# (TLS_AES_128_GCM_SHA256), BENCH_TLS_BACKEND (s3 | sink), BENCH_BUILD_DIR
# (build-bench, Release).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
ROOT=$PWD
LARGE_MB=${BENCH_TLS_LARGE_MB:-256}
SMALL_COUNT=${BENCH_TLS_SMALL_COUNT:-2000}
REPEAT=${BENCH_TLS_REPEAT:-3}
HS_SECONDS=${BENCH_TLS_HS_SECONDS:-5}
SUITE=${BENCH_TLS_SUITE:-TLS_AES_128_GCM_SHA256}
BACKEND_KIND=${BENCH_TLS_BACKEND:-s3}
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
CONC=64
SMALL=4096
T_START=$SECONDS

log() { echo "[tls] $*" >&2; }
die() { echo "[tls] error: $*" >&2; exit 1; }

# shellcheck source=tests/bench/lib.sh
. tests/bench/lib.sh

bench_build s3seal s3load sink
command -v openssl >/dev/null || die "the openssl command is needed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/s3seal-tls.XXXXXX")
PID=""
NGX_PID=""
SINK_PID=""
BACKEND_STARTED=0
BUCKET=""
cleanup() {
  local rc=$?
  set +e
  stop_pid "$PID" s3seal
  stop_pid "$NGX_PID" nginx
  stop_pid "$SINK_PID" "the sink"
  if [ -n "$BUCKET" ] && [ "$BACKEND_KIND" != sink ]; then
    s3direct s3 rb --force "s3://$BUCKET" >/dev/null 2>&1 || log "could not remove bucket $BUCKET"
  fi
  if [ "$BACKEND_STARTED" = 1 ]; then
    deploy/backend.sh stop >/dev/null 2>&1 || log "could not stop the backend"
  fi
  [ "$rc" = 0 ] || bench_tail_logs s3seal.log nginx/error.log
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$BACKEND_KIND" = sink ]; then
  # Keys starting with tmpl- are kept (the objects the GETs read).
  SINK_PORT=$(free_port)
  "$BUILD/tests/bench/sink" "$SINK_PORT" --keep tmpl- 2>"$TMP/sink.log" &
  SINK_PID=$!
  for _ in $(seq 1 50); do
    grep -q "listening on" "$TMP/sink.log" && break
    kill -0 "$SINK_PID" 2>/dev/null || die "the sink exited at start: $(cat "$TMP/sink.log")"
    sleep 0.1
  done
  S3_ENDPOINT=http://127.0.0.1:$SINK_PORT S3_ACCESS_KEY=AKIASINKBACKEND
  S3_SECRET_KEY=sink-does-not-check-signatures REGION=us-east-1
else
  bench_backend
fi
BE_HOSTPORT=${S3_ENDPOINT#*://}
BE_HOSTPORT=${BE_HOSTPORT%%/*}

# ------------------------------------------------------------ certificates
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/ca.key" \
  -out "$TMP/ca.pem" -days 2 -subj "/CN=s3seal bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/server.key" \
  -out "$TMP/server.csr" -subj "/CN=localhost" 2>/dev/null
echo "subjectAltName=IP:127.0.0.1,DNS:localhost" > "$TMP/san.ext"
openssl x509 -req -in "$TMP/server.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -set_serial 1 \
  -out "$TMP/server.pem" -days 2 -extfile "$TMP/san.ext" 2>/dev/null
chmod 600 "$TMP/server.key"
export S3LOAD_CA_FILE=$TMP/ca.pem S3LOAD_TLS13_CIPHERS=$SUITE

# ------------------------------------------------------------ servers
bench_nginx "$BE_HOSTPORT" "$TMP/server.pem" "$TMP/server.key"
PORT=$(free_port)
bench_credentials AKIABENCH "$S3_SECRET_KEY"
bench_config "$TMP/s3seal.yaml" "$S3_ENDPOINT" "$S3_ACCESS_KEY" "log_level: warn" \
  "tls:" "  cert_file: $TMP/server.pem" "  key_file: $TMP/server.key"
bench_s3seal_up
PROXY=https://127.0.0.1:$PORT
NPORT_TLS=${NGINX_EP##*:}

BUCKET=tls-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
if [ "$BACKEND_KIND" = sink ]; then
  curl -sS -o /dev/null -X PUT "$S3_ENDPOINT/$BUCKET" || die "the sink does not answer"
else
  s3direct s3 mb "s3://$BUCKET" >/dev/null || { BUCKET=""; die "cannot create a bucket on $S3_ENDPOINT"; }
fi
log "backend $S3_ENDPOINT, nginx $NGINX_EP (worker $NGX_WORKER), s3seal $PROXY (pid $PID)," \
    "suite $SUITE, bucket $BUCKET"

# load nginx|s3seal|sse NAME OP SIZE COUNT CONC KEY [s3load options]
load() {
  local via=$1 name=$2 op=$3 size=$4 count=$5 conc=$6 key=$7 ep ak sk pp
  shift 7
  local extra=("$@")
  case "$via" in
    nginx) ep=$NGINX_EP ak=$S3_ACCESS_KEY sk=$S3_SECRET_KEY pp="$NGX_PID $NGX_WORKER" ;;
    s3seal) ep=$PROXY ak=$AK sk=$SK pp=$PID ;;
    sse) ep=$PROXY ak=$AK sk=$SK pp=$PID extra+=(--sse) ;;
    *) die "load: unknown target $via" ;;
  esac
  bench_load "$via $name" "$ep" "$ak" "$sk" --set "name=$name" --set "via=$via" \
    --cpu "proxy_cpu_s=$pp" --alive "s3seal=$PID" --alive "nginx=$NGX_PID" -- \
    "$op" --bucket "$BUCKET" --key "$key" --size "$size" --count "$count" --concurrency "$conc" \
    --region "$REGION" "${extra[@]}" >> "$TMP/results.jsonl"
}

LARGE=$((LARGE_MB * 1024 * 1024))
# PUTs into keys a sink drops; the GETs read objects stored once (tmpl-, the
# keys a sink keeps), each through the way it is read back.
bench_cmp "PUT ${LARGE_MB} MiB" put "$LARGE" 1 1 large
for via in n p e; do
  extra=()
  [ "$via" = e ] && extra=(--sse)
  case $via in n) t=nginx ;; p) t=s3seal ;; e) t=sse ;; esac
  load "$t" prep put "$LARGE" 1 1 "tmpl-large-$via" "${extra[@]}"
  load "$t" prep put "$SMALL" "$SMALL_COUNT" "$CONC" "tmpl-small-$via" "${extra[@]}"
done
# The prep runs are not rows.
grep -v '"name": "prep"' "$TMP/results.jsonl" > "$TMP/r.jsonl" || true
mv "$TMP/r.jsonl" "$TMP/results.jsonl"
bench_cmp "GET ${LARGE_MB} MiB" get "$LARGE" 1 1 tmpl-large
bench_cmp "GET 4 KiB x${SMALL_COUNT} c=${CONC}" get "$SMALL" "$SMALL_COUNT" "$CONC" tmpl-small

# ------------------------------------------------------------ handshakes
# handshakes NAME PORT PIDS: full handshakes by one openssl s_time client.
handshakes() {
  local name=$1 port=$2 pids=$3 t0 t1 out
  # shellcheck disable=SC2086
  t0=$(ticks $pids)
  out=$(openssl s_time -connect "127.0.0.1:$port" -new -time "$HS_SECONDS" -ciphersuites "$SUITE" \
        -CAfile "$TMP/ca.pem" 2>&1 || true)
  # shellcheck disable=SC2086
  t1=$(ticks $pids)
  python3 -c 'import json, re, sys
out, name, cpu, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = re.search(r"(\d+) connections in (\d+) real seconds", out)
n, secs = (int(m.group(1)), int(m.group(2))) if m else (0, 1)
print(json.dumps({"name": "handshakes", "via": name, "handshakes": n, "seconds": secs,
                  "rate": n / max(secs, 1), "proxy_cpu_s": cpu / hz,
                  "cpu_ms_per_handshake": 1000 * cpu / hz / n if n else None}))' \
    "$out" "$name" "$((t1 - t0))" "$BENCH_HZ"
}
for i in $(seq 1 "$REPEAT"); do
  log "handshakes ($i/$REPEAT): nginx, s3seal"
  handshakes nginx "$NPORT_TLS" "$NGX_PID $NGX_WORKER" >> "$TMP/results.jsonl"
  handshakes s3seal "$PORT" "$PID" >> "$TMP/results.jsonl"
done

# ------------------------------------------------------------ report
KTLS=no
grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null && KTLS=kernel
mkdir -p tests/bench/results
python3 - "$TMP/results.jsonl" "tests/bench/results/tls-$BACKEND_KIND.json" "$SUITE" "$REPEAT" \
  "$KTLS" "$("$NGINX" -v 2>&1 | sed 's/.*\///')" "$(openssl version)" "$((SECONDS - T_START))" \
  "$BACKEND_KIND" <<'PY'
import json, statistics, sys
src, dst, suite, repeat, ktls, nginx, openssl, elapsed, backend = sys.argv[1:10]
runs = [json.loads(l) for l in open(src) if l.strip()]
def med(name, via, field):
    v = [r[field] for r in runs if r["name"] == name and r["via"] == via and r.get(field) is not None]
    return statistics.median(v) if v else None
def errs(name, via):
    return sum(r.get("errors", 0) for r in runs if r["name"] == name and r["via"] == via)
names = []
for r in runs:
    if r["name"] not in names:
        names.append(r["name"])
rows = []
print(f"TLS: s3seal vs nginx terminating TLS, one worker each, {suite}, median of {repeat}; "
      f"backend {backend}; OpenSSL {openssl.split()[1]}, nginx {nginx}")
W = 28
print(f"{'metric':<{W}}{'unit':>7}{'nginx':>10}{'s3seal':>10}{'ratio':>7}{'SSE-S3':>10}{'ratio':>7}"
      f"{'target':>8}   CPU s nginx / s3seal / SSE-S3")
ok = True
for name in names:
    if name == "handshakes":
        n, s = med(name, "nginx", "rate"), med(name, "s3seal", "rate")
        cn, cs = med(name, "nginx", "cpu_ms_per_handshake"), med(name, "s3seal", "cpu_ms_per_handshake")
        ratio = s / n if n else None
        print(f"{'TLS handshakes (s_time -new)':<{W}}{'/s':>7}{n:>10.0f}{s:>10.0f}{ratio:>7.2f}"
              f"{'':>10}{'':>7}{'report':>8}   server CPU ms/handshake "
              f"{cn or 0:.3f} / {cs or 0:.3f}")
        rows.append({"metric": "handshakes", "unit": "1/s", "nginx": n, "s3seal": s, "ratio": ratio,
                     "cpu_ms_per_handshake": {"nginx": cn, "s3seal": cs}})
        continue
    large = "MiB" in name
    field, unit = ("mib_s", "MiB/s") if large else ("req_s", "req/s")
    n, p, e = (med(name, v, field) for v in ("nginx", "s3seal", "sse"))
    cpu = [med(name, v, "proxy_cpu_s") for v in ("nginx", "s3seal", "sse")]
    bad = errs(name, "nginx") + errs(name, "s3seal") + errs(name, "sse")
    ok = ok and bad == 0
    rp, re_ = (p / n if n else 0), (e / n if n else 0)
    target = "0.9" if large else ""
    print(f"{name:<{W}}{unit:>7}{n:>10.1f}{p:>10.1f}{rp:>7.2f}{e:>10.1f}{re_:>7.2f}{target:>8}   "
          f"{cpu[0]:.2f} / {cpu[1]:.2f} / {cpu[2]:.2f}" + (f"   ERRORS {bad}" if bad else ""))
    rows.append({"metric": name, "unit": unit, "nginx": n, "s3seal": p, "sse": e,
                 "ratio": rp, "ratio_sse": re_, "proxy_cpu_s": cpu, "errors": bad})
print(f"kTLS: {'offered by the kernel' if ktls == 'kernel' else 'not offered by this kernel'}; "
      "s3seal keeps TLS on its loop (its own BIOs), so its records never go through kTLS")
json.dump({"suite": suite, "repeat": int(repeat), "backend": backend, "nginx": nginx, "openssl": openssl,
           "ktls": ktls, "elapsed_s": int(elapsed), "rows": rows, "runs": runs},
          open(dst, "w"), indent=1)
sys.exit(0 if ok else 1)
PY
