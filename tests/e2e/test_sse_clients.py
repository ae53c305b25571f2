"""SSE-S3 with the real clients' own integrity checks, in a bucket encrypted
by default, end to end against the real backend: s3cmd (put checks the
ETag against its MD5, get and sync), rclone (copy checks the MD5, check
compares hashes, md5sum), the JavaScript clients (AWS SDK v3 with trailing
checksums, lib-storage, minio-js; sse_js.mjs), and the ETag and conditional
requests behind those checks (the plaintext's MD5, If-Match, If-None-Match).
Every object is also read straight from the backend: ciphertext."""

import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

import botocore

from harness import (S3Seal, backend_client, empty_and_delete, new_bucket_name, raw_request,
                     sign_v4)

HERE = os.path.dirname(os.path.abspath(__file__))


class SseClientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket_name("sseclients")
        cls.s = S3Seal(extra_yaml=f"buckets:\n  {cls.bucket}:\n    default_encryption: AES256\n")
        cls.s.start()
        cls.c = cls.s.client()
        cls.b = backend_client()
        cls.c.create_bucket(Bucket=cls.bucket)
        cls.tmp = tempfile.mkdtemp(prefix="s3seal-e2e-clients-")

    @classmethod
    def tearDownClass(cls):
        try:
            empty_and_delete(cls.b, cls.bucket)
            shutil.rmtree(cls.tmp, True)
        finally:
            cls.s.stop()

    def assert_ciphertext(self, key, data):
        raw = self.b.get_object(Bucket=self.bucket, Key=key)
        body = raw["Body"].read()
        self.assertIn("s3seal-version", raw["Metadata"], key)
        self.assertGreater(len(body), len(data))
        for off in (0, len(data) // 2, max(0, len(data) - 64)):
            if len(data) >= off + 64:
                self.assertNotIn(data[off:off + 64], body, key)

    def files(self, sub, sizes):
        d = os.path.join(self.tmp, sub)
        os.makedirs(d)
        out = {}
        for i, n in enumerate(sizes):
            out[f"f{i}"] = os.urandom(n)
            with open(os.path.join(d, f"f{i}"), "wb") as f:
                f.write(out[f"f{i}"])
        return d, out

    def test_s3cmd(self):
        cfg = os.path.join(self.tmp, "s3cmd.cfg")
        host = f"127.0.0.1:{self.s.port}"
        with open(cfg, "w") as f:
            f.write(f"[default]\naccess_key = {self.s.access_key}\n"
                    f"secret_key = {self.s.secret_key}\nhost_base = {host}\n"
                    f"host_bucket = {host}\nuse_https = False\nsignature_v2 = False\n"
                    "bucket_location = us-east-1\n")

        def s3cmd(*args):
            r = subprocess.run(["s3cmd", "-c", cfg, *args], capture_output=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
            self.assertNotIn(b"MD5 Sums don't match", r.stderr)
            return r

        # s3cmd puts files up to 15 MB in one request and checks its ETag.
        d, files = self.files("s3cmd", [0, 1, 70_000, 3 * 2**20])
        for name, data in files.items():
            s3cmd("put", os.path.join(d, name), f"s3://{self.bucket}/s3cmd/{name}")
            self.assert_ciphertext(f"s3cmd/{name}", data) if data else None
        out = os.path.join(self.tmp, "s3cmd.out")
        s3cmd("get", "--force", f"s3://{self.bucket}/s3cmd/f3", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), files["f3"])
        # A second sync of the same files finds nothing to upload.
        s3cmd("sync", d + "/", f"s3://{self.bucket}/s3cmd-sync/")
        r = s3cmd("sync", "--dry-run", d + "/", f"s3://{self.bucket}/s3cmd-sync/")
        self.assertNotIn(b"upload:", r.stdout)

    def rclone(self, *args):
        env = dict(os.environ, RCLONE_CONFIG="/dev/null", RCLONE_CONFIG_S_TYPE="s3",
                   RCLONE_CONFIG_S_PROVIDER="Other", RCLONE_CONFIG_S_ENV_AUTH="false",
                   RCLONE_CONFIG_S_ACCESS_KEY_ID=self.s.access_key,
                   RCLONE_CONFIG_S_SECRET_ACCESS_KEY=self.s.secret_key,
                   RCLONE_CONFIG_S_ENDPOINT=self.s.endpoint, RCLONE_CONFIG_S_REGION="us-east-1")
        env.pop("AWS_CA_BUNDLE", None)  # rclone refuses a custom bundle for plain http
        r = subprocess.run(["rclone", *args], capture_output=True, env=env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        return r

    @unittest.skipUnless(shutil.which("rclone"), "rclone is not installed")
    def test_rclone(self):
        # rclone uploads up to 200 MB in one request (with Content-MD5) and
        # above its chunk size in parts (its MD5 in its own metadata).
        d, files = self.files("rclone", [0, 1, 70_000, 3 * 2**20, 12 * 2**20])
        self.rclone("copy", "--s3-upload-cutoff", "10M", "--s3-chunk-size", "5M", d,
                    f"s:{self.bucket}/rclone")
        for name, data in files.items():
            if data:
                self.assert_ciphertext(f"rclone/{name}", data)
        r = self.rclone("check", d, f"s:{self.bucket}/rclone")
        self.assertIn(b"0 differences found", r.stderr)
        self.assertIn(f"{len(files)} matching files".encode(), r.stderr)
        out = os.path.join(self.tmp, "rclone.out")
        self.rclone("copy", f"s:{self.bucket}/rclone", out)
        for name, data in files.items():
            with open(os.path.join(out, name), "rb") as f:
                self.assertEqual(f.read(), data, name)
        r = self.rclone("md5sum", f"s:{self.bucket}/rclone")
        for name, data in files.items():
            if os.path.getsize(os.path.join(d, name)) < 10 * 2**20:
                self.assertIn(f"{hashlib.md5(data).hexdigest()}  {name}".encode(), r.stdout)

    def test_javascript_clients(self):
        if not os.path.isdir(os.path.join(HERE, "node_modules", "minio")):
            self.fail("tests/e2e/node_modules is missing: run deploy/install-deps.sh")
        r = subprocess.run(["node", "sse_js.mjs", self.s.endpoint, self.bucket, self.s.access_key,
                            self.s.secret_key], cwd=HERE, capture_output=True, timeout=600)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode()[-3000:])
        self.assertIn(b"ok minio-js", r.stdout)

    def test_etags_and_conditions(self):
        data = os.urandom(100_000)
        md5 = hashlib.md5(data).hexdigest()
        put = self.c.put_object(Bucket=self.bucket, Key="etag/plain-md5", Body=data)
        self.assertEqual(put["ETag"], f'"{md5}"')
        # With Content-MD5 the MD5 is stored: HEAD and GET give it too.
        self.c.put_object(Bucket=self.bucket, Key="etag/stored", Body=data,
                          ContentMD5=__import__("base64").b64encode(
                              hashlib.md5(data).digest()).decode())
        head = self.c.head_object(Bucket=self.bucket, Key="etag/stored")
        self.assertEqual(head["ETag"], f'"{md5}"')
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="etag/stored",
                                           Range="bytes=0-9")["ETag"], f'"{md5}"')
        raw = self.b.head_object(Bucket=self.bucket, Key="etag/stored")
        self.assertNotEqual(raw["ETag"], f'"{md5}"')  # the backend's is the ciphertext's
        got = self.c.get_object(Bucket=self.bucket, Key="etag/stored", IfMatch=f'"{md5}"')
        self.assertEqual(got["Body"].read(), data)
        for kw, status in (({"IfMatch": raw["ETag"]}, 412), ({"IfNoneMatch": f'"{md5}"'}, 304),
                           ({"IfNoneMatch": "*"}, 304)):
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                self.c.get_object(Bucket=self.bucket, Key="etag/stored", **kw)
            self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], status,
                             kw)
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                self.c.head_object(Bucket=self.bucket, Key="etag/stored", **kw)
            self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], status,
                             kw)
        # If-Range: the range only where it matches the ETag the client sees
        # (or the Last-Modified date), else the whole object, as S3 answers.
        self.c.put_object(Bucket=self.bucket, Key="etag/plain-obj", Body=data)
        def ranged(key, if_range):
            path = f"/{self.bucket}/{key}"
            h = sign_v4("GET", self.s.endpoint + path, {"range": "bytes=10-19",
                                                        "if-range": if_range},
                        hashlib.sha256(b"").hexdigest(), self.s.access_key, self.s.secret_key)
            return raw_request(self.s.endpoint, "GET", path, h)

        for key in ("etag/stored", "etag/plain-obj"):
            h = self.c.head_object(Bucket=self.bucket, Key=key)
            status, headers, body = ranged(key, h["ETag"])
            self.assertEqual((status, body), (206, data[10:20]), key)
            self.assertEqual(headers.get("content-range"), f"bytes 10-19/{len(data)}")
            status, _, body = ranged(key, '"0123456789abcdef0123456789abcdef"')
            self.assertEqual((status, body), (200, data), key)
            status, _, body = ranged(key, h["ResponseMetadata"]["HTTPHeaders"]["last-modified"])
            self.assertEqual((status, body), (206, data[10:20]), key)
        # The connection stays usable after a 304 whose body was cut.
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="etag/stored",
                                           IfNoneMatch='"other"')["Body"].read(), data)
        # Listings give the plaintext's size and the ETag the PUT answered
        # (the catalog's), with or without Content-MD5.
        listed = {o["Key"]: o for o in self.c.list_objects_v2(Bucket=self.bucket,
                                                              Prefix="etag/")["Contents"]}
        for key in ("etag/stored", "etag/plain-md5", "etag/plain-obj"):
            self.assertEqual((listed[key]["Size"], listed[key]["ETag"]), (len(data), f'"{md5}"'))


if __name__ == "__main__":
    unittest.main()
