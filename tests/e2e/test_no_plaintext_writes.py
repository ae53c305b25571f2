"""No write path stores plaintext where encryption is required.

Against a bucket with `default_encryption: AES256` and
`require_encryption: true`, every way of writing object data through
s3seal either stores ciphertext or is refused, and nothing is stored: a
presigned PUT, PUTs with parameters s3seal does not know (?versionId=,
?partNumber= alone, RGW's ?append&position=, anything else), sub-resource
names percent-encoded (?upload%73, upload%49d), browser-form uploads, header
names with '_' (which the backend reads as '-'), and x-amz-* parameters
hoisted into a presigned URL's query. Each case reads the backend straight
to see what landed there."""

import datetime
import hashlib
import hmac
import os
import unittest
import urllib.parse
import urllib.request

from harness import (REGION, S3Seal, backend_client, backend_has, empty_and_delete,
                     error_code, new_bucket_name, raw_request, sign_v4)

EMPTY_SHA = hashlib.sha256(b"").hexdigest()


class NoPlaintextWritesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.strict = new_bucket_name("holes")
        cls.plain = new_bucket_name("holesplain")
        cls.s = S3Seal(extra_yaml=f"""buckets:
  {cls.strict}:
    default_encryption: AES256
    require_encryption: true
""").start()
        cls.c = cls.s.client()
        for b in (cls.strict, cls.plain):
            cls.c.create_bucket(Bucket=b)

    @classmethod
    def tearDownClass(cls):
        for b in (cls.strict, cls.plain):
            empty_and_delete(backend_client(), b)
        cls.s.stop()

    # ------------------------------------------------------------ helpers

    def signed(self, method, path_query, body=b"", headers=None, payload_hash=None):
        url = self.s.endpoint + path_query
        h = sign_v4(method, url, headers or {},
                    payload_hash or hashlib.sha256(body).hexdigest(),
                    self.s.access_key, self.s.secret_key)
        return raw_request(self.s.endpoint, method, path_query, h, body)

    def assert_encrypted_on_backend(self, bucket, key, data):
        raw = backend_client().get_object(Bucket=bucket, Key=key)
        body = raw["Body"].read()
        self.assertEqual(raw["Metadata"].get("s3seal-alg"), "AES-256-GCM", raw["Metadata"])
        self.assertIn("s3seal-dek", raw["Metadata"])
        self.assertGreater(len(body), len(data))
        for i in range(0, max(1, len(data) - 32), 4096):
            self.assertNotIn(data[i:i + 32], body)
        got = self.c.get_object(Bucket=bucket, Key=key)["Body"].read()
        self.assertEqual(got, data)

    def assert_refused_and_absent(self, resp, key, status, code, bucket=None):
        st, _, body = resp
        self.assertEqual(st, status, body)
        self.assertEqual(error_code(body), code, body)
        self.assertFalse(backend_has(bucket or self.strict, key))

    # -------------------------------------------------------------- cases

    def test_presigned_put_is_encrypted(self):
        data = os.urandom(200_000)
        url = self.c.generate_presigned_url(
            "put_object", Params={"Bucket": self.strict, "Key": "presigned"}, ExpiresIn=300)
        req = urllib.request.Request(url, data=data, method="PUT")
        with urllib.request.urlopen(req) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("x-amz-server-side-encryption"), "AES256")
        self.assert_encrypted_on_backend(self.strict, "presigned", data)
        self.assertRegex(self.s.read_log(), r"method=PUT bucket=\S+ key=presigned status=200 .*"
                                            r" op=PutObject\n")

    def test_presigned_put_signed_with_sse_header(self):
        data = os.urandom(70_000)
        url = self.c.generate_presigned_url(
            "put_object", Params={"Bucket": self.plain, "Key": "presigned-sse",
                                  "ServerSideEncryption": "AES256"}, ExpiresIn=300)
        req = urllib.request.Request(url, data=data, method="PUT",
                                     headers={"x-amz-server-side-encryption": "AES256"})
        with urllib.request.urlopen(req) as r:
            self.assertEqual(r.status, 200)
        self.assert_encrypted_on_backend(self.plain, "presigned-sse", data)

    def test_unknown_put_parameters_are_refused(self):
        data = b"plaintext that must never land " * 100
        for i, q in enumerate(("versionId=abc", "partNumber=1", "append&position=0",
                               "foo=bar", "uploadId=abc", "x-id=PutObject&tagging2=1")):
            key = f"unknown-{i}"
            resp = self.signed("PUT", f"/{self.strict}/{key}?{q}", data)
            self.assert_refused_and_absent(resp, key, 501, "NotImplemented")
            self.assertRegex(self.s.read_log(),
                             rf"key={key} status=501 .* op=UnknownWrite error=NotImplemented")

    def presign(self, method, path, params):
        """A SigV4 presigned URL whose signed query holds `params` too, as
        anyone holding a credential can make one."""
        when = datetime.datetime.now(datetime.timezone.utc)
        amz_date = when.strftime("%Y%m%dT%H%M%SZ")
        scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
        q = dict(params)
        q.update({"X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                  "X-Amz-Credential": f"{self.s.access_key}/{scope}",
                  "X-Amz-Date": amz_date, "X-Amz-Expires": "300",
                  "X-Amz-SignedHeaders": "host"})
        enc = lambda v: urllib.parse.quote(v, safe="~")
        query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(q.items()))
        creq = "\n".join([method, path, query, f"host:127.0.0.1:{self.s.port}\n", "host",
                          "UNSIGNED-PAYLOAD"])
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        k = ("AWS4" + self.s.secret_key).encode()
        for part in (amz_date[:8], REGION, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        return f"{path}?{query}&X-Amz-Signature={sig}"

    def test_unknown_presigned_put_parameter_is_refused(self):
        # Signed, valid, and with one parameter more than a PutObject has.
        for i, extra in enumerate(({"append": "", "position": "0"}, {"versionId": "v1"})):
            key = f"presigned-extra-{i}"
            target = self.presign("PUT", f"/{self.strict}/{key}", extra)
            resp = raw_request(self.s.endpoint, "PUT", target,
                               {"Host": f"127.0.0.1:{self.s.port}"}, b"x" * 1000)
            self.assert_refused_and_absent(resp, key, 501, "NotImplemented")
        # The same signer without the extra parameter makes a working link.
        target = self.presign("PUT", f"/{self.strict}/presigned-plain", {})
        st, _, body = raw_request(self.s.endpoint, "PUT", target,
                                  {"Host": f"127.0.0.1:{self.s.port}"}, b"y" * 1000)
        self.assertEqual(st, 200, body)
        self.assert_encrypted_on_backend(self.strict, "presigned-plain", b"y" * 1000)

    def test_unknown_write_asking_for_sse_is_refused_anywhere(self):
        resp = self.signed("PUT", f"/{self.plain}/asks-sse?versionId=abc", b"y" * 100,
                           {"x-amz-server-side-encryption": "AES256"})
        self.assert_refused_and_absent(resp, "asks-sse", 501, "NotImplemented", self.plain)

    def test_unknown_write_in_plain_bucket_is_relayed(self):
        # Where nothing is encrypted, s3seal stays a transparent proxy: the
        # backend answers (RGW refuses a PUT with an unknown version id, or
        # stores the object; either way the answer is the backend's).
        st, _, body = self.signed("PUT", f"/{self.plain}/relayed?foo=bar", b"z" * 100)
        self.assertNotEqual(st, 501, body)

    def test_encoded_multipart_names_are_encrypted(self):
        key = "encoded-mpu"
        st, _, body = self.signed("POST", f"/{self.strict}/{key}?upload%73", b"")
        self.assertEqual(st, 200, body)
        import xml.etree.ElementTree as ET
        upload_id = ET.fromstring(body).findtext("{http://s3.amazonaws.com/doc/2006-03-01/}UploadId")
        self.assertIn("~s3seal", upload_id)  # s3seal's part of the id
        part = os.urandom(300_000)
        qid = urllib.parse.quote(upload_id, safe="")
        st, h, body = self.signed("PUT", f"/{self.strict}/{key}?partNumber=1&upload%49d={qid}",
                                  part)
        self.assertEqual(st, 200, body)
        etag = h["etag"]
        complete = (f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
                    f"<ETag>{etag}</ETag></Part></CompleteMultipartUpload>").encode()
        st, _, body = self.signed("POST", f"/{self.strict}/{key}?upload%49d={qid}", complete)
        self.assertEqual(st, 200, body)
        raw = backend_client().get_object(Bucket=self.strict, Key=key)
        self.assertTrue(raw["Metadata"].get("s3seal-layout", "").startswith("parts"))
        self.assertNotIn(part[:64], raw["Body"].read())
        self.assertEqual(self.c.get_object(Bucket=self.strict, Key=key)["Body"].read(), part)

    def test_browser_form_upload_is_refused(self):
        boundary = "----s3sealform"
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nform-obj\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"x-amz-meta-s3seal-md5\""
                f"\r\n\r\n00\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n"
                f"Content-Type: text/plain\r\n\r\nplaintext form upload\r\n--{boundary}--\r\n"
                ).encode()
        for bucket in (self.strict, self.plain):
            resp = self.signed("POST", f"/{bucket}", form,
                               {"content-type": f"multipart/form-data; boundary={boundary}"})
            self.assert_refused_and_absent(resp, "form-obj", 501, "NotImplemented", bucket)
        # Unsigned (as a browser sends it): refused before anything else.
        st, _, _ = raw_request(self.s.endpoint, "POST", f"/{self.strict}",
                               {"Host": f"127.0.0.1:{self.s.port}",
                                "Content-Type": f"multipart/form-data; boundary={boundary}"},
                               form)
        self.assertEqual(st, 403)
        self.assertFalse(backend_has(self.strict, "form-obj"))

    def test_underscore_headers_are_refused(self):
        secret = os.urandom(1000)
        self.c.put_object(Bucket=self.plain, Key="secret", Body=secret)
        url = self.c.generate_presigned_url(
            "put_object", Params={"Bucket": self.plain, "Key": "stolen"}, ExpiresIn=300)
        req = urllib.request.Request(url, data=b"", method="PUT", headers={
            "x_amz_copy_source": f"{self.plain}/secret", "x_amz_acl": "public-read"})
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req)
        self.assertEqual(cm.exception.code, 400)
        self.assertEqual(error_code(cm.exception.read()), "InvalidArgument")
        self.assertFalse(backend_has(self.plain, "stolen"))
        # Internal metadata under a '_' spelling.
        resp = self.signed("PUT", f"/{self.plain}/meta", b"data",
                           {"x-amz-meta-s3seal_md5": "00" * 16})
        self.assert_refused_and_absent(resp, "meta", 400, "InvalidArgument", self.plain)

    def test_repeated_headers_are_refused(self):
        # s3seal reads the first copy source, a backend the list of both.
        self.c.put_object(Bucket=self.plain, Key="src-a", Body=b"a" * 100)
        self.c.put_object(Bucket=self.plain, Key="src-b", Body=b"b" * 100)
        path = f"/{self.plain}/dup-dst"
        srcs = (f"/{self.plain}/src-a", f"/{self.strict}/src-b")
        h = sign_v4("PUT", self.s.endpoint + path, {"x-amz-copy-source": ",".join(srcs)},
                    EMPTY_SHA, self.s.access_key, self.s.secret_key)
        del h["x-amz-copy-source"]
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=30)
        try:
            conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.items():
                conn.putheader(k, v)
            for src in srcs:
                conn.putheader("x-amz-copy-source", src)
            conn.putheader("Content-Length", "0")
            conn.endheaders()
            r = conn.getresponse()
            resp = (r.status, dict(r.getheaders()), r.read())
        finally:
            conn.close()
        self.assert_refused_and_absent(resp, "dup-dst", 400, "InvalidArgument", self.plain)

    def test_hoisted_headers_in_presigned_query_are_refused(self):
        for i, (name, value) in enumerate((("x-amz-copy-source", f"{self.plain}/secret"),
                                           ("x-amz-server-side-encryption", "aws:kms"),
                                           ("x-amz-meta-s3seal-md5", "00"))):
            key = f"hoisted-{i}"
            q = f"{urllib.parse.quote(name)}={urllib.parse.quote(value, safe='')}"
            resp = self.signed("PUT", f"/{self.plain}/{key}?{q}", b"data")
            self.assert_refused_and_absent(resp, key, 400, "InvalidArgument", self.plain)

    def test_known_writes_without_data_still_work(self):
        self.c.put_object(Bucket=self.strict, Key="tagged", Body=b"abc")
        self.c.put_object_tagging(Bucket=self.strict, Key="tagged",
                                  Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
        tags = self.c.get_object_tagging(Bucket=self.strict, Key="tagged")["TagSet"]
        self.assertEqual(tags, [{"Key": "k", "Value": "v"}])
        self.c.delete_objects(Bucket=self.strict, Delete={"Objects": [{"Key": "tagged"}]})
        self.assertFalse(backend_has(self.strict, "tagged"))


if __name__ == "__main__":
    unittest.main()
