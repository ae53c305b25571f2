#!/usr/bin/env bash
# compare.sh - s3seal against nginx as a plain (non-encrypting) reverse proxy
# on the same backend, s3seal's memory under many connections and large
# transfers, and s3seal with 1 and 2 workers. Prints one table and writes
# tests/bench/results/compare.json.
#
#   tests/bench/compare.sh
#
# (a) nginx vs s3seal (pass-through, and SSE-S3): a large object PUT/GET on
#     one connection and 4 KiB PUT/GET at concurrency 64; each leg
#     BENCH_CMP_REPEAT times, interleaved, the median kept.
# (b) s3seal's VmRSS: started and idle; with BENCH_IDLE_CONNS connections
#     that only connected, and that each made one GET and stay on keep-alive
#     (tests/bench/idle_conns.py); and sampled every 100 ms while
#     BENCH_MEM_CONC concurrent GETs of one BENCH_MEM_MB MiB SSE-S3 object run,
#     and while one BENCH_HUGE_MB MiB SSE-S3 object is PUT and read back.
# (c) s3seal with `workers: 1` and `workers: 2`: large GET on one connection
#     and on 4, and 4 KiB GET at concurrency 64, all SSE-S3.
#
# Backend as in run.sh: S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY (S3_REGION)
# when set, else the local Ceph RGW (deploy/backend.sh), reused or started.
# nginx (/usr/sbin/nginx, or BENCH_NGINX) runs unprivileged from the temp dir
# with one worker process, to compare with one s3seal worker.
#
# Settings (environment): BENCH_CMP_LARGE_MB (256), BENCH_CMP_SMALL_COUNT
# (1000), BENCH_CMP_REPEAT (3), BENCH_IDLE_CONNS (10000), BENCH_MEM_MB (64),
# BENCH_MEM_CONC (256), BENCH_HUGE_MB (5000; 0: skip), BENCH_BUILD_DIR (build-bench, Release).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
ROOT=$PWD
LARGE_MB=${BENCH_CMP_LARGE_MB:-256}
SMALL_COUNT=${BENCH_CMP_SMALL_COUNT:-1000}
REPEAT=${BENCH_CMP_REPEAT:-3}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
MEM_MB=${BENCH_MEM_MB:-64}
MEM_CONC=${BENCH_MEM_CONC:-256}
HUGE_MB=${BENCH_HUGE_MB:-5000}
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
CONC=64
SMALL=4096
T_START=$SECONDS

log() { echo "[compare] $*" >&2; }
die() { echo "[compare] error: $*" >&2; exit 1; }

# shellcheck source=tests/bench/lib.sh
. tests/bench/lib.sh

# ---------------------------------------------------------------- build
bench_build s3seal s3load
[ -x "$NGINX" ] || die "no nginx at $NGINX (BENCH_NGINX)"

# s3seal holds one descriptor per client connection and nginx two per
# request; the idle-connection test needs more than the usual 1024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $((IDLE_CONNS + 200)) ] ||
  die "the open-files limit ($(ulimit -n)) is too low for $IDLE_CONNS connections (BENCH_IDLE_CONNS)"

# ---------------------------------------------------------------- state
TMP=$(mktemp -d "${TMPDIR:-/tmp}/s3seal-compare.XXXXXX")
PID=""
NGX_PID=""
SAMPLER=""
BACKEND_STARTED=0
BUCKET=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
  stop_pid "$PID" s3seal
  stop_pid "$NGX_PID" nginx
  if [ -n "$BUCKET" ]; then
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

