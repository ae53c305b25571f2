"""boto3 through s3seal against the real backend: objects, metadata, ranges,
conditional requests, multipart uploads, copies, batch deletes, tagging,
awkward key names, bucket calls and virtual-hosted-style addressing."""

import os
import socket
import unittest
from unittest import mock
from urllib.parse import urlsplit

import boto3
import botocore
from botocore.config import Config

from harness import (REGION, S3Seal, backend_client, empty_and_delete, new_bucket_name,
                     raw_request, sign_v4)


class Boto3Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal(extra_yaml="domain: s3seal.test\n").start()
        cls.c = cls.s.client()
        cls.bucket = new_bucket_name("boto")
        cls.c.create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def test_put_get_head_list_delete(self):
        data = os.urandom(300_000)
        self.c.put_object(Bucket=self.bucket, Key="o1", Body=data, Metadata={"a": "1"},
                          ContentType="application/x-test")
        got = self.c.get_object(Bucket=self.bucket, Key="o1")
        self.assertEqual(got["Body"].read(), data)
        self.assertEqual(got["Metadata"], {"a": "1"})
        self.assertEqual(got["ContentType"], "application/x-test")
        self.assertTrue(got["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id"))
        head = self.c.head_object(Bucket=self.bucket, Key="o1")
        self.assertEqual(head["ContentLength"], len(data))
        keys = [o["Key"] for o in self.c.list_objects_v2(Bucket=self.bucket)["Contents"]]
        self.assertIn("o1", keys)
        self.c.delete_object(Bucket=self.bucket, Key="o1")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.get_object(Bucket=self.bucket, Key="o1")
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchKey")

    def test_ranges_and_conditionals(self):
        data = bytes(range(256)) * 1000
        etag = self.c.put_object(Bucket=self.bucket, Key="r", Body=data)["ETag"]
        for rng, lo, hi in (("bytes=10-19", 10, 19), ("bytes=255990-", 255990, 255999),
                            ("bytes=-5", 255995, 255999), ("bytes=0-0", 0, 0)):
            r = self.c.get_object(Bucket=self.bucket, Key="r", Range=rng)
            self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 206, rng)
            self.assertEqual(r["ContentRange"], f"bytes {lo}-{hi}/{len(data)}", rng)
            self.assertEqual(r["Body"].read(), data[lo:hi + 1], rng)
        h = self.c.head_object(Bucket=self.bucket, Key="r", Range="bytes=10-19")
        self.assertEqual((h["ContentLength"], h["ContentRange"]), (10, f"bytes 10-19/{len(data)}"))
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.get_object(Bucket=self.bucket, Key="r", Range="bytes=999999-")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 416)
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.get_object(Bucket=self.bucket, Key="r", IfNoneMatch=etag)
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 304)
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.get_object(Bucket=self.bucket, Key="r", IfMatch='"0000"')
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 412)

    def test_multipart_copy_delete_objects_tagging(self):
        mp = self.c.create_multipart_upload(Bucket=self.bucket, Key="mp")
        p1 = os.urandom(5 * 1024 * 1024)
        p2 = os.urandom(1234)
        e2 = self.c.upload_part(Bucket=self.bucket, Key="mp", UploadId=mp["UploadId"],
                                PartNumber=2, Body=p2)["ETag"]
        e1 = self.c.upload_part(Bucket=self.bucket, Key="mp", UploadId=mp["UploadId"],
                                PartNumber=1, Body=p1)["ETag"]
        parts = self.c.list_parts(Bucket=self.bucket, Key="mp", UploadId=mp["UploadId"])
        self.assertEqual([p["PartNumber"] for p in parts["Parts"]], [1, 2])
        self.c.complete_multipart_upload(
            Bucket=self.bucket, Key="mp", UploadId=mp["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                       {"PartNumber": 2, "ETag": e2}]})
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="mp")["Body"].read(), p1 + p2)

        self.c.copy_object(Bucket=self.bucket, Key="mp-copy",
                           CopySource={"Bucket": self.bucket, "Key": "mp"})
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="mp-copy")["Body"].read(),
                         p1 + p2)
        self.c.put_object_tagging(Bucket=self.bucket, Key="mp-copy",
                                  Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
        tags = self.c.get_object_tagging(Bucket=self.bucket, Key="mp-copy")["TagSet"]
        self.assertEqual(tags, [{"Key": "k", "Value": "v"}])
        deleted = self.c.delete_objects(Bucket=self.bucket, Delete={
            "Objects": [{"Key": "mp"}, {"Key": "mp-copy"}]})["Deleted"]
        self.assertEqual(sorted(d["Key"] for d in deleted), ["mp", "mp-copy"])

        aborted = self.c.create_multipart_upload(Bucket=self.bucket, Key="ab")
        self.c.abort_multipart_upload(Bucket=self.bucket, Key="ab", UploadId=aborted["UploadId"])

    def test_awkward_keys(self):
        for key in ("dir/a b+c%d~é.txt", "x?y=z&w", "sp  aces", "日本語/ファイル", "a//b",
                    "star*(paren)!'quote"):
            self.c.put_object(Bucket=self.bucket, Key=key, Body=key.encode())
            self.assertEqual(self.c.get_object(Bucket=self.bucket, Key=key)["Body"].read(),
                             key.encode(), key)
            # The backend holds it under exactly that name.
            self.assertEqual(backend_client().get_object(Bucket=self.bucket, Key=key)["Body"]
                             .read(), key.encode(), key)
        listed = {o["Key"] for o in self.c.list_objects_v2(Bucket=self.bucket)["Contents"]}
        self.assertIn("dir/a b+c%d~é.txt", listed)

    def test_buckets(self):
        name = new_bucket_name("tmp")
        self.c.create_bucket(Bucket=name)
        self.assertIn(name, [b["Name"] for b in self.c.list_buckets()["Buckets"]])
        self.c.head_bucket(Bucket=name)
        self.c.delete_bucket(Bucket=name)
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c.head_bucket(Bucket=name)
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)

    def test_other_operations_pass_through(self):
        """Operations s3seal has no special handling for keep their meaning."""
        name = new_bucket_name("ops")
        self.c.create_bucket(Bucket=name)
        try:
            self.c.put_bucket_versioning(Bucket=name,
                                         VersioningConfiguration={"Status": "Enabled"})
            self.assertEqual(self.c.get_bucket_versioning(Bucket=name)["Status"], "Enabled")
            v1 = self.c.put_object(Bucket=name, Key="v", Body=b"one")["VersionId"]
            v2 = self.c.put_object(Bucket=name, Key="v", Body=b"two")["VersionId"]
            self.assertNotEqual(v1, v2)
            self.assertEqual(self.c.get_object(Bucket=name, Key="v", VersionId=v1)["Body"].read(),
                             b"one")
            versions = self.c.list_object_versions(Bucket=name)["Versions"]
            self.assertEqual(sorted(v["VersionId"] for v in versions), sorted([v1, v2]))
            self.c.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
            self.assertEqual(self.c.get_bucket_tagging(Bucket=name)["TagSet"],
                             [{"Key": "t", "Value": "1"}])
            acl = self.c.get_object_acl(Bucket=name, Key="v")
            self.assertTrue(acl["Grants"])
            self.c.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [
                {"AllowedMethods": ["GET"], "AllowedOrigins": ["https://example.test"]}]})
            self.assertEqual(self.c.get_bucket_cors(Bucket=name)["CORSRules"][0]["AllowedMethods"],
                             ["GET"])
            # s3seal's own region (us-east-1 here: an empty constraint, as S3
            # answers), never the backend's zone group.
            loc = self.c.get_bucket_location(Bucket=name)
            self.assertIn(loc["LocationConstraint"], (None, ""))
            for v in (v1, v2):
                self.c.delete_object(Bucket=name, Key="v", VersionId=v)
        finally:
            empty_and_delete(backend_client(), name)

    def test_copy_with_customer_keys_is_refused(self):
        """SSE-C asked of a copy (destination or source keys) is refused
        with 501 rather than the copy made without the client's key."""
        name = new_bucket_name("ssec")
        self.c.create_bucket(Bucket=name)
        try:
            self.c.put_object(Bucket=name, Key="src", Body=b"data")
            key = os.urandom(32)
            for kw in ({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key},
                       {"CopySourceSSECustomerAlgorithm": "AES256",
                        "CopySourceSSECustomerKey": key}):
                with self.subTest(kw=list(kw)):
                    with self.assertRaises(botocore.exceptions.ClientError) as e:
                        self.c.copy_object(Bucket=name, Key="dst",
                                           CopySource={"Bucket": name, "Key": "src"}, **kw)
                    self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"],
                                     501)
                    self.assertEqual(e.exception.response["Error"]["Code"], "NotImplemented")
            keys = [o["Key"] for o in backend_client().list_objects_v2(Bucket=name)["Contents"]]
            self.assertEqual(keys, ["src"])
        finally:
            empty_and_delete(backend_client(), name)

    def test_bucket_location_is_s3seals_region(self):
        """GetBucketLocation names the region s3seal answers for (the one
        clients sign for), whatever the backend's zone group; NoSuchBucket
        for a bucket the backend does not have."""
        s = S3Seal(extra_yaml="region: eu-west-3\n").start()
        try:
            c = boto3.client("s3", endpoint_url=s.endpoint, region_name="eu-west-3",
                             aws_access_key_id=s.access_key, aws_secret_access_key=s.secret_key,
                             config=Config(signature_version="s3v4",
                                           s3={"addressing_style": "path"}))
            name = new_bucket_name("loc")
            backend_client().create_bucket(Bucket=name)
            try:
                self.assertEqual(c.get_bucket_location(Bucket=name)["LocationConstraint"],
                                 "eu-west-3")
            finally:
                empty_and_delete(backend_client(), name)
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                c.get_bucket_location(Bucket=name)
            self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchBucket")
        finally:
            s.stop()

    def test_virtual_hosted_style(self):
        self.c.put_object(Bucket=self.bucket, Key="vh/obj", Body=b"virtual")
        host = f"{self.bucket}.s3seal.test:{self.s.port}"
        url = f"http://{host}/vh/obj"
        h = sign_v4("GET", url, {}, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                    self.s.access_key, self.s.secret_key)
        status, _, body = raw_request(self.s.endpoint, "GET", "/vh/obj", h)
        self.assertEqual((status, body), (200, b"virtual"))

    def test_virtual_hosted_style_boto3(self):
        """boto3 itself in virtual-hosted style (Host: BUCKET.s3seal.test:PORT,
        signed as such); the made-up domain is resolved to 127.0.0.1 here."""
        real = socket.getaddrinfo

        def resolve(host, *a, **kw):
            if isinstance(host, str) and host.endswith(".s3seal.test"):
                host = "127.0.0.1"
            return real(host, *a, **kw)

        vc = boto3.client(
            "s3", endpoint_url=f"http://s3seal.test:{self.s.port}", region_name=REGION,
            aws_access_key_id=self.s.access_key, aws_secret_access_key=self.s.secret_key,
            config=Config(signature_version="s3v4", retries={"max_attempts": 1},
                          s3={"addressing_style": "virtual"}))
        hosts = []
        vc.meta.events.register("before-send.s3",
                                lambda request, **kw: hosts.append(urlsplit(request.url).netloc))
        with mock.patch("socket.getaddrinfo", resolve):
            data = os.urandom(70_000)
            vc.put_object(Bucket=self.bucket, Key="vh/boto3 obj", Body=data,
                          Metadata={"style": "virtual"})
            got = vc.get_object(Bucket=self.bucket, Key="vh/boto3 obj", Range="bytes=5-9")
            self.assertEqual(got["Body"].read(), data[5:10])
            keys = [o["Key"] for o in
                    vc.list_objects_v2(Bucket=self.bucket, Prefix="vh/")["Contents"]]
            self.assertIn("vh/boto3 obj", keys)
        self.assertTrue(hosts)
        self.assertEqual(set(hosts), {f"{self.bucket}.s3seal.test:{self.s.port}"})
        # Stored in the same bucket as path-style sees it.
        self.assertEqual(backend_client().get_object(Bucket=self.bucket, Key="vh/boto3 obj")
                         ["Body"].read(), data)
        head = self.c.head_object(Bucket=self.bucket, Key="vh/boto3 obj")
        self.assertEqual(head["Metadata"], {"style": "virtual"})


if __name__ == "__main__":
    unittest.main()
