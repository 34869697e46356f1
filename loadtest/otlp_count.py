"""A collector stand-in for loadtest/bench_hermod.sh's traced-* shapes: takes OTLP/HTTP
protobuf on 127.0.0.1:PORT, counts the spans (parsed with opentelemetry-proto when it is
importable: PYTHONPATH=/opt/otlp-python, else only requests and octets) and, on SIGTERM,
prints what it took."""
import signal, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
try:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
except ImportError:
    ExportTraceServiceRequest = None
port = int(sys.argv[1])
lock = threading.Lock()
taken = {"requests": 0, "octets": 0, "spans": 0}
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        spans = 0
        if ExportTraceServiceRequest is not None:
            request = ExportTraceServiceRequest.FromString(body)
            spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with lock:
            taken["requests"] += 1
            taken["octets"] += len(body)
            taken["spans"] += spans
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
def stop(*_):
    print(f"collector took {taken['spans']} spans in {taken['requests']} requests ({taken['octets']} octets)", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
server.serve_forever()
