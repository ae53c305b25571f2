"""Copies whose data must change on the way, end to end against the real
backend: a plain source copied into an encrypted object, parts copied from
an encrypted source or into an encrypted upload (whole sources and
copy-source ranges), aws-cli's multipart copy between buckets; the copy's
object headers and metadata follow the metadata directive; copy-source
conditions are honoured (the backend ignores them on copies); a missing
source or a failed condition stores nothing; a tampered encrypted source
aborts a copy that reads it and stays unreadable through one that does not. Every encrypted result is read straight from the backend
and checked to be ciphertext."""

import os
import unittest

import botocore

from harness import S3Seal, backend_client, backend_has, empty_and_delete, new_bucket_name

MIB = 1024 * 1024
SEG = 65536


def single_cipher_size(n):
    return n + 16 * max(1, -(-n // SEG))


class SseCopyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket_name("ssecopy")
        cls.other = new_bucket_name("ssecopy2")
        cls.s = S3Seal().start()
        cls.c = cls.s.client()
        cls.b = backend_client()
        for b in (cls.bucket, cls.other):
            cls.c.create_bucket(Bucket=b)
        cls.plain = os.urandom(6 * MIB + 5)
        cls.c.put_object(Bucket=cls.bucket, Key="plain", Body=cls.plain, ContentType="text/x-test",
                         Metadata={"colour": "blue"})
        cls.c.put_object(Bucket=cls.bucket, Key="enc", Body=cls.plain, ServerSideEncryption="AES256",
                         ContentType="text/x-test", Metadata={"colour": "blue"})

    @classmethod
    def tearDownClass(cls):
        try:
            for b in (cls.bucket, cls.other):
                empty_and_delete(cls.b, b)
        finally:
            cls.s.stop()

    def assert_ciphertext(self, bucket, key, data):
        raw = self.b.get_object(Bucket=bucket, Key=key)
        body = raw["Body"].read()
        self.assertIn("s3seal-version", raw["Metadata"])
        for off in (0, len(data) // 3, len(data) - 64):
            self.assertNotIn(data[off:off + 64], body)

    def test_plain_source_into_encrypted_object(self):
        r = self.c.copy_object(Bucket=self.bucket, Key="p2e", ServerSideEncryption="AES256",
                               CopySource={"Bucket": self.bucket, "Key": "plain"})
        self.assertEqual(r["ServerSideEncryption"], "AES256")
        self.assertTrue(r["CopyObjectResult"]["ETag"].startswith('"'))
        got = self.c.get_object(Bucket=self.bucket, Key="p2e")
        self.assertEqual(got["Body"].read(), self.plain)
        self.assertEqual(got["ContentType"], "text/x-test")
        self.assertEqual(got["Metadata"], {"colour": "blue"})
        self.assertEqual(self.b.head_object(Bucket=self.bucket, Key="p2e")["ContentLength"],
                         single_cipher_size(len(self.plain)))
        self.assert_ciphertext(self.bucket, "p2e", self.plain)
        # REPLACE takes the request's headers instead of the source's.
        self.c.copy_object(Bucket=self.bucket, Key="p2e-r", ServerSideEncryption="AES256",
                           CopySource={"Bucket": self.bucket, "Key": "plain"},
                           MetadataDirective="REPLACE", ContentType="application/x-other",
                           Metadata={"shape": "round"})
        got = self.c.get_object(Bucket=self.bucket, Key="p2e-r")
        self.assertEqual(got["Body"].read(), self.plain)
        self.assertEqual(got["ContentType"], "application/x-other")
        self.assertEqual(got["Metadata"], {"shape": "round"})

    def test_tags_follow_the_tagging_directive(self):
        self.c.put_object(Bucket=self.bucket, Key="tagged", Body=b"tagged source" * 100,
                          Tagging="colour=blue&note=a%20b%26c")
        self.c.copy_object(Bucket=self.bucket, Key="tagged-copy", ServerSideEncryption="AES256",
                           CopySource={"Bucket": self.bucket, "Key": "tagged"})
        tags = self.c.get_object_tagging(Bucket=self.bucket, Key="tagged-copy")["TagSet"]
        self.assertEqual(sorted((t["Key"], t["Value"]) for t in tags),
                         [("colour", "blue"), ("note", "a b&c")])
        self.assert_ciphertext(self.bucket, "tagged-copy", b"tagged source" * 100)
        self.c.copy_object(Bucket=self.bucket, Key="tagged-copy2", ServerSideEncryption="AES256",
                           CopySource={"Bucket": self.bucket, "Key": "tagged"},
                           TaggingDirective="REPLACE", Tagging="shape=round")
        tags = self.c.get_object_tagging(Bucket=self.bucket, Key="tagged-copy2")["TagSet"]
        self.assertEqual([(t["Key"], t["Value"]) for t in tags], [("shape", "round")])

    def test_conditions_and_missing_sources(self):
        head = self.c.head_object(Bucket=self.bucket, Key="plain")
        for cond in ({"CopySourceIfMatch": '"0123456789abcdef0123456789abcdef"'},
                     {"CopySourceIfNoneMatch": head["ETag"]}):
            for sse in ({"ServerSideEncryption": "AES256"}, {}):
                with self.assertRaises(botocore.exceptions.ClientError) as e:
                    self.c.copy_object(Bucket=self.bucket, Key="cond",
                                       CopySource={"Bucket": self.bucket, "Key": "plain"},
                                       **cond, **sse)
                self.assertEqual(e.exception.response["Error"]["Code"], "PreconditionFailed")
                self.assertFalse(backend_has(self.bucket, "cond"))
        self.c.copy_object(Bucket=self.bucket, Key="cond", ServerSideEncryption="AES256",
                           CopySource={"Bucket": self.bucket, "Key": "plain"},
                           CopySourceIfMatch=head["ETag"])
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="cond")["Body"].read(),
                         self.plain)
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.copy_object(Bucket=self.bucket, Key="missing", ServerSideEncryption="AES256",
                               CopySource={"Bucket": self.bucket, "Key": "no-such-key"})
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchKey")
        self.assertFalse(backend_has(self.bucket, "missing"))

    def test_part_copies(self):
        # Into an encrypted upload, from both kinds of source.
        uid = self.c.create_multipart_upload(Bucket=self.bucket, Key="mp",
                                             ServerSideEncryption="AES256")["UploadId"]
        first = 5 * MIB + 8 * SEG
        p1 = self.c.upload_part_copy(Bucket=self.bucket, Key="mp", UploadId=uid, PartNumber=1,
                                     CopySource={"Bucket": self.bucket, "Key": "enc"},
                                     CopySourceRange=f"bytes=0-{first - 1}")
        p2 = self.c.upload_part_copy(Bucket=self.bucket, Key="mp", UploadId=uid, PartNumber=2,
                                     CopySource={"Bucket": self.bucket, "Key": "plain"},
                                     CopySourceRange="bytes=1000-2000")
        self.assertEqual(p1["ServerSideEncryption"], "AES256")
        self.c.complete_multipart_upload(
            Bucket=self.bucket, Key="mp", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
                                       {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
        want = self.plain[:first] + self.plain[1000:2001]
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="mp")["Body"].read(), want)
        self.assert_ciphertext(self.bucket, "mp", want)
        # A range out of the source's plaintext bounds.
        uid2 = self.c.create_multipart_upload(Bucket=self.bucket, Key="mp-bad",
                                              ServerSideEncryption="AES256")["UploadId"]
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.upload_part_copy(Bucket=self.bucket, Key="mp-bad", UploadId=uid2, PartNumber=1,
                                    CopySource={"Bucket": self.bucket, "Key": "enc"},
                                    CopySourceRange=f"bytes=0-{len(self.plain)}")
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidRange")
        self.c.abort_multipart_upload(Bucket=self.bucket, Key="mp-bad", UploadId=uid2)
        # From an encrypted source into a plain upload: the plaintext.
        uid = self.c.create_multipart_upload(Bucket=self.bucket, Key="mp-plain")["UploadId"]
        self.assertNotIn("~s3seal", uid)
        p1 = self.c.upload_part_copy(Bucket=self.bucket, Key="mp-plain", UploadId=uid,
                                     PartNumber=1, CopySource={"Bucket": self.bucket, "Key": "enc"})
        self.c.complete_multipart_upload(
            Bucket=self.bucket, Key="mp-plain", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]}]})
        self.assertEqual(self.b.get_object(Bucket=self.bucket, Key="mp-plain")["Body"].read(),
                         self.plain)
        # A part copied from a source that does not exist: NoSuchKey from
        # s3seal, into a plain upload as into an encrypted one.
        for sse in ({}, {"ServerSideEncryption": "AES256"}):
            uid3 = self.c.create_multipart_upload(Bucket=self.bucket, Key="mp-none",
                                                  **sse)["UploadId"]
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                self.c.upload_part_copy(Bucket=self.bucket, Key="mp-none", UploadId=uid3,
                                        PartNumber=1,
                                        CopySource={"Bucket": self.bucket, "Key": "no-such"})
            self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchKey", sse)
            self.assertEqual(self.b.list_parts(Bucket=self.bucket, Key="mp-none",
                                               UploadId=uid3.split("~s3seal")[0]).get("Parts", []),
                             [])
            self.c.abort_multipart_upload(Bucket=self.bucket, Key="mp-none", UploadId=uid3)
        # An encrypted multipart object copied whole: its key re-wrapped.
        self.c.copy_object(Bucket=self.other, Key="mp-copy",
                           CopySource={"Bucket": self.bucket, "Key": "mp"})
        self.assertEqual(self.c.get_object(Bucket=self.other, Key="mp-copy")["Body"].read(), want)
        got = self.c.get_object(Bucket=self.other, Key="mp-copy", Range="bytes=5000-5100")
        self.assertEqual(got["Body"].read(), want[5000:5101])

    def test_tampered_source_stores_nothing(self):
        data = os.urandom(3 * SEG + 7)
        self.c.put_object(Bucket=self.bucket, Key="victim", Body=data, ServerSideEncryption="AES256")
        raw = self.b.get_object(Bucket=self.bucket, Key="victim")
        body = bytearray(raw["Body"].read())
        body[100] ^= 1  # in the first segment: no byte of it is ever served
        self.b.put_object(Bucket=self.bucket, Key="victim", Body=bytes(body),
                          Metadata=raw["Metadata"])
        # A whole-object copy only re-wraps the key: the copy stays tampered,
        # and reading it fails like reading the source.
        self.c.copy_object(Bucket=self.bucket, Key="victim-copy",
                           CopySource={"Bucket": self.bucket, "Key": "victim"})
        for key in ("victim", "victim-copy"):
            # An error status, or a head whose body is cut before any byte.
            with self.assertRaises((botocore.exceptions.ClientError,
                                    botocore.exceptions.ResponseStreamingError)):
                self.c.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        # A part copy reads the data: it fails, and no part is stored.
        uid = self.c.create_multipart_upload(Bucket=self.bucket, Key="victim-mp",
                                             ServerSideEncryption="AES256")["UploadId"]
        with self.assertRaises(botocore.exceptions.ClientError):
            self.c.upload_part_copy(Bucket=self.bucket, Key="victim-mp", UploadId=uid,
                                    PartNumber=1,
                                    CopySource={"Bucket": self.bucket, "Key": "victim"})
        bid = uid.split("~s3seal3~")[0]
        self.assertEqual(self.b.list_parts(Bucket=self.bucket, Key="victim-mp",
                                           UploadId=bid).get("Parts", []), [])
        self.c.abort_multipart_upload(Bucket=self.bucket, Key="victim-mp", UploadId=uid)

    def test_aws_cli_copy_between_buckets(self):
        data = os.urandom(20 * MIB + 3)
        src = os.path.join(self.s.dir, "big.in")
        with open(src, "wb") as f:
            f.write(data)
        self.s.aws("s3", "cp", src, f"s3://{self.bucket}/big", "--sse", "AES256")
        # Above 8 MB aws-cli copies with UploadPartCopy.
        self.s.aws("s3", "cp", f"s3://{self.bucket}/big", f"s3://{self.other}/big", "--sse",
                   "AES256")
        self.assertEqual(self.c.get_object(Bucket=self.other, Key="big")["Body"].read(), data)
        self.assert_ciphertext(self.other, "big", data)
        self.assertEqual(self.b.head_object(Bucket=self.other, Key="big")["Metadata"]
                         .get("s3seal-layout"), "parts3")


if __name__ == "__main__":
    unittest.main()
