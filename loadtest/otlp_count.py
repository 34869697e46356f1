"""A collector stand-in for loadtest/bench_hermod.sh's traced-* shapes: takes OTLP/HTTP
protobuf on 127.0.0.1:PORT and keeps the bodies; on SIGTERM it counts the spans (parsed
with opentelemetry-proto when it is importable: PYTHONPATH=/opt/otlp-python, else only
requests and octets) and prints what it took. Parsing waits for the end so that the
stand-in takes as little as it can of the CPU the relay under test runs on."""
import signal, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
try:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
except ImportError:
    ExportTraceServiceRequest = None
port = int(sys.argv[1])
lock = threading.Lock()
bodies = []
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with lock:
            bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
def stop(*_):
    spans = "?"
    if ExportTraceServiceRequest is not None:
        spans = 0
        for body in bodies:
            request = ExportTraceServiceRequest.FromString(body)
            spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    octets = sum(len(b) for b in bodies)
    print(f"collector took {spans} spans in {len(bodies)} requests ({octets} octets)", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
server.serve_forever()
