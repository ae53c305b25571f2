"""Process behaviour: SIGTERM drains an in-flight transfer before exiting 0,
the access log has one line per request with the agreed fields and never a
secret, and the configuration is refused with file:line reasons."""

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

from harness import S3Seal, backend_client, empty_and_delete, env, new_bucket_name


class LifecycleTest(unittest.TestCase):
    def test_sigterm_drains_inflight_get(self):
        s = S3Seal().start()
        c = s.client()
        bucket = new_bucket_name("life")
        try:
            c.create_bucket(Bucket=bucket)
            data = os.urandom(64 * 1024 * 1024)
            c.put_object(Bucket=bucket, Key="big", Body=data)
            got = {}

            def slow_reader():
                body = c.get_object(Bucket=bucket, Key="big")["Body"]
                chunks = []
                while True:
                    b = body.read(1 << 20)
                    if not b:
                        break
                    chunks.append(b)
                    time.sleep(0.01)
                got["data"] = b"".join(chunks)

            t = threading.Thread(target=slow_reader)
            t.start()
            time.sleep(0.5)  # the GET is in flight
            s.proc.send_signal(signal.SIGTERM)
            t.join(timeout=120)
            self.assertEqual(got.get("data"), data)
            rc = s.proc.wait(timeout=60)
            self.assertEqual(rc, 0)
            s.proc = None
            s.log.close()
            log = s.read_log()
            self.assertIn("draining", log)
            lines = [l for l in log.splitlines() if " access " in l]
            self.assertTrue(any(re.search(
                r"method=GET bucket=%s key=big status=200 bytes_in=0 bytes_out=%d "
                r"duration_ms=[\d.]+ access_key=%s" % (bucket, len(data), s.access_key), l)
                for l in lines), "\n".join(lines))
            self.assertNotIn(s.secret_key, log)
            self.assertNotIn(env("S3_SECRET_KEY"), log)
            self.assertNotIn("Signature=", log)
        finally:
            empty_and_delete(backend_client(), bucket)
            if s.proc:
                s.stop()

    def test_log_never_holds_secrets_or_signatures(self):
        s = S3Seal().start()
        c = s.client()
        bucket = new_bucket_name("logs")
        signatures = []
        c.meta.events.register(
            "before-send.s3", lambda request, **kw: signatures.append(
                re.search(r"Signature=([0-9a-f]{64})",
                          request.headers["Authorization"].decode()
                          if isinstance(request.headers["Authorization"], bytes)
                          else request.headers["Authorization"]).group(1)))
        try:
            c.create_bucket(Bucket=bucket)
            c.put_object(Bucket=bucket, Key="k", Body=b"logged?")
            url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"},
                                           ExpiresIn=60)
            with urllib.request.urlopen(url) as r:
                self.assertEqual(r.read(), b"logged?")
            presigned_sig = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)[
                "X-Amz-Signature"][0]
            wrong = s.client(secret_key="wrong-secret-" + s.secret_key[:8])
            with self.assertRaises(Exception):
                wrong.get_object(Bucket=bucket, Key="k")
        finally:
            empty_and_delete(backend_client(), bucket)
            s.stop()  # also fails if either secret key is in the log
        log = s.read_log()
        access = [l for l in log.splitlines() if " access " in l]
        self.assertGreaterEqual(len(access), 4, log)
        for l in access:
            for field in ("method=", "bucket=", "key=", "status=", "bytes_in=", "bytes_out=",
                          "duration_ms=", "access_key="):
                self.assertIn(field, l)
        self.assertTrue(any("method=PUT" in l and "key=k " in l and "status=200" in l and
                            f"access_key={s.access_key}" in l for l in access), log)
        self.assertTrue(signatures)
        for sig in signatures + [presigned_sig]:
            self.assertNotIn(sig, log)
        for word in ("X-Amz-Signature", "Signature=", "AWS4-HMAC-SHA256 Credential",
                     "wrong-secret-"):
            self.assertNotIn(word, log)

    def test_limits_and_timeouts(self):
        s = S3Seal(extra_yaml="limits:\n  header_timeout_ms: 500\n  idle_timeout_ms: 800\n"
                              "  max_header_bytes: 8192\n").start()
        try:
            def exchange(payload, wait=10):
                with socket.create_connection(("127.0.0.1", s.port), timeout=wait) as sock:
                    t0 = time.time()
                    sock.sendall(payload)
                    data = b""
                    while chunk := sock.recv(65536):  # until s3seal closes
                        data += chunk
                    return data, time.time() - t0

            # A client that never finishes its headers gets RequestTimeout.
            data, took = exchange(b"GET / HTTP/1.1\r\nHost: x\r\n")
            self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:80])
            self.assertIn(b"<Code>RequestTimeout</Code>", data)
            self.assertLess(took, 5)
            # An idle keep-alive connection is closed quietly.
            data, took = exchange(b"")
            self.assertEqual(data, b"")
            self.assertLess(took, 5)
            # Oversized headers are refused before anything else.
            data, _ = exchange(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
            self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:80])
            self.assertIn(b"RequestHeaderSectionTooLarge", data)
            # Garbage is a 400, not a crash.
            data, _ = exchange(b"\x00\x01 NOT HTTP\r\n\r\n")
            self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:80])
            # HTTP/1.0 without keep-alive: answered, then closed.
            data, _ = exchange(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            self.assertTrue(data.startswith(b"HTTP/1.1 403"), data[:80])
        finally:
            s.stop()

    def test_bad_config_is_refused_with_line(self):
        d = tempfile.mkdtemp()
        cases = [
            ("listen: 127.0.0.1:8080\nlistn: x\n", ":2: unknown key 'listn'"),
            ("listen: 127.0.0.1:99999\n", ":1: listen: bad port"),
            ("listen: 127.0.0.1:8080\nbackend:\n  endpoint: ftp://x\n",
             ":3: backend.endpoint must start with http:// or https://"),
            ("listen: [unclosed\n", "c.yaml:2: did not find expected"),
        ]
        for text, want in cases:
            path = os.path.join(d, "c.yaml")
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run([env("S3SEAL_BIN"), "serve", "-c", path], capture_output=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2, text)
            self.assertIn(want, r.stderr.decode(), text)
        r = subprocess.run([env("S3SEAL_BIN"), "serve", "-c", os.path.join(d, "missing.yaml")],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot open: No such file or directory", r.stderr.decode())


if __name__ == "__main__":
    unittest.main()