# ---------------------------------------------------------------- backend
bench_backend
BE_HOSTPORT=${S3_ENDPOINT#*://}
BE_HOSTPORT=${BE_HOSTPORT%%/*}

# ---------------------------------------------------------------- nginx
# A plain reverse proxy (lib.sh): the client's signed request goes to the
# backend as sent, so s3load signs with the backend's credentials for
# nginx's address.
bench_nginx "$BE_HOSTPORT"

# ---------------------------------------------------------------- s3seal
PORT=$(free_port)
bench_credentials AKIABENCH "$S3_SECRET_KEY"
# write_config WORKERS: run.sh's configuration, with room for the idle
# connections (per worker) and timeouts long enough to count them.
write_config() {
  bench_config "$TMP/s3seal.yaml" "$S3_ENDPOINT" "$S3_ACCESS_KEY" "log_level: warn" \
    "workers: $1" "limits:" "  max_connections: $((IDLE_CONNS + 1000))" \
    "  max_connections_per_client: $((IDLE_CONNS + 1000))" \
    "  header_timeout_ms: 120000" "  idle_timeout_ms: 120000"
}
# start_s3seal WORKERS
start_s3seal() {
  write_config "$1"
  "$BIN" serve -c "$TMP/s3seal.yaml" 2>>"$TMP/s3seal.log" &
  PID=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || die "s3seal exited at start"
    sleep 0.1
  done
  die "s3seal did not listen on $PORT within 10 s"
}
write_config 1
"$BIN" -c "$TMP/s3seal.yaml" keystore init >"$TMP/keystore-init.log" 2>&1 || {
  cat "$TMP/keystore-init.log" >&2; die "s3seal keystore init failed"; }
start_s3seal 1
PROXY=http://127.0.0.1:$PORT

BUCKET=cmp-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
s3direct s3 mb "s3://$BUCKET" >/dev/null || { BUCKET=""; die "cannot create a bucket on $S3_ENDPOINT"; }

rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
# sampler_start / sampler_stop: s3seal's VmRSS every 100 ms in between;
# sampler_stop sets RSS_SAMPLED to the maximum (KiB).
sampler_start() {
  echo 0 > "$TMP/rss_max"
  ( max=0
    while kill -0 "$PID" 2>/dev/null; do
      r=$(awk '/^VmRSS/{print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
      [ "${r:-0}" -gt "$max" ] && { max=$r; echo "$max" > "$TMP/rss_max"; }
      sleep 0.1
    done ) &
  SAMPLER=$!
}
sampler_stop() {
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  SAMPLER=""
  RSS_SAMPLED=$(cat "$TMP/rss_max")
}

# load nginx|s3seal|sse NAME OP SIZE COUNT CONC KEY [s3load options]: one
# s3load run, with the CPU the proxy (nginx: master and worker) and the
# backend spent during it; appends one JSON object to results.jsonl.
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
    --cpu "proxy_cpu_s=$pp" --cpu "backend_cpu_s=$BE_PID" \
    --alive "s3seal=$PID" --alive "nginx=$NGX_PID" -- \
    "$op" --bucket "$BUCKET" --key "$key" --size "$size" --count "$count" --concurrency "$conc" \
    --region "$REGION" "${extra[@]}" >> "$TMP/results.jsonl"
}

log "backend $S3_ENDPOINT${BE_PID:+ (pid $BE_PID)}, nginx $NGINX_EP (worker pid $NGX_WORKER)," \
    "s3seal $PROXY (pid $PID), bucket $BUCKET"

# ---------------------------------------------------------------- (b) idle
# First, on a fresh s3seal: idle RSS, then the idle connections.
sleep 1
RSS_START=$(rss_kib "$PID")
load s3seal idle_obj put "$SMALL" 1 1 idle-obj
log "$IDLE_CONNS connections that only connect"
python3 tests/bench/idle_conns.py connect --port "$PORT" --conns "$IDLE_CONNS" --pid "$PID" \
  > "$TMP/idle_connect.json" || log "not every connection stayed open (see compare.json)"
sleep 1
log "$IDLE_CONNS connections with one GET each, then idle on keep-alive"
S3LOAD_SECRET_KEY=$SK python3 tests/bench/idle_conns.py get --port "$PORT" --conns "$IDLE_CONNS" \
  --pid "$PID" --bucket "$BUCKET" --key idle-obj --access-key "$AK" --region "$REGION" \
  > "$TMP/idle_get.json" || log "not every connection stayed open (see compare.json)"
cat "$TMP/idle_connect.json" "$TMP/idle_get.json" >&2

# ---------------------------------------------------------------- (a)
LARGE=$((LARGE_MB * 1024 * 1024))
log "large: $LARGE_MB MiB, one connection; small: $SMALL_COUNT x 4 KiB at concurrency $CONC;" \
    "each leg $REPEAT times"
bench_cmp large_put put "$LARGE" 1 1 large
bench_cmp large_get get "$LARGE" 1 1 large
bench_cmp small_put put "$SMALL" "$SMALL_COUNT" "$CONC" small
bench_cmp small_get get "$SMALL" "$SMALL_COUNT" "$CONC" small

# ---------------------------------------------------------------- (b) load
# VmRSS sampled every 100 ms: first around one large transfer, before the
# concurrent ones raise what the allocator keeps.
# One object of HUGE_MB MiB, PUT and GET with SSE-S3 on one connection: the
# ciphertext (16 bytes more per 64 KiB) must stay within S3's 5 GiB for one
# PUT, hence 5000 MiB, not 5120.
RSS_HUGE_IDLE=0 RSS_HUGE_PUT=0 RSS_HUGE_GET=0
if [ "$HUGE_MB" -gt 0 ]; then
  HUGE=$((HUGE_MB * 1024 * 1024))
  RSS_HUGE_IDLE=$(rss_kib "$PID")
  log "one $HUGE_MB MiB SSE-S3 object: PUT, then GET"
  sampler_start
  load sse huge_put put "$HUGE" 1 1 huge
  sampler_stop
  RSS_HUGE_PUT=$RSS_SAMPLED
  sampler_start
  load sse huge_get get "$HUGE" 1 1 huge
  sampler_stop
  RSS_HUGE_GET=$RSS_SAMPLED
fi

# MEM_CONC concurrent GETs of the same SSE-S3 object (the backend need not
# hold MEM_CONC copies).
MEM=$((MEM_MB * 1024 * 1024))
load sse mem_put put "$MEM" 1 1 mem
RSS_MEM_IDLE=$(rss_kib "$PID")
sampler_start
log "$MEM_CONC concurrent GETs of one $MEM_MB MiB SSE-S3 object"
load sse mem_get get "$MEM" "$MEM_CONC" "$MEM_CONC" mem --same-key
sampler_stop
RSS_MEM_MAX=$RSS_SAMPLED

HWM_W1=$(awk '/^VmHWM/{print $2}' "/proc/$PID/status")

# ---------------------------------------------------------------- (c)
# workers 1 vs 2, all SSE-S3 (objects from (a) and (b)).
scale() {
  local w=$1 i
  for i in $(seq 1 "$REPEAT"); do
    log "workers $w ($i/$REPEAT): large GET c=1, large GET c=4, 4 KiB GET c=$CONC"
    load sse "w${w}_large_get" get "$LARGE" 1 1 large-e
    load sse "w${w}_large_get_c4" get "$LARGE" 4 4 large-e --same-key
    load sse "w${w}_small_get" get "$SMALL" "$SMALL_COUNT" "$CONC" small-e
  done
}
scale 1
stop_pid "$PID" s3seal
PID=""
start_s3seal 2
scale 2
ELAPSED=$((SECONDS - T_START))

# ---------------------------------------------------------------- report
mkdir -p tests/bench/results
status=0
python3 - "$TMP" "$LARGE_MB" "$SMALL_COUNT" "$REPEAT" "$IDLE_CONNS" "$MEM_MB" "$MEM_CONC" \
  "$RSS_START" "$RSS_MEM_IDLE" "$RSS_MEM_MAX" "$HWM_W1" "$ELAPSED" "$S3_ENDPOINT" \
  "$(git rev-parse --short HEAD 2>/dev/null || true)" "$("$NGINX" -v 2>&1 | sed 's/.*: //')" \
  "$HUGE_MB" "$RSS_HUGE_IDLE" "$RSS_HUGE_PUT" "$RSS_HUGE_GET" \
  <<'PY' || status=$?
import json, statistics, sys, time
tmp = sys.argv[1]
large_mb, small_count, repeat, idle_conns, mem_mb, mem_conc = (int(a) for a in sys.argv[2:8])
rss_start, rss_mem_idle, rss_mem_max, hwm_w1 = (int(a) / 1024 for a in sys.argv[8:12])
elapsed, backend, commit, nginx_version = int(sys.argv[12]), sys.argv[13], sys.argv[14], sys.argv[15]
huge_mb = int(sys.argv[16])
rss_huge_idle, rss_huge_put, rss_huge_get = (int(a) / 1024 for a in sys.argv[17:20])
raw = [json.loads(l) for l in open(f"{tmp}/results.jsonl")]
idle = {m: json.load(open(f"{tmp}/idle_{m}.json")) for m in ("connect", "get")}
GIB = 2 ** 30

def runs(name, via):
    return [r for r in raw if r["name"] == name and r["via"] == via]

def med(rs, f):
    return statistics.median(f(r) for r in rs) if rs else None

def figure(name, via, large):
    """median throughput and median proxy CPU per GiB or per request"""
    rs = runs(name, via)
    tput = med(rs, lambda r: r["mib_s"] if large else r["req_s"])
    cpu = med(rs, (lambda r: r["proxy_cpu_s"] / (r["bytes"] / GIB) if r["bytes"] else 0) if large
              else (lambda r: r["proxy_cpu_s"] * 1e6 / r["requests"] if r["requests"] else 0))
    errors = sum(r["errors"] for r in rs)
    return {"value": tput, "cpu": cpu, "errors": errors, "runs": [
        r["mib_s"] if large else r["req_s"] for r in rs]}

rows = []
for name, label, large in (("large_put", f"PUT {large_mb} MiB c=1", True),
                           ("large_get", f"GET {large_mb} MiB c=1", True),
                           ("small_put", f"PUT 4 KiB x{small_count} c=64", False),
                           ("small_get", f"GET 4 KiB x{small_count} c=64", False)):
    n, p, e = (figure(name, v, large) for v in ("nginx", "s3seal", "sse"))
    rows.append({"metric": label, "unit": "MiB/s" if large else "req/s",
                 "cpu_unit": "s/GiB" if large else "us/req",
                 "nginx": n, "s3seal": p, "sse": e,
                 "ratio_s3seal": p["value"] / n["value"] if n["value"] else None,
                 "ratio_sse": e["value"] / n["value"] if n["value"] else None,
                 "target": 0.9 if large else 1.0})

scale_rows = []
for name, label, large in (("large_get", f"GET {large_mb} MiB c=1, SSE-S3", True),
                           ("large_get_c4", f"GET {large_mb} MiB x4 c=4, SSE-S3", True),
                           ("small_get", f"GET 4 KiB x{small_count} c=64, SSE-S3", False)):
    w1, w2 = figure(f"w1_{name}", "sse", large), figure(f"w2_{name}", "sse", large)
    scale_rows.append({"metric": label, "unit": "MiB/s" if large else "req/s",
                       "cpu_unit": "s/GiB" if large else "us/req", "workers_1": w1,
                       "workers_2": w2,
                       "ratio": w2["value"] / w1["value"] if w1["value"] else None})

mem_get = runs("mem_get", "sse")[0]
memory = {
    "rss_started_mib": rss_start,
    "idle_connect": dict(idle["connect"], rss_mib=idle["connect"]["rss_kib"] / 1024),
    "idle_keepalive": dict(idle["get"], rss_mib=idle["get"]["rss_kib"] / 1024),
    "concurrent_get": {"object_mib": mem_mb, "concurrency": mem_conc,
                       "rss_before_mib": rss_mem_idle, "rss_max_mib": rss_mem_max,
                       "mib_s": mem_get["mib_s"], "errors": mem_get["errors"],
                       "seconds": mem_get["seconds"],
                       "gib_moved": mem_get["bytes"] / GIB},
    "vmhwm_workers_1_mib": hwm_w1,
    "huge": None,
}
if huge_mb:
    hp, hg = runs("huge_put", "sse")[0], runs("huge_get", "sse")[0]
    memory["huge"] = {"object_mib": huge_mb, "rss_before_mib": rss_huge_idle,
                      "put_rss_max_mib": rss_huge_put, "get_rss_max_mib": rss_huge_get,
                      "put_mib_s": hp["mib_s"], "get_mib_s": hg["mib_s"],
                      "errors": hp["errors"] + hg["errors"]}

def f(v, unit=""):
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"

W = 30
print()
print(f"(a) nginx {nginx_version} vs s3seal, one worker each; median of {repeat}; "
      "CPU: the proxy's own user+sys")
print(f"{'metric':<{W}}{'unit':>6}{'nginx':>9}{'s3seal':>9}{'ratio':>7}{'SSE-S3':>9}{'ratio':>7}"
      f"{'target':>7}   {'CPU nginx / s3seal / SSE-S3':>30}")
print("-" * (W + 94))
for r in rows:
    errs = r["nginx"]["errors"] + r["s3seal"]["errors"] + r["sse"]["errors"]
    cpu = (f"{f(r['nginx']['cpu'])} / {f(r['s3seal']['cpu'])} / {f(r['sse']['cpu'])} "
           f"{r['cpu_unit']}")
    print(f"{r['metric']:<{W}}{r['unit']:>6}{f(r['nginx']['value']):>9}{f(r['s3seal']['value']):>9}"
          f"{f(r['ratio_s3seal']):>7}{f(r['sse']['value']):>9}{f(r['ratio_sse']):>7}"
          f"{r['target']:>7.2f}   {cpu:>30}" + (f"  ({errs} errors)" if errs else ""))
print()
print(f"(b) s3seal VmRSS, one worker")
c, k, g = memory["idle_connect"], memory["idle_keepalive"], memory["concurrent_get"]
print(f"  started, idle:                                   {rss_start:8.1f} MiB")
print(f"  {c['open_at_sample']:>6} connections, connected only:            {c['rss_mib']:8.1f} MiB"
      f"  ({f(c['per_conn_kib'])} KiB each over the {c['rss_before_kib'] / 1024:.1f} before)")
print(f"  {k['open_at_sample']:>6} connections, one GET each, keep-alive:  {k['rss_mib']:8.1f} MiB"
      f"  ({f(k['per_conn_kib'])} KiB each over the {k['rss_before_kib'] / 1024:.1f} before)")
print(f"  before {mem_conc} concurrent GETs of one {mem_mb} MiB SSE-S3 object: "
      f"{rss_mem_idle:8.1f} MiB")
print(f"  max during them (100 ms samples):                {rss_mem_max:8.1f} MiB"
      f"  ({g['gib_moved']:.1f} GiB in {g['seconds']:.1f} s, {g['mib_s']:.0f} MiB/s"
      + (f", {g['errors']} errors" if g["errors"] else "") + ")")
h = memory["huge"]
if h:
    print(f"  before one {huge_mb} MiB SSE-S3 object:                {rss_huge_idle:8.1f} MiB")
    print(f"  max during its PUT / its GET:                    {rss_huge_put:8.1f} / "
          f"{rss_huge_get:.1f} MiB  ({h['put_mib_s']:.0f} / {h['get_mib_s']:.0f} MiB/s"
          + (f", {h['errors']} errors" if h["errors"] else "") + ")")
print(f"  VmHWM of the one-worker process:                 {hwm_w1:8.1f} MiB")
print()
print(f"(c) s3seal workers 1 vs 2 (median of {repeat})")
print(f"{'metric':<{W + 8}}{'unit':>6}{'w=1':>9}{'w=2':>9}{'ratio':>7}   {'CPU w=1 / w=2':>22}")
print("-" * (W + 62))
for r in scale_rows:
    errs = r["workers_1"]["errors"] + r["workers_2"]["errors"]
    cpu = f"{f(r['workers_1']['cpu'])} / {f(r['workers_2']['cpu'])} {r['cpu_unit']}"
    print(f"{r['metric']:<{W + 8}}{r['unit']:>6}{f(r['workers_1']['value']):>9}"
          f"{f(r['workers_2']['value']):>9}{f(r['ratio']):>7}   {cpu:>22}"
          + (f"  ({errs} errors)" if errs else ""))
be = []
for name in ("large_put", "large_get"):
    parts = []
    for via in ("nginx", "s3seal", "sse"):
        rs = runs(name, via)
        if rs and any(r["backend_cpu_s"] for r in rs):
            parts.append(f"{med(rs, lambda r: r['backend_cpu_s'] / (r['bytes'] / GIB)):.2f} {via}")
    if parts:
        be.append(f"{name.split('_')[1].upper()} " + ", ".join(parts))
if be:
    print("backend CPU s/GiB (large, median): " + "; ".join(be))
print(f"wall time of the run: {elapsed} s")

out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit,
       "backend": backend, "nginx": nginx_version,
       "settings": {"large_mb": large_mb, "small_count": small_count, "concurrency": 64,
                    "repeat": repeat, "idle_conns": idle_conns, "mem_mb": mem_mb,
                    "mem_conc": mem_conc},
       "compare": rows, "memory": memory, "workers": scale_rows, "seconds": elapsed,
       "raw": raw}
with open("tests/bench/results/compare.json", "w") as fh:
    json.dump(out, fh, indent=1)
    fh.write("\n")
errors = (sum(r[v]["errors"] for r in rows for v in ("nginx", "s3seal", "sse")) +
          sum(r[v]["errors"] for r in scale_rows for v in ("workers_1", "workers_2")) +
          g["errors"] + (h["errors"] if h else 0))
sys.exit(1 if errors else 0)
PY
log "JSON: tests/bench/results/compare.json"
exit $status
