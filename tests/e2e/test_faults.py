"""Fault injection, end to end: the backend cut off (reset or closed) or
stalled in the middle of a PUT, an UploadPart, a CompleteMultipartUpload, a
GET (plain and encrypted, whole and ranged) and a streamed copy; the client
gone in the middle of an upload and of a download; the keystore locked by
another process or unreadable; the audit log's file system full.

The backend stays the real one: a fault-injecting relay (faultproxy.py)
sits between s3seal and it, and cuts or stalls s3seal's connections on
command. Each case requires a clear error (an S3 error document with its
status, or a body cut short once the head has left), nothing at the key on
the backend that a client could take for the object (no object, or the
previous one untouched; never plaintext where encryption was asked), the
server still serving (a PUT and a GET on the same instance), and no file
descriptor left behind; at the end the harness requires a clean exit and no
sanitizer report."""

import base64
import hashlib
import http.client
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import xml.etree.ElementTree as ET

import botocore

from faultproxy import DOWN, UP, FaultProxy
from harness import (S3Seal, backend_client, backend_has, empty_and_delete, error_code,
                     new_bucket_name, sign_v4)

MIB = 1024 * 1024
SEG = 65536
BODY = 3 * MIB + 4321
PART = 5 * MIB
# s3seal's timeouts in these tests: a stall resolves in seconds.
LIMITS = """limits:
  backend_timeout_ms: 2000
  idle_timeout_ms: 3000
"""
# What s3seal answers when the backend fails it.
BACKEND_ERRORS = {500: "InternalError", 502: "InternalError", 503: "ServiceUnavailable",
                  504: "InternalError"}


class Answer:
    def __init__(self, status, headers, body, complete, error=None):
        self.status, self.headers, self.body = status, headers, body
        self.complete, self.error = complete, error

    def code(self):
        try:
            return error_code(self.body)
        except ET.ParseError:
            return None

    def __repr__(self):
        return (f"Answer({self.status}, complete={self.complete}, error={self.error!r}, "
                f"body={self.body[:300]!r})")


def fd_census(pid, s3seal_port, relay_port):
    """s3seal's open descriptors: (sockets to the relay, sockets of clients,
    everything else)."""
    inodes = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local = int(parts[1].rsplit(":", 1)[1], 16)
                    remote = int(parts[2].rsplit(":", 1)[1], 16)
                    inodes[parts[9]] = (local, remote)
        except FileNotFoundError:
            pass
    backend = clients = other = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if link.startswith("socket:["):
            ports = inodes.get(link[8:-1])
            if ports and ports[1] == relay_port:
                backend += 1
                continue
            if ports and ports[0] == s3seal_port and ports[1] != 0:
                clients += 1
                continue
        other += 1
    return backend, clients, other


