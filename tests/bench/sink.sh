#!/usr/bin/env bash
# sink.sh - s3seal's own throughput on one large PUT and GET, against a
# backend that is not the bottleneck: tests/bench/sink.c, which discards PUT
# bodies and serves GETs from memory. It measures, in one run:
#
#   R  s3seal's pass-through (no SSE) throughput, PUT and GET;
#   E  the same with SSE-S3 (encrypt on PUT, decrypt and verify on GET);
#   A  OpenSSL's own AES-256-GCM on one core, 64 KiB blocks (openssl speed);
#
# and reports the proxy's limit L = 1 / (1/R + 1/A) per direction (a core that
# copies every byte in and out and runs the cipher over it cannot beat it) and
# E / L against the target 0.85. PUTs are sent with UNSIGNED-PAYLOAD and again
# with a signed payload (x-amz-content-sha256 = the body's SHA-256, which
# s3seal verifies). The direct rows (s3load straight to the sink) are the
# sink's own ceiling. The large PUT and GET also go through nginx as a plain
# reverse proxy on the same sink (configured as compare.sh configures it,
# lib.sh's bench_nginx), for R / nginx against the target 1.0. A table on
# stdout, the figures in tests/bench/results/sink.json.
#
#   tests/bench/sink.sh
#
# Settings (environment): BENCH_SINK_MB (1024), BENCH_SINK_RUNS (3: each
# measured transfer runs that many times, the median is reported),
# BENCH_WORKERS (s3seal's `workers`; unset: its default), BENCH_BUILD_DIR
# (build-bench, Release), BENCH_NGINX (/usr/sbin/nginx; when that default is
# missing the nginx rows are left out). Exits non-zero if a request failed or
# an object is not stored as its row says.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
ROOT=$PWD
MB=${BENCH_SINK_MB:-1024}
RUNS=${BENCH_SINK_RUNS:-3}
BUILD=${BENCH_BUILD_DIR:-$ROOT/build-bench}
SIZE=$((MB * 1024 * 1024))
BUCKET=sink-bench
REGION=us-east-1
T_START=$SECONDS

log() { echo "[sink] $*" >&2; }
die() { echo "[sink] error: $*" >&2; exit 1; }

# shellcheck source=tests/bench/lib.sh
. tests/bench/lib.sh

# ---------------------------------------------------------------- build
bench_build s3seal s3load sink
SINK=$BUILD/tests/bench/sink

# ---------------------------------------------------------------- state
TMP=$(mktemp -d "${TMPDIR:-/tmp}/s3seal-sink.XXXXXX")
PID=""
SINK_PID=""
NGX_PID=""
NGX_WORKER=""
cleanup() {
  local rc=$?
  set +e
  stop_pid "$PID" s3seal
  stop_pid "$NGX_PID" nginx
  stop_pid "$SINK_PID" "the sink"
  [ "$rc" = 0 ] || bench_tail_logs s3seal.log nginx/error.log
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- sink
# Keys starting with tmpl- are kept in memory (the objects the GETs read);
# every other PUT body is dropped as it arrives.
SINK_PORT=$(free_port)
"$SINK" "$SINK_PORT" --keep tmpl- 2>"$TMP/sink.log" &
SINK_PID=$!
for _ in $(seq 1 50); do
  grep -q "listening on" "$TMP/sink.log" && break
  kill -0 "$SINK_PID" 2>/dev/null || die "the sink exited at start: $(cat "$TMP/sink.log")"
  sleep 0.1
done
SINK_EP=http://127.0.0.1:$SINK_PORT

# ---------------------------------------------------------------- s3seal
PORT=$(free_port)
SINK_AK=AKIASINKBACKEND
SINK_SK=sink-does-not-check-signatures
bench_credentials AKIASINK "$SINK_SK"
# write_config [EXTRA-LINE]: s3seal's config as run.sh writes it, backend = the sink.
write_config() {
  bench_config "$TMP/s3seal.yaml" "$SINK_EP" "$SINK_AK" "log_level: info" \
    ${BENCH_WORKERS:+"workers: $BENCH_WORKERS"} ${1:+"$1"}
}
start_s3seal() {
  "$BIN" serve -c "$TMP/s3seal.yaml" 2>>"$TMP/s3seal.log" &
  PID=$!
  for _ in $(seq 1 100); do
    [ "$(grep -c "listening on" "$TMP/s3seal.log")" -ge "$1" ] && return 0
    kill -0 "$PID" 2>/dev/null || die "s3seal exited at start"
    sleep 0.1
  done
  die "s3seal did not say 'listening on' within 10 s"
}
write_config
"$BIN" -c "$TMP/s3seal.yaml" keystore init >"$TMP/keystore-init.log" 2>&1 || {
  cat "$TMP/keystore-init.log" >&2; die "s3seal keystore init failed"; }
start_s3seal 1
PROXY=http://127.0.0.1:$PORT

# ---------------------------------------------------------------- nginx
# nginx in front of the same sink, as compare.sh runs it in front of the
# backend (lib.sh). It passes the client's request on as sent; the sink checks
# no signature, so s3load signs as for the direct legs (the sink's
# credentials, for nginx's address).
if [ -x "$NGINX" ]; then
  bench_nginx "127.0.0.1:$SINK_PORT"
  NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*: //')
elif [ -n "${BENCH_NGINX:-}" ]; then
  die "no nginx at $NGINX (BENCH_NGINX)"
else
  log "no nginx at $NGINX: the R / nginx rows are left out (BENCH_NGINX names another)"
  NGINX_VERSION=""
fi

# load direct|nginx|s3seal OP KEY [s3load options]: one transfer of SIZE
# bytes, with the CPU s3seal and the sink (and, through nginx, nginx's master
# and worker) spent during it; prints one JSON object.
load() {
  local where=$1 op=$2 key=$3 ep ak sk opts=()
  shift 3
  case "$where" in
    direct) ep=$SINK_EP ak=$SINK_AK sk=$SINK_SK ;;
    nginx) ep=$NGINX_EP ak=$SINK_AK sk=$SINK_SK opts=(--cpu "nginx_cpu_s=$NGX_PID $NGX_WORKER") ;;
    s3seal) ep=$PROXY ak=$AK sk=$SK ;;
    *) die "load: unknown target $where" ;;
  esac
  [ -z "$NGX_PID" ] || opts+=(--alive "nginx=$NGX_PID")
  bench_load "$where $op $key" "$ep" "$ak" "$sk" \
    --cpu "s3seal_cpu_s=$PID" --cpu "sink_cpu_s=$SINK_PID" "${opts[@]}" \
    --alive "s3seal=$PID" --alive "the sink=$SINK_PID" -- \
    "$op" --bucket "$BUCKET" --key "$key" --size "$SIZE" --region "$REGION" "$@"
}

