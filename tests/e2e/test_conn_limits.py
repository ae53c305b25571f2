"""Connection exhaustion: a body trickled below limits.min_body_rate is cut
off with 400 RequestTimeout within the window; a client past
limits.max_connections_per_client, or any past limits.max_connections, gets
503 SlowDown (an S3 XML error) instead of a silent close; once idle
attackers are timed out, a legitimate request is served. Loopback clients
are not special."""

import hashlib
import socket
import time
import unittest

from harness import (S3Seal, backend_client, backend_has, empty_and_delete, error_code,
                     new_bucket_name, sign_v4)


def read_response(sock):
    """One response (head and Content-Length body) off a socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, head, body


class ConnLimitsTest(unittest.TestCase):
    WINDOW_MS = 2000

    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal(extra_yaml=(
            "limits:\n"
            "  max_connections_per_client: 4\n"
            "  min_body_rate: 1000\n"
            f"  body_rate_window_ms: {cls.WINDOW_MS}\n"
            "  idle_timeout_ms: 1500\n"
            "  header_timeout_ms: 1500\n")).start()
        cls.bucket = new_bucket_name("conn")
        cls.s.client().create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        empty_and_delete(backend_client(), cls.bucket)
        cls.s.stop()

    def put_head(self, key, length, payload_hash="UNSIGNED-PAYLOAD"):
        url = f"{self.s.endpoint}/{self.bucket}/{key}"
        h = sign_v4("PUT", url, {}, payload_hash, self.s.access_key, self.s.secret_key)
        return (f"PUT /{self.bucket}/{key} HTTP/1.1\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in h.items())
                + f"Content-Length: {length}\r\n\r\n").encode()

    def put(self, key, body):
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=20) as sock:
            sock.sendall(self.put_head(key, len(body), hashlib.sha256(body).hexdigest()) + body)
            return read_response(sock)

    def wait_idle_closed(self):
        # The attackers of a test are closed by the idle and header timeouts.
        time.sleep(2.5)

    def test_trickled_body_is_cut_off(self):
        self.wait_idle_closed()
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=20) as sock:
            sock.sendall(self.put_head("trickle", 1000))
            start = time.monotonic()
            answered = None
            # 2 bytes a second, well under 1000 bytes a second, but never idle.
            for _ in range(40):
                try:
                    sock.sendall(b"x")
                except OSError:
                    break
                sock.settimeout(0.5)
                try:
                    answered = sock.recv(65536, socket.MSG_PEEK)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if answered is not None:
                    break
            elapsed = time.monotonic() - start
            sock.settimeout(10)
            status, head, body = read_response(sock)
        self.assertEqual(status, 400, head)
        self.assertEqual(error_code(body), "RequestTimeout")
        # Cut off at the end of the first window (plus a timer's slack).
        self.assertLess(elapsed, 2 * self.WINDOW_MS / 1000 + 1.0)
        self.assertFalse(backend_has(self.bucket, "trickle"))

    def test_fast_body_is_not_cut_off(self):
        # A body that arrives at a good rate over several windows is stored.
        self.wait_idle_closed()
        body = b"y" * 60000
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=20) as sock:
            sock.sendall(self.put_head("steady", len(body), hashlib.sha256(body).hexdigest()))
            for i in range(0, len(body), 6000):
                sock.sendall(body[i:i + 6000])
                time.sleep(0.5)  # 12000 bytes a second, over 2.5 windows
            status, head, _ = read_response(sock)
        self.assertEqual(status, 200, head)
        self.assertTrue(backend_has(self.bucket, "steady"))

    def test_per_client_cap(self):
        self.wait_idle_closed()
        held = [socket.create_connection(("127.0.0.1", self.s.port), timeout=20)
                for _ in range(4)]
        try:
            time.sleep(0.2)
            with socket.create_connection(("127.0.0.1", self.s.port), timeout=20) as sock:
                try:
                    sock.sendall(self.put_head("over", 5) + b"hello")
                except OSError:
                    pass  # the answer may already be there
                status, head, body = read_response(sock)
            self.assertEqual(status, 503, head)
            self.assertEqual(error_code(body), "SlowDown")
            self.assertIn(b"Connection: close", head)
            self.assertFalse(backend_has(self.bucket, "over"))
        finally:
            for s in held:
                s.close()
        # The held connections are gone: a legitimate request is served.
        time.sleep(0.3)
        status, head, _ = self.put("after-close", b"fine")
        self.assertEqual(status, 200, head)

    def test_served_after_idle_attackers(self):
        self.wait_idle_closed()
        # Four connections that send a few header bytes and then nothing.
        held = [socket.create_connection(("127.0.0.1", self.s.port), timeout=20)
                for _ in range(4)]
        try:
            for s in held:
                s.sendall(b"PUT /x HTTP/1.1\r\nHost: x\r\n")
            status, _, body = self.put("blocked", b"data")
            self.assertEqual((status, error_code(body)), (503, "SlowDown"))
            # The header timeout (1.5 s) ends them, each with an answer.
            for s in held:
                s.settimeout(5)
                st, _, b = read_response(s)
                self.assertEqual((st, error_code(b)), (400, "RequestTimeout"))
            status, head, _ = self.put("served", b"data")
            self.assertEqual(status, 200, head)
            self.assertTrue(backend_has(self.bucket, "served"))
        finally:
            for s in held:
                s.close()


class ServerCapTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal(extra_yaml=(
            "limits:\n"
            "  max_connections: 3\n"
            "  max_connections_per_client: 100\n")).start()

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()

    def test_server_cap_answers_slow_down(self):
        held = [socket.create_connection(("127.0.0.1", self.s.port), timeout=20)
                for _ in range(3)]
        try:
            time.sleep(0.2)
            with socket.create_connection(("127.0.0.1", self.s.port), timeout=20) as sock:
                try:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                except OSError:
                    pass
                status, head, body = read_response(sock)
            self.assertEqual(status, 503, head)
            self.assertEqual(error_code(body), "SlowDown")
        finally:
            for s in held:
                s.close()


if __name__ == "__main__":
    unittest.main()
