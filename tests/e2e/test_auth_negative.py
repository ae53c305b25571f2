"""Requests s3seal must refuse, each with AWS's error, and none of which may
reach the backend: wrong secret, unknown key, skewed clock, anonymous,
wrong region, tampered payload hash, bad Content-MD5, request smuggling."""

import base64
import datetime
import hashlib
import socket
import unittest

import botocore

from harness import (S3Seal, backend_client, backend_has, empty_and_delete, error_code,
                     new_bucket_name, raw_request, sign_v4)

EMPTY = hashlib.sha256(b"").hexdigest()


class AuthNegativeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal().start()
        cls.bucket = new_bucket_name("neg")
        cls.s.client().create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def put(self, key, body, payload_hash=None, extra=None, when=None, secret=None,
            access_key=None, region=None):
        url = f"{self.s.endpoint}/{self.bucket}/{key}"
        h = sign_v4("PUT", url, extra or {}, payload_hash or hashlib.sha256(body).hexdigest(),
                    access_key or self.s.access_key, secret or self.s.secret_key, when=when,
                    **({"region": region} if region else {}))
        return raw_request(self.s.endpoint, "PUT", f"/{self.bucket}/{key}", h, body)

    def test_control_signed_put_works(self):
        status, _, _ = self.put("ok", b"fine")
        self.assertEqual(status, 200)
        self.assertTrue(backend_has(self.bucket, "ok"))

    def test_wrong_secret(self):
        bad = self.s.client(secret_key="not-the-secret")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            bad.put_object(Bucket=self.bucket, Key="ws", Body=b"x")
        err = e.exception.response["Error"]
        self.assertEqual(err["Code"], "SignatureDoesNotMatch")
        self.assertIn("StringToSign", err)
        self.assertIn("CanonicalRequest", err)
        self.assertFalse(backend_has(self.bucket, "ws"))

    def test_unknown_access_key(self):
        bad = self.s.client(access_key="AKIANOTKNOWN0000000")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            bad.put_object(Bucket=self.bucket, Key="uk", Body=b"x")
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidAccessKeyId")
        self.assertFalse(backend_has(self.bucket, "uk"))

    def test_skewed_clock(self):
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
        status, _, body = self.put("skew", b"x", when=past)
        self.assertEqual((status, error_code(body)), (403, "RequestTimeTooSkewed"))
        self.assertIn(b"<MaxAllowedSkewMilliseconds>900000", body)
        self.assertFalse(backend_has(self.bucket, "skew"))

    def test_anonymous(self):
        status, _, body = raw_request(self.s.endpoint, "PUT", f"/{self.bucket}/anon",
                                      {"Host": f"127.0.0.1:{self.s.port}"}, b"x")
        self.assertEqual((status, error_code(body)), (403, "AccessDenied"))
        status, _, body = raw_request(self.s.endpoint, "GET", f"/{self.bucket}",
                                      {"Host": f"127.0.0.1:{self.s.port}"})
        self.assertEqual((status, error_code(body)), (403, "AccessDenied"))
        self.assertFalse(backend_has(self.bucket, "anon"))

    def test_wrong_region(self):
        status, _, body = self.put("reg", b"x", region="eu-west-3")
        self.assertEqual((status, error_code(body)), (400, "AuthorizationHeaderMalformed"))
        self.assertIn(b"the region 'eu-west-3' is wrong; expecting", body)
        self.assertFalse(backend_has(self.bucket, "reg"))

    def test_tampered_payload_hash(self):
        body = b"the bytes actually sent" * 1000
        status, _, resp = self.put("tamper", body,
                                   payload_hash=hashlib.sha256(b"other bytes").hexdigest())
        self.assertEqual((status, error_code(resp)), (400, "XAmzContentSHA256Mismatch"))
        self.assertFalse(backend_has(self.bucket, "tamper"))

    def test_bad_content_md5(self):
        md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
        status, _, resp = self.put("md5", b"payload", extra={"Content-MD5": md5})
        self.assertEqual((status, error_code(resp)), (400, "BadDigest"))
        self.assertFalse(backend_has(self.bucket, "md5"))
        status, _, resp = self.put("md5", b"payload", extra={"Content-MD5": "not base64"})
        self.assertEqual((status, error_code(resp)), (400, "InvalidDigest"))
        good = base64.b64encode(hashlib.md5(b"payload").digest()).decode()
        status, _, _ = self.put("md5", b"payload", extra={"Content-MD5": good})
        self.assertEqual(status, 200)

    def test_unsigned_amz_header(self):
        url = f"{self.s.endpoint}/{self.bucket}/hdr"
        h = sign_v4("PUT", url, {}, hashlib.sha256(b"x").hexdigest(), self.s.access_key,
                    self.s.secret_key)
        h["x-amz-meta-sneaky"] = "1"
        status, _, body = raw_request(self.s.endpoint, "PUT", f"/{self.bucket}/hdr", h, b"x")
        self.assertEqual((status, error_code(body)), (403, "AccessDenied"))
        self.assertFalse(backend_has(self.bucket, "hdr"))

    def test_smuggling_is_refused(self):
        """Content-Length together with Transfer-Encoding: 400 and close."""
        url = f"{self.s.endpoint}/{self.bucket}/smuggle"
        h = sign_v4("PUT", url, {}, "UNSIGNED-PAYLOAD", self.s.access_key, self.s.secret_key)
        head = "".join(f"{k}: {v}\r\n" for k, v in h.items())
        req = (f"PUT /{self.bucket}/smuggle HTTP/1.1\r\n{head}Content-Length: 5\r\n"
               "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as sock:
            sock.sendall(req.encode())
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break  # the server closed the connection
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:100])
        self.assertEqual(data.count(b"HTTP/1.1"), 1)  # the smuggled GET was not answered
        self.assertFalse(backend_has(self.bucket, "smuggle"))

    def test_chunked_without_length(self):
        url = f"{self.s.endpoint}/{self.bucket}/te"
        h = sign_v4("PUT", url, {}, "UNSIGNED-PAYLOAD", self.s.access_key, self.s.secret_key)
        head = "".join(f"{k}: {v}\r\n" for k, v in h.items())
        req = (f"PUT /{self.bucket}/te HTTP/1.1\r\n{head}Transfer-Encoding: chunked\r\n\r\n"
               "3\r\nabc\r\n0\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as sock:
            sock.sendall(req.encode())
            data = b""
            while chunk := sock.recv(65536):  # until s3seal closes the connection
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 411 Length Required\r\n"), data[:100])
        self.assertIn(b"MissingContentLength", data)
        self.assertFalse(backend_has(self.bucket, "te"))


if __name__ == "__main__":
    unittest.main()
