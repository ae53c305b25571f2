#!/usr/bin/env bash
# backend.sh - a real S3 backend on loopback for s3seal: Ceph RADOS Gateway
# (Debian's ceph packages) with one monitor, one OSD on a sparse file and
# radosgw's beast frontend. For trying s3seal out and for its tests; not a
# production Ceph cluster.
#
#   eval "$(deploy/backend.sh start)"   # prints export S3_ENDPOINT=... lines
#   deploy/backend.sh stop
#   deploy/backend.sh env               # print the exports of a running backend
#
# Environment: S3SEAL_BACKEND_DIR (run/backend in the repository),
# S3SEAL_BACKEND_PORT (9000; the monitor uses S3SEAL_BACKEND_MON_PORT, default
# port + 10000), S3SEAL_BACKEND_OSD_GB (32, a sparse file),
# S3SEAL_BACKEND_TIMEOUT (120 s per step). Everything listens on 127.0.0.1
# only. Progress goes to stderr; stdout carries only the export lines.
# Starting a running backend only prints its exports; a stopped one restarts
# on its data. `stop` signals only the PIDs this script recorded.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${S3SEAL_BACKEND_DIR:-$ROOT/run/backend}
case "$DIR" in /*) ;; *) DIR=$PWD/$DIR ;; esac
# The port a data directory was last started with is remembered there.
PORT=${S3SEAL_BACKEND_PORT:-$(cat "$DIR/port" 2>/dev/null || echo 9000)}
MON_PORT=${S3SEAL_BACKEND_MON_PORT:-$((PORT + 10000))}
OSD_GB=${S3SEAL_BACKEND_OSD_GB:-32}
TIMEOUT=${S3SEAL_BACKEND_TIMEOUT:-120}
ENDPOINT="http://127.0.0.1:$PORT"
PIDS="$DIR/pids"
CONF="$DIR/ceph.conf"

log() { echo "[backend] $*" >&2; }
STARTING=0
die() {
  echo "[backend] error: $*" >&2
  if [ "$STARTING" = 1 ]; then STARTING=0; log "stopping what this start started"; stop; fi
  exit 1
}

# True if something listens on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Is PID $1 still the program $2 that we started (not a reused PID)?
ours() {
  local args
  args=$(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ "$args" == "$2 "* && "$args" == *"$CONF"* ]]
}

alive() {
  [ -s "$PIDS" ] || return 1
  local pid
  while read -r pid _; do kill -0 "$pid" 2>/dev/null || return 1; done < "$PIDS"
}

answers() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$ENDPOINT/" 2>/dev/null) || return 1
  [ "$code" != 000 ]
}

wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out waiting for $what (logs in $DIR/log)"
    alive || die "a daemon exited while waiting for $what (logs in $DIR/log)"
    sleep 0.5
  done
}

daemon() {
  local name=$1; shift
  setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
  echo "$! $name" >> "$PIDS"
  log "started $name (pid $!)"
}

exports() {
  local ak sk
  ak=$(cat "$DIR/access_key") sk=$(cat "$DIR/secret_key")
  cat <<EOF
export S3_ENDPOINT=$ENDPOINT
export S3_ACCESS_KEY=$ak
export S3_SECRET_KEY=$sk
export S3_REGION=us-east-1
export S3SEAL_BACKEND_DIR=$DIR
EOF
}

stop() {
  [ -s "$PIDS" ] || { log "not running"; return 0; }
  local pid name
  # radosgw first, the monitor last.
  local n deadline
  for name in radosgw ceph-osd ceph-mon; do
    while read -r pid n; do
      [ "$n" = "$name" ] || continue
      ours "$pid" "$name" || continue
      kill "$pid" 2>/dev/null || continue
      deadline=$((SECONDS + 30))
      while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
      if kill -0 "$pid" 2>/dev/null && ours "$pid" "$name"; then
        log "$name (pid $pid) ignored SIGTERM; killing it"
        kill -9 "$pid" 2>/dev/null || true
      fi
    done < "$PIDS"
  done
  : > "$PIDS"
  log "stopped"
}

start() {
  mkdir -p "$DIR"/{mon,osd,run,log,crash}
  DIR=$(cd "$DIR" && pwd); PIDS="$DIR/pids"; CONF="$DIR/ceph.conf"
  if alive && answers; then
    log "already running at $ENDPOINT"
    exports
    return 0
  fi
  if [ -s "$PIDS" ]; then stop; fi
  command -v radosgw >/dev/null || die "Ceph is not installed: run deploy/install-deps.sh"
  port_in_use "$PORT" && die "127.0.0.1:$PORT is in use by another program (set S3SEAL_BACKEND_PORT)"
  port_in_use "$MON_PORT" && die "127.0.0.1:$MON_PORT (the monitor) is in use (set S3SEAL_BACKEND_MON_PORT)"
  # A failed start stops the daemons it started.
  STARTING=1
  trap 'die "a step failed (line $LINENO); logs in $DIR/log"' ERR

  echo "$PORT" > "$DIR/port"
  [ -f "$DIR/fsid" ] || uuidgen > "$DIR/fsid"
  [ -f "$DIR/access_key" ] || echo "s3seal-backend-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$DIR/access_key"
  [ -f "$DIR/secret_key" ] || head -c 30 /dev/urandom | base64 | tr -d '/+=\n' > "$DIR/secret_key"
  chmod 600 "$DIR/secret_key"
  local fsid; fsid=$(cat "$DIR/fsid")

  # Rewritten on every start; the cluster's identity and data are kept.
  cat > "$CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind ipv6 = false
ms bind msgr1 = false
# A loopback-only single-host cluster: no cephx, crc-mode messenger.
auth cluster required = none
auth service required = none
auth client required = none
ms cluster mode = crc
ms service mode = crc
ms client mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
ms mon client mode = crc
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$cluster-\$name.asok
log file = $DIR/log/\$cluster-\$name.log
crash dir = $DIR/crash
pid file = $DIR/run/\$name.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon data avail warn = 2
mon data avail crit = 1
debug ms = 0
debug mon = 1
debug osd = 1
debug rgw = 1

[mon]
mon data = $DIR/mon/\$cluster-\$id

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = bluestore
osd memory target = 1073741824
bluestore block path = $DIR/osd/block.\$id
bluestore block create = true
bluestore block size = $((OSD_GB * 1024 * 1024 * 1024))
bluestore fsck on mount = false

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw dns name = localhost
rgw thread pool size = 128
rgw enable usage log = false
rgw dynamic resharding = false
# Free overwritten data after 30 s instead of 2 h, so repeated large tests
# do not fill the OSD.
rgw gc obj min wait = 30
rgw gc processor period = 30
EOF
  local C=(-c "$CONF")
  : > "$PIDS"
  if [ ! -f "$DIR/mon/ceph-a/kv_backend" ]; then
    log "creating the monitor"
    ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >&2
    monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >&2
    ceph-mon "${C[@]}" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" >&2
  fi
  daemon ceph-mon ceph-mon "${C[@]}" -i a -f
  wait_for "the monitor" timeout 10 ceph "${C[@]}" --connect-timeout 5 mon stat
  if [ ! -f "$DIR/osd/id" ]; then
    local uuid id; uuid=$(uuidgen)
    id=$(ceph "${C[@]}" osd new "$uuid")
    log "creating osd.$id (sparse ${OSD_GB} GiB)"
    mkdir -p "$DIR/osd/ceph-$id"
    ceph-osd "${C[@]}" -i "$id" --mkfs --osd-uuid "$uuid" >>"$DIR/log/osd-mkfs.out" 2>&1
    echo "$id" > "$DIR/osd/id"
  fi
  local osd; osd=$(cat "$DIR/osd/id")
  daemon ceph-osd ceph-osd "${C[@]}" -i "$osd" -f
  wait_for "osd.$osd" bash -c "ceph ${C[*]} osd dump 2>/dev/null | grep -q '^osd.$osd up'"
  if ! radosgw-admin "${C[@]}" -n client.rgw.a user info --uid=s3seal >/dev/null 2>&1; then
    log "creating the S3 user"
    radosgw-admin "${C[@]}" -n client.rgw.a user create --uid=s3seal --display-name="s3seal backend" \
      --access-key="$(cat "$DIR/access_key")" --secret-key="$(cat "$DIR/secret_key")" >/dev/null
  fi
  daemon radosgw radosgw "${C[@]}" -n client.rgw.a -f
  wait_for "radosgw at $ENDPOINT" answers
  trap - ERR
  STARTING=0
  log "ready at $ENDPOINT (data in $DIR)"
  exports
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) alive && answers || die "not running"; exports ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
