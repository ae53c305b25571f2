"""Presigned URLs made by boto3's presigner for s3seal's endpoint, fetched
with curl: GET, Range, PUT; expired, over-long and tampered links."""

import os
import subprocess
import time
import unittest

from harness import (S3Seal, backend_client, backend_has, empty_and_delete, error_code,
                     new_bucket_name)


def curl(*args):
    r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True,
                       check=True)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code), body


class PresignTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal().start()
        cls.c = cls.s.client()
        cls.bucket = new_bucket_name("pre")
        cls.c.create_bucket(Bucket=cls.bucket)
        cls.data = os.urandom(200_000)
        cls.c.put_object(Bucket=cls.bucket, Key="doc.bin", Body=cls.data)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def url(self, op="get_object", key="doc.bin", expires=300):
        return self.c.generate_presigned_url(op, Params={"Bucket": self.bucket, "Key": key},
                                             ExpiresIn=expires)

    def test_get_and_range(self):
        u = self.url()
        self.assertEqual(curl(u), (200, self.data))
        self.assertEqual(curl("-r", "1000-1999", u), (206, self.data[1000:2000]))

    def test_put(self):
        path = os.path.join(self.s.dir, "up.bin")
        payload = os.urandom(12345)
        with open(path, "wb") as f:
            f.write(payload)
        code, _ = curl("-T", path, self.url("put_object", key="up.bin"))
        self.assertEqual(code, 200)
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="up.bin")["Body"].read(),
                         payload)

    def test_expired(self):
        u = self.url(expires=1)
        time.sleep(2.2)
        code, body = curl(u)
        self.assertEqual(code, 403)
        self.assertEqual(error_code(body), "AccessDenied")
        self.assertIn(b"Request has expired", body)

    def test_expires_over_a_week(self):
        u = self.url().replace("X-Amz-Expires=300", "X-Amz-Expires=604801")
        code, body = curl(u)
        self.assertEqual(code, 400)
        self.assertEqual(error_code(body), "AuthorizationQueryParametersError")

    def test_tampered(self):
        u = self.url()
        i = u.index("X-Amz-Signature=") + len("X-Amz-Signature=")
        bad = u[:i] + ("0" if u[i] != "0" else "1") + u[i + 1:]
        code, body = curl(bad)
        self.assertEqual((code, error_code(body)), (403, "SignatureDoesNotMatch"))
        # A presigned GET cannot be replayed as a PUT.
        path = os.path.join(self.s.dir, "x")
        open(path, "wb").close()
        code, body = curl("-T", path, self.url(key="other"))
        self.assertEqual((code, error_code(body)), (403, "SignatureDoesNotMatch"))
        self.assertFalse(backend_has(self.bucket, "other"))


if __name__ == "__main__":
    unittest.main()
