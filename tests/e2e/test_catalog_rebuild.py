"""`s3seal catalog rebuild` and `s3seal catalog prune` against the real
backend: objects written encrypted through s3seal (PutObject without
Content-MD5 and with it, a multipart upload of three parts, SSE-KMS objects)
lose their catalog entries, as objects stored before the catalog have none;
rebuild gives them back exactly the plaintext size and the ETag the PUT or
Complete answered, a plain object none, an object whose ciphertext was
altered on the backend none (reported, non-zero exit); --force recomputes;
every version of a versioned bucket is covered; prune drops the entries of
objects deleted straight on the backend and keeps the others. The
keystore's `entries` table is read with sqlite3."""

import base64
import hashlib
import json
import os
import pty
import sqlite3
import subprocess
import unittest

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name

SEG = 65536
MiB = 1024 * 1024


def cipher_size(n, overhead=16):
    return n + overhead * max(1, -(-n // SEG))


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def content_md5(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class CatalogRebuildTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal()
        # The KMS key exists before the server starts (its first snapshot).
        cls.s.cli("keystore", "init", check=True)
        out = cls.s.cli("keys", "create", "--alias", "alias/catalog", check=True).stdout
        md = json.loads(out)
        cls.kms_arn = md.get("KeyMetadata", md)["Arn"]
        cls.s.start()
        cls.c = cls.s.client()
        cls.buckets = []

    @classmethod
    def tearDownClass(cls):
        try:
            for b in cls.buckets:
                empty_and_delete(backend_client(), b)
                try:
                    listed = backend_client().list_object_versions(Bucket=b)
                    for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []):
                        backend_client().delete_object(Bucket=b, Key=v["Key"],
                                                       VersionId=v["VersionId"])
                    backend_client().delete_bucket(Bucket=b)
                except Exception:
                    pass
        finally:
            cls.s.stop()

    # ---------------------------------------------------------------- helpers

    def new_bucket(self):
        b = new_bucket_name("catalog")
        self.buckets.append(b)
        self.c.create_bucket(Bucket=b)
        return b

    def db(self):
        return sqlite3.connect(os.path.join(self.s.dir, "keystore.db"), timeout=30)

    def rows(self, bucket):
        """{key: (backend etag, size, plain etag)} of the bucket's entries."""
        with self.db() as db:
            got = db.execute("SELECT key, etag, size, plain_etag FROM entries WHERE bucket = ?",
                             (bucket.encode(),)).fetchall()
        out = {}
        for key, etag, size, plain in got:
            key = key.decode() if isinstance(key, bytes) else key
            self.assertNotIn(key, out, "one entry per object")
            out[key] = (etag, size, plain)
        return out

    def forget_entries(self):
        """Objects from before the catalog have no entry."""
        with self.db() as db:
            db.execute("DELETE FROM entries")

    def catalog(self, *args):
        return self.s.cli("catalog", *args)

    def backend_etag(self, bucket, key, **kw):
        return backend_client().head_object(Bucket=bucket, Key=key, **kw)["ETag"].strip('"')

    def assert_ciphertext_on_backend(self, bucket, key, data, overhead=16):
        raw = backend_client().get_object(Bucket=bucket, Key=key)
        body = raw["Body"].read()
        self.assertEqual(len(body), cipher_size(len(data), overhead))
        self.assertNotIn(data[:32], body)
        self.assertNotEqual(body, data)
        self.assertIn("s3seal-dek", raw["Metadata"])
        return raw, body

    def put_sse_s3(self, bucket, key, data, **kw):
        r = self.c.put_object(Bucket=bucket, Key=key, Body=data, ServerSideEncryption="AES256",
                              **kw)
        self.assert_ciphertext_on_backend(bucket, key, data)
        return r["ETag"].strip('"')

    def put_multipart(self, bucket, key, parts):
        u = self.c.create_multipart_upload(Bucket=bucket, Key=key, ServerSideEncryption="AES256")
        done = []
        for n, p in enumerate(parts, 1):
            e = self.c.upload_part(Bucket=bucket, Key=key, UploadId=u["UploadId"], PartNumber=n,
                                   Body=p)["ETag"]
            done.append({"PartNumber": n, "ETag": e})
        r = self.c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=u["UploadId"],
                                             MultipartUpload={"Parts": done})
        raw, body = self.assert_ciphertext_on_backend(bucket, key, b"".join(parts), overhead=28)
        self.assertEqual(raw["Metadata"].get("s3seal-layout"), "parts3")
        for p in parts:
            self.assertNotIn(p[:32], body)
        return r["ETag"].strip('"')

    # ------------------------------------------------------------------ tests

    def test_rebuild_gives_back_the_entries(self):
        b = self.new_bucket()
        single = os.urandom(3 * SEG + 123)
        answered = {"single": self.put_sse_s3(b, "single", single)}
        # Without Content-MD5 no MD5 is stored: the entry needs the plaintext.
        self.assertNotIn("s3seal-md5", backend_client().head_object(Bucket=b, Key="single")["Metadata"])
        with_md5 = os.urandom(1000)
        answered["with-md5"] = self.put_sse_s3(b, "with-md5", with_md5,
                                               ContentMD5=content_md5(with_md5))
        parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]
        answered["multi"] = self.put_multipart(b, "multi", parts)
        kms = os.urandom(2 * SEG + 5)
        r = self.c.put_object(Bucket=b, Key="kms", Body=kms, ServerSideEncryption="aws:kms",
                              SSEKMSKeyId=self.kms_arn)
        answered["kms"] = r["ETag"].strip('"')
        raw, _ = self.assert_ciphertext_on_backend(b, "kms", kms)
        self.assertTrue(raw["Metadata"]["s3seal-key"].startswith("kms:"))
        kms_md5 = os.urandom(SEG)
        r = self.c.put_object(Bucket=b, Key="kms-md5", Body=kms_md5, ContentMD5=content_md5(kms_md5),
                              ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_arn)
        answered["kms-md5"] = r["ETag"].strip('"')
        self.assert_ciphertext_on_backend(b, "kms-md5", kms_md5)
        self.c.put_object(Bucket=b, Key="plain", Body=b"stored as sent")
        self.assertEqual(backend_client().get_object(Bucket=b, Key="plain")["Body"].read(),
                         b"stored as sent")

        self.forget_entries()
        self.assertEqual(self.rows(b), {})
        r = self.catalog("rebuild", f"s3://{b}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"5 recorded, 0 already recorded, 1 not encrypted, 0 failed", r.stdout)
        rows = self.rows(b)
        sizes = {"single": len(single), "with-md5": len(with_md5), "kms": len(kms),
                 "kms-md5": len(kms_md5), "multi": sum(map(len, parts))}
        self.assertEqual(set(rows), set(sizes))  # not "plain"
        # Each entry: the backend's ETag, the plaintext size and the ETag
        # s3seal answered when the object was written.
        for key, size in sizes.items():
            self.assertEqual(rows[key], (self.backend_etag(b, key), size, answered[key]), key)
        # SSE-S3 PutObject answers the plaintext's MD5, stored or not, and so
        # does any PutObject with Content-MD5.
        for key, data in (("single", single), ("with-md5", with_md5), ("kms-md5", kms_md5)):
            self.assertEqual(answered[key], md5_hex(data), key)
        # SSE-KMS without Content-MD5 and multipart uploads answer the
        # backend's ETag (README, "What clients see").
        self.assertEqual(answered["kms"], self.backend_etag(b, "kms"))
        self.assertEqual(answered["multi"], self.backend_etag(b, "multi"))
        self.assertTrue(answered["multi"].endswith("-3"))
        # The proxy reads the objects as ever.
        self.assertEqual(self.c.get_object(Bucket=b, Key="multi")["Body"].read(),
                         b"".join(parts))

        # Again: nothing to do.
        r = self.catalog("rebuild", f"s3://{b}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"0 recorded, 5 already recorded, 1 not encrypted, 0 failed", r.stdout)

        # An entry that exists is left as it is, unless --force.
        with self.db() as db:
            db.execute("UPDATE entries SET size = 1, plain_etag = 'stale' WHERE key = ?",
                       (b"single",))
        r = self.catalog("rebuild", f"s3://{b}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.rows(b)["single"][1:], (1, "stale"))
        r = self.catalog("rebuild", "--force", f"s3://{b}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"5 recorded, 0 already recorded, 1 not encrypted, 0 failed", r.stdout)
        self.assertEqual(self.rows(b), rows)

        # A prefix limits the walk.
        self.forget_entries()
        r = self.catalog("rebuild", f"s3://{b}/mul")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"1 recorded, 0 already recorded, 0 not encrypted, 0 failed", r.stdout)
        self.assertEqual(set(self.rows(b)), {"multi"})

    def test_tampered_object_is_reported_and_gets_no_entry(self):
        b = self.new_bucket()
        good, bad = os.urandom(2 * SEG), os.urandom(2 * SEG + 17)
        self.put_sse_s3(b, "good", good)
        self.put_sse_s3(b, "bad", bad)
        # A multipart object is read and verified too (its ETag is the
        # backend's, but an object that does not decrypt gets no entry).
        self.put_multipart(b, "bad-multi", [os.urandom(SEG + 9)])
        for key in ("bad", "bad-multi"):
            raw = backend_client().get_object(Bucket=b, Key=key)
            body = bytearray(raw["Body"].read())
            body[SEG // 2 + 3] ^= 0x01  # flip one bit inside the first segment
            backend_client().put_object(Bucket=b, Key=key, Body=bytes(body),
                                        Metadata=raw["Metadata"])
        self.forget_entries()
        r = self.catalog("rebuild", f"s3://{b}")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"1 recorded, 0 already recorded, 0 not encrypted, 2 failed", r.stdout)
        self.assertIn(f"s3://{b}/bad:".encode(), r.stderr)
        self.assertIn(f"s3://{b}/bad-multi:".encode(), r.stderr)
        self.assertNotIn(b"/good", r.stderr)
        rows = self.rows(b)
        self.assertEqual(set(rows), {"good"})
        self.assertEqual(rows["good"][1:], (len(good), md5_hex(good)))
        # The proxy refuses the altered objects too.
        for key in ("bad", "bad-multi"):
            with self.assertRaises(Exception):
                self.c.get_object(Bucket=b, Key=key)["Body"].read()

    def test_versioned_bucket_and_prune(self):
        b = self.new_bucket()
        other = self.new_bucket()
        backend_client().put_bucket_versioning(Bucket=b,
                                               VersioningConfiguration={"Status": "Enabled"})
        v1, v2 = os.urandom(SEG + 1), os.urandom(100)
        self.put_sse_s3(b, "doc", v1)
        self.put_sse_s3(b, "doc", v2)
        self.put_sse_s3(b, "gone", b"x" * 5000)
        self.put_sse_s3(b, "kept", b"y" * 6000)
        self.put_sse_s3(other, "doc", b"z" * 7000)
        self.forget_entries()
        r = self.catalog("rebuild", f"s3://{b}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"4 recorded, 0 already recorded, 0 not encrypted, 0 failed", r.stdout)
        with self.db() as db:
            doc = sorted(db.execute("SELECT size, plain_etag FROM entries WHERE bucket = ? AND "
                                    "key = ?", (b.encode(), b"doc")).fetchall())
        self.assertEqual(doc, sorted([(len(v1), md5_hex(v1)), (len(v2), md5_hex(v2))]))
        r = self.catalog("rebuild", f"s3://{other}")
        self.assertEqual(r.returncode, 0, r.stderr)

        # Deleted straight on the backend: the current "gone" (a delete
        # marker leaves its version, so its entry stays), then its version.
        versions = backend_client().list_object_versions(Bucket=b, Prefix="gone")["Versions"]
        backend_client().delete_object(Bucket=b, Key="gone")
        r = self.catalog("prune", f"s3://{b}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"0 entries removed", r.stdout)
        for v in versions:
            backend_client().delete_object(Bucket=b, Key="gone", VersionId=v["VersionId"])
        r = self.catalog("prune", f"s3://{b}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"1 entries removed", r.stdout)
        with self.db() as db:
            left = sorted(db.execute("SELECT key FROM entries WHERE bucket = ?",
                                     (b.encode(),)).fetchall())
        self.assertEqual(left, [(b"doc",), (b"doc",), (b"kept",)])
        self.assertEqual(set(self.rows(other)), {"doc"})  # another bucket's stay

        # An unversioned bucket: an object deleted behind s3seal's back.
        backend_client().delete_object(Bucket=other, Key="doc")
        r = self.catalog("prune", f"s3://{other}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"1 entries removed", r.stdout)
        self.assertEqual(self.rows(other), {})
        with self.db() as db:
            self.assertEqual(db.execute("SELECT count(*) FROM entries WHERE bucket = ?",
                                        (b.encode(),)).fetchone(), (3,))

    def test_progress_on_a_terminal_and_usage(self):
        b = self.new_bucket()
        for i in range(3):
            self.put_sse_s3(b, f"p{i}", os.urandom(100 + i))
        self.forget_entries()
        leader, follower = pty.openpty()
        try:
            r = subprocess.run([self.s.bin, "-c", self.s.config, "catalog", "rebuild",
                                f"s3://{b}"], stdout=subprocess.PIPE, stderr=follower)
            os.close(follower)
            follower = None
            seen = b""
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            if follower is not None:
                os.close(follower)
            os.close(leader)
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"catalog rebuild: 3/3 objects", seen)
        self.assertIn(b"/s, ", seen)
        self.assertIn(b"left", seen)
        self.assertIn(b"3 recorded", r.stdout)
        for args in ((), ("rebuild",), ("rebuild", "bucket"), ("prune", f"s3://{b}/prefix"),
                     ("compact", f"s3://{b}")):
            r = self.catalog(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(b"usage: s3seal [-c FILE] catalog", r.stderr)


if __name__ == "__main__":
    unittest.main()
