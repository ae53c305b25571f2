"""The JavaScript SDK v3 and lib-storage (npm) through s3seal: default
flexible checksums, aws-chunked streams with trailing checksums, each
algorithm, WHEN_REQUIRED, a 40 MB parallel Upload (see sdk_js.mjs)."""

import os
import subprocess
import unittest

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name

HERE = os.path.dirname(os.path.abspath(__file__))


class JsSdkTest(unittest.TestCase):
    def test_js_sdk(self):
        self.assertTrue(os.path.isdir(os.path.join(HERE, "node_modules", "@aws-sdk")),
                        "run npm install in tests/e2e (deploy/install-deps.sh does)")
        s = S3Seal().start()
        bucket = new_bucket_name("js")
        try:
            s.client().create_bucket(Bucket=bucket)
            r = subprocess.run(["node", "sdk_js.mjs", s.endpoint, bucket, s.access_key,
                                s.secret_key], cwd=HERE, capture_output=True, timeout=600)
            out = r.stdout.decode() + r.stderr.decode()
            self.assertEqual(r.returncode, 0, out)
            self.assertIn("ok lib-storage Upload 40 MB", out)
            # The streamed uploads really used aws-chunked (bigger on the wire).
            log = s.read_log()
            streamed = [l for l in log.splitlines() if "key=stream-CRC32 " in l]
            self.assertTrue(streamed and "bytes_in=256000 " not in streamed[0], streamed)
        finally:
            empty_and_delete(backend_client(), bucket)
            s.stop()


if __name__ == "__main__":
    unittest.main()
