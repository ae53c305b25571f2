"""Error answers as S3 gives them: a CompleteMultipartUpload body too large
to be a part list is 400 MalformedXML (not 416 InvalidRange, nothing is
completed), and an error answer carries no header of the object it names
(no ETag, Last-Modified, Content-Type or s3seal's encryption headers)."""

import base64
import hashlib
import json
import os
import socket
import unittest

from harness import (S3Seal, backend_client, empty_and_delete, error_code, new_bucket_name,
                     raw_request, sign_v4)


class ErrorAnswerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket_name("errs")
        cls.s = S3Seal().start()
        cls.c = cls.s.client()
        cls.c.create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def signed(self, method, path, body=b"", headers=None, secret=None):
        url = self.s.endpoint + path
        h = sign_v4(method, url, headers or {}, hashlib.sha256(body).hexdigest(),
                    self.s.access_key, secret or self.s.secret_key)
        return raw_request(self.s.endpoint, method, path, h, body)

    def expect_continue(self, method, path, body):
        """Sends the head with Expect: 100-continue and the body only if
        s3seal asks for it; returns (status, body) of the final answer. An
        answer before the body is how a refused upload should end, and it
        cannot be lost to a connection reset while the body is still going
        out."""
        url = self.s.endpoint + path
        h = sign_v4(method, url, {}, hashlib.sha256(body).hexdigest(), self.s.access_key,
                    self.s.secret_key)
        h["content-length"] = str(len(body))
        h["expect"] = "100-continue"
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=30) as so:
            so.sendall(head.encode() + b"\r\n")
            f = so.makefile("rb")
            status = int(f.readline().split()[1])
            if status == 100:
                f.readline()
                so.sendall(body)
                status = int(f.readline().split()[1])
            length = 0
            while True:
                line = f.readline().strip()
                if not line:
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            return status, f.read(length)

    def test_oversized_complete_body_is_malformed_xml(self):
        for sse in ({"ServerSideEncryption": "AES256"}, {}):
            key = "big-complete-" + ("enc" if sse else "plain")
            up = self.c.create_multipart_upload(Bucket=self.bucket, Key=key, **sse)
            uid = up["UploadId"]
            etag = self.c.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=1,
                                      Body=os.urandom(1000))["ETag"]
            part = f"<Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>".encode()
            # A well-formed list, padded past what any list of 10,000 parts needs.
            body = (b"<CompleteMultipartUpload>" + part + b" " * (3 << 20) +
                    b"</CompleteMultipartUpload>")
            from urllib.parse import quote
            status, answer = self.expect_continue(
                "POST", f"/{self.bucket}/{key}?uploadId={quote(uid, safe='')}", body)
            self.assertEqual(status, 400, (sse, answer[:300]))
            self.assertEqual(error_code(answer), "MalformedXML", sse)
            # Nothing was completed; the upload can still be completed properly.
            with self.assertRaises(Exception):
                backend_client().head_object(Bucket=self.bucket, Key=key)
            self.c.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
            self.assertEqual(len(self.c.get_object(Bucket=self.bucket, Key=key)["Body"].read()),
                             1000)

    def test_error_answers_carry_no_object_headers(self):
        self.c.put_object(Bucket=self.bucket, Key="obj", Body=b"x" * 100,
                          ServerSideEncryption="AES256", ContentType="text/x-secret")
        etag = self.c.head_object(Bucket=self.bucket, Key="obj")["ETag"]
        object_headers = ("etag", "last-modified", "x-amz-server-side-encryption",
                          "x-amz-meta-", "content-range", "x-amz-version-id",
                          "x-amz-mp-parts-count")

        def check(status, headers, body, want_status, want_code=None):
            self.assertEqual(status, want_status, body[:300])
            if want_code:
                self.assertEqual(error_code(body), want_code)
            for h in headers:
                for o in object_headers:
                    self.assertFalse(h.startswith(o), f"{want_status} carries {h}: {headers[h]}")
            self.assertNotEqual(headers.get("content-type"), "text/x-secret")

        # A wrong signature: 403 SignatureDoesNotMatch.
        check(*self.signed("GET", f"/{self.bucket}/obj", secret="wrong" * 8), 403,
              "SignatureDoesNotMatch")
        check(*self.signed("HEAD", f"/{self.bucket}/obj", secret="wrong" * 8), 403)
        # Conditions that fail on the object: 412 and 304 name no object
        # header but the ETag (S3 sends the ETag with a 304).
        check(*self.signed("GET", f"/{self.bucket}/obj", headers={"If-Match": '"0000"'}), 412,
              "PreconditionFailed")
        # A range past the end: 416 with only Content-Range's size... which
        # S3 sends as "bytes */100"; no ETag.
        status, headers, body = self.signed("GET", f"/{self.bucket}/obj",
                                            headers={"Range": "bytes=500-600"})
        self.assertEqual(status, 416)
        self.assertNotIn("etag", headers)
        self.assertNotIn("last-modified", headers)
        self.assertNotIn("x-amz-server-side-encryption", headers)
        # An encrypted PUT that the backend refuses (403 AccessDenied, from a
        # bucket policy set on the backend): no ETag of the plaintext.
        b = backend_client()
        b.put_bucket_policy(Bucket=self.bucket, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
                           "Resource": f"arn:aws:s3:::{self.bucket}/denied/*"}]}))
        try:
            body = b"hello"
            headers = {"x-amz-server-side-encryption": "AES256",
                       "content-md5": base64.b64encode(hashlib.md5(body).digest()).decode()}
            check(*self.signed("PUT", f"/{self.bucket}/denied/x", body, headers=headers), 403,
                  "AccessDenied")
            check(*self.signed("PUT", f"/{self.bucket}/denied/y", body), 403, "AccessDenied")
        finally:
            b.delete_bucket_policy(Bucket=self.bucket)
        self.assertFalse(any(o["Key"].startswith("denied/")
                             for o in b.list_objects_v2(Bucket=self.bucket).get("Contents", [])))
        # The object itself is still served with its headers.
        status, headers, body = self.signed("GET", f"/{self.bucket}/obj")
        self.assertEqual(status, 200)
        self.assertEqual(headers["etag"], etag)


if __name__ == "__main__":
    unittest.main()
