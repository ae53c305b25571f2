"""SSE-S3 for single PUTs, end to end against the real backend: what lands
on the backend is ciphertext of the documented size with s3seal's metadata;
GET and HEAD give back the plaintext and its size; Range GETs at every
segment edge; bucket defaults and required encryption; tampered, moved and
truncated objects never yield altered plaintext; root key rotation while
running; the standalone decrypt command; and what s3seal refuses instead of
doing wrongly. Multipart uploads and copies that re-encrypt have files of
their own (test_sse_multipart, test_sse_copy)."""

import hashlib
import json
import os
import subprocess
import time
import unittest

import botocore

from harness import (S3Seal, backend_client, backend_has, empty_and_delete, new_bucket_name,
                     raw_request, sign_v4)

SEG = 65536
TAG = 16


def cipher_size(n):
    segments = max(1, -(-n // SEG))
    return n + TAG * segments


class SseS3Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket_name("sse")
        cls.default_bucket = new_bucket_name("ssedef")
        cls.strict_bucket = new_bucket_name("ssereq")
        cls.chacha_bucket = new_bucket_name("ssechacha")
        cls.s = S3Seal(extra_yaml=f"""buckets:
  {cls.default_bucket}:
    default_encryption: AES256
  {cls.strict_bucket}:
    default_encryption: none
    require_encryption: true
""").start()
        cls.c = cls.s.client()
        for b in (cls.bucket, cls.default_bucket, cls.strict_bucket, cls.chacha_bucket):
            cls.c.create_bucket(Bucket=b)

    @classmethod
    def tearDownClass(cls):
        for b in (cls.bucket, cls.default_bucket, cls.strict_bucket, cls.chacha_bucket):
            empty_and_delete(backend_client(), b)
        cls.s.stop()

    def put(self, key, data, bucket=None, **kw):
        return self.c.put_object(Bucket=bucket or self.bucket, Key=key, Body=data,
                                 ServerSideEncryption="AES256", **kw)

    def assert_ciphertext_on_backend(self, key, data, bucket=None):
        raw = backend_client().get_object(Bucket=bucket or self.bucket, Key=key)
        body = raw["Body"].read()
        self.assertEqual(len(body), cipher_size(len(data)))
        if len(data) >= 16:
            self.assertNotIn(data[:16], body)
        self.assertEqual(raw["Metadata"].get("s3seal-alg"), "AES-256-GCM")
        self.assertTrue(raw["Metadata"].get("s3seal-key", "").startswith("sse-s3:"))
        self.assertIn("s3seal-dek", raw["Metadata"])
        return raw, body

    def test_round_trips_at_size_edges(self):
        for n in (0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG + 5):
            data = os.urandom(n)
            key = f"edge-{n}"
            r = self.put(key, data)
            self.assertEqual(r["ServerSideEncryption"], "AES256")
            self.assert_ciphertext_on_backend(key, data)
            got = self.c.get_object(Bucket=self.bucket, Key=key)
            self.assertEqual(got["Body"].read(), data, n)
            self.assertEqual(got["ServerSideEncryption"], "AES256")
            head = self.c.head_object(Bucket=self.bucket, Key=key)
            self.assertEqual(head["ContentLength"], n)
            self.assertEqual(head["ServerSideEncryption"], "AES256")
            self.assertEqual(head["Metadata"], {})

    def test_slow_and_stalling_readers(self):
        """Readers slower than the backend: s3seal's write queue fills, the
        backend transfer pauses and resumes, and every byte arrives in
        order; a reader that stalls mid-object still gets the rest. Plain
        and encrypted objects, whole and ranged."""
        data = os.urandom(24 * 1024 * 1024 + 12345)
        self.put("slow-enc", data)
        self.c.put_object(Bucket=self.bucket, Key="slow-plain", Body=data)
        self.assert_ciphertext_on_backend("slow-enc", data)
        for key in ("slow-enc", "slow-plain"):
            for rng, want in ((None, data), (f"bytes={SEG - 3}-{20 * 1024 * 1024}",
                                             data[SEG - 3:20 * 1024 * 1024 + 1])):
                kw = {"Range": rng} if rng else {}
                body = self.c.get_object(Bucket=self.bucket, Key=key, **kw)["Body"]
                got = bytearray()
                n = 0
                while True:
                    piece = body.read(200 * 1024)
                    if not piece:
                        break
                    got += piece
                    n += 1
                    if n % 8 == 0:
                        time.sleep(0.02)
                    if n == 40:
                        time.sleep(1.5)  # a stall far past any one write
                self.assertEqual(len(got), len(want), (key, rng))
                self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(want).digest(),
                                 (key, rng))

    def test_ranges(self):
        n = 5 * SEG + 123
        data = os.urandom(n)
        self.put("ranged", data, Metadata={"user": "meta"})
        points = [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG + 7, 5 * SEG, n - 2, n - 1]
        for a in points:
            for b in points:
                if b < a:
                    continue
                r = self.c.get_object(Bucket=self.bucket, Key="ranged", Range=f"bytes={a}-{b}")
                self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 206)
                self.assertEqual(r["ContentRange"], f"bytes {a}-{b}/{n}")
                self.assertEqual(r["Body"].read(), data[a:b + 1], (a, b))
        for rng, lo, hi in (("bytes=70000-", 70000, n - 1), ("bytes=-1", n - 1, n - 1),
                            ("bytes=-70000", n - 70000, n - 1), ("bytes=-999999999", 0, n - 1),
                            (f"bytes=100-{n + 500}", 100, n - 1)):
            r = self.c.get_object(Bucket=self.bucket, Key="ranged", Range=rng)
            self.assertEqual(r["ContentRange"], f"bytes {lo}-{hi}/{n}", rng)
            self.assertEqual(r["Body"].read(), data[lo:hi + 1], rng)
        # HEAD with a Range answers for the plaintext too.
        h = self.c.head_object(Bucket=self.bucket, Key="ranged", Range=f"bytes={SEG}-{SEG + 9}")
        self.assertEqual(h["ResponseMetadata"]["HTTPStatusCode"], 206)
        self.assertEqual(h["ContentLength"], 10)
        self.assertEqual(h["ContentRange"], f"bytes {SEG}-{SEG + 9}/{n}")
        for rng in (f"bytes={n}-", f"bytes={n + SEG}-{n + 2 * SEG}", "bytes=-0"):
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                self.c.get_object(Bucket=self.bucket, Key="ranged", Range=rng)
            self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 416, rng)
            self.assertEqual(e.exception.response["Error"]["Code"], "InvalidRange")

    def test_bucket_default_and_required(self):
        data = b"legacy uploader, no SSE header" * 100
        self.c.put_object(Bucket=self.default_bucket, Key="plain-put", Body=data)
        self.assert_ciphertext_on_backend("plain-put", data, bucket=self.default_bucket)
        self.assertEqual(self.c.get_object(Bucket=self.default_bucket, Key="plain-put")
                         ["Body"].read(), data)
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.put_object(Bucket=self.strict_bucket, Key="refused", Body=b"x")
        self.assertEqual(e.exception.response["Error"]["Code"], "AccessDenied")
        self.assertFalse(backend_has(self.strict_bucket, "refused"))
        self.put("accepted", b"x", bucket=self.strict_bucket)
        self.assertEqual(self.c.get_object(Bucket=self.strict_bucket, Key="accepted")
                         ["Body"].read(), b"x")

    def test_listings_report_plaintext_sizes(self):
        sizes = {"l/a": 0, "l/b": 1, "l/c": SEG, "l/d": 3 * SEG + 5}
        for key, n in sizes.items():
            self.c.put_object(Bucket=self.default_bucket, Key=key, Body=os.urandom(n))
        v2 = self.c.list_objects_v2(Bucket=self.default_bucket, Prefix="l/")["Contents"]
        self.assertEqual({o["Key"]: o["Size"] for o in v2}, sizes)
        v1 = self.c.list_objects(Bucket=self.default_bucket, Prefix="l/")["Contents"]
        self.assertEqual({o["Key"]: o["Size"] for o in v1}, sizes)
        vs = self.c.list_object_versions(Bucket=self.default_bucket, Prefix="l/")["Versions"]
        self.assertEqual({o["Key"]: o["Size"] for o in vs}, sizes)
        # The backend itself holds the ciphertext sizes.
        raw = backend_client().list_objects_v2(Bucket=self.default_bucket, Prefix="l/")["Contents"]
        self.assertEqual({o["Key"]: o["Size"] for o in raw},
                         {k: cipher_size(n) for k, n in sizes.items()})
        # aws-cli agrees.
        ls = self.s.aws("s3", "ls", f"s3://{self.default_bucket}/l/").stdout.decode()
        self.assertIn(f" {3 * SEG + 5} d", ls)

    def test_plain_objects_are_served_as_stored(self):
        data = os.urandom(200_000)
        backend_client().put_object(Bucket=self.bucket, Key="pre-existing", Body=data)
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="pre-existing")["Body"].read(),
                         data)
        r = self.c.get_object(Bucket=self.bucket, Key="pre-existing", Range="bytes=70000-70009")
        self.assertEqual(r["Body"].read(), data[70000:70010])
        self.assertNotIn("ServerSideEncryption", r)

    def test_tampering_is_detected(self):
        data = os.urandom(3 * SEG)
        b = backend_client()

        def stored(key):
            self.put(key, data)
            raw, body = self.assert_ciphertext_on_backend(key, data)
            return raw["Metadata"], body

        def fails_cleanly(key):
            got = b""
            with self.assertRaises(Exception):
                r = self.c.get_object(Bucket=self.bucket, Key=key)
                got = r["Body"].read()
                self.assertEqual(len(got), len(data))  # a short response is an error too
            # Never altered plaintext: at most a verified prefix.
            self.assertTrue(data.startswith(got), key)

        # One flipped bit in the middle segment, written back in place.
        meta, body = stored("flipped")
        bad = bytearray(body)
        bad[SEG + 100] ^= 1
        b.put_object(Bucket=self.bucket, Key="flipped", Body=bytes(bad), Metadata=meta)
        fails_cleanly("flipped")
        # A range that needs only the intact first segment is still served.
        r = self.c.get_object(Bucket=self.bucket, Key="flipped", Range="bytes=0-99")
        self.assertEqual(r["Body"].read(), data[:100])
        # A range inside the flipped segment: refused with an error answer,
        # since not a byte (not even the head) has left when its tag fails.
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.get_object(Bucket=self.bucket, Key="flipped",
                              Range=f"bytes={SEG}-{SEG + 99}")["Body"].read()
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        self.assertEqual(e.exception.response["Error"]["Code"], "InternalError")

        # Truncated after the first segment, and the last segment swapped in.
        meta, body = stored("short")
        b.put_object(Bucket=self.bucket, Key="short", Body=body[:SEG + TAG], Metadata=meta)
        fails_cleanly("short")
        meta, body = stored("swapped")
        cs = SEG + TAG
        b.put_object(Bucket=self.bucket, Key="swapped",
                     Body=body[cs:2 * cs] + body[:cs] + body[2 * cs:], Metadata=meta)
        fails_cleanly("swapped")

        # The same ciphertext and metadata under another name: the data key is
        # bound to the name, so it is refused before any byte.
        meta, body = stored("original")
        b.put_object(Bucket=self.bucket, Key="moved", Body=body, Metadata=meta)
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.get_object(Bucket=self.bucket, Key="moved")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="original")["Body"].read(), data)

    def test_empty_object_tag_is_checked_before_the_answer(self):
        # An empty object's ciphertext is its one segment's tag. Any 16 bytes
        # in its place under the real metadata must not pass for the empty
        # object: the tag is checked before the head leaves, so the client
        # gets 500 InternalError, not 200 with Content-Length 0.
        b = backend_client()
        self.put("empty", b"")
        raw, body = self.assert_ciphertext_on_backend("empty", b"")
        self.assertEqual(len(body), TAG)
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="empty")["Body"].read(), b"")
        forged = os.urandom(TAG)
        b.put_object(Bucket=self.bucket, Key="empty", Body=forged, Metadata=raw["Metadata"])
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.get_object(Bucket=self.bucket, Key="empty")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        self.assertEqual(e.exception.response["Error"]["Code"], "InternalError")
        # Truncated to nothing at all: refused too.
        b.put_object(Bucket=self.bucket, Key="empty", Body=b"", Metadata=raw["Metadata"])
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.get_object(Bucket=self.bucket, Key="empty")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        # s3seal is still serving.
        self.put("empty", b"")
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="empty")["Body"].read(), b"")

    def test_copies_rewrap_the_key(self):
        data = os.urandom(2 * SEG + 3)
        self.put("copy-src", data, Metadata={"colour": "blue"}, ContentType="text/x-src")
        src_meta = backend_client().head_object(Bucket=self.bucket, Key="copy-src")["Metadata"]
        # COPY directive: same data and metadata, a key wrapped for the new name.
        r = self.c.copy_object(Bucket=self.bucket, Key="copy-dst",
                               CopySource={"Bucket": self.bucket, "Key": "copy-src"})
        self.assertEqual(r["ServerSideEncryption"], "AES256")
        got = self.c.get_object(Bucket=self.bucket, Key="copy-dst")
        self.assertEqual(got["Body"].read(), data)
        self.assertEqual(got["Metadata"], {"colour": "blue"})
        self.assertEqual(got["ContentType"], "text/x-src")
        raw, body = self.assert_ciphertext_on_backend("copy-dst", data)
        self.assertNotEqual(raw["Metadata"]["s3seal-dek"], src_meta["s3seal-dek"])
        self.assertEqual(body, backend_client().get_object(Bucket=self.bucket, Key="copy-src")
                         ["Body"].read())  # the ciphertext itself was not rewritten
        # REPLACE directive, into another bucket, with a key name to encode.
        self.c.copy_object(Bucket=self.default_bucket, Key="dir/copied é+1",
                           CopySource={"Bucket": self.bucket, "Key": "copy-src"},
                           MetadataDirective="REPLACE", Metadata={"new": "1"},
                           ContentType="text/x-new")
        got = self.c.get_object(Bucket=self.default_bucket, Key="dir/copied é+1")
        self.assertEqual(got["Body"].read(), data)
        self.assertEqual(got["Metadata"], {"new": "1"})
        self.assertEqual(got["ContentType"], "text/x-new")
        # A copy of a missing source is the backend's NoSuchKey.
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.copy_object(Bucket=self.bucket, Key="x",
                               CopySource={"Bucket": self.bucket, "Key": "missing"})
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchKey")

    def test_chacha20_poly1305_bucket(self):
        """A bucket whose cipher is CHACHA20-POLY1305: single PUTs, multipart
        uploads and ranges round trip, and the backend holds the object
        sealed with it."""
        s = S3Seal(extra_yaml=f"buckets:\n  {self.chacha_bucket}:\n"
                              "    default_encryption: AES256\n"
                              "    cipher: CHACHA20-POLY1305\n").start()
        try:
            c = s.client()
            data = os.urandom(3 * SEG + 5)
            c.put_object(Bucket=self.chacha_bucket, Key="one", Body=data)
            self.assertEqual(c.get_object(Bucket=self.chacha_bucket, Key="one")["Body"].read(),
                             data)
            got = c.get_object(Bucket=self.chacha_bucket, Key="one", Range=f"bytes={SEG - 3}-")
            self.assertEqual(got["Body"].read(), data[SEG - 3:])
            raw = backend_client().get_object(Bucket=self.chacha_bucket, Key="one")
            self.assertEqual(raw["Metadata"]["s3seal-alg"], "CHACHA20-POLY1305")
            self.assertNotIn(data[:64], raw["Body"].read())
            big = os.urandom(5 * 1024 * 1024 + 99)
            uid = c.create_multipart_upload(Bucket=self.chacha_bucket, Key="mp")["UploadId"]
            p1 = c.upload_part(Bucket=self.chacha_bucket, Key="mp", UploadId=uid, PartNumber=1,
                               Body=big[:5 * 1024 * 1024])
            p2 = c.upload_part(Bucket=self.chacha_bucket, Key="mp", UploadId=uid, PartNumber=2,
                               Body=big[5 * 1024 * 1024:])
            c.complete_multipart_upload(
                Bucket=self.chacha_bucket, Key="mp", UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]},
                                           {"PartNumber": 2, "ETag": p2["ETag"]}]})
            got = c.get_object(Bucket=self.chacha_bucket, Key="mp", Range="bytes=5242800-5242900")
            self.assertEqual(got["Body"].read(), big[5242800:5242901])
            self.assertEqual(backend_client().head_object(Bucket=self.chacha_bucket, Key="mp")
                             ["Metadata"]["s3seal-alg"], "CHACHA20-POLY1305")
        finally:
            s.stop()

    def test_refused_combinations(self):
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.put_object(Bucket=self.bucket, Key="x", Body=b"x", ServerSideEncryption="DES")
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidArgument")
        self.assertFalse(backend_has(self.bucket, "x"))

    def test_signed_payload_and_md5_with_encryption(self):
        data = b"signed body" * 5000
        url = f"{self.s.endpoint}/{self.bucket}/signed"
        import base64
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        h = sign_v4("PUT", url, {"x-amz-server-side-encryption": "AES256", "content-md5": md5},
                    hashlib.sha256(data).hexdigest(), self.s.access_key, self.s.secret_key)
        status, headers, _ = raw_request(self.s.endpoint, "PUT", f"/{self.bucket}/signed", h, data)
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("x-amz-server-side-encryption"), "AES256")
        self.assert_ciphertext_on_backend("signed", data)
        bad = sign_v4("PUT", url + "-bad", {"x-amz-server-side-encryption": "AES256"},
                      hashlib.sha256(b"other").hexdigest(), self.s.access_key, self.s.secret_key)
        status, _, _ = raw_request(self.s.endpoint, "PUT", f"/{self.bucket}/signed-bad", bad, data)
        self.assertEqual(status, 400)  # XAmzContentSHA256Mismatch
        self.assertFalse(backend_has(self.bucket, "signed-bad"))

    def test_decrypt_command(self):
        data = os.urandom(2 * SEG + 99)
        self.put("offline", data)
        b = backend_client()
        head = b.head_object(Bucket=self.bucket, Key="offline")
        d = self.s.dir
        with open(os.path.join(d, "head.json"), "w") as f:
            json.dump({"Metadata": head["Metadata"]}, f)
        with open(os.path.join(d, "cipher.bin"), "wb") as f:
            f.write(b.get_object(Bucket=self.bucket, Key="offline")["Body"].read())
        out = os.path.join(d, "plain.bin")
        r = subprocess.run([self.s.bin, "-c", self.s.config, "decrypt", "--bucket", self.bucket,
                            "--key", "offline", "--metadata", os.path.join(d, "head.json"),
                            "--in", os.path.join(d, "cipher.bin"), "--out", out],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), data)
        # Under another name it refuses, and leaves no output behind.
        os.unlink(out)
        r = subprocess.run([self.s.bin, "-c", self.s.config, "decrypt", "--bucket", self.bucket,
                            "--key", "other", "--metadata", os.path.join(d, "head.json"),
                            "--in", os.path.join(d, "cipher.bin"), "--out", out],
                           capture_output=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(os.path.exists(out))

    def test_migrate_command(self):
        objs = {f"mig/{i}": os.urandom(i * SEG + 7 * i) for i in range(3)}
        for k, d in objs.items():
            backend_client().put_object(Bucket=self.bucket, Key=k, Body=d, Metadata={"m": k[-1]},
                                        ContentType="text/x-mig")
        self.put("mig/already", b"encrypted by s3seal")
        cmd = [self.s.bin, "-c", self.s.config, "migrate", f"s3://{self.bucket}/mig/"]
        r = subprocess.run(cmd, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"3 encrypted, 1 already encrypted, 0 failed", r.stdout)
        for k, d in objs.items():
            raw, _ = self.assert_ciphertext_on_backend(k, d)
            self.assertEqual(raw["Metadata"]["m"], k[-1])
            self.assertEqual(raw["ContentType"], "text/x-mig")
            got = self.c.get_object(Bucket=self.bucket, Key=k)
            self.assertEqual(got["Body"].read(), d)
            self.assertEqual(got["Metadata"], {"m": k[-1]})
            # Listed and HEADed as before: the plaintext's size and MD5.
            md5 = f'"{hashlib.md5(d).hexdigest()}"'
            self.assertEqual(got["ETag"], md5)
            listed = self.c.list_objects_v2(Bucket=self.bucket, Prefix=k)["Contents"]
            self.assertEqual([(o["Key"], o["Size"], o["ETag"]) for o in listed],
                             [(k, len(d), md5)])
        r = subprocess.run(cmd, capture_output=True)
        self.assertIn(b"0 encrypted, 4 already encrypted, 0 failed", r.stdout)

    def test_rewrap_command(self):
        objs = {f"rw/{i}": os.urandom(100 + i * SEG) for i in range(3)}
        for k, d in objs.items():
            self.put(k, d, Metadata={"n": k[-1]}, ContentType="text/x-rw")
        backend_client().put_object(Bucket=self.bucket, Key="rw/plain", Body=b"not encrypted")
        before = {k: backend_client().get_object(Bucket=self.bucket, Key=k)["Body"].read()
                  for k in objs}
        old = backend_client().head_object(Bucket=self.bucket, Key="rw/0")["Metadata"]["s3seal-key"]
        subprocess.run([self.s.bin, "-c", self.s.config, "root-key", "rotate"], check=True,
                       capture_output=True)
        cmd = [self.s.bin, "-c", self.s.config, "rewrap", f"s3://{self.bucket}/rw/"]
        r = subprocess.run(cmd, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"3 re-wrapped, 0 already current, 1 not encrypted, 0 SSE-KMS (left as they are), 0 failed", r.stdout)
        new_version = "sse-s3:" + str(int(old.split(":")[1]) + 1)
        for k, d in objs.items():
            raw = backend_client().get_object(Bucket=self.bucket, Key=k)
            self.assertEqual(raw["Metadata"]["s3seal-key"], new_version)
            self.assertEqual(raw["Metadata"]["n"], k[-1])
            self.assertEqual(raw["ContentType"], "text/x-rw")
            self.assertEqual(raw["Body"].read(), before[k])  # data not rewritten
            # Still listed with the plaintext's size and the PUT's ETag.
            listed = self.c.list_objects_v2(Bucket=self.bucket, Prefix=k)["Contents"]
            self.assertEqual([(o["Key"], o["Size"], o["ETag"]) for o in listed],
                             [(k, len(d), f'"{hashlib.md5(d).hexdigest()}"')])
        # Run again: nothing left to do (safe to interrupt and re-run).
        r = subprocess.run(cmd, capture_output=True)
        self.assertIn(b"0 re-wrapped, 3 already current, 1 not encrypted, 0 SSE-KMS (left as they are), 0 failed", r.stdout)
        # The running server picks up the new root key and decrypts.
        deadline = time.time() + 30
        while True:
            try:
                got = self.c.get_object(Bucket=self.bucket, Key="rw/2")["Body"].read()
                break
            except botocore.exceptions.ClientError:
                if time.time() > deadline:
                    raise
                time.sleep(1)
        self.assertEqual(got, objs["rw/2"])

    def test_root_key_rotation_while_running(self):
        old = os.urandom(1000)
        self.put("before-rotation", old)
        before = backend_client().head_object(Bucket=self.bucket,
                                              Key="before-rotation")["Metadata"]["s3seal-key"]
        newest = "sse-s3:" + str(int(before.split(":")[1]) + 1)
        r = subprocess.run([self.s.bin, "-c", self.s.config, "root-key", "rotate"],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        deadline = time.time() + 30
        while time.time() < deadline:
            self.put("after-rotation", b"new")
            meta = backend_client().head_object(Bucket=self.bucket, Key="after-rotation")["Metadata"]
            if meta["s3seal-key"] == newest:
                break
            time.sleep(1)
        self.assertEqual(meta["s3seal-key"], newest)
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="before-rotation")["Body"].read(),
                         old)
        self.assertEqual(backend_client().head_object(Bucket=self.bucket, Key="before-rotation")
                         ["Metadata"]["s3seal-key"], before)


if __name__ == "__main__":
    unittest.main()
