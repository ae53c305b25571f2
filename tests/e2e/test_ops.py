"""s3seal as a service: JSON logs (every line parses, access lines carry
their fields, client bytes stay inside their field), an access log file of
its own reopened on SIGUSR1 after logrotate's rename, SIGHUP reloading the
config without dropping connections (a credential added works at once, a
removed one stops, a broken file keeps the running config and says why, a
request under way finishes under the config it started with, settings that
need a restart are named), sd_notify's READY/RELOADING/STOPPING and
watchdog, and the systemd unit checked by systemd-analyze."""

import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import botocore

from harness import (S3Seal, backend_client, empty_and_delete, new_bucket_name, raw_request,
                     sign_v4, write_secret)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        return ""


def signed(s, method, path, access_key, secret_key, body=b""):
    h = sign_v4(method, s.endpoint + path, {}, hashlib.sha256(body).hexdigest(), access_key,
                secret_key)
    if body:
        h["content-length"] = str(len(body))
    return h


class JsonLogTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal(extra_yaml="log_format: json\n").start()
        cls.bucket = new_bucket_name("opsj")
        cls.s.client().create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def lines(self):
        """Every line of the log, each parsed alone: one object per line."""
        out = []
        for ln in self.s.read_log().splitlines():
            obj = json.loads(ln)
            self.assertIsInstance(obj, dict, ln)
            for k in ("time", "level", "component", "message"):
                self.assertIn(k, obj, ln)
            self.assertRegex(obj["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            out.append(obj)
        return out

    def access(self, pred):
        return wait_for(lambda: [o for o in self.lines()
                                 if o["component"] == "access" and pred(o)],
                        what="the access line")

    def test_every_line_is_json_with_the_access_fields(self):
        body = b"json log body"
        self.s.client().put_object(Bucket=self.bucket, Key="dir/a.txt", Body=body)
        got = self.s.client().get_object(Bucket=self.bucket, Key="dir/a.txt")["Body"].read()
        self.assertEqual(got, body)
        put = self.access(lambda o: o["operation"] == "PutObject" and o["key"] == "dir/a.txt")[0]
        get = self.access(lambda o: o["operation"] == "GetObject" and o["key"] == "dir/a.txt")[0]
        for o in (put, get):
            self.assertEqual(o["level"], "info")
            self.assertRegex(o["request_id"], r"^[0-9A-F]{16}$")
            self.assertRegex(o["remote"], r"^127\.0\.0\.1:\d+$")
            self.assertEqual(o["bucket"], self.bucket)
            self.assertEqual(o["status"], 200)
            self.assertEqual(o["access_key"], self.s.access_key)
            self.assertIsNone(o["error"])
            self.assertIsInstance(o["duration_ms"], (int, float))
            self.assertGreaterEqual(o["duration_ms"], 0)
        self.assertEqual(put["method"], "PUT")
        self.assertEqual(put["bytes_in"], len(body))
        self.assertEqual(get["method"], "GET")
        self.assertEqual(get["bytes_out"], len(body))
        # The diagnostic lines are JSON too.
        starts = [o for o in self.lines() if o["component"] == "server"
                  and "listening on" in o["message"]]
        self.assertEqual(len(starts), 1)

    def test_refusal_names_its_error(self):
        c = self.s.client(secret_key="wrong" + self.s.secret_key)
        with self.assertRaises(botocore.exceptions.ClientError):
            c.head_object(Bucket=self.bucket, Key="refused-key")
        o = self.access(lambda o: o["key"] == "refused-key")[0]
        self.assertEqual(o["status"], 403)
        self.assertEqual(o["error"], "SignatureDoesNotMatch")
        self.assertEqual(o["operation"], "HeadObject")

    def test_client_bytes_stay_in_their_field(self):
        # A key holding a line break, quotes and a forged object, and a byte
        # that is not UTF-8: the line still parses, alone, with the key in
        # its field (the invalid byte as U+FFFD).
        forged = '"}\n{"time":"2030-01-01T00:00:00.000Z","component":"access","status":204}'
        path = f"/{self.bucket}/k{urllib.parse.quote(forged)}%FF"
        status, _, _ = raw_request(self.s.endpoint, "GET", path,
                                   {"Host": f"127.0.0.1:{self.s.port}"})
        self.assertEqual(status, 403)
        o = self.access(lambda o: (o["key"] or "").startswith("k\"}"))[0]
        self.assertEqual(o["key"], "k" + forged + "\ufffd")
        for obj in self.lines():
            self.assertNotEqual(obj["time"], "2030-01-01T00:00:00.000Z")


class AccessLogFileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.logdir = tempfile.mkdtemp(prefix="s3seal-access-")
        cls.path = os.path.join(cls.logdir, "access.log")
        cls.s = S3Seal(extra_yaml=f"access_log: {cls.path}\n").start()
        cls.bucket = new_bucket_name("opsa")
        cls.s.client().create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()
        shutil.rmtree(cls.logdir, ignore_errors=True)

    def put(self, key):
        self.s.client().put_object(Bucket=self.bucket, Key=key, Body=b"x")

    def test_access_lines_go_to_the_file_and_follow_a_rename_on_sigusr1(self):
        self.put("before-rotate")
        wait_for(lambda: "key=before-rotate" in read(self.path), what="the access line")
        line = [ln for ln in read(self.path).splitlines() if "key=before-rotate" in ln][0]
        self.assertRegex(line, r"^\S+Z info access req=[0-9A-F]{16} remote=127\.0\.0\.1:\d+ "
                               r"method=PUT .* status=200 ")
        # logrotate: rename, SIGUSR1, and the old file takes nothing more.
        rotated = self.path + ".1"
        os.rename(self.path, rotated)
        self.put("between")  # still the old file (renamed): no line is lost
        wait_for(lambda: "key=between" in read(rotated), what="the line in the renamed file")
        mark = len(self.s.read_log())
        self.s.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: "access log reopened" in self.s.read_log()[mark:], what="the reopen")
        self.put("after-rotate")
        wait_for(lambda: "key=after-rotate" in read(self.path), what="a line in the new file")
        self.assertNotIn("key=after-rotate", read(rotated))
        self.assertNotIn("key=before-rotate", read(self.path))
        # The diagnostic log (stderr) has no access line.
        self.assertNotIn(" access req=", self.s.read_log())
        self.assertNotIn("before-rotate", self.s.read_log())
        self.assertEqual(self.s.proc.poll(), None)


class ReloadTest(unittest.TestCase):
    """SIGHUP re-reads the config file; every step checks the server kept
    its connections and its process."""

    def setUp(self):
        self.removable = ("AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30),
                          "arn:aws:iam::111122223333:user/removable")
        self.s = S3Seal(extra_credentials=[self.removable], workers=2).start()
        self.pid = self.s.proc.pid
        self.bucket = new_bucket_name("opsr")
        self.s.client().create_bucket(Bucket=self.bucket)
        with open(self.s.config) as f:
            self.original = f.read()

    def tearDown(self):
        empty_and_delete(backend_client(), self.bucket)
        self.s.stop()

    def write_config(self, text):
        tmp = self.s.config + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.s.config)

    def hup(self, expect):
        """SIGHUP; waits for the log line that says how it went ("applied"
        or "refused"), in text or in JSON; returns the log since."""
        mark = len(self.s.read_log())
        self.s.proc.send_signal(signal.SIGHUP)
        said = re.compile(rf'reload {expect}\b|"component":"reload","message":"{expect}\b')
        return wait_for(lambda: (lambda t: said.search(t) and t)(self.s.read_log()[mark:]),
                        what=f"'{expect}' after SIGHUP")

    def with_credential(self, text, access_key, secret_key):
        path = os.path.join(self.s.dir, f"{access_key}.secret")
        write_secret(path, secret_key)
        entry = (f"  - access_key: {access_key}\n    secret_key_file: {path}\n"
                 f"    principal: arn:aws:iam::111122223333:user/added\n")
        return text.replace("\nkeystore:\n", "\n" + entry + "keystore:\n", 1)

    def without_removable(self, text):
        ak = self.removable[0]
        return re.sub(rf"  - access_key: {ak}\n(    .*\n)+", "", text)

    def works(self, access_key, secret_key):
        c = self.s.client(access_key=access_key, secret_key=secret_key)
        try:
            c.list_objects_v2(Bucket=self.bucket)
            return True
        except botocore.exceptions.ClientError as e:
            self.assertEqual(e.response["Error"]["Code"], "InvalidAccessKeyId")
            return False

    def keepalive_get(self, conn):
        path = f"/{self.bucket}?list-type=2"
        conn.request("GET", path, headers=signed(self.s, "GET", path, self.s.access_key,
                                                  self.s.secret_key))
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertNotEqual(r.getheader("connection", "").lower(), "close")
        return conn.sock

    def test_credentials_added_and_removed_without_dropping_a_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=30)
        sock = self.keepalive_get(conn)
        new_ak, new_sk = "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
        self.assertFalse(self.works(new_ak, new_sk))

        # Added: works at once, on every worker (several connections).
        self.write_config(self.with_credential(self.original, new_ak, new_sk))
        log = self.hup("applied")
        self.assertIn("credentials=3", log)
        for _ in range(6):
            self.assertTrue(self.works(new_ak, new_sk))
        self.assertIs(self.keepalive_get(conn), sock, "the keep-alive connection was dropped")

        # A broken file: refused with its line and reason, nothing changes.
        self.write_config(self.original + "log_level: loud\n")
        log = self.hup("refused")
        self.assertRegex(log, r"s3seal\.yaml:\d+: log_level must be")
        self.assertTrue(self.works(new_ak, new_sk))
        self.assertTrue(self.works(*self.removable[:2]))
        self.assertIs(self.keepalive_get(conn), sock)

        # Removed: refused from the next request on. What needs a restart
        # (workers, listen) is named and left as it is.
        other_port = self.s.port + 1 if self.s.port < 65535 else self.s.port - 1
        text = self.without_removable(self.with_credential(self.original, new_ak, new_sk))
        text = text.replace("workers: 2", "workers: 3").replace(
            f"listen: 127.0.0.1:{self.s.port}", f"listen: 127.0.0.1:{other_port}")
        self.write_config(text)
        log = self.hup("applied")
        self.assertRegex(log, r"listen, workers changed in .* need a restart")
        for _ in range(6):
            self.assertFalse(self.works(*self.removable[:2]))
        self.assertTrue(self.works(new_ak, new_sk))
        self.assertIs(self.keepalive_get(conn), sock)
        conn.close()
        self.assertEqual(self.s.proc.pid, self.pid)
        self.assertIsNone(self.s.proc.poll())

    def test_a_request_under_way_keeps_its_config(self):
        # An upload signed by the removable credential starts, the
        # credential is removed by a reload mid-body, and the upload ends as
        # it began: accepted.
        ak, sk = self.removable[:2]
        body = os.urandom(256 * 1024)
        path = f"/{self.bucket}/under-way"
        h = signed(self.s, "PUT", path, ak, sk, body)
        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=30)
        conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(body[:1000])
        time.sleep(0.3)
        self.write_config(self.without_removable(self.original))
        self.hup("applied")
        self.assertFalse(self.works(ak, sk))
        conn.send(body[1000:])
        r = conn.getresponse()
        self.assertEqual(r.status, 200, r.read())
        conn.close()
        got = backend_client().get_object(Bucket=self.bucket, Key="under-way")["Body"].read()
        self.assertEqual(got, body)

    def test_log_format_and_access_log_change_at_run_time(self):
        logdir = tempfile.mkdtemp(prefix="s3seal-access-")
        try:
            path = os.path.join(logdir, "access.log")
            self.write_config(self.original + f"log_format: json\naccess_log: {path}\n")
            self.hup("applied")
            self.s.client().put_object(Bucket=self.bucket, Key="after-reload", Body=b"y")
            wait_for(lambda: "after-reload" in read(path), what="the access line")
            obj = json.loads([ln for ln in read(path).splitlines() if "after-reload" in ln][0])
            self.assertEqual(obj["key"], "after-reload")
            self.assertEqual(obj["operation"], "PutObject")
        finally:
            shutil.rmtree(logdir, ignore_errors=True)


