"""Request heads RFC 9112 has a server refuse, where s3seal and the backend
could read the framing or a header differently (request smuggling): each is
answered 400 with an S3 XML error, the connection is closed, and nothing
reaches the backend. Each request is otherwise validly signed, so only the
framing is at fault."""

import hashlib
import socket
import unittest

from harness import S3Seal, backend_client, backend_has, empty_and_delete, new_bucket_name, sign_v4


class HttpStrictTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal().start()
        cls.bucket = new_bucket_name("strict")
        cls.s.client().create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def head(self, key, body):
        url = f"{self.s.endpoint}/{self.bucket}/{key}"
        h = sign_v4("PUT", url, {}, hashlib.sha256(body).hexdigest(), self.s.access_key,
                    self.s.secret_key)
        return f"PUT /{self.bucket}/{key} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in h.items())

    def exchange(self, raw):
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=20) as sock:
            sock.sendall(raw)
            data = b""
            while chunk := sock.recv(65536):  # until s3seal closes the connection
                data += chunk
        return data

    def refused(self, key, raw):
        data = self.exchange(raw)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data[:200])
        self.assertIn(b"<Code>BadRequest</Code>", data)
        self.assertIn(b"Content-Type: application/xml", data)
        self.assertEqual(data.count(b"HTTP/1.1 "), 1, data)  # nothing more was answered
        self.assertFalse(backend_has(self.bucket, key))

    def test_control_is_stored(self):
        body = b"hello"
        raw = (self.head("control", body) + f"Content-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
        data = self.exchange(raw)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:200])
        self.assertTrue(backend_has(self.bucket, "control"))

    def test_content_encoding_kept(self):
        """Content-Encoding is stored as sent ("deflate, gzip" stays so); a
        plain (not streaming) PUT naming aws-chunked among its codings is
        stored with the others, as S3 does, not refused with 411."""
        for key, sent, stored in (("ce-list", "deflate, gzip", "deflate, gzip"),
                                  ("ce-chunked", "gzip, aws-chunked", "gzip")):
            with self.subTest(sent=sent):
                body = b"hello"
                url = f"{self.s.endpoint}/{self.bucket}/{key}"
                h = sign_v4("PUT", url, {"content-encoding": sent},
                            hashlib.sha256(body).hexdigest(), self.s.access_key,
                            self.s.secret_key)
                raw = (f"PUT /{self.bucket}/{key} HTTP/1.1\r\n"
                       + "".join(f"{k}: {v}\r\n" for k, v in h.items())
                       + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
                data = self.exchange(raw + body)
                self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:300])
                got = backend_client().head_object(Bucket=self.bucket, Key=key)
                self.assertEqual(got["ContentEncoding"], stored)

    def test_error_reaches_a_client_still_uploading(self):
        """A PUT refused at its head (a wrong signature) while the client
        goes on sending its 16 MiB body, as SDKs do before they read: the
        sending does not fail (s3seal reads and drops the rest for a while,
        a lingering close, instead of resetting the connection under the
        client), and the whole 403 answer is read after it."""
        key = "linger"
        url = f"{self.s.endpoint}/{self.bucket}/{key}"
        size = 16 << 20
        h = sign_v4("PUT", url, {}, "UNSIGNED-PAYLOAD", self.s.access_key, "wrong-secret")
        raw = (f"PUT /{self.bucket}/{key} HTTP/1.1\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in h.items())
               + f"Content-Length: {size}\r\n\r\n").encode()
        chunk = b"x" * (1 << 20)
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=20) as sock:
            sock.sendall(raw)
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)  # a reset here is what the linger prevents
            data = b""
            while True:
                try:
                    part = sock.recv(65536)
                except ConnectionResetError:
                    self.fail(f"connection reset after {len(data)} bytes: {data[:200]!r}")
                if not part:
                    break
                data += part
        self.assertTrue(data.startswith(b"HTTP/1.1 403 "), data[:200])
        self.assertIn(b"<Code>SignatureDoesNotMatch</Code>", data)
        self.assertFalse(backend_has(self.bucket, key))

    def test_obs_fold(self):
        body = b"hello"
        raw = (self.head("fold", body) + "X-Extra: a\r\n b\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.refused("fold", raw)

    def test_obs_fold_after_empty_value(self):
        body = b"hello"
        raw = (self.head("fold-empty", body) + "X-Extra:\r\n\tb\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.refused("fold-empty", raw)

    def test_bare_lf_ends_head(self):
        body = b"hello"
        raw = (self.head("bare-lf", body) + f"Content-Length: {len(body)}\r\n\n").encode() + body
        self.refused("bare-lf", raw)

    def test_bare_lf_in_header_line(self):
        body = b"hello"
        raw = (self.head("bare-lf2", body) + f"X-Extra: 1\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
        self.refused("bare-lf2", raw)

    def test_space_before_colon(self):
        body = b"hello"
        raw = (self.head("space", body) + f"X-Extra : 1\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
        self.refused("space", raw)
        raw = (self.head("space-cl", body) + f"Content-Length : {len(body)}\r\n\r\n"
               ).encode() + body
        self.refused("space-cl", raw)

    def test_cr_in_value(self):
        body = b"hello"
        raw = (self.head("cr", body) + "X-Extra: a\rb\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.refused("cr", raw)

    def test_duplicate_content_length(self):
        body = b"hello"
        raw = (self.head("dup-cl", body) + f"Content-Length: {len(body)}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.refused("dup-cl", raw)

    def test_transfer_encoding_not_chunked(self):
        body = b"5\r\nhello\r\n0\r\n\r\n"
        for i, te in enumerate(["gzip, chunked", "gzip", "identity", "", "chunked, chunked"]):
            with self.subTest(te=te):
                raw = (self.head(f"te-{i}", b"hello") + f"Transfer-Encoding: {te}\r\n"
                       "x-amz-decoded-content-length: 5\r\n\r\n").encode() + body
                self.refused(f"te-{i}", raw)

    def test_transfer_encoding_twice(self):
        body = b"5\r\nhello\r\n0\r\n\r\n"
        raw = (self.head("te-twice", b"hello") + "Transfer-Encoding: chunked\r\n"
               "Transfer-Encoding: chunked\r\nx-amz-decoded-content-length: 5\r\n\r\n"
               ).encode() + body
        self.refused("te-twice", raw)

    def test_transfer_encoding_in_http10(self):
        body = b"5\r\nhello\r\n0\r\n\r\n"
        raw = (self.head("te-10", b"hello").replace(" HTTP/1.1\r\n", " HTTP/1.0\r\n", 1)
               + "Transfer-Encoding: chunked\r\nx-amz-decoded-content-length: 5\r\n\r\n"
               ).encode() + body
        self.refused("te-10", raw)

    def test_content_length_and_transfer_encoding(self):
        body = b"5\r\nhello\r\n0\r\n\r\n"
        raw = (self.head("cl-te", b"hello") + f"Content-Length: {len(body)}\r\n"
               "Transfer-Encoding: chunked\r\nx-amz-decoded-content-length: 5\r\n\r\n"
               ).encode() + body
        self.refused("cl-te", raw)


if __name__ == "__main__":
    unittest.main()
