"""An https backend: the real backend behind a TLS terminator (nginx) with a
certificate from a CA made for the test. With backend.ca_file naming that CA,
s3seal verifies the certificate and works; without it, the backend is not
trusted and clients get an error instead of an unverified connection."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import botocore

from harness import S3Seal, backend_client, empty_and_delete, env, free_port, new_bucket_name


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class HttpsBackendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("nginx"):
            raise AssertionError("nginx is required (deploy/install-deps.sh installs it)")
        cls.dir = tempfile.mkdtemp(prefix="s3seal-tls-")
        d = cls.dir
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=s3seal test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
        with open(os.path.join(d, "san.cnf"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout",
                "server.key", "-out", "server.csr", cwd=d)
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem", cwd=d)
        cls.port = free_port()
        upstream = urllib.parse.urlsplit(env("S3_ENDPOINT")).netloc
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"""daemon off;
{"user root;" if os.geteuid() == 0 else ""}
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{cls.port} ssl;
    ssl_certificate {d}/server.pem;
    ssl_certificate_key {d}/server.key;
    client_max_body_size 0;
    location / {{
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffering off;
    }}
  }}
}}
""")
        cls.nginx = subprocess.Popen(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if cls.nginx.poll() is not None:
            raise AssertionError("nginx did not start: " + open(os.path.join(d, "error.log")).read())

    @classmethod
    def tearDownClass(cls):
        cls.nginx.send_signal(signal.SIGQUIT)
        cls.nginx.wait(timeout=30)

    def proxy(self, ca):
        extra = f"  ca_file: {self.dir}/ca.pem\n" if ca else ""
        s = S3Seal(backend=f"https://localhost:{self.port}", backend_extra=extra)
        return s.start()

    def test_verified_tls_backend(self):
        s = self.proxy(ca=True)
        bucket = new_bucket_name("tls")
        try:
            c = s.client()
            c.create_bucket(Bucket=bucket)
            data = os.urandom(3 * 1024 * 1024 + 7)
            c.put_object(Bucket=bucket, Key="over-tls", Body=data)
            self.assertEqual(c.get_object(Bucket=bucket, Key="over-tls")["Body"].read(), data)
            self.assertEqual(backend_client().head_object(Bucket=bucket, Key="over-tls")
                             ["ContentLength"], len(data))
        finally:
            empty_and_delete(backend_client(), bucket)
            s.stop()

    def test_untrusted_certificate_is_refused(self):
        s = self.proxy(ca=False)
        try:
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                s.client().list_buckets()
            self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 502)
            self.assertIn("certificate", s.read_log().lower())
        finally:
            s.stop()


if __name__ == "__main__":
    unittest.main()
