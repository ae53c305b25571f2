"""Integrity of encrypted multipart uploads (issue 17, defect 5 and the
swapped-parts item of defect 11):

- the s3seal part of an UploadId is bound to its backend upload: pasted onto
  another backend upload id, of the same object or not, it is refused
  (NoSuchUpload) and nothing is stored;
- a part number uploaded twice with different data is sealed under a
  different key each time: the stored ciphertexts (recorded on their way to
  the backend and checked against the backend's ListParts ETags) do not XOR
  to the XOR of the plaintexts, and their stored headers differ;
- a GET, whole or ranged, of an object whose parts were swapped on the
  backend gets a clean 500 InternalError, not a connection closed without a
  status.
"""

import hashlib
import math
import os
import socket
import threading
import unittest
import urllib.parse

import botocore

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name

KIB = 1024
MIB = 1024 * KIB
SEG = 64 * KIB
OVERHEAD = 28  # per 64 KiB segment of a part: header and tag


def part_cipher_size(n):
    return n + OVERHEAD * max(1, math.ceil(n / SEG))


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


class Recorder:
    """A TCP relay between s3seal and the backend that keeps a copy of the
    bytes s3seal sends, to see each part upload's ciphertext as the backend
    received it."""

    def __init__(self, target):
        u = urllib.parse.urlparse(target)
        self.target = (u.hostname, u.port or 80)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.streams = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(self.target)
            buf = bytearray()
            with self.lock:
                self.streams.append(buf)
            threading.Thread(target=self._pump, args=(c, up, buf), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, c, None), daemon=True).start()

    @staticmethod
    def _pump(src, dst, record):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record is not None:
                    record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            src.close()  # each socket is the source of one pump

    def close(self):
        self.sock.close()

    def bodies(self, method, query_has):
        """The bodies of the recorded requests whose request line has
        `method` and `query_has`, in order per connection."""
        out = []
        with self.lock:
            streams = [bytes(s) for s in self.streams]
        for s in streams:
            pos = 0
            while True:
                end = s.find(b"\r\n\r\n", pos)
                if end < 0:
                    break
                head = s[pos:end].decode("latin-1").split("\r\n")
                headers = {}
                for line in head[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                body = s[end + 4:end + 4 + n]
                pos = end + 4 + n
                if headers.get("x-amz-content-sha256", "").startswith("STREAMING"):
                    body = self._unchunk(body)
                line = head[0]
                if line.startswith(method + " ") and query_has in line:
                    out.append(body)
        return out

    @staticmethod
    def _unchunk(body):
        out, pos = bytearray(), 0
        while True:
            eol = body.index(b"\r\n", pos)
            size = int(body[pos:eol].split(b";")[0], 16)
            if size == 0:
                return bytes(out)
            out += body[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2


class MpuIntegrityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket_name("mpuint")
        cls.rec = Recorder(os.environ["S3_ENDPOINT"])
        cls.addClassCleanup(cls.rec.close)
        cls.s = S3Seal(backend=cls.rec.endpoint).start()
        cls.addClassCleanup(cls.s.stop)
        cls.c = cls.s.client()
        cls.b = backend_client()
        cls.c.create_bucket(Bucket=cls.bucket)
        cls.addClassCleanup(empty_and_delete, backend_client(), cls.bucket)

    def create(self, key):
        uid = self.c.create_multipart_upload(Bucket=self.bucket, Key=key,
                                             ServerSideEncryption="AES256")["UploadId"]
        self.assertIn("~s3seal", uid)
        backend = uid.split("~s3seal")[0]
        return uid, backend, uid[len(backend):]

    def assert_no_such_upload(self, fn, **kw):
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            fn(**kw)
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchUpload")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)

    def backend_parts(self, key, backend_id):
        return self.b.list_parts(Bucket=self.bucket, Key=key, UploadId=backend_id).get("Parts", [])

    def test_suffix_bound_to_its_backend_upload(self):
        """The suffix of upload A on upload B's backend id (same object),
        on a backend upload made without s3seal, and on another object's
        upload: refused, nothing stored; with its MAC altered, or in the
        first layout's unbound form: refused too. A's own id works."""
        key, other = "bound", "bound-other"
        uid_a, back_a, suf_a = self.create(key)
        uid_b, back_b, _ = self.create(key)
        _, back_o, _ = self.create(other)
        back_c = self.b.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        data = os.urandom(SEG + 100)
        fields = suf_a.split("~")  # "", "s3seal3", version, aead, wrapped key, mac
        legacy = "~".join(["", "s3seal"] + fields[2:5])
        flipped = suf_a[:-1] + ("0" if suf_a[-1] != "0" else "1")
        cases = [(key, back_b + suf_a), (key, back_c + suf_a), (other, back_o + suf_a),
                 (key, back_b + legacy), (key, back_a + flipped)]
        for k, uid in cases:
            with self.subTest(upload_id=uid[:40]):
                self.assert_no_such_upload(self.c.upload_part, Bucket=self.bucket, Key=k,
                                           UploadId=uid, PartNumber=1, Body=data)
                if "~s3seal3~" in uid:  # the first layout's ids still list and complete
                    self.assert_no_such_upload(self.c.list_parts, Bucket=self.bucket, Key=k,
                                               UploadId=uid)
        for k, back in ((key, back_a), (key, back_b), (key, back_c), (other, back_o)):
            self.assertEqual(self.backend_parts(k, back), [], f"a part was stored in {back}")
        # Completing B with A's suffix is refused as well.
        self.assert_no_such_upload(
            self.c.complete_multipart_upload, Bucket=self.bucket, Key=key, UploadId=back_b + suf_a,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0"'}]})
        # A's own id: the part goes up, and the object reads back.
        etag = self.c.upload_part(Bucket=self.bucket, Key=key, UploadId=uid_a, PartNumber=1,
                                  Body=data)["ETag"]
        self.c.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid_a,
                                         MultipartUpload={"Parts": [{"PartNumber": 1,
                                                                     "ETag": etag}]})
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key=key)["Body"].read(), data)
        for uid in (uid_b, back_c):
            self.b.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                          UploadId=uid.split("~s3seal")[0])
        self.b.abort_multipart_upload(Bucket=self.bucket, Key=other, UploadId=back_o)

    def test_part_uploaded_twice_never_reuses_key_and_nonce(self):
        """Part 1 uploaded twice, same length, different data: between the
        uploads the backend's ListParts shows each stored ciphertext (its
        ETag is the MD5 of the bytes recorded on the way); the two never
        XOR to the XOR of the plaintexts, and their headers differ."""
        key = "twice"
        uid, back, _ = self.create(key)
        n = 2 * SEG + 1000
        x, y = os.urandom(n), os.urandom(n)
        stored = []
        for data in (x, y):
            before = len(self.rec.bodies("PUT", "partNumber=1&"))
            self.c.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=1, Body=data)
            bodies = self.rec.bodies("PUT", "partNumber=1&")
            self.assertEqual(len(bodies), before + 1)
            cipher = bodies[-1]
            parts = self.backend_parts(key, back)
            self.assertEqual([p["PartNumber"] for p in parts], [1])
            self.assertEqual(parts[0]["Size"], part_cipher_size(n))
            self.assertEqual(parts[0]["ETag"].strip('"'), hashlib.md5(cipher).hexdigest())
            stored.append(cipher)
        c1, c2 = stored
        self.assertEqual(len(c1), len(c2))
        self.assertFalse(c1[:16] == c2[:16], "both uploads stored the same segment header")
        # Wherever the segment's body starts (after a 12- or 16-byte
        # header), the ciphertexts' XOR is not the plaintexts'.
        for off in (12, 16):
            leaks = xor(c1[off:off + 4096], c2[off:off + 4096]) == xor(x[:4096], y[:4096])
            self.assertFalse(leaks, f"same key and nonce: the XOR of the plaintexts leaks (+{off})")
        # The second upload is the part; it reads back.
        etag = self.c.list_parts(Bucket=self.bucket, Key=key, UploadId=uid)["Parts"][0]["ETag"]
        self.c.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                         MultipartUpload={"Parts": [{"PartNumber": 1,
                                                                     "ETag": etag}]})
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key=key)["Body"].read(), y)
        raw = self.b.get_object(Bucket=self.bucket, Key=key)
        self.assertEqual(raw["Body"].read(), c2)
        self.assertEqual(raw["Metadata"].get("s3seal-layout"), "parts3")

    def test_swapped_parts_answer_an_error_status(self):
        """Parts 1 and 2 swapped on the backend (under the object's own
        metadata): GET and ranged GETs answer 500 InternalError, with no
        connection closed before a status."""
        key = "swapped"
        part = 5 * MIB
        sizes = [part, part, part, 100_000]
        uid, _, _ = self.create(key)
        data = os.urandom(sum(sizes))
        etags, off = [], 0
        for i, sz in enumerate(sizes):
            etags.append(self.c.upload_part(Bucket=self.bucket, Key=key, UploadId=uid,
                                            PartNumber=i + 1, Body=data[off:off + sz])["ETag"])
            off += sz
        self.c.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e}
                                       for i, e in enumerate(etags)]})
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key=key)["Body"].read(), data)
        head = self.b.head_object(Bucket=self.bucket, Key=key)
        cp = part_cipher_size(part)
        spans = [(0, cp - 1), (cp, 2 * cp - 1), (2 * cp, 3 * cp - 1),
                 (3 * cp, head["ContentLength"] - 1)]
        self.b.copy_object(Bucket=self.bucket, Key="swapped-orig",
                           CopySource={"Bucket": self.bucket, "Key": key})
        mp = self.b.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=head["Metadata"],
                                            ContentType=head["ContentType"])
        parts = []
        for n, i in enumerate([1, 0, 2, 3]):
            lo, hi = spans[i]
            r = self.b.upload_part_copy(Bucket=self.bucket, Key=key, UploadId=mp["UploadId"],
                                        PartNumber=n + 1, CopySourceRange=f"bytes={lo}-{hi}",
                                        CopySource={"Bucket": self.bucket, "Key": "swapped-orig"})
            parts.append({"PartNumber": n + 1, "ETag": r["CopyPartResult"]["ETag"]})
        self.b.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=mp["UploadId"],
                                         MultipartUpload={"Parts": parts})
        c = self.s.client(read_timeout=20, retries={"max_attempts": 1})
        for rng in (None, "bytes=0-99", f"bytes={part + 10}-{part + 5000}",
                    f"bytes={2 * part + 7}-{2 * part + 70000}", f"bytes={part - 50}-{part + 50}"):
            with self.subTest(range=rng):
                kw = {"Range": rng} if rng else {}
                with self.assertRaises(botocore.exceptions.ClientError) as e:
                    c.get_object(Bucket=self.bucket, Key=key, **kw)["Body"].read()
                self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
                self.assertEqual(e.exception.response["Error"]["Code"], "InternalError")


if __name__ == "__main__":
    unittest.main()
