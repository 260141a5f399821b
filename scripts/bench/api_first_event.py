#!/usr/bin/env python3
"""Time from sending a message to receiving the first SSE event of its turn.

Two ways a client can do it: POST /api/v1/messages/stream (one request), and
POST /api/v1/messages then GET /api/v1/messages/{id}/events (two requests). One client at a time,
so the figure is latency, not throughput. Standard library only.
"""
import argparse, json, socket, statistics, time

def request(port, method, path, key, body=None):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    s.sendall(head.encode() + b"\r\n" + data)
    return s

def read_until(s, marker):
    buf = b""
    while marker not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before " + repr(marker) + ": " + repr(buf[:300]))
        buf += chunk
    return buf

def one_request(port, key, i):
    t0 = time.perf_counter()
    s = request(port, "POST", "/api/v1/messages/stream", key, {"content": f"first event {i}"})
    read_until(s, b"\nid: ")
    t1 = time.perf_counter()
    s.close()
    return (t1 - t0) * 1000

def two_requests(port, key, i):
    t0 = time.perf_counter()
    s = request(port, "POST", "/api/v1/messages", key, {"content": f"first event {i}"})
    buf = read_until(s, b"}")
    s.close()
    body = buf.split(b"\r\n\r\n", 1)[1]
    message_id = json.loads(body[body.index(b"{"):])["messageId"]
    s = request(port, "GET", f"/api/v1/messages/{message_id}/events", key)
    read_until(s, b"\nid: ")
    t1 = time.perf_counter()
    s.close()
    return (t1 - t0) * 1000

def report(name, samples):
    samples.sort()
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(f"{name}: n={len(samples)} p50 {p(0.50):.2f} ms, p90 {p(0.90):.2f} ms, p99 {p(0.99):.2f} ms, "
          f"mean {statistics.mean(samples):.2f} ms")

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    for i in range(20):  # warm-up
        one_request(args.port, args.key, -i)
    report("POST /api/v1/messages/stream → first event", [one_request(args.port, args.key, i) for i in range(args.samples)])
    report("POST /api/v1/messages + GET events → first event", [two_requests(args.port, args.key, i) for i in range(args.samples)])

if __name__ == "__main__":
    main()
