"""A small OTLP/HTTP trace receiver for the tracing suite and the tracing benchmark: accepts
`POST /v1/traces` with a protobuf `ExportTraceServiceRequest` (gzip or not), decodes it with
`opentelemetry-proto` and keeps every span as a plain dict (or, with `keep=False`, only counts
them: a collector that drops what it gets)."""

import contextlib
import gzip
import http.server
import threading

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def _value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _attributes(key_values):
    return {kv.key: _value(kv.value) for kv in key_values}


class Received:
    """What the receiver got: spans (dicts) and counts, safe across the server's threads."""

    def __init__(self, keep=True):
        self.keep = keep
        self.lock = threading.Lock()
        self.spans = []
        self.span_count = 0
        self.requests = 0
        self.bad_requests = 0

    def add(self, request):
        spans = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append({
                        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(), "name": span.name,
                        "kind": Span.SpanKind.Name(span.kind), "attributes": _attributes(span.attributes),
                        "status": span.status.code, "resource": resource,
                        "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                    })
        with self.lock:
            self.requests += 1
            self.span_count += len(spans)
            if self.keep:
                self.spans.extend(spans)

    def snapshot(self):
        with self.lock:
            return list(self.spans)


def _handler(received):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            status = 200
            if self.path != "/v1/traces" or not self.headers.get("Content-Type", "").startswith("application/x-protobuf"):
                status = 404 if self.path != "/v1/traces" else 415
            else:
                request = ExportTraceServiceRequest()
                try:
                    request.ParseFromString(body)
                    received.add(request)
                except Exception:  # a body that is not an ExportTraceServiceRequest
                    status = 400
            if status != 200:
                with received.lock:
                    received.bad_requests += 1
            answer = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


@contextlib.contextmanager
def running(keep=True):
    """Serves on a free loopback port; yields (endpoint URL ending in /v1/traces, Received)."""
    received = Received(keep=keep)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(received))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    # A collector that drops what it gets (the tracing benchmark's): prints its URL, serves until
    # SIGTERM, then prints how many spans and export requests it got.
    import signal
    import sys
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with running(keep=False) as (url, received):
        print(url, flush=True)
        stopped.wait()
        print(f"receiver got {received.span_count} spans in {received.requests} requests ({received.bad_requests} refused)",
              file=sys.stderr, flush=True)
