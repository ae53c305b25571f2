#!/usr/bin/env python3
"""idle_conns.py - holds N client connections open to s3seal and reports
s3seal's resident memory while they are open.

    idle_conns.py connect|get --port P --conns N --pid PID
                  [--bucket B --key K --access-key AK --region R]   (get only)

connect: N TCP connections that send nothing (s3seal waits for a request
header on each, up to limits.header_timeout_ms).
get: N connections that each send one SigV4-signed GET of K (4 KiB or so)
and read the whole response, then stay open on keep-alive (up to
limits.idle_timeout_ms). The secret key comes from S3LOAD_SECRET_KEY. All N
requests are the same bytes: one signature serves them all.

When every connection is in that state it waits 1 s, checks that each one is
still open (a read would block, no EOF), reads VmRSS of PID from
/proc/PID/status, closes them all and prints one JSON line.
"""
import argparse
import datetime
import hashlib
import hmac
import json
import os
import resource
import selectors
import socket
import sys
import time

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def signed_get(host, bucket, key, ak, sk, region):
    """A GET request signed as s3load signs it (SigV4, header auth)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    path = f"/{bucket}/{key}"
    signed = "host;x-amz-content-sha256;x-amz-date"
    canonical = "\n".join(["GET", path, "", f"host:{host}",
                           f"x-amz-content-sha256:{EMPTY_SHA256}", f"x-amz-date:{amz_date}",
                           "", signed, EMPTY_SHA256])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + sk).encode()
    for part in (day, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
            f"x-amz-content-sha256: {EMPTY_SHA256}\r\nx-amz-date: {amz_date}\r\n"
            f"Authorization: AWS4-HMAC-SHA256 Credential={ak}/{scope}, "
            f"SignedHeaders={signed}, Signature={sig}\r\n\r\n").encode()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Conn:
    __slots__ = ("sock", "state", "buf", "need", "status")

    def __init__(self, sock):
        self.sock, self.state, self.buf, self.need, self.status = sock, "connecting", b"", -1, 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("connect", "get"))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--bucket")
    ap.add_argument("--key")
    ap.add_argument("--access-key")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.conns + 64 > hard:
        sys.exit(f"idle_conns: the open-files limit ({hard}) is below {a.conns} connections")
    req = b""
    if a.mode == "get":
        req = signed_get(f"127.0.0.1:{a.port}", a.bucket, a.key, a.access_key,
                         os.environ["S3LOAD_SECRET_KEY"], a.region)

    sel = selectors.DefaultSelector()
    conns, opened, ready, failed = [], 0, 0, 0
    rss_before = rss_kib(a.pid)
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    while ready + failed < a.conns and time.monotonic() < deadline:
        # Open in batches of 256, so s3seal's accept backlog is not flooded.
        while opened < a.conns and opened - ready - failed < 256:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", a.port))
            c = Conn(s)
            conns.append(c)
            sel.register(s, selectors.EVENT_WRITE, c)
            opened += 1
        for key, _ in sel.select(timeout=0.5):
            c = key.data
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    c.state, failed = "failed", failed + 1
                    sel.unregister(c.sock)
                    continue
                if a.mode == "connect":
                    c.state, ready = "ready", ready + 1
                    sel.unregister(c.sock)
                    continue
                c.sock.sendall(req)  # a few hundred bytes into an empty socket buffer
                c.state = "reading"
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                c.state, failed = "failed", failed + 1
                sel.unregister(c.sock)
                continue
            c.buf += data
            if c.need < 0 and b"\r\n\r\n" in c.buf:
                head, _, body = c.buf.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                c.status = int(lines[0].split()[1])
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                c.need, c.buf = length, body
            if c.need >= 0 and len(c.buf) >= c.need:
                sel.unregister(c.sock)
                if c.status == 200 and len(c.buf) == c.need:
                    c.state, ready = "ready", ready + 1
                else:
                    c.state, failed = "failed", failed + 1
                c.buf = b""
    setup_s = time.monotonic() - t0
    time.sleep(1.0)
    still_open = 0
    for c in conns:
        if c.state != "ready":
            continue
        try:
            if c.sock.recv(1) == b"":
                continue
            still_open += 1  # unexpected bytes, but the connection is open
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
    rss_after = rss_kib(a.pid)
    for c in conns:
        c.sock.close()
    print(json.dumps({"mode": a.mode, "conns": a.conns, "ready": ready, "failed": failed,
                      "open_at_sample": still_open, "setup_s": round(setup_s, 2),
                      "rss_before_kib": rss_before, "rss_kib": rss_after,
                      "per_conn_kib": ((rss_after - rss_before) / still_open
                                       if still_open else None)}))
    return 0 if still_open == a.conns else 1


if __name__ == "__main__":
    sys.exit(main())
