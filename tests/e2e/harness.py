"""End-to-end harness: runs a real s3seal in front of the real S3 backend.

The backend is named by S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY and
S3_REGION (tests/run.sh starts one with deploy/backend.sh); the binary by
S3SEAL_BIN. Each S3Seal instance gets its own port, config, keystore and
fresh client credentials. On stop it sends SIGTERM, requires exit status 0,
and fails on any sanitizer report in s3seal's log.
"""

import datetime
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid

import boto3
import botocore
from botocore.config import Config

REGION = os.environ.get("S3_REGION", "us-east-1")


def env(name):
    v = os.environ.get(name)
    if not v:
        raise RuntimeError(
            f"{name} is not set: run the tests through tests/run.sh, which starts the backend")
    return v


def write_secret(path, text):
    """A secret file as s3seal accepts it: a regular file, mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Seal:
    def __init__(self, extra_yaml="", workers=1, backend=None, backend_extra="",
                 keystore_of=None, extra_credentials=(), keystore_extra="", run_as=None,
                 keystore_url=None):
        """keystore_of: another S3Seal whose keystore (file and master key)
        this one shares, as instances of a fleet do. extra_credentials: more
        client credentials, as (access_key, secret_key, principal) tuples, or
        (access_key, secret_key, principal, identity_policy) with the
        credential's IAM policy (a dict or JSON text) for its policy_file.
        keystore_extra: more lines of the keystore section (e.g.
        "dek_cache_seconds: 0\n"), indented by the harness. run_as: a uid
        (root only) that s3seal runs as, its files handed over to it.
        keystore_url: a keystore location (postgresql://...) in place of the
        instance's SQLite file; the master key stays keystore_of's (or its
        own)."""
        self.bin = env("S3SEAL_BIN")
        self.backend = backend or env("S3_ENDPOINT")
        self.dir = tempfile.mkdtemp(prefix="s3seal-e2e-")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.access_key = "AKIA" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.config = os.path.join(self.dir, "s3seal.yaml")
        self.run_as = run_as
        write_secret(os.path.join(self.dir, "client.secret"), self.secret_key)
        write_secret(os.path.join(self.dir, "backend.secret"), env("S3_SECRET_KEY"))
        self.extra_secrets = []
        more_credentials = ""
        for i, cred in enumerate(extra_credentials):
            access_key, secret_key, principal = cred[:3]
            path = os.path.join(self.dir, f"client{i + 2}.secret")
            write_secret(path, secret_key)
            self.extra_secrets.append(secret_key)
            more_credentials += (f"  - access_key: {access_key}\n"
                                 f"    secret_key_file: {path}\n"
                                 f"    principal: {principal}\n")
            if len(cred) > 3 and cred[3] is not None:
                # An IAM identity policy (a dict, or JSON text as is).
                policy_path = os.path.join(self.dir, f"client{i + 2}.policy.json")
                with open(policy_path, "w") as f:
                    f.write(cred[3] if isinstance(cred[3], str) else json.dumps(cred[3]))
                more_credentials += f"    policy_file: {policy_path}\n"
        keystore_more = "".join(f"  {line}\n" for line in keystore_extra.splitlines()
                                if line.strip())
        with open(self.config, "w") as f:
            f.write(f"""listen: 127.0.0.1:{self.port}
workers: {workers}
backend:
  endpoint: {self.backend}
  region: {REGION}
  access_key: {env("S3_ACCESS_KEY")}
  secret_key_file: {self.dir}/backend.secret
{backend_extra}credentials:
  - access_key: {self.access_key}
    secret_key_file: {self.dir}/client.secret
    principal: arn:aws:iam::111122223333:user/e2e
{more_credentials}keystore:
  {f"url: {keystore_url}" if keystore_url else f"path: {(keystore_of or self).dir}/keystore.db"}
  master_key_file: {(keystore_of or self).dir}/master.key
{keystore_more}{extra_yaml}""")
        self.log_path = os.path.join(self.dir, "s3seal.log")
        self.proc = None

    def start(self):
        as_user = {}
        if self.run_as is not None:
            for d, _, files in os.walk(self.dir):
                for name in [d] + [os.path.join(d, f) for f in files]:
                    os.chown(name, self.run_as, self.run_as)
            as_user = dict(user=self.run_as, group=self.run_as, extra_groups=[])
        # The keystore (master key and root keys) for SSE-S3.
        subprocess.run([self.bin, "-c", self.config, "keystore", "init"], check=True,
                       capture_output=True, **as_user)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.bin, "serve", "-c", self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT, **as_user)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("s3seal exited at start-up:\n" + self.read_log())
            if "listening on" in self.read_log():
                return self
            time.sleep(0.05)
        raise RuntimeError("s3seal did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, test=None):
        """SIGTERM, then require a clean exit and a clean log."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        finally:
            self.log.close()
        log = self.read_log()
        self.proc = None
        problems = []
        if rc != 0:
            problems.append(f"s3seal exited with status {rc}")
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in log:
                problems.append(f"sanitizer report in the log ({marker})")
        if any(k in log for k in [self.secret_key, env("S3_SECRET_KEY"), *self.extra_secrets]):
            problems.append("a secret key appears in the log")
        if problems:
            raise AssertionError("; ".join(problems) + "\n--- log tail ---\n" + log[-4000:])

    def client(self, access_key=None, secret_key=None, **cfg):
        options = {"signature_version": "s3v4", "retries": {"max_attempts": 1},
                   "s3": {"addressing_style": "path"}}
        options.update(cfg)
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key, config=Config(**options))

    def cli(self, *args, check=False, **kw):
        """Runs the s3seal command line with this instance's config, e.g.
        s.cli("keys", "create", "--alias", "alias/x")."""
        r = subprocess.run([self.bin, "-c", self.config, *args], capture_output=True, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"s3seal {' '.join(args)} exited with {r.returncode}:\n"
                                 + r.stderr.decode("utf-8", "replace"))
        return r

    def cli_env(self):
        e = dict(os.environ)
        e.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key,
                 AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=os.devnull,
                 AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        return e

    def aws(self, *args, check=True, **kw):
        return subprocess.run(["aws", "--endpoint-url", self.endpoint, *args],
                               env=self.cli_env(), capture_output=True, check=check, **kw)