class FaultCase(unittest.TestCase):
    """What every case shares: a raw signed client, the checks after it."""

    s = None

    def request(self, method, key, headers=None, body=b"", query="", timeout=60, bucket=None):
        bucket = bucket or self.bucket
        path = f"/{bucket}/{urllib.parse.quote(key)}" + (f"?{query}" if query else "")
        url = self.s.endpoint + path
        h = sign_v4(method, url, dict(headers or {}), hashlib.sha256(body).hexdigest(),
                    self.s.access_key, self.s.secret_key)
        c = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=timeout)
        try:
            c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.items():
                c.putheader(k, v)
            if method in ("PUT", "POST"):
                c.putheader("Content-Length", str(len(body)))
            c.endheaders()
            try:
                if body:
                    c.send(body)
            except OSError:
                pass  # s3seal answered and closed before the whole body went
            try:
                r = c.getresponse()
            except (OSError, http.client.HTTPException) as e:
                return Answer(None, {}, b"", False, e)
            hd = {k.lower(): v for k, v in r.getheaders()}
            try:
                data = r.read()
                return Answer(r.status, hd, data, True)
            except http.client.IncompleteRead as e:
                return Answer(r.status, hd, e.partial, False, e)
            except OSError as e:
                return Answer(r.status, hd, b"", False, e)
        finally:
            c.close()

    def assert_backend_error(self, a, codes=BACKEND_ERRORS):
        """An S3 error document with one of the statuses s3seal uses for a
        backend that failed it."""
        self.assertIn(a.status, codes, a)
        self.assertTrue(a.complete, a)
        self.assertEqual(a.code(), codes[a.status], a)

    def assert_failed(self, a, data=None):
        """Either an error answer, or a success head whose body was cut
        short: never a complete success."""
        if a.status is None:
            self.fail(f"no answer at all: {a}")
        if a.status in (200, 206):
            self.assertFalse(a.complete, f"a cut transfer was answered as whole: {a}")
            if data is not None:
                self.assertLess(len(a.body), len(data))
        else:
            self.assert_backend_error(a)

    def assert_no_object(self, key, previous=None, bucket=None):
        """Nothing at the key on the backend, or the previous object
        untouched."""
        bucket = bucket or self.bucket
        if previous is None:
            self.assertFalse(backend_has(bucket, key), f"an object was left at {key}")
        else:
            got = self.s.client().get_object(Bucket=bucket, Key=key)["Body"].read()
            self.assertEqual(hashlib.sha256(got).hexdigest(),
                             hashlib.sha256(previous).hexdigest(), "the previous object changed")

    def assert_whole_or_none(self, key, data, sse):
        """The backend may have stored the whole object before its answer
        was lost: then it is the whole object, readable through s3seal (and
        ciphertext on the backend if encryption was asked); never anything
        else."""
        if not backend_has(self.bucket, key):
            return
        got = self.s.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest())
        if sse:
            self.assert_ciphertext(key, data)

    def assert_ciphertext(self, key, plain, bucket=None):
        raw = self.b.get_object(Bucket=bucket or self.bucket, Key=key)
        body = raw["Body"].read()
        self.assertIn("s3seal-version", raw["Metadata"])
        for off in (0, len(plain) // 3, len(plain) - 64):
            self.assertNotIn(plain[off:off + 64], body)

    def assert_serving(self):
        key = f"alive-{time.monotonic_ns()}"
        data = os.urandom(200 * 1024)
        a = self.request("PUT", key, {"x-amz-server-side-encryption": "AES256"}, data)
        self.assertEqual(a.status, 200, a)
        a = self.request("GET", key)
        self.assertEqual((a.status, a.complete), (200, True), a)
        self.assertEqual(a.body, data)
        self.assertEqual(self.request("DELETE", key).status, 204)

    def census(self):
        return fd_census(self.s.proc.pid, self.s.port, self.relay_port)

    def setUp(self):
        self.settle_fds()
        self.fds_before = self.census()

    def settle_fds(self):
        """Waits until no client connection is open on s3seal (s3seal saw
        every one of them close) but the boto3 client's kept-alive one."""
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.census()[1] <= 1:
                return
            time.sleep(0.1)

    def check_after(self):
        """The server still serves, and holds no more descriptors than
        before the case once its connections have settled."""
        self.assert_serving()
        deadline = time.time() + 10
        while True:
            self.settle_fds()
            after = self.census()
            before = self.fds_before
            # Pooled backend connections may come and go; a leaked transfer
            # or connection shows as a descriptor that stays.
            if after[2] <= before[2] and after[1] <= 1 and after[0] <= max(before[0], 4):
                return
            if time.time() > deadline:
                self.fail(f"descriptors before {before}, after {after} "
                          "(backend sockets, client sockets, other)")
            time.sleep(0.2)


class BackendFaultTest(FaultCase):
    """The backend cut off or stalled, and the client gone, mid-transfer."""

    @classmethod
    def setUpClass(cls):
        cls.relay = FaultProxy()
        cls.relay_port = cls.relay.port
        cls.bucket = new_bucket_name("faults")
        cls.s = S3Seal(backend=cls.relay.endpoint, extra_yaml=LIMITS).start()
        cls.c = cls.s.client()
        cls.b = backend_client()
        cls.c.create_bucket(Bucket=cls.bucket)
        cls.data = os.urandom(BODY)
        cls.big = os.urandom(8 * MIB + 17)
        cls.c.put_object(Bucket=cls.bucket, Key="src-plain", Body=cls.data)
        cls.c.put_object(Bucket=cls.bucket, Key="src-enc", Body=cls.data,
                         ServerSideEncryption="AES256")
        cls.c.put_object(Bucket=cls.bucket, Key="big-plain", Body=cls.big)
        cls.c.put_object(Bucket=cls.bucket, Key="big-enc", Body=cls.big,
                         ServerSideEncryption="AES256")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.relay.clear()
            empty_and_delete(cls.b, cls.bucket)
        finally:
            try:
                cls.s.stop()
            finally:
                cls.relay.close()

    def tearDown(self):
        self.relay.clear()

    # ------------------------------------------------------------ PutObject

    def put_cases(self):
        for sse in (None, "AES256"):
            for kind, how, direction, after in (("cut", "rst", UP, MIB), ("cut", "fin", UP, MIB),
                                                ("cut", "rst", DOWN, 0), ("stall", None, UP, MIB),
                                                ("stall", None, DOWN, 0)):
                yield sse, kind, how, direction, after

    def test_put_backend_fails(self):
        for i, (sse, kind, how, direction, after) in enumerate(self.put_cases()):
            with self.subTest(sse=sse, kind=kind, how=how, direction=direction):
                self.setUp()
                key = f"put-{i}"
                hdr = {"x-amz-server-side-encryption": sse} if sse else {}
                self.relay.arm(kind, direction, after, how=how or "rst")
                t = time.monotonic()
                a = self.request("PUT", key, hdr, self.data)
                took = time.monotonic() - t
                self.assertGreater(self.relay.triggered(), 0)
                self.relay.clear()
                self.assert_backend_error(a)
                if kind == "stall":
                    self.assertIn(a.status, (503, 504), a)
                    self.assertLess(took, 20)
                if direction == UP:
                    self.assert_no_object(key)
                else:
                    self.assert_whole_or_none(key, self.data, sse)
                self.check_after()

    def test_put_over_previous_version(self):
        """A failed overwrite leaves the previous object as it was."""
        key = "overwrite"
        old = os.urandom(MIB + 3)
        self.c.put_object(Bucket=self.bucket, Key=key, Body=old, ServerSideEncryption="AES256")
        self.setUp()
        for kind in ("cut", "stall"):
            with self.subTest(kind=kind):
                self.relay.arm(kind, UP, MIB)
                a = self.request("PUT", key, {"x-amz-server-side-encryption": "AES256"},
                                 self.data)
                self.relay.clear()
                self.assert_backend_error(a)
                self.assert_no_object(key, previous=old)
                self.assert_ciphertext(key, old)
        self.check_after()

    # ------------------------------------------------------------ multipart

    def start_upload(self, key, sse):
        extra = {"ServerSideEncryption": sse} if sse else {}
        return self.c.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)["UploadId"]

    def test_upload_part_backend_fails(self):
        part = os.urandom(PART)
        for sse in (None, "AES256"):
            for kind, how in (("cut", "rst"), ("cut", "fin"), ("stall", None)):
                with self.subTest(sse=sse, kind=kind, how=how):
                    self.setUp()
                    key = f"mpu-part-{sse}-{kind}-{how}"
                    uid = self.start_upload(key, sse)
                    q = f"partNumber=1&uploadId={urllib.parse.quote(uid, safe='')}"
                    self.relay.arm(kind, UP, 2 * MIB, how=how or "rst")
                    a = self.request("PUT", key, {}, part, query=q)
                    self.relay.clear()
                    self.assert_backend_error(a)
                    # No part was stored: the upload can still be completed
                    # with a good part 1, and it is that part that is read.
                    parts = self.c.list_parts(Bucket=self.bucket, Key=key, UploadId=uid)
                    self.assertEqual(parts.get("Parts", []), [])
                    good = os.urandom(MIB)
                    etag = self.c.upload_part(Bucket=self.bucket, Key=key, UploadId=uid,
                                              PartNumber=1, Body=good)["ETag"]
                    self.c.complete_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=uid,
                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
                    got = self.c.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    self.assertEqual(got, good)
                    if sse:
                        self.assert_ciphertext(key, good)
                    self.check_after()

    def test_complete_backend_fails(self):
        part = os.urandom(PART)
        cases = [(sse, kind, direction, after)
                 for sse in (None, "AES256")
                 for kind, direction, after in (("cut", UP, 50), ("cut", UP, 700),
                                                ("cut", DOWN, 0), ("cut", DOWN, 300),
                                                ("stall", UP, 50), ("stall", DOWN, 0))]
        for sse, kind, direction, after in cases:
            with self.subTest(sse=sse, kind=kind, direction=direction, after=after):
                self.setUp()
                key = f"mpu-complete-{sse}-{kind}-{direction}-{after}"
                uid = self.start_upload(key, sse)
                etags = []
                for n in (1, 2):
                    etags.append(self.c.upload_part(Bucket=self.bucket, Key=key, UploadId=uid,
                                                    PartNumber=n, Body=part)["ETag"])
                doc = "<CompleteMultipartUpload>" + "".join(
                    f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
                    for n, e in zip((1, 2), etags)) + "</CompleteMultipartUpload>"
                q = f"uploadId={urllib.parse.quote(uid, safe='')}"
                self.relay.arm(kind, direction, after)
                a = self.request("POST", key, {}, doc.encode(), query=q)
                self.relay.clear()
                self.assertIsNotNone(a.status, a)
                if a.status == 200 and a.complete:
                    # libcurl sends a request again on a fresh connection
                    # when a reused one dies before any of its body left:
                    # then the upload is complete, and must be whole.
                    self.assertTrue(backend_has(self.bucket, key), a)
                elif a.status != 200:
                    self.assert_backend_error(a)
                if backend_has(self.bucket, key):
                    self.assert_whole_or_none(key, part + part, sse)
                else:
                    self.c.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)
                self.check_after()

    # ------------------------------------------------------------ GetObject

    def test_get_backend_fails(self):
        for key in ("big-plain", "big-enc"):
            for rng in (None, "bytes=1000-6000000", "bytes=-3000000"):
                for kind, how, after in (("cut", "rst", 2 * MIB), ("cut", "fin", 2 * MIB),
                                         ("cut", "rst", 100), ("stall", None, 2 * MIB),
                                         ("stall", None, 0)):
                    with self.subTest(key=key, range=rng, kind=kind, how=how, after=after):
                        self.setUp()
                        self.relay.arm(kind, DOWN, after, how=how or "rst")
                        t = time.monotonic()
                        a = self.request("GET", key, {"Range": rng} if rng else {})
                        took = time.monotonic() - t
                        self.relay.clear()
                        self.assertGreater(self.relay.triggered(), 0)
                        self.assert_failed(a, self.big)
                        if a.status in (200, 206):
                            # What arrived is a true prefix of the object.
                            start = 0
                            if rng == "bytes=1000-6000000":
                                start = 1000
                            elif rng:
                                start = len(self.big) - 3000000
                            self.assertEqual(a.body, self.big[start:start + len(a.body)])
                        self.assertLess(took, 20)
                        self.check_after()

    # ----------------------------------------------------------- CopyObject

    def test_streamed_copy_backend_fails(self):
        """A plain source copied into an encrypted object is read, encrypted
        and written by s3seal: cut or stall its source read or its write."""
        for kind, how, direction, after in (("cut", "rst", DOWN, MIB), ("cut", "fin", DOWN, MIB),
                                            ("cut", "rst", UP, MIB), ("cut", "fin", UP, MIB),
                                            ("stall", None, DOWN, MIB), ("stall", None, UP, MIB)):
            with self.subTest(kind=kind, how=how, direction=direction):
                self.setUp()
                key = f"copy-{kind}-{how}-{direction}"
                self.relay.arm(kind, direction, after, how=how or "rst")
                a = self.request("PUT", key, {"x-amz-copy-source": f"/{self.bucket}/src-plain",
                                              "x-amz-server-side-encryption": "AES256"})
                self.relay.clear()
                self.assertGreater(self.relay.triggered(), 0)
                self.assert_backend_error(a)
                self.assert_no_object(key)
                self.check_after()

    # --------------------------------------------------------- client gone

    def raw_put_then_vanish(self, key, sse, sent, rst):
        url = f"{self.s.endpoint}/{self.bucket}/{key}"
        hdr = {"content-length": str(len(self.data))}
        if sse:
            hdr["x-amz-server-side-encryption"] = sse
        h = sign_v4("PUT", url, hdr, "UNSIGNED-PAYLOAD", self.s.access_key, self.s.secret_key)
        sock = socket.create_connection(("127.0.0.1", self.s.port))
        head = f"PUT /{self.bucket}/{key} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        sock.sendall(head.encode() + self.data[:sent])
        time.sleep(0.3)
        if rst:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def test_client_gone_mid_upload(self):
        for sse in (None, "AES256"):
            for rst in (False, True):
                for sent in (1000, 2 * MIB):
                    with self.subTest(sse=sse, rst=rst, sent=sent):
                        self.setUp()
                        key = f"gone-up-{sse}-{rst}-{sent}"
                        self.raw_put_then_vanish(key, sse, sent, rst)
                        time.sleep(0.5)
                        self.check_after()
                        self.assert_no_object(key)
                        # Nor is an upload left that could still complete.
                        ups = self.b.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
                        self.assertEqual(ups.get("Uploads", []), [])

    def test_client_gone_mid_upload_part(self):
        for rst in (False, True):
            with self.subTest(rst=rst):
                self.setUp()
                key = f"gone-part-{rst}"
                uid = self.start_upload(key, "AES256")
                url = (f"{self.s.endpoint}/{self.bucket}/{key}?partNumber=1&uploadId="
                       f"{urllib.parse.quote(uid, safe='')}")
                h = sign_v4("PUT", url, {"content-length": str(PART)}, "UNSIGNED-PAYLOAD",
                            self.s.access_key, self.s.secret_key)
                sock = socket.create_connection(("127.0.0.1", self.s.port))
                path = url[len(self.s.endpoint):]
                head = f"PUT {path} HTTP/1.1\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
                sock.sendall(head.encode() + os.urandom(2 * MIB))
                time.sleep(0.3)
                if rst:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                time.sleep(0.5)
                self.check_after()
                parts = self.c.list_parts(Bucket=self.bucket, Key=key, UploadId=uid)
                self.assertEqual(parts.get("Parts", []), [])
                self.c.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)

    def test_client_gone_mid_download(self):
        for key in ("big-plain", "big-enc"):
            for rst in (False, True):
                for rng in (None, "bytes=100-7000000"):
                    with self.subTest(key=key, rst=rst, range=rng):
                        self.setUp()
                        url = f"{self.s.endpoint}/{self.bucket}/{key}"
                        hdr = {"range": rng} if rng else {}
                        h = sign_v4("GET", url, hdr, hashlib.sha256(b"").hexdigest(),
                                    self.s.access_key, self.s.secret_key)
                        sock = socket.create_connection(("127.0.0.1", self.s.port))
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                        head = f"GET /{self.bucket}/{key} HTTP/1.1\r\n" + "".join(
                            f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
                        sock.sendall(head.encode())
                        got = 0
                        while got < MIB:
                            chunk = sock.recv(65536)
                            self.assertTrue(chunk)
                            got += len(chunk)
                        time.sleep(0.3)  # s3seal's queue fills: the client reads no more
                        if rst:
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                            struct.pack("ii", 1, 0))
                        sock.close()
                        self.check_after()

    def test_backend_refuses_connections(self):
        """Every connection to the backend is reset (the backend is down):
        each request gets an error, and service resumes when it is back."""
        self.relay.cut_all()
        self.relay.arm("refuse")
        for method, key, hdr, body in (("GET", "src-plain", {}, b""),
                                       ("GET", "big-enc", {}, b""),
                                       ("PUT", "refused", {}, self.data),
                                       ("PUT", "refused-enc",
                                        {"x-amz-server-side-encryption": "AES256"}, self.data)):
            with self.subTest(method=method, key=key):
                a = self.request(method, key, hdr, body)
                self.assert_backend_error(a)
        self.relay.clear()
        self.assert_no_object("refused")
        self.assert_no_object("refused-enc")
        self.check_after()