class NotifyTest(unittest.TestCase):
    """Type=notify: what s3seal tells systemd, read from a NOTIFY_SOCKET of
    the test's own."""

    def test_ready_reloading_stopping_and_watchdog(self):
        sockdir = tempfile.mkdtemp(prefix="s3seal-notify-")
        path = os.path.join(sockdir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(0.2)
        got = []

        def drain():
            while True:
                try:
                    got.append(sock.recv(4096).decode())
                except socket.timeout:
                    return "\n".join(got)

        saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        os.environ["NOTIFY_SOCKET"] = path
        os.environ["WATCHDOG_USEC"] = "400000"
        s = S3Seal()
        try:
            s.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        try:
            wait_for(lambda: "READY=1" in drain(), what="READY=1")
            wait_for(lambda: drain().count("WATCHDOG=1") >= 2, what="watchdog keep-alives")
            s.proc.send_signal(signal.SIGHUP)
            # RELOADING=1 (with the time, as Type=notify-reload wants), then
            # READY=1 again once the config is applied.
            msgs = wait_for(lambda: (lambda t: t.rfind("READY=1") > t.find("RELOADING=1") >= 0
                                     and t)(drain()), what="RELOADING=1 then READY=1")
            self.assertRegex(msgs, r"RELOADING=1\nSTATUS=[^\n]*\nMONOTONIC_USEC=\d+")
        finally:
            s.stop()
            self.assertIn("STOPPING=1", drain())
            sock.close()
            shutil.rmtree(sockdir, ignore_errors=True)


class SystemdUnitTest(unittest.TestCase):
    def test_unit_verifies(self):
        tool = shutil.which("systemd-analyze")
        if not tool:
            self.skipTest("systemd-analyze is not installed")
        unit = os.path.join(ROOT, "deploy", "s3seal.service")
        with open(unit) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^Type=notify$")
        self.assertRegex(text, r"(?m)^ExecReload=/bin/kill -HUP \$MAINPID$")
        # verify checks that ExecStart's binary exists: point it at the build.
        d = tempfile.mkdtemp(prefix="s3seal-unit-")
        try:
            path = os.path.join(d, "s3seal.service")
            with open(path, "w") as f:
                f.write(text.replace("/usr/local/bin/s3seal", os.environ["S3SEAL_BIN"]))
            r = subprocess.run([tool, "verify", path], capture_output=True, text=True)
            out = r.stdout + r.stderr
            # Only what concerns this unit (the host's other units may warn).
            mine = [ln for ln in out.splitlines() if "s3seal.service" in ln]
            self.assertEqual(r.returncode, 0, out)
            self.assertEqual(mine, [], out)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
