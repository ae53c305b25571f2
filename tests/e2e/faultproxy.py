"""A fault-injecting TCP relay for end-to-end tests.

s3seal's backend endpoint points at the relay, which forwards every
connection to the real backend (S3_ENDPOINT) until told otherwise. The
backend itself is never touched: its death or stall is what s3seal sees
through the relay.

Faults (one at a time, armed with arm(), lifted with clear()):
- cut: once a connection has carried `after` bytes in `direction` ("up":
  s3seal to backend, "down": backend to s3seal) since the fault was armed,
  both of its sides are closed, with a reset (how="rst") or an orderly
  close (how="fin");
- stall: after `after` bytes in `direction`, that direction stops being
  read (the backend "hangs"; TCP backpressure reaches s3seal); clear()
  resets the stalled connections;
- refuse: new connections are reset as soon as they are accepted.

One thread runs every connection with a selector; commands reach it under
a lock and a wake-up socket.
"""

import selectors
import socket
import struct
import threading
import urllib.parse

UP, DOWN = "up", "down"


def _rst(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Pair:
    def __init__(self, client, server):
        self.sock = {UP: client, DOWN: server}      # the side each direction reads
        self.peer = {UP: server, DOWN: client}      # the side it writes
        self.pending = {UP: b"", DOWN: b""}
        self.count = {UP: 0, DOWN: 0}               # bytes forwarded since armed
        self.eof = {UP: False, DOWN: False}
        self.stalled = False
        self.cut_due = False
        self.how = "rst"
        self.closed = False


class FaultProxy:
    def __init__(self, target=None):
        import harness
        u = urllib.parse.urlsplit(target or harness.env("S3_ENDPOINT"))
        self.target = (u.hostname, u.port or 80)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.sel.register(self.lsock, selectors.EVENT_READ, "accept")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.lock = threading.Lock()
        self.pairs = set()
        self.fault = None
        self.cuts = 0           # connections the armed fault has cut or stalled
        self.accepted = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------ commands

    def arm(self, kind, direction=UP, after=0, how="rst", once=True):
        """kind: "cut", "stall" or "refuse"."""
        assert kind in ("cut", "stall", "refuse") and direction in (UP, DOWN)
        self._call(self._arm, dict(kind=kind, direction=direction, after=after, how=how,
                                   once=once))

    def clear(self):
        """Lifts the fault; stalled connections are reset."""
        self._call(self._clear)

    def cut_all(self, how="rst"):
        """Closes every open connection now."""
        self._call(self._cut_all, how)

    def triggered(self):
        with self.lock:
            return self.cuts

    def open_connections(self):
        with self.lock:
            return len(self.pairs)

    def close(self):
        self.stopping = True
        self.wake_w.send(b"x")
        self.thread.join(10)
        for p in list(self.pairs):
            self._close_pair(p, "fin")
        self.sel.close()
        self.lsock.close()
        self.wake_r.close()
        self.wake_w.close()

    def _call(self, fn, *args):
        done = threading.Event()
        with self.lock:
            self._queue = getattr(self, "_queue", [])
            self._queue.append((fn, args, done))
        self.wake_w.send(b"x")
        if not done.wait(10):
            raise RuntimeError("fault relay does not answer")

    # ------------------------------------------------------ loop (its thread)

    def _arm(self, fault):
        self.fault = fault
        self.cuts = 0
        for p in self.pairs:
            p.count = {UP: 0, DOWN: 0}

    def _clear(self):
        self.fault = None
        for p in list(self.pairs):
            if p.stalled:
                self._close_pair(p, "rst")

    def _cut_all(self, how):
        for p in list(self.pairs):
            self._close_pair(p, how)

    def _close_pair(self, p, how):
        if p.closed:
            return
        p.closed = True
        self.pairs.discard(p)
        for s in (p.sock[UP], p.sock[DOWN]):
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            if how == "rst":
                _rst(s)
            else:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _interest(self, p):
        """Registers each socket for what it can do now."""
        if p.closed:
            return
        for d in (UP, DOWN):
            s = p.sock[d]
            ev = 0
            # Read a direction when its peer has nothing waiting and it is
            # not stalled; write a socket with bytes waiting for it.
            if not p.eof[d] and not p.pending[d] and not p.stalled and not p.cut_due:
                ev |= selectors.EVENT_READ
            other = UP if d == DOWN else DOWN
            if p.pending[other]:
                ev |= selectors.EVENT_WRITE
            try:
                key = self.sel.get_key(s)
                if ev == 0:
                    self.sel.unregister(s)
                elif key.events != ev:
                    self.sel.modify(s, ev, p)
            except KeyError:
                if ev:
                    self.sel.register(s, ev, p)

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            self.accepted += 1
            f = self.fault
            if f and f["kind"] == "refuse":
                self.cuts += 1
                _rst(c)
                continue
            try:
                s = socket.create_connection(self.target, timeout=5)
            except OSError:
                _rst(c)
                continue
            for x in (c, s):
                x.setblocking(False)
                x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            p = _Pair(c, s)
            self.pairs.add(p)
            self._interest(p)

    def _limit(self, p, d):
        """How many bytes direction d may still read before the fault."""
        f = self.fault
        if not f or f["kind"] not in ("cut", "stall") or f["direction"] != d:
            return None
        return max(0, f["after"] - p.count[d])

    def _trip(self, p):
        f = self.fault
        self.cuts += 1
        p.how = f["how"]
        if f["kind"] == "cut":
            p.cut_due = True
        else:
            p.stalled = True
        if f["once"] and f["kind"] == "cut":
            self.fault = None

    def _on_read(self, p, d):
        limit = self._limit(p, d)
        want = 262144 if limit is None else min(262144, limit)
        if want == 0:
            self._trip(p)
            return
        try:
            data = p.sock[d].recv(want)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close_pair(p, "rst")
            return
        if not data:
            p.eof[d] = True
            if not p.pending[d]:
                try:
                    p.peer[d].shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            if p.eof[UP] and p.eof[DOWN]:
                self._close_pair(p, "fin")
            return
        p.count[d] += len(data)
        p.pending[d] += data
        if limit is not None and len(data) >= limit:
            self._trip(p)

    def _on_write(self, p, d):
        """Writes what waits in direction d to its peer."""
        try:
            n = p.peer[d].send(p.pending[d])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close_pair(p, "rst")
            return
        p.pending[d] = p.pending[d][n:]
        if not p.pending[d] and p.eof[d]:
            try:
                p.peer[d].shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _run(self):
        while not self.stopping:
            for key, mask in self.sel.select(timeout=0.5):
                if key.data == "accept":
                    self._accept()
                    continue
                if key.data == "wake":
                    try:
                        while self.wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                    with self.lock:
                        queue, self._queue = getattr(self, "_queue", []), []
                    for fn, args, done in queue:
                        fn(*args)
                        done.set()
                    continue
                p = key.data
                if p.closed:
                    continue
                d = UP if key.fileobj is p.sock[UP] else DOWN
                other = DOWN if d == UP else UP
                if mask & selectors.EVENT_WRITE and not p.closed:
                    self._on_write(p, other)   # this socket is the peer of `other`
                if mask & selectors.EVENT_READ and not p.closed:
                    self._on_read(p, d)
            for p in list(self.pairs):
                if p.cut_due and not p.pending[UP] and not p.pending[DOWN]:
                    self._close_pair(p, p.how)
                else:
                    self._interest(p)