class Locker:
    """Another process's exclusive SQLite lock on the keystore (what a
    long `s3seal keys` transaction or a stuck second server would hold)."""

    def __init__(self, path):
        self.proc = subprocess.Popen(
            ["python3", "-c",
             "import sqlite3, sys\n"
             "db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
             "db.execute('BEGIN EXCLUSIVE')\n"
             "print('locked', flush=True)\n"
             "sys.stdin.read()\n"
             "db.execute('ROLLBACK')\n", path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if line.strip() != b"locked":
            raise RuntimeError("could not lock the keystore")

    def release(self):
        self.proc.stdin.close()
        self.proc.wait(30)
        self.proc.stdout.close()


KMS_ERRORS = {500: ("InternalError", "KMS.KMSInternalException"), 503: ("ServiceUnavailable",)}


class KeystoreFaultTest(FaultCase):
    """The keystore locked or unreadable, the audit log's file system full:
    the operations that need them fail closed with a 500, the others go on."""

    @classmethod
    def setUpClass(cls):
        # No relay here: the sockets to the backend are s3seal's pool.
        cls.relay_port = urllib.parse.urlsplit(os.environ["S3_ENDPOINT"]).port
        cls.tmp = tempfile.mkdtemp(prefix="s3seal-faults-")
        cls.audit_dir = os.path.join(cls.tmp, "audit")
        os.mkdir(cls.audit_dir)
        cls.mounted = False
        cls.mount_error = None
        if os.geteuid() == 0:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", cls.audit_dir],
                               capture_output=True)
            cls.mounted = r.returncode == 0
            cls.mount_error = r.stderr.decode(errors="replace").strip()
        else:
            # Mounting needs a mount namespace that s3seal would have to run
            # in as well; without root the audit case is skipped.
            cls.mount_error = "not root: no small file system can be mounted for the audit log"
        cls.audit_log = os.path.join(cls.audit_dir, "audit.jsonl")
        cls.bucket = new_bucket_name("ksfaults")
        # A wait for the backend shorter than the keystore's own wait for a
        # lock (five seconds): keystore work is not timed as a backend
        # answer (no 504 for it, and nothing applied after an error).
        cls.s = S3Seal(extra_yaml=f"audit_log: {cls.audit_log}\nlimits:\n"
                                  f"  backend_timeout_ms: 2000\n",
                       keystore_extra="dek_cache_seconds: 0\n").start()
        cls.keystore = os.path.join(cls.s.dir, "keystore.db")
        cls.c = cls.s.client()
        cls.b = backend_client()
        cls.c.create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        try:
            empty_and_delete(cls.b, cls.bucket)
            cls.s.stop()
        finally:
            if cls.mounted:
                subprocess.run(["umount", "-l", cls.audit_dir])
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def assert_keystore_error(self, a):
        self.assertIn(a.status, KMS_ERRORS, a)
        self.assertTrue(a.complete, a)
        self.assertIn(a.code(), KMS_ERRORS[a.status], a)

    def test_keystore_locked(self):
        """Writes to the keystore wait for the lock for a bounded time, then
        fail closed; nothing is stored; reads and other requests are served
        meanwhile; everything works again once the lock is gone."""
        enc = self.bucket
        data = os.urandom(300 * 1024)
        self.c.put_object(Bucket=enc, Key="plain-before", Body=data)
        locker = Locker(self.keystore)
        try:
            results = {}

            def attempt(name, *args, **kw):
                t = time.monotonic()
                results[name] = (self.request(*args, **kw), time.monotonic() - t)

            doc = (b'<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>'
                   b'<SSEAlgorithm>aws:kms</SSEAlgorithm></ApplyServerSideEncryptionByDefault>'
                   b'</Rule></ServerSideEncryptionConfiguration>')
            md5 = base64.b64encode(hashlib.md5(doc).digest()).decode()
            workers = [
                threading.Thread(target=attempt, args=(
                    "kms-put", "PUT", "kms-locked", {"x-amz-server-side-encryption": "aws:kms"},
                    data)),
                # PutBucketEncryption is stored in the keystore.
                threading.Thread(target=attempt, args=(
                    "bucket-enc", "PUT", "", {"content-md5": md5}, doc),
                    kwargs={"query": "encryption="}),
                # An encrypted multipart upload is entered in the registry.
                threading.Thread(target=attempt, args=(
                    "mpu", "POST", "mpu-locked", {"x-amz-server-side-encryption": "AES256"}),
                    kwargs={"query": "uploads="}),
            ]
            for w in workers:
                w.start()
            # Meanwhile the server answers everything else at once.
            time.sleep(0.5)
            t = time.monotonic()
            a = self.request("GET", "plain-before")
            self.assertEqual((a.status, a.body), (200, data))
            self.assertLess(time.monotonic() - t, 2.0, "a plain GET waited for the keystore")
            for w in workers:
                w.join(60)
            for name, (a, took) in results.items():
                self.assertLess(took, 20, name)
        finally:
            locker.release()
        # PutBucketEncryption is a keystore write: refused, and not applied.
        self.assert_keystore_error(results["bucket-enc"][0])
        with self.assertRaises(botocore.exceptions.ClientError):
            self.c.get_bucket_encryption(Bucket=self.bucket)
        # The account's KMS key exists from the start, and a data key is no
        # keystore write: the PUT may succeed, with ciphertext stored; if it
        # fails, nothing is stored.
        a = results["kms-put"][0]
        if a.status == 200:
            self.assert_ciphertext("kms-locked", data)
        else:
            self.assert_keystore_error(a)
            self.assertFalse(backend_has(self.bucket, "kms-locked"))
        # An encrypted upload's id carries what s3seal needs (the registry
        # only serves ids without s3seal's part): it may start without its
        # record, and then takes only ciphertext.
        a = results["mpu"][0]
        if a.status == 200:
            uid = ET.fromstring(a.body).findtext("{*}UploadId")
            part = os.urandom(MIB)
            etag = self.c.upload_part(Bucket=self.bucket, Key="mpu-locked", UploadId=uid,
                                      PartNumber=1, Body=part)["ETag"]
            self.c.complete_multipart_upload(
                Bucket=self.bucket, Key="mpu-locked", UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
            self.assert_ciphertext("mpu-locked", part)
        else:
            self.assert_keystore_error(a)
        # The lock is gone: the same operations work.
        self.c.put_object(Bucket=self.bucket, Key="kms-after", Body=data,
                          ServerSideEncryption="aws:kms")
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="kms-after")["Body"].read(),
                         data)
        self.assert_ciphertext("kms-after", data)
        uid = self.c.create_multipart_upload(Bucket=self.bucket, Key="mpu-after",
                                             ServerSideEncryption="AES256")["UploadId"]
        self.c.abort_multipart_upload(Bucket=self.bucket, Key="mpu-after", UploadId=uid)
        self.check_after()

    def test_keystore_unreadable_at_start(self):
        """A keystore that cannot be read stops s3seal at start with a clear
        message, never a server that runs without its keys. Unreadable by
        mode only when not root (root reads a file whatever its mode, as in
        CI); a directory in its place and a file with a corrupt header are
        unreadable to everyone."""
        for how in ("mode", "directory", "corrupt"):
            with self.subTest(how=how):
                if how == "mode" and os.geteuid() == 0:
                    continue  # root reads it anyway: covered by the two others
                s = S3Seal()
                try:
                    subprocess.run([s.bin, "-c", s.config, "keystore", "init"], check=True,
                                   capture_output=True)
                    path = os.path.join(s.dir, "keystore.db")
                    if how == "mode":
                        os.chmod(path, 0)
                    elif how == "directory":
                        os.unlink(path)
                        os.mkdir(path)
                    else:
                        with open(path, "r+b") as f:
                            f.write(os.urandom(100))
                    r = subprocess.run([s.bin, "serve", "-c", s.config], capture_output=True,
                                       timeout=60)
                    out = (r.stdout + r.stderr).decode("utf-8", "replace")
                    self.assertNotEqual(r.returncode, 0, out)
                    self.assertLess(r.returncode, 128, f"s3seal died of a signal:\n{out}")
                    self.assertIn("keystore", out.lower())
                    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                   "runtime error:"):
                        self.assertNotIn(marker, out)
                    self.assertNotIn("listening on", out)
                finally:
                    shutil.rmtree(s.dir, ignore_errors=True)

    def test_audit_log_disk_full(self):
        if not self.mounted:
            self.skipTest(f"cannot mount a 64 KiB tmpfs for the audit log: {self.mount_error}")
        data = os.urandom(100 * 1024)
        self.c.put_object(Bucket=self.bucket, Key="kms-before", Body=data,
                          ServerSideEncryption="aws:kms")
        filler = os.path.join(self.audit_dir, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 512) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        try:
            with self.subTest(op="put"):
                # The log's last page may still hold a few records: the
                # writes go on until one fails, and from then on all do.
                for i in range(40):
                    key = f"kms-full-{i}"
                    a = self.request("PUT", key, {"x-amz-server-side-encryption": "aws:kms"},
                                     data)
                    if a.status != 200:
                        break
                    self.assert_ciphertext(key, data)
                self.assertEqual((a.status, a.code()), (500, "KMS.KMSInternalException"), a)
                self.assertFalse(backend_has(self.bucket, key))
                a = self.request("PUT", "kms-full", {"x-amz-server-side-encryption": "aws:kms"},
                                 data)
                self.assertEqual((a.status, a.code()), (500, "KMS.KMSInternalException"), a)
                self.assertFalse(backend_has(self.bucket, "kms-full"))
            with self.subTest(op="get"):
                a = self.request("GET", "kms-before")
                self.assertEqual((a.status, a.code()), (500, "KMS.KMSInternalException"), a)
                self.assertNotIn(data[:64], a.body)
            # Requests that use no KMS key are served.
            self.assert_serving()
        finally:
            os.unlink(filler)
        # Room again: KMS requests work, and the trail is whole.
        self.c.put_object(Bucket=self.bucket, Key="kms-full", Body=data,
                          ServerSideEncryption="aws:kms")
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="kms-full")["Body"].read(),
                         data)
        v = self.s.cli("audit", "verify", self.audit_log)
        self.assertEqual(v.returncode, 0, v.stderr)
        self.check_after()


if __name__ == "__main__":
    unittest.main()
