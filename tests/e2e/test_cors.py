"""CORS as S3 does it, end to end against the real backend.

PutBucketCors, GetBucketCors and DeleteBucketCors are answered by s3seal and
kept in its keystore (never the backend's): a boto3 round trip, AWS's
validation errors, NoSuchCORSConfiguration, and another account may not set
or read a bucket's configuration. Preflights (OPTIONS) are answered by s3seal
without authentication: allowed ones with the rule's headers, a disallowed
origin, method or header, or a bucket without a configuration, with 403
AccessForbidden, a missing Origin or method with 400; an OPTIONS never
reaches the backend. Actual requests with an Origin (presigned GET and PUT)
get the CORS headers of the first matching rule, on success and on error
answers; what they write is ciphertext on the backend.

A real browser (Debian's chromium, headless) runs a page served from one
origin that PUTs through a presigned URL to s3seal and reads the object back
with fetch(); a page from an origin the rule does not name fails."""

import hashlib
import html
import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
import unittest
import urllib.parse

import botocore

from harness import (S3Seal, backend_client, backend_has, empty_and_delete, error_code,
                     free_port, new_bucket_name, raw_request, sign_v4)

ACCOUNT = "111122223333"
OTHER = "444455556666"
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
SEG = 65536
TAG = 16

CAROL = ("AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30),
         f"arn:aws:iam::{OTHER}:user/carol",
         {"Version": "2012-10-17",
          "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})

AES256 = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}

RULES = [
    {"ID": "web", "AllowedMethods": ["PUT", "GET"],
     "AllowedOrigins": ["https://app.example.com", "http://127.0.0.1:*"],
     "AllowedHeaders": ["content-type", "x-amz-meta-*"],
     "ExposeHeaders": ["ETag", "x-amz-request-id"], "MaxAgeSeconds": 600},
    {"AllowedMethods": ["HEAD", "GET"], "AllowedOrigins": ["*"]},
]


def cipher_size(n):
    return n + TAG * max(1, -(-n // SEG))


def client_error(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except botocore.exceptions.ClientError as e:
        return (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"],
                e.response["Error"].get("Message", ""))
    raise AssertionError("the call succeeded")


def path_of(url):
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


class CorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal(extra_credentials=[CAROL]).start()
        cls.c = cls.s.client()
        cls.carol = cls.s.client(access_key=CAROL[0], secret_key=CAROL[1])
        cls.buckets = []

    @classmethod
    def tearDownClass(cls):
        for b in cls.buckets:
            empty_and_delete(backend_client(), b)
        cls.s.stop()

    def new_bucket(self, rules=None, encrypted=False):
        b = new_bucket_name("cors")
        self.buckets.append(b)
        self.c.create_bucket(Bucket=b)
        if encrypted:
            self.c.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration=AES256)
        if rules:
            self.c.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": rules})
        return b

    def signed(self, method, bucket, body=b"", query="cors", headers=None):
        url = f"{self.s.endpoint}/{bucket}?{query}"
        h = sign_v4(method, url, headers or {}, hashlib.sha256(body).hexdigest(),
                    self.s.access_key, self.s.secret_key)
        return raw_request(self.s.endpoint, method, f"/{bucket}?{query}", h, body)

    def preflight(self, path, origin="https://app.example.com", method="PUT", headers=None,
                  extra=None):
        h = {"Host": f"127.0.0.1:{self.s.port}"}
        if origin is not None:
            h["Origin"] = origin
        if method is not None:
            h["Access-Control-Request-Method"] = method
        if headers is not None:
            h["Access-Control-Request-Headers"] = headers
        h.update(extra or {})
        return raw_request(self.s.endpoint, "OPTIONS", path, h)

    def assert_forbidden(self, answer, message="This CORS request is not allowed"):
        status, headers, body = answer
        self.assertEqual(status, 403, body)
        self.assertEqual(error_code(body), "AccessForbidden")
        self.assertIn(b"CORSResponse: ", body)
        self.assertIn(message.encode(), body)
        self.assertNotIn("access-control-allow-origin", headers)

    def assert_ciphertext(self, bucket, key, data):
        raw = backend_client().get_object(Bucket=bucket, Key=key)
        body = raw["Body"].read()
        self.assertEqual(len(body), cipher_size(len(data)))
        self.assertNotIn(data[:32], body)
        self.assertEqual(raw["Metadata"].get("s3seal-version"), "1")

    # ----------------------------------------------------- the bucket API

    def test_round_trip(self):
        b = self.new_bucket()
        status, code, msg = client_error(self.c.get_bucket_cors, Bucket=b)
        self.assertEqual((status, code), (404, "NoSuchCORSConfiguration"))
        self.assertEqual(msg, "The CORS configuration does not exist")
        self.c.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": RULES})
        got = self.c.get_bucket_cors(Bucket=b)["CORSRules"]
        self.assertEqual(got, RULES)
        # Never the backend's: it has no CORS configuration of its own.
        status, code, _ = client_error(backend_client().get_bucket_cors, Bucket=b)
        self.assertEqual(status, 404, code)
        # Replaced whole.
        self.c.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": RULES[1:]})
        self.assertEqual(self.c.get_bucket_cors(Bucket=b)["CORSRules"], RULES[1:])
        self.c.delete_bucket_cors(Bucket=b)
        self.assertEqual(client_error(self.c.get_bucket_cors, Bucket=b)[1],
                         "NoSuchCORSConfiguration")
        # Deleting what is not there is no error, as in S3.
        self.c.delete_bucket_cors(Bucket=b)

    def test_validation(self):
        b = self.new_bucket()
        status, code, msg = client_error(self.c.put_bucket_cors, Bucket=b, CORSConfiguration={
            "CORSRules": [{"AllowedMethods": ["PATCH"], "AllowedOrigins": ["*"]}]})
        self.assertEqual((status, code), (400, "InvalidRequest"))
        self.assertEqual(msg, "Found unsupported HTTP method in CORS config. "
                              "Unsupported method is PATCH")
        status, code, msg = client_error(self.c.put_bucket_cors, Bucket=b, CORSConfiguration={
            "CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["http://*.*.com"]}]})
        self.assertEqual((status, code), (400, "InvalidRequest"))
        self.assertIn("can not have more than one wildcard", msg)
        too_many = [{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}] * 101
        status, code, _ = client_error(self.c.put_bucket_cors, Bucket=b,
                                       CORSConfiguration={"CORSRules": too_many})
        self.assertEqual((status, code), (400, "InvalidRequest"))
        self.c.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": too_many[:100]})
        self.assertEqual(len(self.c.get_bucket_cors(Bucket=b)["CORSRules"]), 100)
        # Raw documents: not well-formed, a DTD, no AllowedOrigin, an
        # unknown element.
        for doc in [b"<CORSConfiguration>",
                    b'<!DOCTYPE a [<!ENTITY e "GET">]><CORSConfiguration><CORSRule>'
                    b"<AllowedMethod>&e;</AllowedMethod><AllowedOrigin>*</AllowedOrigin>"
                    b"</CORSRule></CORSConfiguration>",
                    b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>"
                    b"</CORSRule></CORSConfiguration>",
                    b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>"
                    b"<AllowedOrigin>*</AllowedOrigin><Color>red</Color></CORSRule>"
                    b"</CORSConfiguration>",
                    b"<CORSConfiguration/>"]:
            status, _, body = self.signed("PUT", b, doc)
            self.assertEqual((status, error_code(body)), (400, "MalformedXML"), doc)
        # Over 64 KiB.
        big = (b"<CORSConfiguration><!--" + b"x" * (65 * 1024) + b"--><CORSRule>"
               b"<AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin>"
               b"</CORSRule></CORSConfiguration>")
        status, _, body = self.signed("PUT", b, big)
        self.assertEqual((status, error_code(body)), (400, "MaxMessageLengthExceeded"))
        # The first valid configuration is still the one stored.
        self.assertEqual(len(self.c.get_bucket_cors(Bucket=b)["CORSRules"]), 100)
        # A bucket the backend does not have, with a valid document or not.
        status, code, _ = client_error(self.c.put_bucket_cors, Bucket=new_bucket_name("nope"),
                                       CORSConfiguration={"CORSRules": RULES})
        self.assertEqual((status, code), (404, "NoSuchBucket"))
        status, code, msg = client_error(
            self.c.put_bucket_cors, Bucket=new_bucket_name("nope"),
            CORSConfiguration={"CORSRules": [{"AllowedMethods": ["PATCH"],
                                              "AllowedOrigins": ["*"]}]})
        self.assertEqual((status, code, msg),
                         (404, "NoSuchBucket", "The specified bucket does not exist"))

    def test_other_account(self):
        b = self.new_bucket(RULES)
        for fn, kw in [(self.carol.put_bucket_cors, {"CORSConfiguration": {"CORSRules": [
                           {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]}}),
                       (self.carol.get_bucket_cors, {}),
                       (self.carol.delete_bucket_cors, {})]:
            status, code, _ = client_error(fn, Bucket=b, **kw)
            self.assertEqual((status, code), (403, "AccessDenied"), fn)
        self.assertEqual(self.c.get_bucket_cors(Bucket=b)["CORSRules"], RULES)
        # A bucket policy granting the other account everything lets it
        # read the configuration, never change it: which pages may use the
        # bucket is the owner's to say.
        self.c.put_bucket_policy(Bucket=b, Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": CAROL[2]}, "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*"]}]}))
        self.assertEqual(self.carol.get_bucket_cors(Bucket=b)["CORSRules"], RULES)
        for fn, kw in [(self.carol.put_bucket_cors, {"CORSConfiguration": {"CORSRules": [
                           {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]}}),
                       (self.carol.delete_bucket_cors, {})]:
            status, code, _ = client_error(fn, Bucket=b, **kw)
            self.assertEqual((status, code), (403, "AccessDenied"), fn)
        self.assertEqual(self.c.get_bucket_cors(Bucket=b)["CORSRules"], RULES)
        # Unauthenticated: refused as today, never the backend's.
        status, _, body = raw_request(self.s.endpoint, "PUT", f"/{b}?cors",
                                      {"Host": f"127.0.0.1:{self.s.port}"},
                                      b"<CORSConfiguration/>")
        self.assertEqual((status, error_code(body)), (403, "AccessDenied"))

    def test_shared_keystore(self):
        """Another instance sharing the keystore applies a change within its
        refresh period; a deleted bucket's configuration goes with it; a
        keystore copy carries the table."""
        b = self.new_bucket()
        s2 = S3Seal(keystore_of=self.s).start()
        try:
            self.c.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": RULES})
            deadline = time.time() + 15
            status = None
            while time.time() < deadline:
                status, h, _ = raw_request(s2.endpoint, "OPTIONS", f"/{b}/k",
                                           {"Host": f"127.0.0.1:{s2.port}",
                                            "Origin": "https://app.example.com",
                                            "Access-Control-Request-Method": "PUT"})
                if status == 200:
                    break
                time.sleep(0.5)
            self.assertEqual(status, 200)
            self.assertEqual(h["access-control-allow-origin"], "https://app.example.com")
        finally:
            s2.stop(self)
        copy = os.path.join(self.s.dir, f"copy-{secrets.token_hex(4)}.db")
        self.s.cli("keystore", "copy", "--to", copy, check=True)
        rows = subprocess.run(["sqlite3", copy, "SELECT bucket FROM bucket_cors"],
                              capture_output=True, text=True)
        if rows.returncode == 0:
            self.assertIn(b, rows.stdout.split())
        # DeleteBucket through s3seal forgets the configuration: a new bucket
        # of the same name starts without one.
        self.c.delete_bucket(Bucket=b)
        self.c.create_bucket(Bucket=b)
        self.assertEqual(client_error(self.c.get_bucket_cors, Bucket=b)[1],
                         "NoSuchCORSConfiguration")
        self.assert_forbidden(self.preflight(f"/{b}/k"), "CORS is not enabled")

    # -------------------------------------------------------- preflights

    def test_preflight_allowed(self):
        b = self.new_bucket(RULES)
        status, h, body = self.preflight(f"/{b}/docs/a.pdf", headers="Content-Type, X-Amz-Meta-Who")
        self.assertEqual(status, 200, body)
        self.assertEqual(body, b"")
        self.assertEqual(h["access-control-allow-origin"], "https://app.example.com")
        self.assertEqual(h["access-control-allow-methods"], "PUT, GET")
        self.assertEqual(h["access-control-allow-headers"], "content-type, x-amz-meta-who")
        self.assertEqual(h["access-control-max-age"], "600")
        self.assertEqual(h["access-control-expose-headers"], "ETag, x-amz-request-id")
        self.assertEqual(h["access-control-allow-credentials"], "true")
        self.assertEqual(h["vary"], "Origin, Access-Control-Request-Headers, "
                                    "Access-Control-Request-Method")
        # The second rule, for any origin: "*", without credentials.
        status, h, _ = self.preflight(f"/{b}", origin="https://elsewhere.test", method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(h["access-control-allow-origin"], "*")
        self.assertEqual(h["access-control-allow-methods"], "HEAD, GET")
        self.assertNotIn("access-control-allow-credentials", h)
        self.assertNotIn("access-control-max-age", h)

    def test_preflight_refused(self):
        b = self.new_bucket(RULES)
        # Origin, method, header not allowed.
        self.assert_forbidden(self.preflight(f"/{b}/k", origin="https://evil.test"))
        self.assert_forbidden(self.preflight(f"/{b}/k", method="DELETE"))
        self.assert_forbidden(self.preflight(f"/{b}/k", headers="x-other"))
        self.assert_forbidden(self.preflight(f"/{b}/k", method="put"))
        # No configuration (a bucket without one, one that does not exist).
        plain = self.new_bucket()
        self.assert_forbidden(self.preflight(f"/{plain}/k"), "CORS is not enabled for this bucket")
        self.assert_forbidden(self.preflight(f"/{new_bucket_name('nope')}/k"),
                              "CORS is not enabled")
        # Missing Origin, missing method: 400.
        status, _, body = self.preflight(f"/{b}/k", origin=None)
        self.assertEqual((status, error_code(body)), (400, "BadRequest"))
        self.assertIn(b"Origin request header needed", body)
        status, _, body = self.preflight(f"/{b}/k", method=None)
        self.assertEqual((status, error_code(body)), (400, "BadRequest"))
        self.assertIn(b"Access-Control-Request-Method", body)

    def test_options_never_reach_backend(self):
        b = self.new_bucket([{"AllowedMethods": ["PUT"], "AllowedOrigins": ["*"],
                              "AllowedHeaders": ["*"]}])
        # With a body, a signature, a query: answered here, nothing stored.
        url = f"{self.s.endpoint}/{b}/opt?uploads"
        h = sign_v4("OPTIONS", url, {"Origin": "https://x.test",
                                     "Access-Control-Request-Method": "PUT"},
                    hashlib.sha256(b"data").hexdigest(), self.s.access_key, self.s.secret_key)
        status, rh, _ = raw_request(self.s.endpoint, "OPTIONS", f"/{b}/opt?uploads", h, b"data")
        self.assertEqual(status, 200)
        self.assertEqual(rh["access-control-allow-origin"], "*")
        status, _, _ = self.preflight(f"/{b}/opt2", origin=None, extra={"Content-Length": "0"})
        self.assertEqual(status, 400)
        self.assertFalse(backend_has(b, "opt"))
        self.assertFalse(backend_has(b, "opt2"))
        self.assertEqual(backend_client().list_objects_v2(Bucket=b)["KeyCount"], 0)
        self.assertEqual(backend_client().list_multipart_uploads(Bucket=b).get("Uploads", []),
                         [])

    # --------------------------------------------------- actual requests

    def test_presigned_with_origin(self):
        b = self.new_bucket(RULES, encrypted=True)
        data = os.urandom(100_000)
        origin = "https://app.example.com"
        put = self.c.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "up.bin"},
                                            ExpiresIn=300)
        status, h, body = raw_request(self.s.endpoint, "PUT", path_of(put),
                                      {"Host": f"127.0.0.1:{self.s.port}", "Origin": origin},
                                      data)
        self.assertEqual(status, 200, body)
        self.assertEqual(h["access-control-allow-origin"], origin)
        self.assertEqual(h["access-control-allow-methods"], "PUT, GET")
        self.assertEqual(h["access-control-allow-credentials"], "true")
        self.assertEqual(h["access-control-expose-headers"], "ETag, x-amz-request-id")
        self.assertEqual(h["access-control-max-age"], "600")
        self.assertEqual(h["vary"], "Origin")
        self.assert_ciphertext(b, "up.bin", data)

        get = self.c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "up.bin"},
                                            ExpiresIn=300)
        status, h, body = raw_request(self.s.endpoint, "GET", path_of(get),
                                      {"Host": f"127.0.0.1:{self.s.port}", "Origin": origin})
        self.assertEqual(status, 200)
        self.assertEqual(body, data)
        self.assertEqual(h["access-control-allow-origin"], origin)
        # A GET from any origin: the "*" rule.
        status, h, body = raw_request(self.s.endpoint, "GET", path_of(get),
                                      {"Host": f"127.0.0.1:{self.s.port}",
                                       "Origin": "https://other.test"})
        self.assertEqual((status, body), (200, data))
        self.assertEqual(h["access-control-allow-origin"], "*")
        self.assertNotIn("access-control-allow-credentials", h)
        # No Origin, no CORS headers.
        status, h, _ = raw_request(self.s.endpoint, "GET", path_of(get),
                                   {"Host": f"127.0.0.1:{self.s.port}"})
        self.assertEqual(status, 200)
        self.assertNotIn("access-control-allow-origin", h)
        # A PUT from an origin no PUT rule names: stored (CORS is the
        # browser's to enforce), but without CORS headers.
        status, h, _ = raw_request(self.s.endpoint, "PUT", path_of(put),
                                   {"Host": f"127.0.0.1:{self.s.port}",
                                    "Origin": "https://other.test"}, data)
        self.assertEqual(status, 200)
        self.assertNotIn("access-control-allow-origin", h)

    def test_huge_rule(self):
        """A rule whose headers would not fit an answer's head costs the
        answer its CORS headers, never the answer."""
        expose = [f"x-amz-meta-exposed-header-{i:04d}" for i in range(900)]
        b = self.new_bucket([{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"],
                              "ExposeHeaders": expose}])
        self.c.put_object(Bucket=b, Key="k", Body=b"still here")
        get = self.c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "k"},
                                            ExpiresIn=300)
        status, h, body = raw_request(self.s.endpoint, "GET", path_of(get),
                                      {"Host": f"127.0.0.1:{self.s.port}",
                                       "Origin": "https://x.test"})
        self.assertEqual((status, body), (200, b"still here"))
        self.assertNotIn("access-control-allow-origin", h)
        status, h, body = raw_request(self.s.endpoint, "GET", path_of(get) + "x",
                                      {"Host": f"127.0.0.1:{self.s.port}",
                                       "Origin": "https://x.test"})
        self.assertEqual(status, 403)
        self.assertEqual(error_code(body), "SignatureDoesNotMatch")

    def test_error_answers_with_origin(self):
        b = self.new_bucket(RULES)
        origin = "https://app.example.com"
        get = self.c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "none"},
                                            ExpiresIn=300)
        status, h, body = raw_request(self.s.endpoint, "GET", path_of(get),
                                      {"Host": f"127.0.0.1:{self.s.port}", "Origin": origin})
        self.assertEqual((status, error_code(body)), (404, "NoSuchKey"))
        self.assertEqual(h["access-control-allow-origin"], origin)
        self.assertEqual(h["vary"], "Origin")
        # A tampered signature: refused by s3seal, with CORS headers (the
        # page must be able to read why).
        bad = path_of(get).replace("X-Amz-Signature=", "X-Amz-Signature=0")
        status, h, body = raw_request(self.s.endpoint, "GET", bad,
                                      {"Host": f"127.0.0.1:{self.s.port}", "Origin": origin})
        self.assertEqual(status, 403)
        self.assertEqual(h["access-control-allow-origin"], origin)
        # Signed HEAD of a missing object (no body): the "*" rule.
        url = f"{self.s.endpoint}/{b}/none"
        hh = sign_v4("HEAD", url, {"Origin": "https://x.test"},
                     hashlib.sha256(b"").hexdigest(), self.s.access_key, self.s.secret_key)
        status, h, _ = raw_request(self.s.endpoint, "HEAD", f"/{b}/none", hh)
        self.assertEqual(status, 404)
        self.assertEqual(h["access-control-allow-origin"], "*")

    # --------------------------------------------------------- a browser

    def _browser(self):
        for name in ("chromium", "chromium-browser"):
            path = shutil.which(name)
            if path:
                return path
        raise unittest.SkipTest("chromium is not installed (deploy/install-deps.sh)")

    def _serve_page(self, html):
        """An http.server on its own port serving `html` at /; returns
        (origin, stop)."""
        page = html.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        port = free_port()
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()

        def stop():
            srv.shutdown()
            srv.server_close()
        return f"http://127.0.0.1:{port}", stop

    def _run_page(self, browser, origin):
        profile = os.path.join(self.s.dir, f"chromium-{secrets.token_hex(4)}")
        r = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                            "--no-first-run", "--disable-extensions",
                            f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                            "--dump-dom", origin + "/"],
                           capture_output=True, timeout=120)
        dom = r.stdout.decode("utf-8", "replace")
        # What the page's script wrote (its source is in the DOM too).
        m = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
        self.assertIsNotNone(m, dom[-2000:] + r.stderr.decode("utf-8", "replace")[-2000:])
        return html.unescape(m.group(1))

    def _page(self, put_url, get_url, body):
        return f"""<!doctype html><html><body><pre id="result">running</pre><script>
(async () => {{
  const out = document.getElementById("result");
  try {{
    const put = await fetch({put_url!r}, {{method: "PUT", body: {body!r},
                                           headers: {{"Content-Type": "text/plain"}}}});
    if (!put.ok) {{ out.textContent = "PUT-STATUS " + put.status; return; }}
    const get = await fetch({get_url!r});
    const text = await get.text();
    out.textContent = "DONE " + get.status + " " + (put.headers.get("ETag") ? "ETAG " : "") +
                      text;
  }} catch (e) {{
    out.textContent = "FAILED " + e;
  }}
}})();
</script></body></html>"""

    def test_browser(self):
        browser = self._browser()
        b = self.new_bucket(encrypted=True)
        body = "uploaded by a page " + secrets.token_hex(16)
        put = self.c.generate_presigned_url(
            "put_object", Params={"Bucket": b, "Key": "page.txt", "ContentType": "text/plain"},
            ExpiresIn=600)
        get = self.c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "page.txt"},
                                            ExpiresIn=600)
        origin, stop = self._serve_page(self._page(put, get, body))
        try:
            # Only this page's origin may PUT and GET.
            self.c.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": [
                {"AllowedMethods": ["PUT", "GET"], "AllowedOrigins": [origin],
                 "AllowedHeaders": ["content-type"], "ExposeHeaders": ["ETag"],
                 "MaxAgeSeconds": 60}]})
            result = self._run_page(browser, origin)
        finally:
            stop()
        self.assertEqual(result, f"DONE 200 ETAG {body}")
        got = self.c.get_object(Bucket=b, Key="page.txt")["Body"].read()
        self.assertEqual(got, body.encode())
        self.assert_ciphertext(b, "page.txt", body.encode())

        # A page from an origin the rule does not name: the browser's
        # preflight is refused, nothing is written.
        put2 = self.c.generate_presigned_url(
            "put_object", Params={"Bucket": b, "Key": "evil.txt", "ContentType": "text/plain"},
            ExpiresIn=600)
        origin2, stop2 = self._serve_page(self._page(put2, get, "not allowed"))
        try:
            self.assertNotEqual(origin2, origin)
            result = self._run_page(browser, origin2)
        finally:
            stop2()
        self.assertTrue(result.startswith("FAILED TypeError"), result)
        self.assertFalse(backend_has(b, "evil.txt"))


if __name__ == "__main__":
    unittest.main()