# legs "NAME where OP KEY [s3load options]"...: RUNS rounds, each running
# every leg once in turn, so that a busy machine slows the legs compared with
# one another alike; one JSON line per transfer in results.jsonl.
legs() {
  local i spec r specs=("$@") words
  log "$(for spec in "${specs[@]}"; do printf '%s ' "${spec%% *}"; done)(${MB} MiB, $RUNS rounds)"
  for i in $(seq 1 "$RUNS"); do
    for spec in "${specs[@]}"; do
      # The spec is words: name, where, op, key, s3load options.
      read -r -a words <<< "$spec"
      r=$(load "${words[@]:1}")
      echo "{\"name\":\"${words[0]}\",\"run\":$i,\"result\":$r}" >> "$TMP/results.jsonl"
    done
  done
}

# check_stored KEY encrypted|plain: asks the sink itself (not s3seal) how the
# object came in: s3seal's format (sse/FORMAT.md: s3seal-version metadata,
# 16 bytes of tag per segment) or as sent.
check_stored() {
  local key=$1 want=$2 head
  head=$(curl -sS -I "$SINK_EP/$BUCKET/$key") || die "HEAD $key on the sink failed"
  python3 - "$head" "$key" "$SIZE" "$want" >> "$TMP/stored.jsonl" <<'PY' ||
import json, sys
head, key, size, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
h = {}
for line in head.splitlines()[1:]:
    if ":" in line:
        k, v = line.split(":", 1)
        h[k.strip().lower()] = v.strip()
meta = {k[len("x-amz-meta-"):]: v for k, v in h.items() if k.startswith("x-amz-meta-")}
stored = int(h.get("content-length", "-1"))
out = {"key": key, "plaintext_bytes": size, "stored_bytes": stored,
       "metadata": {k: v for k, v in meta.items() if k != "s3seal-dek"}}
if want == "encrypted":
    if meta.get("s3seal-version") != "1":
        sys.exit(f"{key} is NOT stored encrypted: no s3seal-version metadata ({meta})")
    seg = int(meta.get("s3seal-segment", "65536"))
    expect = size + 16 * max(1, -(-size // seg))
    if stored != expect:
        sys.exit(f"{key}: the sink holds {stored} bytes, not the {expect} of {size} sealed")
elif any(k.startswith("s3seal-") for k in meta) or stored != size:
    sys.exit(f"{key} was sent without encryption but is stored as {stored} bytes, {meta}")
print(json.dumps(out))
PY
    die "the stored object does not match (see above)"
}

log "sink $SINK_EP (pid $SINK_PID), s3seal $PROXY (pid $PID)${NGX_PID:+, nginx $NGINX_EP (worker pid $NGX_WORKER)}," \
    "${MB} MiB, $RUNS runs per row"
curl -sS -o /dev/null -X PUT "$SINK_EP/$BUCKET" || die "the sink does not answer"

# The nginx legs, when nginx runs: the large PUT and GET, taking turns with
# the others of their row.
N_PUT=() N_GET=()
if [ -n "$NGX_PID" ]; then
  N_PUT=("n_put nginx put put-n")
  N_GET=("n_get nginx get tmpl-plain")
fi

# PUTs: bodies the sink drops as they arrive.
legs "direct_put direct put put-d" "${N_PUT[@]}" "r_put s3seal put put-r" \
     "e_put s3seal put put-e --sse"
legs "direct_put_signed direct put put-ds --signed-payload" \
     "r_put_signed s3seal put put-rs --signed-payload" \
     "e_put_signed s3seal put put-es --sse --signed-payload"

# GETs: objects PUT through s3seal into kept keys, so the sink serves what
# s3seal stored (real ciphertext for the SSE-S3 one) and s3seal decrypts and
# verifies it. The direct GET reads the plain object straight from the sink.
log "storing tmpl-plain and tmpl-enc through s3seal"
load s3seal put tmpl-plain >/dev/null
load s3seal put tmpl-enc --sse >/dev/null
check_stored tmpl-plain plain
check_stored tmpl-enc encrypted
legs "direct_get direct get tmpl-plain" "${N_GET[@]}" "r_get s3seal get tmpl-plain" \
     "e_get s3seal get tmpl-enc --sse"

# The same encrypted PUT without the plaintext MD5 s3seal computes for its
# ETag by default (plaintext_etag: false), to show that hash's share; with
# its own pass-through legs, so each row compares legs that took turns.
# nginx has done its part.
stop_pid "$NGX_PID" nginx
NGX_PID=""
log "restarting s3seal with plaintext_etag: false"
stop_pid "$PID" s3seal
write_config "plaintext_etag: false"
start_s3seal 2
legs "r_put_2 s3seal put put-r2" "e_put_no_md5 s3seal put put-en --sse"
legs "r_put_signed_2 s3seal put put-rs2 --signed-payload" \
     "e_put_signed_no_md5 s3seal put put-esn --sse --signed-payload"
RSS_KB=$(awk '/^VmHWM/{print $2}' "/proc/$PID/status")

log "openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3"
AES_KBPS=$(openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3 2>/dev/null |
           awk '$1 == "AES-256-GCM" && $2 ~ /^[0-9.]+k$/ { sub(/k$/, "", $2); print $2 }' || true)
[ -n "$AES_KBPS" ] || die "could not read the AES-256-GCM figure from openssl speed"
# The two hashes s3seal may run over a PUT body on the same loop thread: MD5
# of the plaintext for the ETag (plaintext_etag) and SHA-256 of a signed
# payload. For reading the CPU columns only; they are not in L.
hash_kbps() {
  openssl speed -evp "$1" -bytes 65536 -seconds 2 2>/dev/null |
    awk -v n="$2" '$1 == n && $2 ~ /^[0-9.]+k$/ { sub(/k$/, "", $2); print $2 }' || true
}
log "openssl speed -evp md5 / sha256 -bytes 65536 -seconds 2"
MD5_KBPS=$(hash_kbps md5 md5)
SHA_KBPS=$(hash_kbps sha256 sha256)
ELAPSED=$((SECONDS - T_START))

mkdir -p tests/bench/results
python3 - "$TMP/results.jsonl" "$TMP/stored.jsonl" "$AES_KBPS" "$MB" "$RUNS" "$ELAPSED" \
  "$(git rev-parse --short HEAD 2>/dev/null || true)" "${BENCH_WORKERS:-}" "$RSS_KB" \
  "${MD5_KBPS:-}" "${SHA_KBPS:-}" "$NGINX_VERSION" <<'PY'
import json, statistics, sys, time
runs = [json.loads(l) for l in open(sys.argv[1])]
stored = [json.loads(l) for l in open(sys.argv[2])]
aes_bps = float(sys.argv[3]) * 1000
mb, nruns, elapsed = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
GIB, MIB, TARGET = 2 ** 30, 2 ** 20, 0.85
A = aes_bps / MIB

legs = {}
for r in runs:
    legs.setdefault(r["name"], []).append(r["result"])

def median_run(name):
    """The run with the median throughput, with its CPU figures."""
    rs = sorted(legs[name], key=lambda d: d["mib_s"])
    m = rs[(len(rs) - 1) // 2]
    gib = m["bytes"] / GIB
    return {"mib_s": m["mib_s"], "all_mib_s": [d["mib_s"] for d in legs[name]],
            "errors": sum(d["errors"] for d in legs[name]),
            "s3seal_cpu_s_per_gib": m["s3seal_cpu_s"] / gib if gib else None,
            "sink_cpu_s_per_gib": m["sink_cpu_s"] / gib if gib else None,
            "client_cpu_s_per_gib": m["client_cpu_s"] / gib if gib else None,
            **({"nginx_cpu_s_per_gib": m["nginx_cpu_s"] / gib if gib else None}
               if "nginx_cpu_s" in m else {})}

fig = {name: median_run(name) for name in legs}

def limit(r):
    return 1 / (1 / r + 1 / A)

# One comparison per direction: (label, encrypted leg, pass-through leg, direct leg).
comparisons = [
    ("PUT, UNSIGNED-PAYLOAD", "e_put", "r_put", "direct_put"),
    ("GET", "e_get", "r_get", "direct_get"),
    ("PUT, signed payload (SHA-256 verified)", "e_put_signed", "r_put_signed", "direct_put_signed"),
    ("PUT, UNSIGNED-PAYLOAD, plaintext_etag: false", "e_put_no_md5", "r_put_2", "direct_put"),
    ("PUT, signed payload, plaintext_etag: false", "e_put_signed_no_md5", "r_put_signed_2",
     "direct_put_signed"),
]
table = []
for label, e, r, d in comparisons:
    E, R, D = fig[e]["mib_s"], fig[r]["mib_s"], fig[d]["mib_s"]
    L = limit(R)
    # The same limit from CPU time, which a busy machine does not distort: s3seal
    # moves a byte on one loop thread, so its ceiling is 1 / (its CPU per byte).
    cr, ce = fig[r]["s3seal_cpu_s_per_gib"], fig[e]["s3seal_cpu_s_per_gib"]
    cpu_ratio = (cr + GIB / aes_bps) / ce if ce else None
    table.append({"row": label, "direct_mib_s": D, "r_mib_s": R, "a_mib_s": A, "l_mib_s": L,
                  "e_mib_s": E, "e_over_l": E / L, "target": TARGET, "met": E / L >= TARGET,
                  "e_over_l_cpu": cpu_ratio,
                  "r_cpu_s_per_gib": fig[r]["s3seal_cpu_s_per_gib"],
                  "e_cpu_s_per_gib": fig[e]["s3seal_cpu_s_per_gib"],
                  "errors": fig[e]["errors"] + fig[r]["errors"] + fig[d]["errors"],
                  "legs": {"e": e, "r": r, "direct": d}})

print()
print(f"s3seal against the in-memory sink, {mb} MiB, one connection, median of {nruns}")
W = 46
print(f"{'row':<{W}}{'direct':>8}{'R':>8}{'L':>8}{'E':>8}{'E/L':>6}{'met':>5}"
      f"{'CPU R':>7}{'CPU E':>7}{'E/L CPU':>9}")
print("-" * (W + 66))
for t in table:
    ok = "yes" if t["met"] else "no"
    errs = f"  ({t['errors']} errors)" if t["errors"] else ""
    print(f"{t['row']:<{W}}{t['direct_mib_s']:>8.0f}{t['r_mib_s']:>8.0f}{t['l_mib_s']:>8.0f}"
          f"{t['e_mib_s']:>8.0f}{t['e_over_l']:>6.2f}{ok:>5}"
          f"{t['r_cpu_s_per_gib']:>7.2f}{t['e_cpu_s_per_gib']:>7.2f}"
          f"{t['e_over_l_cpu']:>9.2f}{errs}")
print("-" * (W + 66))
print(f"MiB/s; A = OpenSSL AES-256-GCM, 64 KiB blocks, one core: {A:.0f} MiB/s "
      f"({GIB / aes_bps:.2f} s/GiB); L = 1/(1/R + 1/A); target E/L >= {TARGET}")
print("CPU R / CPU E: s3seal's CPU s/GiB (utime+stime) on the pass-through / encrypted leg;")
print(f"E/L CPU = (CPU R + {GIB / aes_bps:.2f}) / CPU E: E/L if s3seal had its core to itself")
hashes = {}
for name, arg in (("md5", sys.argv[10]), ("sha256", sys.argv[11])):
    if arg:
        bps = float(arg) * 1000
        hashes[name] = {"command": f"openssl speed -evp {name} -bytes 65536 -seconds 2",
                        "bytes_per_s": bps, "mib_s": bps / MIB, "cpu_s_per_gib": GIB / bps}
if hashes:
    print("OpenSSL on one core, 64 KiB blocks: " + "; ".join(
        f"{n.upper()} {h['mib_s']:.0f} MiB/s ({h['cpu_s_per_gib']:.2f} s/GiB)"
        for n, h in hashes.items()) + " (the plaintext ETag's MD5; a signed payload's SHA-256)")
print("sink CPU s/GiB: " + ", ".join(f"{n} {fig[n]['sink_cpu_s_per_gib']:.2f}"
                                      for n in ("direct_put", "direct_get", "e_put", "e_get")))
print("s3load CPU s/GiB: " + ", ".join(f"{n} {fig[n]['client_cpu_s_per_gib']:.2f}"
                                        for n in ("direct_put", "direct_get", "e_put", "e_get")))
print(f"s3seal peak RSS (second instance): {int(sys.argv[9]) / 1024:.1f} MiB; "
      f"wall time {elapsed} s")

# R against nginx as a plain reverse proxy on the same sink, the legs taking
# turns with direct, R and E.
nginx_version, NGINX_TARGET = sys.argv[12], 1.0
nginx_rows = []
if "n_put" in fig:
    for label, r, n, d in (("PUT, UNSIGNED-PAYLOAD", "r_put", "n_put", "direct_put"),
                           ("GET", "r_get", "n_get", "direct_get")):
        N, R = fig[n]["mib_s"], fig[r]["mib_s"]
        nginx_rows.append({"row": label, "direct_mib_s": fig[d]["mib_s"], "nginx_mib_s": N,
                           "r_mib_s": R, "r_over_nginx": R / N if N else None,
                           "target": NGINX_TARGET, "met": bool(N) and R / N >= NGINX_TARGET,
                           "nginx_cpu_s_per_gib": fig[n]["nginx_cpu_s_per_gib"],
                           "r_cpu_s_per_gib": fig[r]["s3seal_cpu_s_per_gib"],
                           "nginx_sink_cpu_s_per_gib": fig[n]["sink_cpu_s_per_gib"],
                           "errors": fig[n]["errors"] + fig[r]["errors"],
                           "legs": {"r": r, "nginx": n, "direct": d}})
    print()
    print(f"R against nginx {nginx_version} (plain reverse proxy, one worker) on the same sink, "
          f"median of {nruns}")
    print(f"{'row':<{W}}{'direct':>8}{'nginx MiB/s':>13}{'R MiB/s':>9}{'R / nginx':>11}{'met':>5}"
          f"{'CPU nginx':>11}{'CPU R':>7}")
    print("-" * (W + 64))
    for t in nginx_rows:
        ok = "yes" if t["met"] else "no"
        errs = f"  ({t['errors']} errors)" if t["errors"] else ""
        print(f"{t['row']:<{W}}{t['direct_mib_s']:>8.0f}{t['nginx_mib_s']:>13.0f}"
              f"{t['r_mib_s']:>9.0f}{t['r_over_nginx']:>11.2f}{ok:>5}"
              f"{t['nginx_cpu_s_per_gib']:>11.2f}{t['r_cpu_s_per_gib']:>7.2f}{errs}")
    print("-" * (W + 64))
    print(f"target R / nginx >= {NGINX_TARGET}; CPU nginx (master + worker) / CPU R (s3seal): "
          "s/GiB, utime+stime")
    print("sink CPU s/GiB behind nginx: " + ", ".join(
        f"{n} {fig[n]['sink_cpu_s_per_gib']:.2f}" for n in ("n_put", "n_get")))
else:
    print("R against nginx: not measured (no nginx)")

out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": sys.argv[7],
       "s3seal_workers": sys.argv[8] or "default",
       "settings": {"size_mib": mb, "runs": nruns, "connections": 1},
       "openssl_aes_256_gcm": {"command": "openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3",
                               "bytes_per_s": aes_bps, "mib_s": A,
                               "cpu_s_per_gib": GIB / aes_bps},
       "openssl_hashes": hashes,
       "target_e_over_l": TARGET, "rows": table,
       "nginx": nginx_version or None, "target_r_over_nginx": NGINX_TARGET,
       "r_vs_nginx": nginx_rows, "legs": fig, "stored_checks": stored,
       "seconds": elapsed, "raw": runs}
with open("tests/bench/results/sink.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
sys.exit(1 if any(t["errors"] for t in table + nginx_rows) else 0)
PY
log "JSON: tests/bench/results/sink.json"
