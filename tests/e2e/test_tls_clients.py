"""More real clients over s3seal's HTTPS (tls: in the config), beside
test_tls.py and with its certificates: the JavaScript SDK through a custom
https.Agent (aws-chunked PutObject with a CRC32 trailer, GetObject,
lib-storage's multipart Upload; tls_js.mjs), s3cmd with --ca-certs and
rclone with --ca-cert putting and getting SSE-S3 objects, curl signing its
own requests (--aws-sigv4) under mutual TLS, refused without a client
certificate; and a certificate replaced and SIGHUP sent under load: the
transfers open across the reload finish byte-identical on their old
certificate, new connections get the new one, and no request fails. Every
object stored is read straight from the backend: ciphertext."""

import hashlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

import boto3
from botocore.config import Config

from harness import REGION, S3Seal, backend_client, empty_and_delete, new_bucket_name, sign_v4
from test_tls import Pki, https, tls_yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def run(*args, timeout=300, **kw):
    return subprocess.run(list(args), capture_output=True, timeout=timeout, **kw)


def serial_of(der):
    """The serial number of a DER certificate."""
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = run("openssl", "x509", "-noout", "-serial", input=pem.encode(),
              check=True).stdout.decode()
    return int(out.strip().split("=", 1)[1], 16)


class CiphertextMixin:
    def assert_ciphertext(self, key, data):
        raw = backend_client().get_object(Bucket=self.bucket, Key=key)
        body = raw["Body"].read()
        self.assertIn("s3seal-version", raw["Metadata"], key)
        self.assertGreater(len(body), len(data), key)
        for off in (0, len(data) // 2, max(0, len(data) - 64)):
            if len(data) >= off + 64:
                self.assertNotIn(data[off:off + 64], body, key)


class TlsClientsTest(CiphertextMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.cert, cls.key = cls.pki.issue("server", 5005)
        cls.s = https(S3Seal(extra_yaml=tls_yaml(cls.cert, cls.key))).start()
        cls.bucket = new_bucket_name("tlsclients")
        backend_client().create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        try:
            empty_and_delete(backend_client(), cls.bucket)
        finally:
            cls.s.stop()

    def file(self, name, size):
        data = os.urandom(size)
        path = os.path.join(self.pki.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path, data

    def test_javascript_sdk_custom_agent(self):
        self.assertTrue(os.path.isdir(os.path.join(HERE, "node_modules", "@aws-sdk", "lib-storage")),
                        "run npm install in tests/e2e (deploy/install-deps.sh does)")
        r = run("node", "tls_js.mjs", self.s.endpoint, self.bucket, self.s.access_key,
                self.s.secret_key, self.pki.ca, cwd=HERE, timeout=600)
        out = (r.stdout + r.stderr).decode()
        self.assertEqual(r.returncode, 0, out[-3000:])
        self.assertIn("ok PutObject stream", out)
        self.assertIn("ok lib-storage Upload over TLS", out)
        self.assertIn("ok unknown CA refused", out)
        # The stream went aws-chunked: more bytes on the wire than the object.
        size = 3 * 1024 * 1024 + 777
        puts = [l for l in self.s.read_log().splitlines()
                if "key=tls-stream " in l and "PUT" in l and "bytes_in=" in l]
        self.assertTrue(puts, self.s.read_log()[-3000:])
        bytes_in = int(puts[0].split("bytes_in=", 1)[1].split()[0])
        self.assertGreater(bytes_in, size, puts[0])

    def s3cmd(self, *args):
        cfg = os.path.join(self.pki.dir, "s3cmd.cfg")
        host = f"127.0.0.1:{self.s.port}"
        with open(cfg, "w") as f:
            f.write(f"[default]\naccess_key = {self.s.access_key}\n"
                    f"secret_key = {self.s.secret_key}\nhost_base = {host}\n"
                    f"host_bucket = {host}\nuse_https = True\ncheck_ssl_certificate = True\n"
                    f"ca_certs_file = {self.pki.ca}\nsignature_v2 = False\n"
                    "server_side_encryption = True\nbucket_location = us-east-1\n")
        return run("s3cmd", "-c", cfg, f"--ca-certs={self.pki.ca}", *args)

    @unittest.skipUnless(shutil.which("s3cmd"), "s3cmd is not installed")
    def test_s3cmd(self):
        src, data = self.file("s3cmd.bin", 3 * 2**20 + 99)
        r = self.s3cmd("put", src, f"s3://{self.bucket}/s3cmd.bin")
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        self.assertNotIn(b"MD5 Sums don't match", r.stderr)
        self.assert_ciphertext("s3cmd.bin", data)
        dst = os.path.join(self.pki.dir, "s3cmd.out")
        r = self.s3cmd("get", "--force", f"s3://{self.bucket}/s3cmd.bin", dst)
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)
        r = self.s3cmd("info", f"s3://{self.bucket}/s3cmd.bin")
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        self.assertRegex(r.stdout.decode(), r"SSE:\s+AES256")
        # Without the CA, s3cmd refuses the certificate.
        cfg = os.path.join(self.pki.dir, "s3cmd-noca.cfg")
        with open(cfg, "w") as f:
            f.write(f"[default]\naccess_key = {self.s.access_key}\n"
                    f"secret_key = {self.s.secret_key}\nhost_base = 127.0.0.1:{self.s.port}\n"
                    f"host_bucket = 127.0.0.1:{self.s.port}\nuse_https = True\n"
                    "check_ssl_certificate = True\nsignature_v2 = False\n")
        r = run("s3cmd", "-c", cfg, "ls", f"s3://{self.bucket}/",
                env=dict(os.environ, SSL_CERT_FILE="/nonexistent"))
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr + r.stdout, rb"(?i)certificate")

    def rclone(self, *args, ca=True):
        env = dict(os.environ, RCLONE_CONFIG="/dev/null", RCLONE_CONFIG_S_TYPE="s3",
                   RCLONE_CONFIG_S_PROVIDER="Other", RCLONE_CONFIG_S_ENV_AUTH="false",
                   RCLONE_CONFIG_S_ACCESS_KEY_ID=self.s.access_key,
                   RCLONE_CONFIG_S_SECRET_ACCESS_KEY=self.s.secret_key,
                   RCLONE_CONFIG_S_ENDPOINT=self.s.endpoint, RCLONE_CONFIG_S_REGION="us-east-1",
                   RCLONE_CONFIG_S_SERVER_SIDE_ENCRYPTION="AES256")
        env.pop("AWS_CA_BUNDLE", None)
        env.pop("SSL_CERT_FILE", None)
        return run("rclone", *(("--ca-cert", self.pki.ca) if ca else ()), "--low-level-retries",
                   "1", "--retries", "1", *args, env=env)

    @unittest.skipUnless(shutil.which("rclone"), "rclone is not installed")
    def test_rclone(self):
        src, data = self.file("rclone.bin", 4 * 2**20 + 5)
        r = self.rclone("copyto", src, f"s:{self.bucket}/rclone.bin")
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        self.assert_ciphertext("rclone.bin", data)
        r = self.rclone("cat", f"s:{self.bucket}/rclone.bin")
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        self.assertEqual(r.stdout, data)
        # Multipart above the cutoff, checked by rclone's own MD5 compare.
        src2, data2 = self.file("rclone-mpu.bin", 11 * 2**20 + 3)
        r = self.rclone("copyto", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", src2,
                        f"s:{self.bucket}/rclone-mpu.bin")
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        self.assert_ciphertext("rclone-mpu.bin", data2)
        r = self.rclone("cat", f"s:{self.bucket}/rclone-mpu.bin")
        self.assertEqual(r.stdout, data2)
        # Without the CA, rclone refuses the certificate.
        r = self.rclone("cat", f"s:{self.bucket}/rclone.bin", ca=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"certificate", r.stderr)


class MutualTlsCurlTest(CiphertextMixin, unittest.TestCase):
    """curl signing its own requests (--aws-sigv4): without a client
    certificate the handshake is refused, with one the PUT and GET are
    served."""

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.cert, cls.key = cls.pki.issue("server", 6006)
        cls.client_cert, cls.client_key = cls.pki.issue("client", 7007, ext="client.ext",
                                                        cn="s3seal client")
        cls.s = https(S3Seal(extra_yaml=tls_yaml(cls.cert, cls.key,
                                                 f"  client_ca_file: {cls.pki.ca}\n"))).start()
        cls.bucket = new_bucket_name("mtlscurl")
        backend_client().create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        try:
            empty_and_delete(backend_client(), cls.bucket)
        finally:
            cls.s.stop()

    def curl(self, *args, cert=True):
        mtls = ("--cert", self.client_cert, "--key", self.client_key) if cert else ()
        return run("curl", "-sS", "--cacert", self.pki.ca, *mtls,
                   "--aws-sigv4", "aws:amz:us-east-1:s3",
                   "--user", f"{self.s.access_key}:{self.s.secret_key}", *args)

    def test_curl_with_and_without_client_certificate(self):
        data = os.urandom(2 * 2**20 + 11)
        src = os.path.join(self.pki.dir, "curl.bin")
        with open(src, "wb") as f:
            f.write(data)
        url = f"{self.s.endpoint}/{self.bucket}/curl.bin"
        # Without a certificate: no answer at all, nothing stored.
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", "-T", src,
                      "-H", "x-amz-server-side-encryption: AES256",
                      "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", url, cert=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertEqual(r.stdout, b"000")
        self.assertRegex(self.s.read_log(), r"TLS handshake failed: .*certificate")
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", url, cert=False)
        self.assertNotEqual(r.returncode, 0)
        # With one: served.
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", "--fail-with-body", "-T", src,
                      "-H", "x-amz-server-side-encryption: AES256",
                      "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", url)
        self.assertEqual((r.returncode, r.stdout), (0, b"200"), r.stderr)
        r = self.curl("--fail-with-body", "-D", "-", "-o",
                      os.path.join(self.pki.dir, "curl.out"),
                      "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"x-amz-server-side-encryption: aes256", r.stdout.lower())
        with open(os.path.join(self.pki.dir, "curl.out"), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assert_ciphertext("curl.bin", data)


class ReloadUnderLoadTest(CiphertextMixin, unittest.TestCase):
    """A certificate replaced and SIGHUP sent while GETs stream on open
    keep-alive connections and new connections keep arriving."""

    SIZE = 12 * 2**20 + 123

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.cert, cls.key = cls.pki.issue("server", 8008)
        cls.s = https(S3Seal(extra_yaml=tls_yaml(cls.cert, cls.key))).start()
        cls.bucket = new_bucket_name("tlsreload")
        cls.data = os.urandom(cls.SIZE)
        backend_client().create_bucket(Bucket=cls.bucket)
        cls.c = boto3.client(
            "s3", endpoint_url=cls.s.endpoint, region_name=REGION, verify=cls.pki.ca,
            aws_access_key_id=cls.s.access_key, aws_secret_access_key=cls.s.secret_key,
            config=Config(signature_version="s3v4", retries={"max_attempts": 1},
                          s3={"addressing_style": "path"}))
        for key in ("load.bin", "held.bin"):
            cls.c.put_object(Bucket=cls.bucket, Key=key, Body=cls.data,
                             ServerSideEncryption="AES256")

    @classmethod
    def tearDownClass(cls):
        try:
            empty_and_delete(backend_client(), cls.bucket)
        finally:
            cls.s.stop()

    def ctx(self):
        return ssl.create_default_context(cafile=self.pki.ca)

    def connect(self, rcvbuf=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.s.port, context=self.ctx(),
                                           timeout=60)
        if rcvbuf:
            # A small receive window: the server is still sending when the
            # client stops reading.
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            raw.settimeout(60)
            raw.connect(("127.0.0.1", self.s.port))
            conn.sock = self.ctx().wrap_socket(raw, server_hostname="localhost")
        return conn

    def send_get(self, conn, key="load.bin"):
        path = f"/{self.bucket}/{key}"
        h = sign_v4("GET", self.s.endpoint + path, {}, hashlib.sha256(b"").hexdigest(),
                    self.s.access_key, self.s.secret_key)
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        return r

    def get(self, conn):
        body = self.send_get(conn).read()
        return body

    def test_replace_certificate_mid_load(self):
        self.assert_ciphertext("load.bin", self.data)
        errors, served, seen = [], [], []
        stop = threading.Event()

        def keepalive_loop():
            # GETs one after another on one connection, kept alive.
            try:
                conn = self.connect()
                while not stop.is_set():
                    body = self.get(conn)
                    if body != self.data:
                        errors.append(f"keep-alive GET: {len(body)} bytes, not the object")
                    served.append(serial_of(conn.sock.getpeercert(binary_form=True)))
                conn.close()
            except Exception as e:  # noqa: BLE001 - every failure is reported
                errors.append(f"keep-alive: {e!r}")

        def new_connections_loop():
            # A new TLS connection for each request.
            try:
                while not stop.is_set():
                    started = time.monotonic()
                    conn = self.connect()
                    conn.connect()  # the handshake, done when this returns
                    shaken = time.monotonic()
                    path = f"/{self.bucket}/load.bin"
                    h = sign_v4("HEAD", self.s.endpoint + path, {},
                                hashlib.sha256(b"").hexdigest(), self.s.access_key,
                                self.s.secret_key)
                    conn.request("HEAD", path, headers=h)
                    r = conn.getresponse()
                    r.read()
                    if r.status != 200:
                        errors.append(f"new connection HEAD: {r.status}")
                    seen.append((started, shaken,
                                 serial_of(conn.sock.getpeercert(binary_form=True))))
                    conn.close()
            except Exception as e:  # noqa: BLE001
                errors.append(f"new connections: {e!r}")

        threads = [threading.Thread(target=keepalive_loop) for _ in range(2)]
        threads.append(threading.Thread(target=new_connections_loop))
        for t in threads:
            t.start()
        held = None
        try:
            # A transfer in flight across the reload: half of it read before.
            held = self.connect(rcvbuf=32768)
            r = self.send_get(held, "held.bin")
            first = r.read(2**20)
            self.assertEqual(serial_of(held.sock.getpeercert(binary_form=True)), 8008)
            deadline = time.time() + 60
            while (len(served) < 2 or len(seen) < 3) and time.time() < deadline:
                time.sleep(0.05)
            self.assertFalse(errors, errors)

            new_pem, new_key = self.pki.issue("renewed", 9009)
            n = self.s.read_log().count("certificate reloaded")
            # Both files in place at once (renamed over), then SIGHUP.
            for src, dst in ((new_pem, self.cert), (new_key, self.key)):
                shutil.copyfile(src, dst + ".new")
                os.chmod(dst + ".new", 0o600)
                os.replace(dst + ".new", dst)
            sent_at = time.monotonic()
            self.s.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 20
            while self.s.read_log().count("certificate reloaded") == n:
                self.assertLess(time.time(), deadline, self.s.read_log()[-3000:])
                time.sleep(0.05)
            reloaded_at = time.monotonic()

            # The held transfer finishes byte-identical, then goes on.
            rest = r.read()
            self.assertEqual(first + rest, self.data)
            # It was still being sent when the certificate was reloaded.
            log = self.s.read_log()
            done = [i for i, l in enumerate(log.splitlines()) if "method=GET " in l and "key=held.bin " in l]
            reload_line = [i for i, l in enumerate(log.splitlines())
                           if "certificate reloaded" in l]
            self.assertTrue(done and reload_line, log[-3000:])
            self.assertGreater(done[0], reload_line[-1])
            self.assertEqual(self.get(held), self.data)
            self.assertEqual(serial_of(held.sock.getpeercert(binary_form=True)), 8008)
            held.close()
            held = None

            # Load goes on after the reload for a while.
            n_served, n_seen = len(served), len(seen)
            deadline = time.time() + 60
            while ((len(served) < n_served + 2 or len(seen) < n_seen + 3)
                   and time.time() < deadline and not errors):
                time.sleep(0.05)
        finally:
            if held is not None:
                held.close()
            stop.set()
            for t in threads:
                t.join(120)
        self.assertFalse(errors, errors)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertGreaterEqual(len(served), n_served + 2, "keep-alive GETs after the reload")
        # The keep-alive connections opened before the reload kept the old
        # certificate; connections made after it got the new one.
        self.assertEqual(set(served), {8008})
        # (A handshake under way across the signal may get either.)
        before = [s for _, shaken, s in seen if shaken < sent_at]
        after = [s for started, _, s in seen if started > reloaded_at]
        self.assertTrue(before and after, seen)
        self.assertEqual(set(before), {8008})
        self.assertEqual(set(after), {9009})
        self.assertEqual(self.s.proc.poll(), None)


if __name__ == "__main__":
    unittest.main()