def backend_client():
    """A client straight to the backend: to see what really landed there."""
    return boto3.client(
        "s3", endpoint_url=env("S3_ENDPOINT"), region_name=REGION,
        aws_access_key_id=env("S3_ACCESS_KEY"), aws_secret_access_key=env("S3_SECRET_KEY"),
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def new_bucket_name(prefix="e2e"):
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def empty_and_delete(client, bucket):
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=o["Key"])
        for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
        client.delete_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError:
        pass


def backend_has(bucket, key):
    try:
        backend_client().head_object(Bucket=bucket, Key=key)
        return True
    except botocore.exceptions.ClientError as e:
        if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise


# ------------------------------------------------------------- raw signing

def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign_v4(method, url, headers, payload_hash, access_key, secret_key, when=None,
            region=REGION):
    """An independent SigV4 header signer (not s3seal's), for requests that
    SDKs refuse to make: skewed clocks, wrong hashes, odd scopes. Returns the
    headers to send (with Host, x-amz-date, x-amz-content-sha256 and
    Authorization added)."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    u = urllib.parse.urlsplit(url)
    h = {k.lower(): v for k, v in headers.items()}
    h["host"] = u.netloc
    h["x-amz-date"] = amz_date
    h["x-amz-content-sha256"] = payload_hash
    names = sorted(h)
    path = urllib.parse.quote(urllib.parse.unquote(u.path or "/"), safe="/~")
    q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    query = "&".join(f"{urllib.parse.quote(k, safe='~')}={urllib.parse.quote(v, safe='~')}"
                     for k, v in sorted(q))
    creq = "\n".join([method, path, query, "".join(f"{n}:{h[n].strip()}\n" for n in names),
                      ";".join(names), payload_hash])
    scope = f"{date}/{region}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = _hmac(("AWS4" + secret_key).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, "s3")
    k = _hmac(k, "aws4_request")
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    h["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                          f"SignedHeaders={';'.join(names)}, Signature={sig}")
    return h


def raw_request(endpoint, method, path, headers, body=b"", timeout=30):
    """Sends one HTTP/1.1 request on a fresh connection; returns
    (status, headers dict, body bytes)."""
    import http.client
    u = urllib.parse.urlsplit(endpoint)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            c.putheader(k, v)
        if body and "content-length" not in {k.lower() for k in headers}:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body if body else None)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def error_code(body):
    import xml.etree.ElementTree as ET
    return ET.fromstring(body).findtext("Code")
