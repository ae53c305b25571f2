"""Legacy uploaders: AWS Signature Version 2 (header and query) when the
config says `sigv2: true`, refused when it does not; s3cmd configured for
signature v2, boto3's HmacV1 signer, aws-cli v1's SigV2 presigned links;
SSE-KMS over SigV2 refused as AWS refuses it."""

import os
import subprocess
import time
import unittest
import urllib.parse

import botocore

from harness import (S3Seal, backend_client, backend_has, empty_and_delete, error_code,
                     new_bucket_name)


class SigV2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal(extra_yaml="sigv2: true\n").start()
        cls.bucket = new_bucket_name("v2")
        cls.s.client().create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def v2_client(self, secret=None):
        return self.s.client(secret_key=secret, signature_version="s3")

    def test_boto3_hmacv1(self):
        c = self.v2_client()
        c.put_object(Bucket=self.bucket, Key="v2/obj", Body=b"legacy", Metadata={"m": "1"},
                     ContentType="text/plain")
        got = c.get_object(Bucket=self.bucket, Key="v2/obj")
        self.assertEqual(got["Body"].read(), b"legacy")
        self.assertEqual([o["Key"] for o in c.list_objects(Bucket=self.bucket,
                                                           Prefix="v2/")["Contents"]], ["v2/obj"])
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.v2_client(secret="wrong").put_object(Bucket=self.bucket, Key="v2/bad", Body=b"x")
        self.assertEqual(e.exception.response["Error"]["Code"], "SignatureDoesNotMatch")
        self.assertFalse(backend_has(self.bucket, "v2/bad"))
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            c.put_object(Bucket=self.bucket, Key="v2/kms", Body=b"x", ServerSideEncryption="aws:kms")
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidArgument")
        self.assertIn("Signature Version 4", e.exception.response["Error"]["Message"])
        self.assertFalse(backend_has(self.bucket, "v2/kms"))

    def test_s3cmd(self):
        cfg = os.path.join(self.s.dir, "s3cmd.cfg")
        host = f"127.0.0.1:{self.s.port}"
        with open(cfg, "w") as f:
            f.write(f"[default]\naccess_key = {self.s.access_key}\nsecret_key = {self.s.secret_key}\n"
                    f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\n"
                    "signature_v2 = True\ncheck_ssl_certificate = False\n")
        src = os.path.join(self.s.dir, "s3cmd-in")
        data = os.urandom(300_000)
        with open(src, "wb") as f:
            f.write(data)

        def s3cmd(*args):
            return subprocess.run(["s3cmd", "-c", cfg, *args], capture_output=True, timeout=120)

        r = s3cmd("put", src, f"s3://{self.bucket}/s3cmd/file.bin")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = os.path.join(self.s.dir, "s3cmd-out")
        r = s3cmd("get", "--force", f"s3://{self.bucket}/s3cmd/file.bin", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), data)
        r = s3cmd("ls", f"s3://{self.bucket}/s3cmd/")
        self.assertIn(b"file.bin", r.stdout)
        self.assertIn("method=PUT", self.s.read_log())

    def test_awscli_v1_presign_is_sigv2(self):
        self.s.client().put_object(Bucket=self.bucket, Key="pre2", Body=b"presigned v2")
        url = self.s.aws("s3", "presign", f"s3://{self.bucket}/pre2").stdout.decode().strip()
        if "AWSAccessKeyId=" not in url:
            self.skipTest("this aws-cli presigns with SigV4 (covered by test_presign)")
        r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", url], capture_output=True)
        body, _, code = r.stdout.rpartition(b"\n")
        self.assertEqual((code, body), (b"200", b"presigned v2"))
        u = urllib.parse.urlsplit(url)
        q = [(k, str(int(time.time()) - 10) if k == "Expires" else v)
             for k, v in urllib.parse.parse_qsl(u.query)]
        expired = urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))
        r = subprocess.run(["curl", "-s", expired], capture_output=True)
        self.assertEqual(error_code(r.stdout), "AccessDenied")
        self.assertIn(b"Request has expired", r.stdout)


class SigV2OffTest(unittest.TestCase):
    def test_refused_by_default(self):
        s = S3Seal().start()
        try:
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                s.client(signature_version="s3").list_buckets()
            self.assertEqual(e.exception.response["Error"]["Code"], "InvalidRequest")
            self.assertIn("AWS4-HMAC-SHA256", e.exception.response["Error"]["Message"])
        finally:
            s.stop()


if __name__ == "__main__":
    unittest.main()
