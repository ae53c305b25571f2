"""The catalog: sizes and ETags as S3 gives them, everywhere.

An object s3seal stores encrypted is longer on the backend than the data,
and the backend's ETag is the MD5 of the ciphertext. s3seal keeps, for each
such object, its plaintext size and the ETag its PUT (or Complete) answered,
by bucket, key and the backend's ETag, and gives them in listings (V1, V2,
versions), HEAD and GET, and evaluates If-Match / If-None-Match / If-Range
against them, in buckets with and without a default encryption. An object
written behind s3seal's back has another backend ETag: it is listed as
stored. Real clients: boto3, aws-cli (`s3 ls`, `s3 sync` twice), rclone
(`check`); every encrypted object is also read straight from the backend to
check it holds ciphertext."""

import base64
import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import unittest
import urllib.parse

import botocore
from boto3.s3.transfer import TransferConfig

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name

MiB = 1024 * 1024


class CatalogTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket_name("catalog")      # no default: SSE by header
        cls.dflt = new_bucket_name("catalogdflt")    # SSE-S3 by default
        cls.s = S3Seal(extra_yaml=f"buckets:\n  {cls.dflt}:\n    default_encryption: AES256\n")
        cls.s.start()
        cls.c = cls.s.client()
        cls.b = backend_client()
        for b in (cls.bucket, cls.dflt):
            cls.c.create_bucket(Bucket=b)
        cls.tmp = tempfile.mkdtemp(prefix="s3seal-e2e-catalog-")

    @classmethod
    def tearDownClass(cls):
        try:
            for b in (cls.bucket, cls.dflt):
                empty_and_delete(cls.b, b)
            shutil.rmtree(cls.tmp, True)
        finally:
            cls.s.stop()

    def assert_ciphertext(self, key, data, bucket=None):
        raw = self.b.get_object(Bucket=bucket or self.bucket, Key=key)
        body = raw["Body"].read()
        self.assertIn("s3seal-version", raw["Metadata"], key)
        self.assertGreater(len(body), len(data))
        for off in range(0, max(1, len(data) - 64), max(1, len(data) // 7)):
            if len(data) >= off + 64:
                self.assertNotIn(data[off:off + 64], body, key)
        return raw

    def listed(self, bucket, prefix):
        v2 = {o["Key"]: (o["Size"], o["ETag"])
              for o in self.c.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
        v1 = {o["Key"]: (o["Size"], o["ETag"])
              for o in self.c.list_objects(Bucket=bucket, Prefix=prefix)["Contents"]}
        versions = {o["Key"]: (o["Size"], o["ETag"])
                    for o in self.c.list_object_versions(Bucket=bucket,
                                                         Prefix=prefix).get("Versions", [])}
        self.assertEqual(v1, v2)
        self.assertEqual(versions, v2)
        # URL-encoded pages name the same objects.
        enc = {urllib.parse.unquote(o["Key"]): (o["Size"], o["ETag"])
               for o in self.c.list_objects_v2(Bucket=bucket, Prefix=prefix,
                                               EncodingType="url")["Contents"]}
        self.assertEqual(enc, v2)
        return v2

    def status_of(self, fn, **kw):
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            fn(**kw)
        return e.exception.response["ResponseMetadata"]["HTTPStatusCode"]

    def test_single_put_sizes_and_etags(self):
        data = os.urandom(65_537)
        md5 = hashlib.md5(data).hexdigest()
        key = "single/sse-s3 by header+é"
        put = self.c.put_object(Bucket=self.bucket, Key=key, Body=data,
                                ServerSideEncryption="AES256")
        self.assertEqual(put["ETag"], f'"{md5}"')
        raw = self.assert_ciphertext(key, data)
        self.assertNotEqual(raw["ETag"], put["ETag"])  # the backend's is the ciphertext's
        self.assertEqual(raw["ContentLength"], 65_569)
        head = self.c.head_object(Bucket=self.bucket, Key=key)
        self.assertEqual((head["ETag"], head["ContentLength"]), (put["ETag"], len(data)))
        got = self.c.get_object(Bucket=self.bucket, Key=key)
        self.assertEqual((got["ETag"], got["Body"].read()), (put["ETag"], data))
        self.assertEqual(self.listed(self.bucket, "single/")[key], (len(data), put["ETag"]))
        # Conditions by the ETag the PUT gave.
        got = self.c.get_object(Bucket=self.bucket, Key=key, IfMatch=put["ETag"])
        self.assertEqual(got["Body"].read(), data)
        self.assertEqual(self.status_of(self.c.get_object, Bucket=self.bucket, Key=key,
                                        IfNoneMatch=put["ETag"]), 304)
        self.assertEqual(self.status_of(self.c.head_object, Bucket=self.bucket, Key=key,
                                        IfNoneMatch=put["ETag"]), 304)
        self.assertEqual(self.status_of(self.c.get_object, Bucket=self.bucket, Key=key,
                                        IfMatch=raw["ETag"]), 412)
        r = self.c.get_object(Bucket=self.bucket, Key=key, Range="bytes=100-199",
                              IfMatch=put["ETag"])
        self.assertEqual((r["ETag"], r["Body"].read()), (put["ETag"], data[100:200]))
        # A second instance (a cold cache) gives the same.
        other = S3Seal(keystore_of=self.s).start()
        try:
            h = other.client().head_object(Bucket=self.bucket, Key=key)
            self.assertEqual(h["ETag"], put["ETag"])
        finally:
            other.stop()

    def test_kms_and_default_bucket(self):
        data = os.urandom(200_003)
        put = self.c.put_object(Bucket=self.bucket, Key="kms/one", Body=data,
                                ServerSideEncryption="aws:kms")
        self.assert_ciphertext("kms/one", data)
        head = self.c.head_object(Bucket=self.bucket, Key="kms/one")
        self.assertEqual((head["ETag"], head["ContentLength"]), (put["ETag"], len(data)))
        self.assertEqual(self.listed(self.bucket, "kms/")["kms/one"], (len(data), put["ETag"]))
        # The bucket's default, with a trailing checksum (aws-chunked upload).
        put = self.c.put_object(Bucket=self.dflt, Key="dflt/crc", Body=data,
                                ChecksumAlgorithm="CRC32")
        self.assertEqual(put["ETag"], f'"{hashlib.md5(data).hexdigest()}"')
        self.assert_ciphertext("dflt/crc", data, bucket=self.dflt)
        head = self.c.head_object(Bucket=self.dflt, Key="dflt/crc")
        self.assertEqual((head["ETag"], head["ContentLength"]), (put["ETag"], len(data)))
        self.assertEqual(self.listed(self.dflt, "dflt/")["dflt/crc"], (len(data), put["ETag"]))

    def test_multipart(self):
        data = os.urandom(10 * MiB + 1234)
        path = os.path.join(self.tmp, "mp.bin")
        with open(path, "wb") as f:
            f.write(data)
        cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
        self.c.upload_file(path, self.bucket, "mp/kms", Config=cfg,
                           ExtraArgs={"ServerSideEncryption": "aws:kms"})
        self.assert_ciphertext("mp/kms", data)
        head = self.c.head_object(Bucket=self.bucket, Key="mp/kms")
        self.assertEqual(head["ContentLength"], len(data))
        self.assertTrue(head["ETag"].endswith('-3"'))
        self.assertEqual(self.listed(self.bucket, "mp/")["mp/kms"], (len(data), head["ETag"]))
        # The Complete's own answer gives the same ETag.
        up = self.c.create_multipart_upload(Bucket=self.bucket, Key="mp/s3",
                                            ServerSideEncryption="AES256")
        parts = []
        for i, chunk in enumerate((data[:5 * MiB], data[5 * MiB:10 * MiB], data[10 * MiB:])):
            r = self.c.upload_part(Bucket=self.bucket, Key="mp/s3", UploadId=up["UploadId"],
                                   PartNumber=i + 1, Body=chunk)
            parts.append({"PartNumber": i + 1, "ETag": r["ETag"]})
        done = self.c.complete_multipart_upload(Bucket=self.bucket, Key="mp/s3",
                                                UploadId=up["UploadId"],
                                                MultipartUpload={"Parts": parts})
        self.assert_ciphertext("mp/s3", data)
        head = self.c.head_object(Bucket=self.bucket, Key="mp/s3")
        self.assertEqual((head["ETag"], head["ContentLength"]), (done["ETag"], len(data)))
        self.assertEqual(self.listed(self.bucket, "mp/")["mp/s3"], (len(data), done["ETag"]))

    def test_copies(self):
        data = os.urandom(100_001)
        md5 = f'"{hashlib.md5(data).hexdigest()}"'
        src = self.c.put_object(Bucket=self.bucket, Key="copy/src", Body=data,
                                ServerSideEncryption="AES256")
        self.c.put_object(Bucket=self.bucket, Key="copy/plain", Body=data)
        cases = {
            # re-wrapped for the new name (the ciphertext is copied as it is)
            "copy/rewrapped": dict(CopySource={"Bucket": self.bucket, "Key": "copy/src"}),
            "copy/to-kms": dict(CopySource={"Bucket": self.bucket, "Key": "copy/src"},
                                ServerSideEncryption="aws:kms"),
            # a plain source, encrypted on the way (streamed through s3seal)
            "copy/encrypted": dict(CopySource={"Bucket": self.bucket, "Key": "copy/plain"},
                                   ServerSideEncryption="AES256"),
        }
        for key, kw in cases.items():
            r = self.c.copy_object(Bucket=self.bucket, Key=key, **kw)
            self.assertEqual(r["CopyObjectResult"]["ETag"], src["ETag"], key)
            self.assert_ciphertext(key, data)
            head = self.c.head_object(Bucket=self.bucket, Key=key)
            self.assertEqual((head["ETag"], head["ContentLength"]), (md5, len(data)), key)
        listed = self.listed(self.bucket, "copy/")
        for key in ("copy/src", "copy/plain", *cases):
            self.assertEqual(listed[key], (len(data), md5), key)
        # Into the bucket that encrypts by default, from the other bucket.
        self.c.copy_object(Bucket=self.dflt, Key="copy/across",
                           CopySource={"Bucket": self.bucket, "Key": "copy/rewrapped"})
        self.assert_ciphertext("copy/across", data, bucket=self.dflt)
        self.assertEqual(self.listed(self.dflt, "copy/")["copy/across"], (len(data), md5))

    def test_objects_written_elsewhere_list_as_stored(self):
        data = os.urandom(70_000)
        self.c.put_object(Bucket=self.bucket, Key="else/plain", Body=data)
        raw = self.b.head_object(Bucket=self.bucket, Key="else/plain")
        self.assertEqual(raw["ContentLength"], len(data))  # stored as sent
        # A plaintext whose size is a possible ciphertext size stays as it is.
        odd = os.urandom(65_569)
        self.c.put_object(Bucket=self.bucket, Key="else/odd", Body=odd)
        # Encrypted through s3seal, then overwritten on the backend directly:
        # another ETag, so the old entry does not apply.
        self.c.put_object(Bucket=self.bucket, Key="else/over", Body=data,
                          ServerSideEncryption="AES256")
        self.assert_ciphertext("else/over", data)
        self.b.put_object(Bucket=self.bucket, Key="else/over", Body=b"behind its back")
        listed = self.listed(self.bucket, "else/")
        self.assertEqual(listed["else/plain"], (len(data), raw["ETag"]))
        self.assertEqual(listed["else/odd"][0], len(odd))
        self.assertEqual(listed["else/over"],
                         (15, '"' + hashlib.md5(b"behind its back").hexdigest() + '"'))
        # The entry is still in the keystore: it is the ETag that keeps it out.
        db = sqlite3.connect(os.path.join(self.s.dir, "keystore.db"))
        try:
            rows = db.execute("SELECT size FROM entries WHERE key = ?",
                              (b"else/over",)).fetchall()
        finally:
            db.close()
        self.assertEqual(rows, [(len(data),)])

    def aws(self, *args):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.s.access_key,
                   AWS_SECRET_ACCESS_KEY=self.s.secret_key, AWS_DEFAULT_REGION="us-east-1",
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        r = subprocess.run(["aws", "--endpoint-url", self.s.endpoint, *args],
                           capture_output=True, env=env, timeout=300)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode()[-2000:])
        return r.stdout.decode()

    def test_aws_cli_ls_and_sync(self):
        d = os.path.join(self.tmp, "sync")
        os.makedirs(d)
        files = {f"f{i}": os.urandom(n) for i, n in enumerate((1, 65_537, 300_000, 7 * MiB))}
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        out = self.aws("s3", "sync", "--sse", "AES256", d, f"s3://{self.bucket}/sync/")
        self.assertEqual(out.count("upload:"), len(files), out)
        for name, data in files.items():
            self.assert_ciphertext(f"sync/{name}", data)
        ls = self.aws("s3", "ls", f"s3://{self.bucket}/sync/")
        for name, data in files.items():
            self.assertIn(f" {len(data)} {name}", ls)
        # The second run finds every object as it is locally: nothing copied.
        out = self.aws("s3", "sync", "--sse", "AES256", d, f"s3://{self.bucket}/sync/")
        self.assertNotIn("upload:", out)

    @unittest.skipUnless(shutil.which("rclone"), "rclone is not installed")
    def test_rclone_check(self):
        d = os.path.join(self.tmp, "rclone")
        os.makedirs(d)
        for i, n in enumerate((0, 1, 70_000, 3 * MiB)):
            with open(os.path.join(d, f"f{i}"), "wb") as f:
                f.write(os.urandom(n))
        # Into the bucket that encrypts by default, in single PUTs without
        # Content-MD5 (boto3), then compared by rclone by size and MD5.
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                self.c.put_object(Bucket=self.dflt, Key=f"rclone/{name}", Body=f.read())
        env = dict(os.environ, RCLONE_CONFIG="/dev/null", RCLONE_CONFIG_S_TYPE="s3",
                   RCLONE_CONFIG_S_PROVIDER="Other", RCLONE_CONFIG_S_ENV_AUTH="false",
                   RCLONE_CONFIG_S_ACCESS_KEY_ID=self.s.access_key,
                   RCLONE_CONFIG_S_SECRET_ACCESS_KEY=self.s.secret_key,
                   RCLONE_CONFIG_S_ENDPOINT=self.s.endpoint, RCLONE_CONFIG_S_REGION="us-east-1")
        env.pop("AWS_CA_BUNDLE", None)
        r = subprocess.run(["rclone", "check", d, f"s:{self.dflt}/rclone"], capture_output=True,
                           env=env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        self.assertIn(b"0 differences found", r.stderr)
        self.assertNotIn(b"hashes could not be checked", r.stderr)


if __name__ == "__main__":
    unittest.main()
