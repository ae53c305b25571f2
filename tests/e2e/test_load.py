"""Load and soak: 1,000 concurrent keep-alive connections against one s3seal
in front of the real backend, for S3SEAL_SOAK_SECONDS (default 120), each
looping over PUTs and GETs of small (1-64 KiB) and large (2-4 MiB) objects,
plain and SSE-S3. Asserted: every answer is 200 but the backend's own 503
SlowDown (retried), every GET returns the bytes that were PUT, every
encrypted object read straight from the backend holds ciphertext, s3seal's
RSS is flat after warm-up (the last third's peak within a bound of the middle
third's), and its descriptors are back to the baseline afterwards (client
sockets all closed, pooled backend connections within the pool's size)."""

import asyncio
import hashlib
import os
import random
import resource
import threading
import time
import unittest
import urllib.parse

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name, sign_v4

CONNECTIONS = int(os.environ.get("S3SEAL_LOAD_CONNECTIONS", "1000"))
SECONDS = float(os.environ.get("S3SEAL_SOAK_SECONDS", "120"))
MiB = 1024 * 1024
BACKEND_POOL = 64  # backend.max_connections: pooled backend connections per worker


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def socket_inodes(port, backend_port):
    """Inodes of TCP sockets on s3seal's port, and of those to the backend."""
    client, backend = set(), set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    p = line.split()
                    local = int(p[1].rsplit(":", 1)[1], 16)
                    remote = int(p[2].rsplit(":", 1)[1], 16)
                    if local == port:
                        client.add(p[9])
                    elif remote == backend_port:
                        backend.add(p[9])
        except FileNotFoundError:
            pass
    return client, backend


def fd_census(pid, port, backend_port):
    """(client sockets, backend sockets, other descriptors) of s3seal."""
    client, backend = socket_inodes(port, backend_port)
    n_client = n_backend = n_other = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        inode = link[8:-1] if link.startswith("socket:[") else None
        if inode in client:
            n_client += 1
        elif inode in backend:
            n_backend += 1
        else:
            n_other += 1
    return n_client, n_backend, n_other


class Conn:
    """One keep-alive HTTP/1.1 connection to s3seal."""

    def __init__(self, s):
        self.s = s
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.s.port)

    def close(self):
        if self.writer:
            self.writer.close()
            self.writer = None

    async def request(self, method, path, headers, body=b""):
        url = f"{self.s.endpoint}{path}"
        h = sign_v4(method, url, headers, "UNSIGNED-PAYLOAD", self.s.access_key,
                    self.s.secret_key)
        if method == "PUT":
            h["content-length"] = str(len(body))
        if self.writer is None:
            await self.open()
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
        self.writer.write(head.encode() + b"\r\n")
        if body:
            self.writer.write(body)
        await self.writer.drain()
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            k, _, v = line.decode("latin-1").partition(":")
            k = k.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "connection" and v.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length) if method != "HEAD" else b""
        if close:
            self.close()
        return status, data


