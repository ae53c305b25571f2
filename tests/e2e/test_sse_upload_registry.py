"""The upload registry, end to end: an encrypted CreateMultipartUpload is
recorded in the keystore, so ListMultipartUploads gives s3seal's full upload
id, and a client that resumes with the backend's raw id (as listed by the
backend itself) gets its parts encrypted: the object reads back as plaintext
through s3seal and is ciphertext of the documented size on the backend. A
second s3seal sharing the keystore sees the records; Complete and Abort
remove them; an upload s3seal never recorded keeps being refused for writes
in a bucket encrypted by default."""

import math
import os
import random
import time
import sqlite3
import unittest

import botocore

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name

KIB = 1024
MIB = 1024 * KIB
SEG = 64 * KIB
OVERHEAD = 28  # per 64 KiB segment of a part: nonce and tag


class UploadRegistryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket_name("upreg")
        cls.default_bucket = new_bucket_name("upregdef")
        yaml = f"""buckets:
  {cls.default_bucket}:
    default_encryption: AES256
"""
        cls.s1 = S3Seal(extra_yaml=yaml).start()
        cls.addClassCleanup(cls.s1.stop)
        cls.s2 = S3Seal(extra_yaml=yaml, keystore_of=cls.s1).start()
        cls.addClassCleanup(cls.s2.stop)
        cls.c1 = cls.s1.client()
        cls.c2 = cls.s2.client()
        cls.b = backend_client()
        for bucket in (cls.bucket, cls.default_bucket):
            cls.c1.create_bucket(Bucket=bucket)
            cls.addClassCleanup(empty_and_delete, backend_client(), bucket)

    # ------------------------------------------------------------ helpers

    def rows(self, bucket, key):
        """The registry's rows for an object: (backend id, suffix)."""
        db = sqlite3.connect(f"{self.s1.dir}/keystore.db", timeout=10)
        try:
            return db.execute("SELECT upload_id, suffix FROM uploads WHERE bucket = ? AND key = ?",
                              (bucket.encode(), key.encode())).fetchall()
        finally:
            db.close()

    def backend_id(self, bucket, key):
        ups = [u["UploadId"] for u in self.b.list_multipart_uploads(Bucket=bucket, Prefix=key)
               .get("Uploads", []) if u["Key"] == key]
        self.assertEqual(len(ups), 1, ups)
        self.assertNotIn("~s3seal", ups[0])
        return ups[0]

    def listed(self, client, bucket, key):
        return [u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket, Prefix=key)
                .get("Uploads", []) if u["Key"] == key]

    def assert_ciphertext_on_backend(self, bucket, key, data):
        raw = self.b.get_object(Bucket=bucket, Key=key)
        body = raw["Body"].read()
        self.assertEqual(raw["Metadata"].get("s3seal-layout"), "parts3")
        self.assertEqual(len(body), len(data) + OVERHEAD * math.ceil(len(data) / SEG))
        starts = [0, len(data) - 64] + [random.randrange(len(data) - 64) for _ in range(6)]
        for a in starts:
            self.assertNotIn(data[a:a + 64], body, a)

    # -------------------------------------------------------------- tests

    def test_list_and_resume_by_backend_id(self):
        key = "resume/by raw id"
        uid = self.c1.create_multipart_upload(Bucket=self.bucket, Key=key,
                                              ServerSideEncryption="AES256")["UploadId"]
        self.assertIn("~s3seal3~", uid)
        raw_id = self.backend_id(self.bucket, key)
        self.assertTrue(uid.startswith(raw_id + "~s3seal3~"))
        # Recorded before the answer left.
        self.assertEqual(self.rows(self.bucket, key), [(raw_id.encode(), uid[len(raw_id):])])
        # Both instances list s3seal's id.
        self.assertEqual(self.listed(self.c1, self.bucket, key), [uid])
        self.assertEqual(self.listed(self.c2, self.bucket, key), [uid])

        sizes = [5 * MIB, 5 * MIB, 1234567]
        data = os.urandom(sum(sizes))
        etags, off = [], 0
        for i, n in enumerate(sizes):
            client = (self.c1, self.c2)[i % 2]
            r = client.upload_part(Bucket=self.bucket, Key=key, UploadId=raw_id,
                                   PartNumber=i + 1, Body=data[off:off + n])
            self.assertEqual(r.get("ServerSideEncryption"), "AES256", i + 1)
            etags.append(r["ETag"])
            off += n
        # ListParts by the raw id reports plaintext sizes.
        parts = self.c2.list_parts(Bucket=self.bucket, Key=key, UploadId=raw_id)["Parts"]
        self.assertEqual([p["Size"] for p in parts], sizes)
        done = self.c2.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=raw_id,
            MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e}
                                       for i, e in enumerate(etags)]})
        self.assertEqual(done.get("ServerSideEncryption"), "AES256")

        got = self.c1.get_object(Bucket=self.bucket, Key=key)
        self.assertEqual(got["ContentLength"], len(data))
        self.assertEqual(got["Body"].read(), data)
        self.assert_ciphertext_on_backend(self.bucket, key, data)
        # Forgotten once complete (best effort, on the thread pool).
        for _ in range(50):
            if not self.rows(self.bucket, key):
                break
            time.sleep(0.1)
        self.assertEqual(self.rows(self.bucket, key), [])

    def test_paging_with_s3seal_markers(self):
        """ListMultipartUploads pages: the upload-id marker a client sends
        back is s3seal's id, which the backend gets cut to its own."""
        keys = [f"paging/{i}" for i in range(3)]
        ids = {k: self.c1.create_multipart_upload(Bucket=self.bucket, Key=k,
                                                  ServerSideEncryption="AES256")["UploadId"]
               for k in keys}
        seen, kw = [], {}
        for _ in range(5):
            page = self.c1.list_multipart_uploads(Bucket=self.bucket, Prefix="paging/",
                                                  MaxUploads=1, **kw)
            seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
            if not page.get("IsTruncated"):
                break
            # Paging on from the id s3seal listed (the backend's own
            # NextUploadIdMarker works as well).
            kw = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": seen[-1][1]}
            self.assertIn("~s3seal3~", kw["UploadIdMarker"])
        self.assertEqual(seen, [(k, ids[k]) for k in keys])
        for k in keys:
            self.c1.abort_multipart_upload(Bucket=self.bucket, Key=k, UploadId=ids[k])

    def test_second_instance_and_abort_by_backend_id(self):
        key = "abort-me"
        uid = self.c2.create_multipart_upload(Bucket=self.default_bucket, Key=key)["UploadId"]
        raw_id = self.backend_id(self.default_bucket, key)
        self.assertEqual(self.listed(self.c1, self.default_bucket, key), [uid])
        # A part by the raw id, in a bucket encrypted by default: accepted and
        # encrypted, through the instance that did not create the upload.
        r = self.c1.upload_part(Bucket=self.default_bucket, Key=key, UploadId=raw_id,
                                PartNumber=1, Body=b"y" * 100000)
        self.assertEqual(r.get("ServerSideEncryption"), "AES256")
        raw_parts = self.b.list_parts(Bucket=self.default_bucket, Key=key,
                                      UploadId=raw_id)["Parts"]
        self.assertEqual(raw_parts[0]["Size"], 100000 + OVERHEAD * 2)
        self.c1.abort_multipart_upload(Bucket=self.default_bucket, Key=key, UploadId=raw_id)
        self.assertEqual(self.b.list_multipart_uploads(Bucket=self.default_bucket, Prefix=key)
                         .get("Uploads", []), [])
        for _ in range(50):
            if not self.rows(self.default_bucket, key):
                break
            time.sleep(0.1)
        self.assertEqual(self.rows(self.default_bucket, key), [])

    def test_unknown_backend_id_still_refused(self):
        """An upload made on the backend directly is not in the registry:
        listed with its own id, and a part sent with it is refused in a
        bucket s3seal encrypts by default."""
        key = "not-ours"
        raw_id = self.b.create_multipart_upload(Bucket=self.default_bucket, Key=key)["UploadId"]
        self.assertEqual(self.listed(self.c1, self.default_bucket, key), [raw_id])
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c1.upload_part(Bucket=self.default_bucket, Key=key, UploadId=raw_id,
                                PartNumber=1, Body=b"x" * 1000)
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchUpload")
        self.assertEqual(self.b.list_parts(Bucket=self.default_bucket, Key=key,
                                           UploadId=raw_id).get("Parts", []), [])
        self.c1.abort_multipart_upload(Bucket=self.default_bucket, Key=key, UploadId=raw_id)

    def test_plain_upload_not_recorded(self):
        key = "plain-upload"
        uid = self.c1.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        self.assertNotIn("~s3seal", uid)
        self.assertEqual(self.rows(self.bucket, key), [])
        self.assertEqual(self.listed(self.c2, self.bucket, key), [uid])
        self.c1.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=1, Body=b"p")
        self.c1.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)


if __name__ == "__main__":
    unittest.main()
