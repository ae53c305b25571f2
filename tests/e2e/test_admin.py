"""The admin listener (admin_listen): /metrics in Prometheus text format,
whose counters move as requests are made (the values asserted, not only the
names), validated by promtool and scraped by a real Prometheus;
/health/live; /health/ready, which turns 503 when the backend stops
answering and 200 again when it returns, and 503 while s3seal drains after
SIGTERM. Unknown paths are 404, other methods 405, and the S3 port knows
nothing of /metrics."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from faultproxy import FaultProxy
from harness import (S3Seal, backend_client, empty_and_delete, free_port, new_bucket_name,
                     sign_v4)

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')


def http(port, path, method="GET", timeout=10):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def parse(text):
    """{(name, frozenset of (label, value)): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                      m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_ready(port, want, timeout=20):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = http(port, "/health/ready")
        if last[0] == want:
            return last
        time.sleep(0.2)
    raise AssertionError(f"/health/ready did not become {want}: {last}")


class AdminMetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.admin = free_port()
        cls.bucket = new_bucket_name("adm")
        cls.s = S3Seal(extra_yaml=(
            f"admin_listen: 127.0.0.1:{cls.admin}\n"
            f"buckets:\n  {cls.bucket}:\n    default_encryption: AES256\n")).start()
        cls.c = cls.s.client()
        cls.c.create_bucket(Bucket=cls.bucket)
        wait_ready(cls.admin, 200)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def scrape(self):
        status, headers, body = http(self.admin, "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        return body, parse(body)

    def test_counters_move(self):
        _, before = self.scrape()
        bodies = {"a": os.urandom(1000), "b": os.urandom(70000)}
        for k, b in bodies.items():
            self.c.put_object(Bucket=self.bucket, Key=k, Body=b)
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="b")["Body"].read(),
                         bodies["b"])
        with self.assertRaises(self.c.exceptions.NoSuchKey):
            self.c.get_object(Bucket=self.bucket, Key="missing")
        # The bucket's default encryption: the backend holds ciphertext.
        stored = backend_client().get_object(Bucket=self.bucket, Key="b")["Body"].read()
        self.assertNotEqual(stored, bodies["b"])
        self.assertNotIn(bodies["b"][:64], stored)
        _, after = self.scrape()

        def delta(name, **labels):
            return val(after, name, **labels) - val(before, name, **labels)

        R = "s3seal_requests_total"
        self.assertEqual(delta(R, operation="PutObject", status_class="2xx"), 2)
        self.assertEqual(delta(R, operation="GetObject", status_class="2xx"), 1)
        self.assertEqual(delta(R, operation="GetObject", status_class="4xx"), 1)
        self.assertEqual(delta("s3seal_responses_total", code="404"), 1)
        self.assertGreaterEqual(delta("s3seal_responses_total", code="200"), 3)
        self.assertGreaterEqual(delta("s3seal_received_bytes_total", operation="PutObject"),
                                71000)
        self.assertGreaterEqual(delta("s3seal_sent_bytes_total", operation="GetObject"), 70000)
        H = "s3seal_request_duration_seconds"
        self.assertEqual(delta(H + "_count", operation="PutObject"), 2)
        self.assertEqual(delta(H + "_bucket", operation="PutObject", le="+Inf"), 2)
        self.assertGreater(delta(H + "_sum", operation="PutObject"), 0)
        # Per-bucket series for the configured bucket only.
        self.assertEqual(delta("s3seal_bucket_requests_total", bucket=self.bucket,
                               status_class="2xx"), 3)
        self.assertEqual(delta("s3seal_bucket_requests_total", bucket=self.bucket,
                               status_class="4xx"), 1)
        self.assertGreaterEqual(delta("s3seal_bucket_received_bytes_total", bucket=self.bucket),
                                71000)
        buckets = {dict(k[1]).get("bucket") for k in after if k[0].startswith("s3seal_bucket_")}
        self.assertEqual(buckets, {self.bucket})
        # The histogram is consistent: cumulative, +Inf equals the count.
        for op in ("PutObject", "GetObject"):
            les = sorted(((float(dict(k[1])["le"]), v) for k, v in after.items()
                          if k[0] == H + "_bucket" and dict(k[1])["operation"] == op))
            counts = [v for _, v in les]
            self.assertEqual(counts, sorted(counts))
            self.assertEqual(counts[-1], val(after, H + "_count", operation=op))
        self.assertEqual(val(after, "s3seal_ready"), 1)
        self.assertEqual(val(after, "s3seal_backend_up"), 1)
        self.assertEqual(val(after, "s3seal_keystore_up"), 1)
        self.assertGreaterEqual(val(after, "s3seal_root_key_version"), 1)
        self.assertGreaterEqual(val(after, "s3seal_root_key_age_seconds"), 0)
        self.assertGreaterEqual(val(after, "s3seal_client_connections"), 1)

    def test_backend_errors_and_root_key(self):
        # A new root key version shows within a probe or two.
        _, before = self.scrape()
        v0 = val(before, "s3seal_root_key_version")
        self.s.cli("root-key", "rotate", check=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            _, now = self.scrape()
            if val(now, "s3seal_root_key_version") == v0 + 1:
                break
            time.sleep(0.3)
        self.assertEqual(val(now, "s3seal_root_key_version"), v0 + 1)
        self.assertLess(val(now, "s3seal_root_key_age_seconds"), 30)

    def test_kms_and_cache(self):
        _, before = self.scrape()
        body = os.urandom(5000)
        self.c.put_object(Bucket=self.bucket, Key="kms", Body=body,
                          ServerSideEncryption="aws:kms")
        for _ in range(3):
            self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="kms")["Body"].read(),
                             body)
        stored = backend_client().get_object(Bucket=self.bucket, Key="kms")["Body"].read()
        self.assertNotIn(body[:64], stored)
        _, after = self.scrape()
        kms = {k: v - val(before, k[0], **dict(k[1])) for k, v in after.items()
               if k[0] == "s3seal_kms_operations_total"}
        gen = [(dict(k[1]), v) for k, v in kms.items()
               if dict(k[1])["operation"] == "GenerateDataKey" and v]
        self.assertEqual(len(gen), 1, kms)
        self.assertEqual(gen[0][0]["result"], "success")
        self.assertEqual(gen[0][1], 1)
        self.assertRegex(gen[0][0]["key"], r"^arn:aws:kms:[^:]+:111122223333:key/")
        dec = sum(v for k, v in kms.items() if dict(k[1])["operation"] == "Decrypt")
        hits = (val(after, "s3seal_dek_cache_hits_total")
                - val(before, "s3seal_dek_cache_hits_total"))
        misses = (val(after, "s3seal_dek_cache_misses_total")
                  - val(before, "s3seal_dek_cache_misses_total"))
        # Three GETs: the first unwraps (a Decrypt), the others hit the cache.
        self.assertEqual((dec, misses, hits), (1, 1, 2))

    def test_promtool_accepts_the_scrape(self):
        self.c.put_object(Bucket=self.bucket, Key="p", Body=b"x")
        body, _ = self.scrape()
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=body.encode(),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        self.assertEqual(r.stdout.decode().strip() + r.stderr.decode().strip(), "")

    def test_health_and_paths(self):
        self.assertEqual(http(self.admin, "/health/live")[0], 200)
        status, headers, body = http(self.admin, "/health/ready")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body),
                         {"status": "ready", "backend": "up", "keystore": "up"})
        self.assertEqual(http(self.admin, "/health/ready?x=1")[0], 200)
        self.assertEqual(http(self.admin, "/metrics", method="HEAD")[0], 200)
        self.assertEqual(http(self.admin, "/nope")[0], 404)
        self.assertEqual(http(self.admin, "/metrics", method="POST")[0], 405)
        # The S3 port does not serve the admin paths (an S3 refusal instead).
        status, _, body = http(self.s.port, "/metrics")
        self.assertNotEqual(status, 200)
        self.assertNotIn("s3seal_requests_total", body)
        # A malformed head is a 400, and the listener goes on.
        with socket.create_connection(("127.0.0.1", self.admin), timeout=5) as sk:
            sk.sendall(b"GET /metrics HTTP/1.1\nHost: x\n\n")
            self.assertTrue(sk.recv(4096).startswith(b"HTTP/1.1 400 "))
        self.assertEqual(http(self.admin, "/health/live")[0], 200)

    def test_real_prometheus_scrapes(self):
        d = tempfile.mkdtemp(prefix="s3seal-prom-")
        port = free_port()
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: s3seal\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{self.admin}']\n")
        log = open(os.path.join(d, "prometheus.log"), "wb")
        p = subprocess.Popen([PROMETHEUS, f"--config.file={d}/prometheus.yml",
                              f"--storage.tsdb.path={d}/data",
                              f"--web.listen-address=127.0.0.1:{port}"],
                             stdout=log, stderr=subprocess.STDOUT)
        try:
            q = "http://127.0.0.1:%d/api/v1/query?query=s3seal_build_info" % port
            found = None
            deadline = time.time() + 60
            while time.time() < deadline and found is None:
                self.assertIsNone(p.poll(), "prometheus exited")
                try:
                    with urllib.request.urlopen(q, timeout=5) as r:
                        res = json.load(r)["data"]["result"]
                    if res:
                        found = res
                except (OSError, ValueError, KeyError):
                    pass
                time.sleep(0.5)
            self.assertIsNotNone(found, "no s3seal series in Prometheus within 60 s")
            self.assertEqual(found[0]["metric"]["job"], "s3seal")
            self.assertEqual(found[0]["value"][1], "1")
        finally:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.close()
            shutil.rmtree(d, ignore_errors=True)


