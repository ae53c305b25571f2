"""The bucket encryption API (PutBucketEncryption, GetBucketEncryption,
DeleteBucketEncryption), answered by s3seal and never forwarded, end to end
with boto3 and aws-cli against the real backend: a default set through it
makes plain PUTs land as ciphertext and is taken back by the delete; it
overrides the config file's default, which applies again once deleted;
SSE-KMS defaults are stored and reported (and PUTs relying on them refused,
as for a configured one); AWS's validation errors; the backend's own
encryption setting stays untouched; every worker of the instance sees a
change at once, and a second instance sharing the keystore within its
refresh period."""

import hashlib
import json
import os
import subprocess
import time
import unittest

import botocore

from harness import (S3Seal, backend_client, empty_and_delete, error_code, new_bucket_name,
                     raw_request, sign_v4)

SEG = 65536
TAG = 16
NS = "http://s3.amazonaws.com/doc/2006-03-01/"

AES256 = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
AES256_REPORTED = [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BucketKeyEnabled": False}]
# A well-formed key ARN the keystore does not have.
KMS_KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def cipher_size(n):
    return n + TAG * max(1, -(-n // SEG))


def client_error(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except botocore.exceptions.ClientError as e:
        return (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"],
                e.response["Error"].get("Message", ""))
    raise AssertionError("the call succeeded")


class BucketEncryptionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.config_bucket = new_bucket_name("becfg")
        cls.buckets = [cls.config_bucket]
        cls.s = S3Seal(extra_yaml=f"""buckets:
  {cls.config_bucket}:
    default_encryption: AES256
""").start()
        cls.c = cls.s.client()
        cls.c.create_bucket(Bucket=cls.config_bucket)
        r = subprocess.run([cls.s.bin, "-c", cls.s.config, "keys", "create"],
                           capture_output=True, check=True)
        cls.kms_arn = json.loads(r.stdout)["Arn"]

    @classmethod
    def tearDownClass(cls):
        for b in cls.buckets:
            empty_and_delete(backend_client(), b)
        cls.s.stop()

    def new_bucket(self):
        b = new_bucket_name("beapi")
        self.buckets.append(b)
        self.c.create_bucket(Bucket=b)
        return b

    def rules(self, bucket, client=None):
        r = (client or self.c).get_bucket_encryption(Bucket=bucket)
        return r["ServerSideEncryptionConfiguration"]["Rules"]

    def assert_not_found(self, bucket, client=None):
        status, code, msg = client_error((client or self.c).get_bucket_encryption, Bucket=bucket)
        self.assertEqual((status, code), (404, "ServerSideEncryptionConfigurationNotFoundError"))
        self.assertEqual(msg, "The server side encryption configuration was not found")

    def assert_ciphertext(self, bucket, key, data):
        raw = backend_client().get_object(Bucket=bucket, Key=key)
        body = raw["Body"].read()
        self.assertEqual(len(body), cipher_size(len(data)))
        self.assertNotIn(data[:64], body)
        self.assertEqual(raw["Metadata"].get("s3seal-version"), "1")

    def assert_plain(self, bucket, key, data):
        raw = backend_client().get_object(Bucket=bucket, Key=key)
        self.assertEqual(raw["Body"].read(), data)
        self.assertNotIn("s3seal-version", raw["Metadata"])

    def signed(self, method, bucket, body=b"", query="encryption"):
        url = f"{self.s.endpoint}/{bucket}?{query}"
        h = sign_v4(method, url, {}, hashlib.sha256(body).hexdigest(), self.s.access_key,
                    self.s.secret_key)
        return raw_request(self.s.endpoint, method, f"/{bucket}?{query}", h, body)

    def test_put_get_delete(self):
        b = self.new_bucket()
        self.assert_not_found(b)
        r = self.c.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration=AES256)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertEqual(self.rules(b), AES256_REPORTED)

        # A PUT with no SSE header is now stored encrypted.
        data = b"quarterly figures, not for the backend's eyes\n" * 4000
        r = self.c.put_object(Bucket=b, Key="report.txt", Body=data)
        self.assertEqual(r["ServerSideEncryption"], "AES256")
        self.assert_ciphertext(b, "report.txt", data)
        got = self.c.get_object(Bucket=b, Key="report.txt")
        self.assertEqual(got["Body"].read(), data)
        self.assertEqual(got["ServerSideEncryption"], "AES256")
        self.assertEqual(self.c.head_object(Bucket=b, Key="report.txt")["ContentLength"],
                         len(data))
        # Listings of a bucket encrypted by default report plaintext sizes.
        listed = self.c.list_objects_v2(Bucket=b)["Contents"]
        self.assertEqual([(o["Key"], o["Size"]) for o in listed], [("report.txt", len(data))])

        r = self.c.delete_bucket_encryption(Bucket=b)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assert_not_found(b)
        # As AWS: deleting what is not there is fine.
        r = self.c.delete_bucket_encryption(Bucket=b)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)

        # New objects are stored as sent again; the encrypted one still reads.
        plain = b"stored as sent\n" * 1000
        r = self.c.put_object(Bucket=b, Key="after.txt", Body=plain)
        self.assertNotIn("ServerSideEncryption", r)
        self.assert_plain(b, "after.txt", plain)
        self.assertEqual(self.c.get_object(Bucket=b, Key="report.txt")["Body"].read(), data)

    def test_document(self):
        b = self.new_bucket()
        self.c.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration=AES256)
        status, headers, body = self.signed("GET", b)
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/xml")
        self.assertEqual(int(headers["content-length"]), len(body))
        text = body.decode()
        self.assertIn(f'<ServerSideEncryptionConfiguration xmlns="{NS}">', text)
        self.assertIn("<SSEAlgorithm>AES256</SSEAlgorithm>", text)
        self.assertIn("<BucketKeyEnabled>false</BucketKeyEnabled>", text)
        status, headers, body = self.signed("DELETE", b)
        self.assertEqual((status, body), (204, b""))
        self.assertNotIn("content-length", headers)

    def test_aws_cli(self):
        b = self.new_bucket()
        cfg = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                          "BucketKeyEnabled": True}]}
        self.s.aws("s3api", "put-bucket-encryption", "--bucket", b,
                   "--server-side-encryption-configuration", json.dumps(cfg))
        out = json.loads(self.s.aws("s3api", "get-bucket-encryption", "--bucket", b).stdout)
        self.assertEqual(out["ServerSideEncryptionConfiguration"], cfg)

        path = os.path.join(self.s.dir, "upload.txt")
        data = b"aws s3 cp into a bucket encrypted through the API\n" * 3000
        with open(path, "wb") as f:
            f.write(data)
        self.s.aws("s3", "cp", path, f"s3://{b}/cp.txt")
        self.assert_ciphertext(b, "cp.txt", data)
        self.assertEqual(self.c.get_object(Bucket=b, Key="cp.txt")["Body"].read(), data)

        kms = {"Rules": [{"ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": self.kms_arn},
            "BucketKeyEnabled": False}]}
        self.s.aws("s3api", "put-bucket-encryption", "--bucket", b,
                   "--server-side-encryption-configuration", json.dumps(kms))
        out = json.loads(self.s.aws("s3api", "get-bucket-encryption", "--bucket", b).stdout)
        self.assertEqual(out["ServerSideEncryptionConfiguration"], kms)

        self.s.aws("s3api", "delete-bucket-encryption", "--bucket", b)
        r = self.s.aws("s3api", "get-bucket-encryption", "--bucket", b, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"ServerSideEncryptionConfigurationNotFoundError", r.stderr)

        r = self.s.aws("s3api", "put-bucket-encryption", "--bucket", b,
                       "--server-side-encryption-configuration",
                       json.dumps({"Rules": [{"ApplyServerSideEncryptionByDefault": {
                           "SSEAlgorithm": "AES256", "KMSMasterKeyID": KMS_KEY}}]}),
                       check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"InvalidArgument", r.stderr)

    def test_kms_default(self):
        b = self.new_bucket()
        cfg = {"Rules": [{"ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KMS_KEY}, "BucketKeyEnabled": True}]}
        # A default must name a key the bucket's owner may use: one the
        # keystore does not have is refused, and nothing is stored.
        status, code, _ = client_error(self.c.put_bucket_encryption, Bucket=b,
                                       ServerSideEncryptionConfiguration=cfg)
        self.assertEqual((status, code), (400, "KMS.NotFoundException"))
        status, code, _ = client_error(self.c.get_bucket_encryption, Bucket=b)
        self.assertEqual(code, "ServerSideEncryptionConfigurationNotFoundError")
        # With a key that exists, plain PUTs are encrypted with it.
        arn = self.kms_arn
        cfg["Rules"][0]["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = arn
        self.c.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration=cfg)
        self.assertEqual(self.rules(b), cfg["Rules"])
        data = b"the bucket's KMS key\n" * 100
        put = self.c.put_object(Bucket=b, Key="k", Body=data)
        self.assertEqual((put["ServerSideEncryption"], put["SSEKMSKeyId"]), ("aws:kms", arn))
        self.assertTrue(put["BucketKeyEnabled"])
        self.assert_ciphertext(b, "k", data)
        head = self.c.head_object(Bucket=b, Key="k")
        self.assertEqual((head["ServerSideEncryption"], head["SSEKMSKeyId"]), ("aws:kms", arn))
        self.assertEqual(self.c.get_object(Bucket=b, Key="k")["Body"].read(), data)
        # An explicit SSE-S3 request still works.
        data = b"explicit AES256 in a KMS-default bucket\n" * 100
        self.c.put_object(Bucket=b, Key="s3", Body=data, ServerSideEncryption="AES256")
        self.assert_ciphertext(b, "s3", data)

        dsse = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms:dsse"},
                           "BucketKeyEnabled": False}]}
        self.c.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration=dsse)
        self.assertEqual(self.rules(b), dsse["Rules"])

    def test_overrides_config_default(self):
        b = self.config_bucket
        # Nothing stored: GetBucketEncryption reports the config file's default.
        self.assertEqual(self.rules(b), AES256_REPORTED)
        data = b"config default\n" * 500
        self.c.put_object(Bucket=b, Key="cfg-1", Body=data)
        self.assert_ciphertext(b, "cfg-1", data)

        kms = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},
                          "BucketKeyEnabled": False}]}
        self.c.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration=kms)
        try:
            self.assertEqual(self.rules(b), kms["Rules"])
            # aws:kms without a key: the account's default key aws/s3.
            put = self.c.put_object(Bucket=b, Key="cfg-2", Body=data)
            self.assertEqual(put["ServerSideEncryption"], "aws:kms")
            self.assertRegex(put["SSEKMSKeyId"], r"^arn:aws:kms:[a-z0-9-]+:111122223333:key/")
            self.assert_ciphertext(b, "cfg-2", data)
        finally:
            self.c.delete_bucket_encryption(Bucket=b)
        # Deleted: the config file's default applies again.
        self.assertEqual(self.rules(b), AES256_REPORTED)
        self.c.put_object(Bucket=b, Key="cfg-3", Body=data)
        self.assert_ciphertext(b, "cfg-3", data)

    def test_validation(self):
        b = self.new_bucket()
        status, _, body = self.signed("PUT", b, b"<ServerSideEncryptionConfiguration><Rule>")
        self.assertEqual((status, error_code(body)), (400, "MalformedXML"))
        status, _, body = self.signed("PUT", b, b"")
        self.assertEqual((status, error_code(body)), (400, "MalformedXML"))

        def put(rules):
            return client_error(self.c.put_bucket_encryption, Bucket=b,
                                ServerSideEncryptionConfiguration={"Rules": rules})

        # An algorithm outside the schema's enumeration: AWS answers MalformedXML.
        self.assertEqual(put([{"ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "AES512"}}])[:2], (400, "MalformedXML"))
        self.assertEqual(put([])[:2], (400, "MalformedXML"))
        self.assertEqual(put(AES256["Rules"] * 2)[:2], (400, "MalformedXML"))
        status, code, msg = put([{"ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "AES256", "KMSMasterKeyID": KMS_KEY}}])
        self.assertEqual((status, code), (400, "InvalidArgument"))
        self.assertEqual(msg, "a KMSMasterKeyID is not applicable if the default sse algorithm "
                              "is not aws:kms or aws:kms:dsse")
        # Nothing was stored by the failures.
        self.assert_not_found(b)

        status, _, body = self.signed("POST", b)
        self.assertEqual((status, error_code(body)), (405, "MethodNotAllowed"))

        missing = new_bucket_name("benone")
        for call, kw in ((self.c.put_bucket_encryption,
                          {"ServerSideEncryptionConfiguration": AES256}),
                         (self.c.get_bucket_encryption, {}),
                         (self.c.delete_bucket_encryption, {})):
            self.assertEqual(client_error(call, Bucket=missing, **kw)[:2], (404, "NoSuchBucket"))

    def test_backend_untouched(self):
        b = self.new_bucket()
        self.c.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration=AES256)
        # s3seal keeps the setting; the backend's own one is never set.
        got = backend_client().get_bucket_encryption(Bucket=b)
        self.assertNotIn("Rules", got.get("ServerSideEncryptionConfiguration", {}))
        self.assertRegex(self.s.read_log(), rf"method=PUT bucket={b} key=- status=200 ")


def backend_has_key(bucket, key):
    try:
        backend_client().head_object(Bucket=bucket, Key=key)
        return True
    except botocore.exceptions.ClientError:
        return False


class WorkersTest(unittest.TestCase):
    """Every worker of an instance applies a change from the next request on."""

    def test_all_workers_see_a_change_at_once(self):
        s = S3Seal(workers=3).start()
        b = new_bucket_name("bewrk")
        try:
            c = s.client()
            c.create_bucket(Bucket=b)

            def get():
                # A new connection each time: the kernel spreads them over the
                # workers' listening sockets.
                url = f"{s.endpoint}/{b}?encryption"
                h = sign_v4("GET", url, {}, hashlib.sha256(b"").hexdigest(), s.access_key,
                            s.secret_key)
                return raw_request(s.endpoint, "GET", f"/{b}?encryption", h)[0]

            c.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration=AES256)
            self.assertEqual([get() for _ in range(30)], [200] * 30)
            c.delete_bucket_encryption(Bucket=b)
            self.assertEqual([get() for _ in range(30)], [404] * 30)
        finally:
            empty_and_delete(backend_client(), b)
            s.stop()


class SharedKeystoreTest(unittest.TestCase):
    """Two instances sharing one keystore: a change made through one is applied
    by the other within its refresh period (10 s)."""

    def test_second_instance_sees_changes(self):
        first = S3Seal().start()
        # The second instance uses the first's keystore and master key.
        second = S3Seal(keystore_of=first).start()
        b = new_bucket_name("beshr")
        try:
            c1, c2 = first.client(), second.client()
            c1.create_bucket(Bucket=b)
            c1.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration=AES256)
            self.assertEqual(self.wait_for(lambda: self.state(c2, b), "AES256"), "AES256")

            data = b"written through the second instance\n" * 2000
            c2.put_object(Bucket=b, Key="via-2", Body=data)
            raw = backend_client().get_object(Bucket=b, Key="via-2")
            body = raw["Body"].read()
            self.assertEqual(len(body), cipher_size(len(data)))
            self.assertNotIn(data[:64], body)
            self.assertEqual(raw["Metadata"].get("s3seal-version"), "1")
            self.assertEqual(c1.get_object(Bucket=b, Key="via-2")["Body"].read(), data)

            c2.delete_bucket_encryption(Bucket=b)
            self.assertEqual(self.state(c2, b), None)  # at once where it was made
            self.assertEqual(self.wait_for(lambda: self.state(c1, b), None), None)
            c1.put_object(Bucket=b, Key="plain", Body=b"plain again")
            self.assertEqual(backend_client().get_object(Bucket=b, Key="plain")["Body"].read(),
                             b"plain again")
        finally:
            empty_and_delete(backend_client(), b)
            second.stop()
            first.stop()

    @staticmethod
    def state(client, bucket):
        try:
            r = client.get_bucket_encryption(Bucket=bucket)
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] == "ServerSideEncryptionConfigurationNotFoundError":
                return None
            raise
        return r["ServerSideEncryptionConfiguration"]["Rules"][0][
            "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]

    @staticmethod
    def wait_for(fn, want, timeout=15):
        deadline = time.time() + timeout
        got = fn()
        while got != want and time.time() < deadline:
            time.sleep(0.25)
            got = fn()
        return got


if __name__ == "__main__":
    unittest.main()
