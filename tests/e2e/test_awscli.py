"""aws-cli through s3seal against the real backend: s3api object calls, a
50 MB `aws s3 cp` (multipart) up and down, listings."""

import json
import os
import tempfile
import unittest

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name


class AwsCliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal().start()
        cls.bucket = new_bucket_name("cli")
        cls.s.aws("s3", "mb", f"s3://{cls.bucket}")
        cls.tmp = tempfile.mkdtemp()

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def test_s3api_object_calls(self):
        data = os.urandom(100_000)
        with open(self.path("in"), "wb") as f:
            f.write(data)
        out = self.s.aws("s3api", "put-object", "--bucket", self.bucket, "--key", "dir/obj",
                         "--body", self.path("in"), "--metadata", "colour=blue")
        self.assertIn("ETag", json.loads(out.stdout))
        head = json.loads(self.s.aws("s3api", "head-object", "--bucket", self.bucket,
                                     "--key", "dir/obj").stdout)
        self.assertEqual(head["ContentLength"], len(data))
        self.assertEqual(head["Metadata"], {"colour": "blue"})
        self.s.aws("s3api", "get-object", "--bucket", self.bucket, "--key", "dir/obj",
                   self.path("out"))
        with open(self.path("out"), "rb") as f:
            self.assertEqual(f.read(), data)
        listing = json.loads(self.s.aws("s3api", "list-objects-v2", "--bucket", self.bucket,
                                        "--prefix", "dir/").stdout)
        self.assertEqual([(o["Key"], o["Size"]) for o in listing["Contents"]],
                         [("dir/obj", len(data))])
        self.s.aws("s3api", "delete-object", "--bucket", self.bucket, "--key", "dir/obj")
        r = self.s.aws("s3api", "head-object", "--bucket", self.bucket, "--key", "dir/obj",
                       check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"404", r.stderr)

    def test_cp_50mb_multipart(self):
        data = os.urandom(50 * 1000 * 1000)
        with open(self.path("big"), "wb") as f:
            f.write(data)
        self.s.aws("s3", "cp", self.path("big"), f"s3://{self.bucket}/big.bin")
        # aws s3 cp splits files over 8 MiB into parts: the ETag shows it.
        head = backend_client().head_object(Bucket=self.bucket, Key="big.bin")
        self.assertRegex(head["ETag"], r'-\d+"$')
        self.s.aws("s3", "cp", f"s3://{self.bucket}/big.bin", self.path("big.out"))
        with open(self.path("big.out"), "rb") as f:
            self.assertEqual(f.read(), data)
        ls = self.s.aws("s3", "ls", f"s3://{self.bucket}/").stdout.decode()
        self.assertIn("big.bin", ls)
        self.assertIn(str(len(data)), ls)


if __name__ == "__main__":
    unittest.main()
