"""A fleet on one PostgreSQL keystore hears its changes at once.

Two s3seal instances share a keystore on a real PostgreSQL (tests/pg.sh
starts a throwaway one). A change made through one instance or by a command
is announced (LISTEN/NOTIFY) and in force on the other within a second,
where the periodic re-reads alone take up to ten: a bucket's default
encryption set with PutBucketEncryption, a KMS key disabled by `s3seal keys
disable`, a root key rotated. Every object written is read straight from
the backend to check it is ciphertext."""

import json
import os
import re
import subprocess
import tempfile
import time
import unittest
import uuid

import botocore

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PG = os.path.join(ROOT, "tests", "pg.sh")
WITHIN = 1.0  # seconds


def _pg_start(d):
    r = subprocess.run([PG, "start", d], capture_output=True, text=True)
    url_file = os.path.join(d, "url")
    if r.returncode != 0 or not os.path.exists(url_file):
        return None
    with open(url_file) as f:
        return f.read().strip()


class FleetNoticesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg_dir = tempfile.mkdtemp(prefix="s3seal-fleet-pg-")
        url = _pg_start(cls.pg_dir)
        if not url:
            raise unittest.SkipTest("PostgreSQL's binaries are not installed")
        db = "fleet_" + uuid.uuid4().hex[:8]
        subprocess.run(["psql", url, "-q", "-c", f"CREATE DATABASE {db}"], check=True,
                       capture_output=True)
        cls.url = url.rsplit("/", 1)[0] + "/" + db
        cls.a = S3Seal(keystore_url=cls.url).start()
        cls.b = S3Seal(keystore_url=cls.url, keystore_of=cls.a).start()
        cls.ca, cls.cb = cls.a.client(), cls.b.client()
        cls.bucket = new_bucket_name("fleet")
        cls.ca.create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        try:
            empty_and_delete(backend_client(), cls.bucket)
            cls.a.stop()
            cls.b.stop()
        finally:
            subprocess.run([PG, "stop", cls.pg_dir], capture_output=True)

    def wait_for(self, check, what):
        """Seconds until check() is true (polled every 20 ms), at most 5."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            if check():
                return time.monotonic() - t0
            time.sleep(0.02)
        self.fail(f"{what}: not in force after 5 s")

    def assert_ciphertext(self, key, data):
        raw = backend_client().get_object(Bucket=self.bucket, Key=key)
        self.assertIn("s3seal-dek", raw["Metadata"])
        self.assertNotIn(data[:32], raw["Body"].read())

    def test_bucket_default_propagates(self):
        self.ca.put_bucket_encryption(
            Bucket=self.bucket, ServerSideEncryptionConfiguration={"Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        n = [0]

        def encrypted_on_b():
            n[0] += 1
            key = f"default-{n[0]}"
            r = self.cb.put_object(Bucket=self.bucket, Key=key, Body=b"x" * 100)
            return r.get("ServerSideEncryption") == "AES256"

        took = self.wait_for(encrypted_on_b, "PutBucketEncryption through a, seen by b")
        self.assertLess(took, WITHIN)
        self.assert_ciphertext(f"default-{n[0]}", b"x" * 100)
        self.ca.delete_bucket_encryption(Bucket=self.bucket)

    def test_kms_key_disable_propagates(self):
        out = self.a.cli("keys", "create", "--description", "fleet", check=True)
        key_id = json.loads(out.stdout)["KeyId"]
        data = os.urandom(5000)
        self.cb.put_object(Bucket=self.bucket, Key="kms", Body=data,
                           ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
        self.assert_ciphertext("kms", data)
        self.assertEqual(self.cb.get_object(Bucket=self.bucket, Key="kms")["Body"].read(), data)
        self.a.cli("keys", "disable", key_id, check=True)
        t_done = time.monotonic()

        def refused_on_b():
            try:
                self.cb.get_object(Bucket=self.bucket, Key="kms")["Body"].read()
                return False
            except botocore.exceptions.ClientError as e:
                return e.response["Error"]["Code"] == "KMS.DisabledException"

        self.wait_for(refused_on_b, "keys disable, seen by b")
        self.assertLess(time.monotonic() - t_done, WITHIN)

    def test_root_key_rotation_propagates(self):
        out = self.a.cli("root-key", "rotate", check=True)
        newest = int(re.search(rb"root key version (\d+) is now current", out.stdout).group(1))
        n = [0]

        def new_version_on_b():
            n[0] += 1
            key = f"rot-{n[0]}"
            self.cb.put_object(Bucket=self.bucket, Key=key, Body=b"y" * 100,
                               ServerSideEncryption="AES256")
            meta = backend_client().head_object(Bucket=self.bucket, Key=key)["Metadata"]
            return meta.get("s3seal-key") == f"sse-s3:{newest}"

        took = self.wait_for(new_version_on_b, "root-key rotate, seen by b")
        self.assertLess(took, WITHIN)


if __name__ == "__main__":
    unittest.main()
