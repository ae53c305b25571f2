"""Streaming uploads as SDKs send them, built here by an independent
implementation of the aws-chunked format: signed chunks, signed trailers,
unsigned trailers, flexible checksums as headers and trailers, and HTTP
chunked bodies with x-amz-decoded-content-length. Each forgery is refused
with AWS's error and leaves nothing on the backend."""

import base64
import datetime
import hashlib
import hmac
import os
import socket
import unittest
import zlib

from harness import (REGION, S3Seal, backend_client, backend_has, empty_and_delete, error_code,
                     new_bucket_name, raw_request, sign_v4)

EMPTY = hashlib.sha256(b"").hexdigest()


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


class Chunker:
    """Signs aws-chunked bodies the way the SDKs do."""

    def __init__(self, secret, when, seed):
        self.when = when
        self.date = when.strftime("%Y%m%d")
        self.amz = when.strftime("%Y%m%dT%H%M%SZ")
        k = hmac.new(("AWS4" + secret).encode(), self.date.encode(), hashlib.sha256).digest()
        for part in (REGION, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        self.key = k
        self.prev = seed

    def _sign(self, algo, tail):
        scope = f"{self.date}/{REGION}/s3/aws4_request"
        sts = "\n".join([algo, self.amz, scope, self.prev, tail])
        self.prev = hmac.new(self.key, sts.encode(), hashlib.sha256).hexdigest()
        return self.prev

    def chunk(self, data):
        sig = self._sign("AWS4-HMAC-SHA256-PAYLOAD", EMPTY + "\n" + hashlib.sha256(data).hexdigest())
        return f"{len(data):x};chunk-signature={sig}\r\n".encode() + data + (b"\r\n" if data else b"")

    def trailer(self, name, value):
        canon = f"{name}:{value}\n"
        sig = self._sign("AWS4-HMAC-SHA256-TRAILER", hashlib.sha256(canon.encode()).hexdigest())
        return f"{name}:{value}\r\nx-amz-trailer-signature:{sig}\r\n\r\n".encode()


class StreamingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal().start()
        cls.bucket = new_bucket_name("stream")
        cls.s.client().create_bucket(Bucket=cls.bucket)
        cls.data = (b"0123456789abcdef" * 4096) + b"tail"  # 64 KiB + 4

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def signed_put(self, key, mode, extra, build):
        """Signs the request headers (seed), then builds the body with `build(chunker)`."""
        when = datetime.datetime.now(datetime.timezone.utc)
        url = f"{self.s.endpoint}/{self.bucket}/{key}"
        headers = {"content-encoding": "aws-chunked",
                   "x-amz-decoded-content-length": str(len(self.data)), **extra}
        h = sign_v4("PUT", url, headers, mode, self.s.access_key, self.s.secret_key, when=when)
        seed = h["authorization"].rsplit("Signature=", 1)[1]
        body = build(Chunker(self.s.secret_key, when, seed))
        return raw_request(self.s.endpoint, "PUT", f"/{self.bucket}/{key}", h, body)

    def check_stored(self, key):
        got = backend_client().get_object(Bucket=self.bucket, Key=key)
        self.assertEqual(got["Body"].read(), self.data)
        self.assertNotIn("aws-chunked", got.get("ContentEncoding") or "")

    def test_signed_chunks(self):
        def body(c):
            return c.chunk(self.data[:65536]) + c.chunk(self.data[65536:]) + c.chunk(b"") + b"\r\n"
        status, _, resp = self.signed_put("signed", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", {}, body)
        self.assertEqual(status, 200, resp)
        self.check_stored("signed")

    def test_signed_chunks_encrypted(self):
        """aws-chunked decoding and SSE-S3 together: the backend gets the
        ciphertext of the decoded body."""
        def body(c):
            return c.chunk(self.data[:65536]) + c.chunk(self.data[65536:]) + c.chunk(b"") + b"\r\n"
        status, headers, resp = self.signed_put("signed-enc", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                                {"x-amz-server-side-encryption": "AES256"}, body)
        self.assertEqual(status, 200, resp)
        self.assertEqual(headers.get("x-amz-server-side-encryption"), "AES256")
        raw = backend_client().get_object(Bucket=self.bucket, Key="signed-enc")
        stored = raw["Body"].read()
        self.assertEqual(len(stored), len(self.data) + 16 * 2)  # two sealed segments
        self.assertNotIn(self.data[:64], stored)
        self.assertEqual(self.s.client().get_object(Bucket=self.bucket, Key="signed-enc")
                         ["Body"].read(), self.data)

    def test_bad_chunk_signature(self):
        def body(c):
            bad = bytearray(c.chunk(self.data[:65536]))
            at = bad.index(b"chunk-signature=") + len(b"chunk-signature=")
            bad[at] = ord("0") if bad[at] != ord("0") else ord("1")  # still 64 hex digits
            return bytes(bad) + c.chunk(self.data[65536:]) + c.chunk(b"") + b"\r\n"
        status, _, resp = self.signed_put("badsig", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", {}, body)
        self.assertEqual((status, error_code(resp)), (403, "SignatureDoesNotMatch"))
        self.assertFalse(backend_has(self.bucket, "badsig"))

    def test_altered_chunk_data(self):
        def body(c):
            first = bytearray(c.chunk(self.data[:65536]))
            first[-10] ^= 1
            return bytes(first) + c.chunk(self.data[65536:]) + c.chunk(b"") + b"\r\n"
        status, _, resp = self.signed_put("altered", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", {}, body)
        self.assertEqual((status, error_code(resp)), (403, "SignatureDoesNotMatch"))
        self.assertFalse(backend_has(self.bucket, "altered"))

    def test_signed_trailer(self):
        mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
        extra = {"x-amz-trailer": "x-amz-checksum-crc32"}

        def body(value):
            return lambda c: (c.chunk(self.data[:65536]) + c.chunk(self.data[65536:]) +
                              c.chunk(b"")[:-2] + b"\r\n" +
                              c.trailer("x-amz-checksum-crc32", value))
        # The final chunk line is "0;chunk-signature=...\r\n", then trailers.
        status, _, resp = self.signed_put("trailer", mode, extra, body(crc32_b64(self.data)))
        self.assertEqual(status, 200, resp)
        self.check_stored("trailer")
        status, _, resp = self.signed_put("trailer-bad", mode, extra, body(crc32_b64(b"other")))
        self.assertEqual((status, error_code(resp)), (400, "BadDigest"))
        self.assertFalse(backend_has(self.bucket, "trailer-bad"))

    def test_unsigned_trailer(self):
        mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        extra = {"x-amz-trailer": "x-amz-checksum-crc32"}

        def body(value):
            return lambda c: (f"{65536:x}\r\n".encode() + self.data[:65536] + b"\r\n" +
                              f"{len(self.data) - 65536:x}\r\n".encode() + self.data[65536:] +
                              b"\r\n0\r\n" + f"x-amz-checksum-crc32:{value}\r\n\r\n".encode())
        status, _, resp = self.signed_put("unsigned", mode, extra, body(crc32_b64(self.data)))
        self.assertEqual(status, 200, resp)
        self.check_stored("unsigned")
        status, _, resp = self.signed_put("unsigned-bad", mode, extra, body(crc32_b64(b"x")))
        self.assertEqual((status, error_code(resp)), (400, "BadDigest"))
        self.assertFalse(backend_has(self.bucket, "unsigned-bad"))

    def test_decoded_length_mismatch(self):
        def body(c):
            return c.chunk(self.data[:65536]) + c.chunk(b"") + b"\r\n"  # 4 bytes short
        status, _, resp = self.signed_put("short", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", {}, body)
        self.assertEqual((status, error_code(resp)), (400, "IncompleteBody"))
        self.assertFalse(backend_has(self.bucket, "short"))

    def test_checksum_header(self):
        c = self.s.client()
        # (boto3 needs the CRT for CRC32C and CRC64NVME: the JS SDK test covers those.)
        for alg in ("CRC32", "SHA1", "SHA256"):
            c.put_object(Bucket=self.bucket, Key=f"hdr-{alg}", Body=self.data, ChecksumAlgorithm=alg)
            self.check_stored(f"hdr-{alg}")
        url = f"{self.s.endpoint}/{self.bucket}/hdr-bad"
        h = sign_v4("PUT", url, {"x-amz-checksum-crc32": crc32_b64(b"not this")},
                    hashlib.sha256(self.data).hexdigest(), self.s.access_key, self.s.secret_key)
        status, _, resp = raw_request(self.s.endpoint, "PUT", f"/{self.bucket}/hdr-bad", h, self.data)
        self.assertEqual((status, error_code(resp)), (400, "BadDigest"))
        self.assertFalse(backend_has(self.bucket, "hdr-bad"))

    def test_checksum_mode_returns_stored_checksum(self):
        c = self.s.client()
        put = c.put_object(Bucket=self.bucket, Key="ck", Body=self.data, ChecksumAlgorithm="SHA256")
        want = put["ChecksumSHA256"]
        got = c.get_object(Bucket=self.bucket, Key="ck", ChecksumMode="ENABLED")
        self.assertEqual(got["ChecksumSHA256"], want)
        self.assertEqual(got["Body"].read(), self.data)
        self.assertEqual(c.head_object(Bucket=self.bucket, Key="ck",
                                       ChecksumMode="ENABLED")["ChecksumSHA256"], want)
        # Not for a range: the object's checksum does not cover it.
        part = c.get_object(Bucket=self.bucket, Key="ck", ChecksumMode="ENABLED", Range="bytes=0-9")
        self.assertNotIn("ChecksumSHA256", part)
        self.assertEqual(part["Body"].read(), self.data[:10])
        # Without checksum mode, and never s3seal's own metadata.
        plain = c.head_object(Bucket=self.bucket, Key="ck")
        self.assertNotIn("ChecksumSHA256", plain)
        self.assertEqual(plain["Metadata"], {})

    def test_internal_metadata_cannot_be_set(self):
        c = self.s.client(request_checksum_calculation="when_required")
        c.put_object(Bucket=self.bucket, Key="spoof", Body=b"x",
                     Metadata={"s3seal-checksum-crc32": "AAAAAA==", "user": "kept"})
        raw = backend_client().head_object(Bucket=self.bucket, Key="spoof")["Metadata"]
        self.assertEqual(raw, {"user": "kept"})

    def test_http_chunked_with_decoded_length(self):
        url = f"{self.s.endpoint}/{self.bucket}/te"
        h = sign_v4("PUT", url, {"x-amz-decoded-content-length": "10"}, "UNSIGNED-PAYLOAD",
                    self.s.access_key, self.s.secret_key)
        head = "".join(f"{k}: {v}\r\n" for k, v in h.items())
        req = (f"PUT /{self.bucket}/te HTTP/1.1\r\n{head}Transfer-Encoding: chunked\r\n\r\n"
               "4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as sock:
            sock.sendall(req.encode())
            data = sock.recv(65536)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n"), data[:200])
        got = backend_client().get_object(Bucket=self.bucket, Key="te")["Body"].read()
        self.assertEqual(got, b"0123456789")


if __name__ == "__main__":
    unittest.main()


class LargeBodyDigestTest(unittest.TestCase):
    """Bodies large enough that s3seal hashes them on its thread pool while
    the loop streams them on: every digest is still checked before the
    backend sees the last byte, a mismatch still leaves nothing, and an
    encrypted PutObject still answers with the MD5 of its plaintext."""

    SEG = 65536

    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal().start()
        cls.bucket = new_bucket_name("digest")
        cls.s.client().create_bucket(Bucket=cls.bucket)
        cls.data = os.urandom(3 * 1024 * 1024 + 5)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def put(self, key, headers, payload_hash, body=None):
        url = f"{self.s.endpoint}/{self.bucket}/{key}"
        h = sign_v4("PUT", url, headers, payload_hash, self.s.access_key, self.s.secret_key)
        return raw_request(self.s.endpoint, "PUT", f"/{self.bucket}/{key}", h,
                           self.data if body is None else body, timeout=120)

    def assert_stored(self, key, encrypted):
        raw = backend_client().get_object(Bucket=self.bucket, Key=key)
        body = raw["Body"].read()
        if encrypted:
            self.assertEqual(raw["Metadata"].get("s3seal-version"), "1")
            self.assertEqual(len(body), len(self.data) + 16 * -(-len(self.data) // self.SEG))
            for a in (0, len(self.data) // 2, len(self.data) - 64):
                self.assertNotIn(self.data[a:a + 64], body)
        else:
            self.assertEqual(body, self.data)
        got = self.s.client().get_object(Bucket=self.bucket, Key=key)
        self.assertEqual(got["Body"].read(), self.data)

    def test_signed_payload(self):
        sha = hashlib.sha256(self.data).hexdigest()
        for enc in (False, True):
            extra = {"x-amz-server-side-encryption": "AES256"} if enc else {}
            status, headers, resp = self.put(f"signed-{enc}", extra, sha)
            self.assertEqual(status, 200, resp)
            if enc:
                self.assertEqual(headers["etag"], f'"{hashlib.md5(self.data).hexdigest()}"')
            self.assert_stored(f"signed-{enc}", enc)
            # One byte changed at the end: refused, nothing stored.
            bad = self.data[:-1] + bytes([self.data[-1] ^ 1])
            status, _, resp = self.put(f"signed-bad-{enc}", extra, sha, body=bad)
            self.assertEqual((status, error_code(resp)), (400, "XAmzContentSHA256Mismatch"))
            self.assertFalse(backend_has(self.bucket, f"signed-bad-{enc}"))

    def test_content_md5_and_checksum(self):
        md5 = base64.b64encode(hashlib.md5(self.data).digest()).decode()
        sha_b64 = base64.b64encode(hashlib.sha256(self.data).digest()).decode()
        enc = {"x-amz-server-side-encryption": "AES256"}
        good = [("md5", {"content-md5": md5}), ("crc32", {"x-amz-checksum-crc32": crc32_b64(self.data)}),
                ("sha256", {"x-amz-checksum-sha256": sha_b64})]
        for name, h in good:
            status, headers, resp = self.put(f"ok-{name}", {**enc, **h}, "UNSIGNED-PAYLOAD")
            self.assertEqual(status, 200, resp)
            self.assertEqual(headers["etag"], f'"{hashlib.md5(self.data).hexdigest()}"')
            self.assert_stored(f"ok-{name}", True)
        # One byte flipped (a fixed byte in its place would equal the random
        # one in 1 run of 256, and the "bad" body would be the good one).
        other = self.data[:1000] + bytes([self.data[1000] ^ 1]) + self.data[1001:]
        self.assertNotEqual(other, self.data)
        for name, h in good:
            status, _, resp = self.put(f"bad-{name}", {**enc, **h}, "UNSIGNED-PAYLOAD", body=other)
            self.assertEqual((status, error_code(resp)), (400, "BadDigest"), name)
            self.assertFalse(backend_has(self.bucket, f"bad-{name}"))

    def test_unsigned_trailer(self):
        when = datetime.datetime.now(datetime.timezone.utc)
        chunks = [self.data[i:i + (1 << 20)] for i in range(0, len(self.data), 1 << 20)]

        def body(value):
            out = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks)
            return out + b"0\r\n" + f"x-amz-checksum-crc32:{value}\r\n\r\n".encode()
        for key, value, want in (("tr-ok", crc32_b64(self.data), 200),
                                 ("tr-bad", crc32_b64(b"no"), 400)):
            url = f"{self.s.endpoint}/{self.bucket}/{key}"
            headers = {"content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
                       "x-amz-decoded-content-length": str(len(self.data)),
                       "x-amz-server-side-encryption": "AES256"}
            h = sign_v4("PUT", url, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                        self.s.access_key, self.s.secret_key, when=when)
            status, _, resp = raw_request(self.s.endpoint, "PUT", f"/{self.bucket}/{key}", h,
                                          body(value), timeout=120)
            self.assertEqual(status, want, resp)
            if want == 200:
                self.assert_stored(key, True)
            else:
                self.assertEqual(error_code(resp), "BadDigest")
                self.assertFalse(backend_has(self.bucket, key))
