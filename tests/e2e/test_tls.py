"""Clients over HTTPS (tls: in the config): a CA, a server certificate and a
client certificate made with the openssl command; boto3 and aws-cli
verifying against the CA, a presigned GET with curl --cacert, a large
SSE-S3 object through TLS (ciphertext on the backend), TLS 1.1 refused,
ALPN http/1.1, session resumption, plain HTTP to the TLS port closed at
once, a certificate reloaded on SIGHUP; mutual TLS: no client certificate
refused, with one served."""

import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import boto3
from botocore.config import Config

from harness import REGION, S3Seal, backend_client, empty_and_delete, new_bucket_name


def run(*args, check=True, **kw):
    return subprocess.run(list(args), capture_output=True, check=check, **kw)


class Pki:
    """A CA, server certificates (for 127.0.0.1 and localhost) and a client
    certificate, made with the openssl command in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="s3seal-tls-")
        self.ca = self.path("ca.pem")
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", self.path("ca.key"), "-out", self.ca, "-days", "2",
            "-subj", "/CN=s3seal test CA")
        with open(self.path("server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        with open(self.path("client.ext"), "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, serial, ext="server.ext", cn="localhost"):
        """NAME.pem and NAME.key (mode 0600) signed by the CA."""
        key, csr, pem = self.path(name + ".key"), self.path(name + ".csr"), self.path(name + ".pem")
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
        os.chmod(key, 0o600)
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.path("ca.key"),
            "-set_serial", str(serial), "-out", pem, "-days", "2", "-extfile", self.path(ext))
        return pem, key


def tls_yaml(cert, key, extra=""):
    return f"tls:\n  cert_file: {cert}\n  key_file: {key}\n{extra}"


def https(s):
    s.endpoint = f"https://127.0.0.1:{s.port}"
    return s


def s_client(port, *args, stdin=b"", timeout=20):
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                           "-servername", "localhost", *args],
                          input=stdin, capture_output=True, timeout=timeout)


def served_serial(port, ca):
    """The serial number of the certificate a new connection gets."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            der = t.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = run("openssl", "x509", "-noout", "-serial", input=pem.encode()).stdout.decode()
    return int(out.strip().split("=", 1)[1], 16)


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.cert, cls.key = cls.pki.issue("server", 1001)
        cls.s = https(S3Seal(extra_yaml=tls_yaml(cls.cert, cls.key))).start()
        cls.c = boto3.client(
            "s3", endpoint_url=cls.s.endpoint, region_name=REGION, verify=cls.pki.ca,
            aws_access_key_id=cls.s.access_key, aws_secret_access_key=cls.s.secret_key,
            config=Config(signature_version="s3v4", retries={"max_attempts": 1},
                          s3={"addressing_style": "path"}))
        cls.bucket = new_bucket_name("tls")
        cls.c.create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def test_boto3_large_sse_object(self):
        data = os.urandom(7 * 1024 * 1024 + 4321)
        self.c.put_object(Bucket=self.bucket, Key="big.bin", Body=data,
                          ServerSideEncryption="AES256")
        got = self.c.get_object(Bucket=self.bucket, Key="big.bin")
        self.assertEqual(got["ServerSideEncryption"], "AES256")
        self.assertEqual(got["Body"].read(), data)
        # A range, decrypted from the middle.
        part = self.c.get_object(Bucket=self.bucket, Key="big.bin", Range="bytes=3000000-3100000")
        self.assertEqual(part["Body"].read(), data[3000000:3100001])
        # Multipart through TLS, parts in parallel.
        from boto3.s3.transfer import TransferConfig
        import io
        tc = TransferConfig(multipart_threshold=5 * 1024 * 1024,
                            multipart_chunksize=5 * 1024 * 1024, max_concurrency=3)
        self.c.upload_fileobj(io.BytesIO(data), self.bucket, "mpu.bin",
                              ExtraArgs={"ServerSideEncryption": "AES256"}, Config=tc)
        buf = io.BytesIO()
        self.c.download_fileobj(self.bucket, "mpu.bin", buf, Config=tc)
        self.assertEqual(buf.getvalue(), data)
        # The backend holds ciphertext.
        for key in ("big.bin", "mpu.bin"):
            stored = backend_client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
            self.assertNotEqual(stored[:len(data)], data)
            self.assertNotIn(data[1000:1064], stored)

    def test_awscli(self):
        src = os.path.join(self.pki.dir, "cli.bin")
        data = os.urandom(3 * 1024 * 1024 + 17)
        with open(src, "wb") as f:
            f.write(data)
        self.s.aws("--ca-bundle", self.pki.ca, "s3", "cp", src, f"s3://{self.bucket}/cli.bin",
                   "--sse", "AES256")
        dst = os.path.join(self.pki.dir, "cli.out")
        self.s.aws("--ca-bundle", self.pki.ca, "s3", "cp", f"s3://{self.bucket}/cli.bin", dst)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)
        listing = self.s.aws("--ca-bundle", self.pki.ca, "s3", "ls", f"s3://{self.bucket}/")
        self.assertIn(b"cli.bin", listing.stdout)
        # Without the CA, aws-cli refuses the certificate.
        r = self.s.aws("s3", "ls", f"s3://{self.bucket}/", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"SSL", r.stderr + r.stdout)

    def test_presign_https_with_curl(self):
        data = os.urandom(150_000)
        self.c.put_object(Bucket=self.bucket, Key="pre.bin", Body=data)
        url = self.s.cli("presign", "--expires", "300", f"s3://{self.bucket}/pre.bin",
                         check=True).stdout.decode().strip()
        self.assertTrue(url.startswith(f"https://127.0.0.1:{self.s.port}/"), url)
        r = run("curl", "-sS", "--fail", "--cacert", self.pki.ca, url)
        self.assertEqual(r.stdout, data)
        # boto3's presigner for the same endpoint, with a range.
        u2 = self.c.generate_presigned_url("get_object",
                                           Params={"Bucket": self.bucket, "Key": "pre.bin"},
                                           ExpiresIn=300)
        r = run("curl", "-sS", "--fail", "--cacert", self.pki.ca, "-r", "10-19", u2)
        self.assertEqual(r.stdout, data[10:20])

    def test_tls11_refused_tls12_and_13_served(self):
        r = s_client(self.s.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn(b"Cipher is ECDHE", r.stdout)
        for flag, name in (("-tls1_2", b"TLSv1.2"), ("-tls1_3", b"TLSv1.3")):
            r = s_client(self.s.port, flag, "-CAfile", self.pki.ca, "-verify_return_error")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"New, " + name, r.stdout)
        self.assertIn("unsupported protocol", self.s.read_log())

    def test_secure_transport_condition(self):
        """aws:SecureTransport is true over s3seal's TLS: a bucket policy that
        denies reads without it lets this client read."""
        import json
        bucket = new_bucket_name("tlspol")
        self.c.create_bucket(Bucket=bucket)
        try:
            self.c.put_object(Bucket=bucket, Key="k", Body=b"over tls")
            self.c.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*",
                               "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
                               "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
            self.assertEqual(self.c.get_object(Bucket=bucket, Key="k")["Body"].read(),
                             b"over tls")
            self.c.delete_bucket_policy(Bucket=bucket)
        finally:
            empty_and_delete(backend_client(), bucket)

    def test_alpn_http11(self):
        r = s_client(self.s.port, "-alpn", "h2,http/1.1", "-CAfile", self.pki.ca)
        self.assertIn(b"ALPN protocol: http/1.1", r.stdout)

    def test_session_resumption(self):
        sess = os.path.join(self.pki.dir, "sess.pem")
        req = b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            # -ign_eof: the TLS 1.3 tickets arrive after the handshake.
            first = s_client(self.s.port, flag, "-CAfile", self.pki.ca, "-sess_out", sess,
                             "-ign_eof", stdin=req)
            self.assertIn(f"New, {name}".encode(), first.stdout)
            again = s_client(self.s.port, flag, "-CAfile", self.pki.ca, "-sess_in", sess,
                             "-ign_eof", stdin=req)
            self.assertIn(f"Reused, {name}".encode(), again.stdout, again.stdout[-2000:])
            self.assertIn(b"HTTP/1.1 403", again.stdout)

    def test_plain_http_closed_at_once(self):
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            got = sock.recv(4096)
        self.assertEqual(got, b"")
        self.assertLess(time.monotonic() - t0, 1.0)
        r = run("curl", "-sS", f"http://127.0.0.1:{self.s.port}/", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not a TLS handshake", self.s.read_log())

    def test_sighup_reloads_the_certificate(self):
        self.assertEqual(served_serial(self.s.port, self.pki.ca), 1001)
        # A connection open across the reload goes on with its certificate.
        ctx = ssl.create_default_context(cafile=self.pki.ca)
        raw = socket.create_connection(("127.0.0.1", self.s.port), timeout=10)
        kept = ctx.wrap_socket(raw, server_hostname="localhost")
        kept.sendall(b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertTrue(kept.recv(4096).startswith(b"HTTP/1.1 403"))

        # A key that does not match the certificate: refused, the old one stays.
        new_pem, new_key = self.pki.issue("renewed", 2002)
        with open(new_pem, "rb") as f, open(self.cert, "wb") as g:
            g.write(f.read())
        self.s.proc.send_signal(signal.SIGHUP)
        self.wait_log("does not match the certificate")
        self.assertEqual(served_serial(self.s.port, self.pki.ca), 1001)

        with open(new_key, "rb") as f, open(self.key, "wb") as g:
            g.write(f.read())
        n = self.s.read_log().count("certificate reloaded")
        self.s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while self.s.read_log().count("certificate reloaded") == n and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(served_serial(self.s.port, self.pki.ca), 2002)
        self.assertEqual(self.s.proc.poll(), None)

        kept.sendall(b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        self.assertTrue(kept.recv(4096).startswith(b"HTTP/1.1 403"))
        self.assertEqual(kept.getpeercert()["serialNumber"], "03E9")  # 1001
        kept.close()
        # boto3 over new connections still works.
        self.c.head_bucket(Bucket=self.bucket)

    def wait_log(self, text, timeout=10):
        deadline = time.time() + timeout
        while text not in self.s.read_log():
            if time.time() > deadline:
                self.fail(f"{text!r} not in the log:\n{self.s.read_log()[-3000:]}")
            time.sleep(0.05)


class MutualTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.cert, cls.key = cls.pki.issue("server", 3003)
        cls.client_cert, cls.client_key = cls.pki.issue("client", 4004, ext="client.ext",
                                                        cn="s3seal client")
        cls.s = https(S3Seal(extra_yaml=tls_yaml(
            cls.cert, cls.key, f"  client_ca_file: {cls.pki.ca}\n  min_version: \"1.3\"\n"
        ) + "limits:\n  header_timeout_ms: 1500\n")).start()

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()

    def client(self, **kw):
        return boto3.client(
            "s3", endpoint_url=self.s.endpoint, region_name=REGION, verify=self.pki.ca,
            aws_access_key_id=self.s.access_key, aws_secret_access_key=self.s.secret_key,
            config=Config(signature_version="s3v4", retries={"max_attempts": 1},
                          s3={"addressing_style": "path"}, **kw))

    def test_without_client_certificate_refused(self):
        r = run("curl", "-sS", "--cacert", self.pki.ca, self.s.endpoint + "/", check=False)
        self.assertNotEqual(r.returncode, 0)
        with self.assertRaises(Exception):
            self.client().list_buckets()
        self.assertRegex(self.s.read_log(), r"TLS handshake failed: .*certificate")

    def test_with_client_certificate_served(self):
        r = run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", self.pki.ca,
                "--cert", self.client_cert, "--key", self.client_key, self.s.endpoint + "/")
        self.assertEqual(r.stdout, b"403")  # an unsigned request: TLS let it through
        c = self.client(client_cert=(self.client_cert, self.client_key))
        bucket = new_bucket_name("mtls")
        c.create_bucket(Bucket=bucket)
        try:
            c.put_object(Bucket=bucket, Key="k", Body=b"mutual", ServerSideEncryption="AES256")
            self.assertEqual(c.get_object(Bucket=bucket, Key="k")["Body"].read(), b"mutual")
        finally:
            empty_and_delete(backend_client(), bucket)

    def test_tls12_refused_under_min_version_13(self):
        r = s_client(self.s.port, "-tls1_2", "-cert", self.client_cert, "-key", self.client_key)
        self.assertNotEqual(r.returncode, 0)

    def test_handshake_timeout(self):
        """A client that connects and sends nothing is closed after the
        header timeout, not kept."""
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as sock:
            sock.sendall(b"\x16\x03\x01")  # the start of a record, never finished
            self.assertEqual(sock.recv(100), b"")
        took = time.monotonic() - t0
        self.assertGreater(took, 1.0)
        self.assertLess(took, 5.0)


if __name__ == "__main__":
    unittest.main()
