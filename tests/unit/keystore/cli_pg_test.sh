#!/usr/bin/env bash
# cli_pg_test.sh S3SEAL URL_FILE - the keystore commands on PostgreSQL: a
# host's SQLite keystore grows into a fleet's (`keystore copy --to`), is
# refused a second copy over it, then serves every command through
# `keystore.url` (keys, root keys) as the file did; `keystore init` makes a
# new keystore in an empty database. Skipped (77) without a PostgreSQL.
set -euo pipefail
S3SEAL=$1
URL=${S3SEAL_TEST_PG_URL:-$(cat "$2" 2>/dev/null || true)}
[ -n "$URL" ] || { echo "no PostgreSQL to test on (tests/pg.sh start): skipped"; exit 77; }
base=${URL%%\?*}
base=${base%/*}
T=$(mktemp -d /tmp/s3seal-clipg-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
newdb() {
  psql -q "$URL" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" \
    >/dev/null 2>&1 || fail "cannot create database $1"
  echo "$base/$1"
}
config() { # config FILE KEYSTORE-LINE
  cat >"$1" <<YAML
listen: 127.0.0.1:1
backend:
  endpoint: http://127.0.0.1:9
  access_key: BACKEND
  secret_key: backendsecret
credentials:
  - access_key: AKIAEXAMPLEUSER01
    secret_key: clientsecretclientsecret
keystore:
  $2
  master_key_file: $T/master.key
YAML
}

config "$T/file.yaml" "path: $T/ks.db"
"$S3SEAL" -c "$T/file.yaml" keystore init >/dev/null
key=$("$S3SEAL" -c "$T/file.yaml" keys create --alias alias/docs | python3 -c 'import json,sys; print((lambda d: d.get("KeyMetadata", d))(json.load(sys.stdin))["KeyId"])')
"$S3SEAL" -c "$T/file.yaml" root-key rotate >/dev/null

# A bucket's CORS configuration (as PutBucketCors stores it) travels too.
rows=6
if command -v sqlite3 >/dev/null; then
  sqlite3 "$T/ks.db" "INSERT INTO bucket_cors(bucket, config, updated) VALUES ('web', \
    '<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>', 1)"
  rows=7
fi
fleet=$(newdb t_cli_fleet)
out=$("$S3SEAL" -c "$T/file.yaml" keystore copy --to "$fleet") || fail "copy: $out"
case "$out" in *"copied $rows rows"*verified*) ;; *) fail "copy said: $out" ;; esac
if [ "$rows" = 7 ]; then
  [ "$(psql -qtA "$fleet" -c "SELECT bucket FROM bucket_cors")" = web ] || fail "bucket_cors"
fi
if "$S3SEAL" -c "$T/file.yaml" keystore copy --to "$fleet" 2>"$T/err"; then
  fail "a second copy over a non-empty keystore succeeded"
fi
grep -q "not empty" "$T/err" || fail "refusal: $(cat "$T/err")"

config "$T/pg.yaml" "url: $fleet"
"$S3SEAL" -c "$T/pg.yaml" keys list | grep -q "$key.*Enabled.*alias/docs" || fail "keys list"
"$S3SEAL" -c "$T/pg.yaml" keys disable alias/docs >/dev/null
"$S3SEAL" -c "$T/file.yaml" keys list | grep -q "$key.*Enabled" || fail "the file changed"
"$S3SEAL" -c "$T/pg.yaml" keys describe "$key" | grep -q '"KeyState": *"Disabled"' || fail "describe"
"$S3SEAL" -c "$T/pg.yaml" keys rotate "$key" >/dev/null 2>&1 && fail "rotated a disabled key"
"$S3SEAL" -c "$T/pg.yaml" keys enable "$key" >/dev/null
"$S3SEAL" -c "$T/pg.yaml" keys rotate "$key" >/dev/null
"$S3SEAL" -c "$T/pg.yaml" root-key rotate | grep -q "version 3" || fail "root-key rotate"
[ "$("$S3SEAL" -c "$T/pg.yaml" root-key list | wc -l)" = 3 ] || fail "root-key list"

# A new keystore in an empty database; path and url together are refused.
config "$T/new.yaml" "url: $(newdb t_cli_new)"
"$S3SEAL" -c "$T/new.yaml" keystore init | grep -q "ready; current root key version 1" || fail "init"
config "$T/both.yaml" "url: $fleet
  path: $T/ks.db"
"$S3SEAL" -c "$T/both.yaml" keys list >/dev/null 2>&1 && fail "path and url both accepted"
echo "keystore.pg.cli: ok"
