#!/usr/bin/env python3
"""Quick comparison behind issue 22's design choice (docs/benchmarks/sse.md): how fast can ONE
Redis connection follow N turn streams, 100 of them receiving tokens (30/s each)?

  A  one XREAD BLOCK over all N keys, re-issued after every reply;
  B  keyspace notifications (SUBSCRIBE per key) + a non-blocking XREAD of the notified keys.

Raw RESP over sockets, no client library. Usage: sse_reader_choice.py PORT MODE N SECONDS
Prints the event->reader latency p50/p99 and Redis's usec per XREAD call."""
import socket, sys, threading, time

def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port)); self.buf = b""
    def send(self, data): self.s.sendall(data)
    def _line(self):
        while b"\r\n" not in self.buf: self.buf += self.s.recv(1 << 20)
        line, self.buf = self.buf.split(b"\r\n", 1); return line
    def read(self):
        line = self._line(); t = line[:1]
        if t in (b"+", b"-", b":"): return line[1:]
        if t == b"$":
            n = int(line[1:])
            if n < 0: return None
            while len(self.buf) < n + 2: self.buf += self.s.recv(1 << 20)
            v, self.buf = self.buf[:n], self.buf[n + 2:]; return v
        if t == b"*":
            n = int(line[1:]); return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError(line)
    def cmd(self, *a): self.send(enc(*a)); return self.read()

port, mode, n, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
keys = [b"bench:turn:%d" % i for i in range(n)]
admin = Conn(port); admin.cmd("FLUSHALL"); admin.cmd("CONFIG", "RESETSTAT")
admin.cmd("CONFIG", "SET", "notify-keyspace-events", "Kt" if mode == "B" else "")
lat = []; stop = False

def writer():
    w = Conn(port); active = keys[:100]; interval = 1 / 30; nxt = time.time()
    while not stop:
        nxt += interval
        pipe = b"".join(enc("XADD", k, "*", "t", time.time_ns()) for k in active)
        w.send(pipe)
        for _ in active: w.read()
        d = nxt - time.time()
        if d > 0: time.sleep(d)

def record(reply):
    now = time.time_ns(); got = {}
    for stream in reply or []:
        for entry in stream[1]:
            lat.append((now - int(entry[1][1])) / 1e6); got[stream[0]] = entry[0]
    return got

ids = {k: b"0-0" for k in keys}
r = Conn(port)
if mode == "A":
    t = threading.Thread(target=writer); t.start(); end = time.time() + seconds
    while time.time() < end:
        reply = r.cmd("XREAD", "COUNT", 256, "BLOCK", 1000, "STREAMS", *keys, *[ids[k] for k in keys])
        ids.update(record(reply))
else:
    sub = Conn(port)
    sub.send(b"".join(enc("SUBSCRIBE", b"__keyspace@0__:" + k) for k in keys))
    for _ in keys: sub.read()
    t = threading.Thread(target=writer); t.start(); end = time.time() + seconds
    sub.s.settimeout(1)
    while time.time() < end:
        ready = set()
        try:
            m = sub.read(); ready.add(m[1][len(b"__keyspace@0__:"):])
            while b"\r\n" in sub.buf:  # drain what is already buffered: one XREAD for all of it
                m = sub.read(); ready.add(m[1][len(b"__keyspace@0__:"):])
        except socket.timeout:
            continue
        ks = sorted(ready)
        ids.update(record(r.cmd("XREAD", "COUNT", 256, "STREAMS", *ks, *[ids[k] for k in ks])))
stop = True; t.join()
lat.sort()
stats = admin.cmd("INFO", "commandstats").decode()
xread = [l for l in stats.split("\r\n") if l.startswith("cmdstat_xread:")]
print(f"mode={mode} streams={n} events={len(lat)} p50={lat[len(lat)//2]:.2f}ms p99={lat[int(len(lat)*.99)]:.2f}ms {xread[0] if xread else ''}")
admin.cmd("CONFIG", "SET", "notify-keyspace-events", "")
