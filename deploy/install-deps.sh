#!/usr/bin/env bash
# install-deps.sh - installs what s3seal needs to build, run and test on
# Debian 12 (bookworm): compilers and libraries, the test clients (aws-cli,
# boto3, curl, s3cmd, rclone, Node.js for the JavaScript SDK and minio-js
# tests, chromium for the CORS test), PostgreSQL (a shared keystore;
# deploy/pg.sh), HAProxy (in front of a fleet; deploy/fleet.sh) and Ceph for
# the local S3 backend (deploy/backend.sh).
#
# Idempotent: installed packages are left alone; `apt-get update` runs only
# when something is missing. Python's boto3 and the `aws` command are taken
# from wherever python3 and PATH already have them (pip, pyenv); Debian's
# python3-boto3 / awscli are installed only when they are absent.
# Run as root or as a user with sudo. Progress goes to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)

PKGS=(
  # build
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libuv1-dev node-llhttp libssl-dev libcurl4-openssl-dev libyaml-dev
  libjson-c-dev libxml2-dev libsqlite3-dev libpq-dev libisal-dev zlib1g-dev
  # sd_notify for Type=notify (proxy/service_systemd.c)
  libsystemd-dev
  # run and test
  curl ca-certificates openssl python3 valgrind s3cmd rclone nginx
  # promtool and Prometheus, which check and scrape the admin listener's /metrics
  prometheus
  # a real browser (headless) for the CORS test: a page on another origin
  # uploading through a presigned URL (tests/e2e/test_cors.py)
  chromium
  # PostgreSQL, for a keystore shared by a fleet (deploy/pg.sh starts one)
  postgresql
  # HAProxy, the load balancer in front of a fleet (deploy/fleet.sh)
  haproxy
  # the local S3 backend (Ceph RADOS Gateway)
  ceph-mon ceph-osd radosgw ceph-common uuid-runtime
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${PKGS[@]}"; do
  installed "$p" || missing+=("$p")
done
# Test clients: use what is already there (pip or Debian), else Debian's.
python3 -c 'import boto3' >/dev/null 2>&1 || missing+=(python3-boto3)
command -v aws >/dev/null 2>&1 || missing+=(awscli)
# Node.js and npm for the JavaScript SDK tests (some nodejs builds bundle npm).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

if [ ${#missing[@]} -gt 0 ]; then
  echo "[install-deps] installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q >&2
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# The JavaScript clients of the end-to-end tests (AWS SDK v3, lib-storage,
# minio), pinned by tests/e2e/package-lock.json. Without network access this
# only warns: everything but the JavaScript SDK test works without them.
E2E=$ROOT/tests/e2e
if [ -f "$E2E/package-lock.json" ] && [ ! -d "$E2E/node_modules/@aws-sdk/client-s3" ]; then
  echo "[install-deps] installing the JavaScript test clients (npm ci in tests/e2e)" >&2
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error >&2) \
    || echo "[install-deps] warning: npm ci failed; the JavaScript SDK test will fail" >&2
fi
exit 0
