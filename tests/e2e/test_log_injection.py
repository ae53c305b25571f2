"""Client-chosen bytes never forge s3seal's log: an access key id with CR
and LF in X-Amz-Credential (a presigned link's query, where percent-encoding
carries any byte), and a key with a forged field, are logged escaped, on the
request's own line."""

import re
import time
import unittest
import urllib.parse

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name, raw_request

# Short enough to fit an access key id (s3seal takes up to 128 bytes).
FORGED = "2030-01-01T00:00:00.000Z info access req=FORGED method=DELETE status=204"


class LogInjectionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal().start()
        cls.bucket = new_bucket_name("logi")
        cls.s.client().create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def setUp(self):
        self.log_start = len(self.s.read_log())

    def assert_not_forged(self, want=" access "):
        """Only this test's part of the log, once the request's access line
        (holding `want`) is in: s3seal writes it after the answer is out."""
        deadline = time.monotonic() + 5
        log = self.s.read_log()[self.log_start:]
        while want not in log and time.monotonic() < deadline:
            time.sleep(0.05)
            log = self.s.read_log()[self.log_start:]
        for line in log.splitlines():
            self.assertFalse(line.startswith("2030-01-01"), f"forged log line: {line!r}")
            self.assertNotIn("req=FORGED", line.split(" access ")[0])
        return log

    def test_access_key_with_crlf_in_presigned_query(self):
        ak = "AKIAX\r\n" + FORGED + "\r\nAKIAY"
        cred = f"{ak}/20260101/us-east-1/s3/aws4_request"
        q = urllib.parse.urlencode({
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": cred,
            "X-Amz-Date": "20260101T000000Z", "X-Amz-Expires": "60",
            "X-Amz-SignedHeaders": "host", "X-Amz-Signature": "0" * 64})
        status, _, _ = raw_request(self.s.endpoint, "GET", f"/{self.bucket}/k?{q}",
                                   {"Host": f"127.0.0.1:{self.s.port}"})
        self.assertIn(status, (400, 403))
        log = self.assert_not_forged("AKIAX")
        # The request's own access line is there, with the key escaped.
        self.assertRegex(log, r"access_key=AKIAX%0D%0A2030-01-01")

    def test_access_key_with_crlf_in_authorization(self):
        # Header values cannot hold CR or LF (400 from the parser), but may
        # hold spaces and '=': they stay inside the field.
        auth = ("AWS4-HMAC-SHA256 Credential=AKIAX status=200 access_key=AKIAADMIN"
                "/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + "0" * 64)
        status, _, _ = raw_request(self.s.endpoint, "GET", f"/{self.bucket}/k",
                                   {"Host": f"127.0.0.1:{self.s.port}", "Authorization": auth,
                                    "x-amz-date": "20260101T000000Z",
                                    "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        self.assertIn(status, (400, 403))
        log = self.assert_not_forged("AKIAX")
        lines = [ln for ln in log.splitlines() if "AKIAX" in ln]
        self.assertTrue(lines, log[-2000:])
        for ln in lines:
            self.assertEqual(len(re.findall(r" access_key=", ln)), 1, ln)
            self.assertEqual(len(re.findall(r" status=", ln)), 1, ln)

    def test_key_with_crlf(self):
        status, _, _ = raw_request(
            self.s.endpoint, "GET",
            f"/{self.bucket}/a%0D%0A{urllib.parse.quote(FORGED)}",
            {"Host": f"127.0.0.1:{self.s.port}"})
        self.assertEqual(status, 403)
        self.assert_not_forged()


if __name__ == "__main__":
    unittest.main()