class AdminReadinessTest(unittest.TestCase):
    def test_backend_unreachable_then_back(self):
        relay = FaultProxy()
        admin = free_port()
        s = S3Seal(backend=relay.endpoint, extra_yaml=f"admin_listen: 127.0.0.1:{admin}\n")
        try:
            s.start()
            wait_ready(admin, 200)
            relay.arm("refuse", once=False)
            relay.cut_all()
            status, _, body = wait_ready(admin, 503)
            doc = json.loads(body)
            self.assertEqual((doc["status"], doc["backend"]), ("backend unreachable", "down"))
            self.assertTrue(doc["backend_error"])
            # A request the backend cannot serve is a backend error.
            before = parse(http(admin, "/metrics")[2])
            with self.assertRaises(Exception):
                s.client().list_buckets()
            after = parse(http(admin, "/metrics")[2])
            # Each 502 answered is one backend error (the SDK may retry).
            errors = (val(after, "s3seal_backend_errors_total", kind="error")
                      - val(before, "s3seal_backend_errors_total", kind="error"))
            self.assertGreaterEqual(errors, 1)
            self.assertEqual(errors, val(after, "s3seal_responses_total", code="502")
                             - val(before, "s3seal_responses_total", code="502"))
            self.assertEqual(val(after, "s3seal_backend_up"), 0)
            self.assertEqual(val(after, "s3seal_ready"), 0)
            self.assertEqual(http(admin, "/health/live")[0], 200)
            relay.clear()
            status, _, body = wait_ready(admin, 200)
            self.assertEqual(json.loads(body)["status"], "ready")
            s.client().list_buckets()
        finally:
            s.stop()
            relay.close()

    def test_draining_after_sigterm(self):
        admin = free_port()
        s = S3Seal(extra_yaml=(f"admin_listen: 127.0.0.1:{admin}\n"
                               "limits:\n  shutdown_timeout_ms: 20000\n"))
        s.start()
        bucket = new_bucket_name("drain")
        s.client().create_bucket(Bucket=bucket)
        wait_ready(admin, 200)
        # A request in flight keeps s3seal draining: a PUT whose body has not
        # all come yet.
        url = f"{s.endpoint}/{bucket}/slow"
        headers = sign_v4("PUT", url, {"content-length": "10"}, "UNSIGNED-PAYLOAD",
                          s.access_key, s.secret_key)
        sk = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        try:
            head = f"PUT /{bucket}/slow HTTP/1.1\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            sk.sendall(head.encode() + b"12345")
            time.sleep(0.5)
            s.proc.send_signal(signal.SIGTERM)
            status, _, body = wait_ready(admin, 503, timeout=10)
            self.assertEqual(json.loads(body)["status"], "draining")
            self.assertEqual(val(parse(http(admin, "/metrics")[2]), "s3seal_draining"), 1)
            self.assertEqual(http(admin, "/health/live")[0], 200)
            sk.sendall(b"67890")
            self.assertTrue(sk.recv(4096).startswith(b"HTTP/1.1 200 "))
        finally:
            sk.close()
            s.proc.wait(timeout=60)
            s.stop()
            empty_and_delete(backend_client(), bucket)


if __name__ == "__main__":
    unittest.main()