class LoadTest(unittest.TestCase):
    def test_load_and_soak(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = CONNECTIONS * 2 + 512
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
        if os.environ.get("S3SEAL_SANITIZED") == "1":
            # ASan keeps freed memory in quarantine (256 MiB by default), which
            # RSS would show filling up: a small one keeps RSS about s3seal.
            os.environ["ASAN_OPTIONS"] = ":".join(
                filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=16"]))
        s = S3Seal(extra_yaml=(
            "limits:\n"
            f"  max_connections: {CONNECTIONS + 1000}\n"
            f"  max_connections_per_client: {CONNECTIONS + 1000}\n"
            "  idle_timeout_ms: 120000\n")).start()
        bucket = new_bucket_name("load")
        backend_port = urllib.parse.urlsplit(s.backend).port or 80
        try:
            s.client().create_bucket(Bucket=bucket)
            s.client().put_object(Bucket=bucket, Key="warm", Body=b"warm",
                                  ServerSideEncryption="AES256")
            time.sleep(1)
            base = fd_census(s.proc.pid, s.port, backend_port)
            results = self.run_load(s, bucket)
            self.check(s, bucket, backend_port, base, results)
        finally:
            b = backend_client()
            # Tens of thousands of objects: deleted a thousand at a time.
            for page in b.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if objs:
                    b.delete_objects(Bucket=bucket, Delete={"Objects": objs, "Quiet": True})
            empty_and_delete(b, bucket)
            s.stop(self)

    def run_load(self, s, bucket):
        rnd = random.Random(17)
        large = [rnd.randbytes(rnd.randint(2 * MiB, 4 * MiB)) for _ in range(4)]
        small = [rnd.randbytes(rnd.randint(1024, 64 * 1024)) for _ in range(32)]
        statuses = {}
        failures = []
        stored = {}  # key -> (digest, encrypted, plaintext head)
        ops = {"put": 0, "get": 0, "retried": 0}
        rss = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    rss.append((time.monotonic(), rss_kib(s.proc.pid)))
                except OSError:
                    return
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        async def call(conn, method, path, headers, body=b""):
            for attempt in range(5):
                try:
                    status, data = await conn.request(method, path, headers, body)
                except (ConnectionError, asyncio.IncompleteReadError) as e:
                    failures.append(f"{method} {path}: {e!r}")
                    conn.close()
                    return None, b""
                statuses[status] = statuses.get(status, 0) + 1
                if status == 503 and b"<Code>SlowDown</Code>" in data:
                    ops["retried"] += 1  # the backend's own throttling
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                return status, data
            return status, data

        async def client(i, deadline):
            r = random.Random(i)
            conn = Conn(s)
            n = 0
            # Spread the connections' starts over a few seconds.
            await asyncio.sleep(r.random() * 5)
            try:
                await conn.open()
                while time.monotonic() < deadline:
                    body = r.choice(large) if r.random() < 0.02 else r.choice(small)
                    enc = r.random() < 0.5
                    key = f"c{i}/o{n}"
                    n += 1
                    path = f"/{bucket}/{key}"
                    h = {"x-amz-server-side-encryption": "AES256"} if enc else {}
                    st, data = await call(conn, "PUT", path, h, body)
                    ops["put"] += 1
                    if st != 200:
                        failures.append(f"PUT {key}: {st} {data[:200]!r}")
                        continue
                    stored[key] = (hashlib.sha256(body).digest(), enc, body[:64])
                    st, data = await call(conn, "GET", path, {})
                    ops["get"] += 1
                    if st != 200:
                        failures.append(f"GET {key}: {st} {data[:200]!r}")
                    elif hashlib.sha256(data).digest() != stored[key][0]:
                        failures.append(f"GET {key}: wrong bytes ({len(data)} of {len(body)})")
                    await asyncio.sleep(r.random() * 0.5)
            finally:
                conn.close()

        async def main():
            deadline = time.monotonic() + SECONDS
            await asyncio.gather(*(client(i, deadline) for i in range(CONNECTIONS)))

        started = time.monotonic()
        try:
            asyncio.run(main())
        finally:
            stop.set()
            sampler.join()
        print(f"load: {CONNECTIONS} connections, {time.monotonic() - started:.0f} s, "
              f"{ops['put']} PUTs, {ops['get']} GETs, {ops['retried']} retried; "
              f"statuses {statuses}")
        return {"statuses": statuses, "failures": failures, "stored": stored, "rss": rss,
                "started": started}

    def check(self, s, bucket, backend_port, base, res):
        self.assertEqual(res["failures"], [], "\n".join(res["failures"][:20]))
        unexplained = {k: v for k, v in res["statuses"].items() if k not in (200, 503)}
        self.assertEqual(unexplained, {})
        self.assertGreater(len(res["stored"]), CONNECTIONS)

        # RSS after warm-up: the last third's peak within a bound of the
        # middle third's.
        rss = [v for _, v in res["rss"]]
        self.assertGreater(len(rss), 9, "too few RSS samples")
        third = len(rss) // 3
        middle, last = max(rss[third:2 * third]), max(rss[2 * third:])
        print(f"RSS: middle third peak {middle / 1024:.1f} MiB, "
              f"last third peak {last / 1024:.1f} MiB")
        self.assertLessEqual(last, middle * 1.15 + 16 * 1024,
                             f"RSS grew: {middle / 1024:.1f} -> {last / 1024:.1f} MiB")

        # Descriptors: every client socket closed, the rest as before the
        # load, backend connections within the pool.
        deadline = time.monotonic() + 30
        while True:
            now = fd_census(s.proc.pid, s.port, backend_port)
            if (now[0] == base[0] and now[2] == base[2]) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(now[0], base[0], f"client sockets left open: {now} vs {base}")
        self.assertEqual(now[2], base[2], f"descriptors: {now} vs {base} (client, backend, other)")
        self.assertLessEqual(now[1], BACKEND_POOL)

        # Encrypted objects hold ciphertext in the backend (a sample).
        b = backend_client()
        enc = [k for k, v in res["stored"].items() if v[1]]
        self.assertTrue(enc)
        for key in random.Random(3).sample(enc, min(200, len(enc))):
            digest, _, head = res["stored"][key]
            raw = b.get_object(Bucket=bucket, Key=key)["Body"].read()
            self.assertNotEqual(hashlib.sha256(raw).digest(), digest, key)
            self.assertNotIn(head[:32], raw, key)


if __name__ == "__main__":
    unittest.main()
