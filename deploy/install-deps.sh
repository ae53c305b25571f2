#!/usr/bin/env bash
# install-deps.sh - installs what s3seal needs to build, run and test on
# Debian 12 (bookworm). Idempotent: only missing packages are installed.
# Run as root (or with sudo).
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libuv1-dev node-llhttp libssl-dev libcurl4-openssl-dev libyaml-dev
  libjson-c-dev libxml2-dev libsqlite3-dev libisal-dev zlib1g-dev
  # run and test
  curl ca-certificates openssl python3 valgrind s3cmd nginx
  # the local S3 backend (Ceph RADOS Gateway)
  ceph-mon ceph-osd radosgw ceph-common uuid-runtime
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The test clients: boto3 and aws-cli (from Debian unless Python has them).
python3 -c 'import boto3' 2>/dev/null || missing+=(python3-boto3)
command -v aws >/dev/null 2>&1 || missing+=(awscli)

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "[s3seal] installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >&2
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# The JavaScript clients of the end-to-end tests (AWS SDK v3, lib-storage,
# minio), pinned by tests/e2e/package-lock.json.
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y -q --no-install-recommends nodejs npm >&2
fi
E2E="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e"
if [ ! -d "$E2E/node_modules/@aws-sdk/client-s3" ]; then
  echo "[s3seal] installing the JavaScript test clients (npm)" >&2
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
