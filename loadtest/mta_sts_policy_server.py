"""An MTA-STS policy server for tests and benchmarks on loopback: HTTPS on 127.0.0.1:PORT
with CERT and KEY, answering GET /.well-known/mta-sts.txt for host H with ROOT/H.txt as
text/plain, and 404 for anything else. A POST (a TLS report) is kept as ROOT/posted/N.body
with its Content-Type in N.type, and answered 200. Usage: mta_sts_policy_server.py PORT
CERT KEY ROOT"""
import itertools, os, ssl, sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
port, cert, key, root = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        path = os.path.join(root, host + ".txt")
        if self.path != "/.well-known/mta-sts.txt" or not os.path.exists(path):
            self.send_response(404); self.end_headers(); return
        body = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        posted = os.path.join(root, "posted")
        os.makedirs(posted, exist_ok=True)
        n = next(counter)
        with open(os.path.join(posted, f"{n}.type"), "w") as f:
            f.write((self.headers.get("Content-Type") or "") + "\n" + self.path)
        # The body last, and renamed into place: a reader never sees half of it.
        with open(os.path.join(posted, f"{n}.tmp"), "wb") as f:
            f.write(body)
        os.rename(os.path.join(posted, f"{n}.tmp"), os.path.join(posted, f"{n}.body"))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
counter = itertools.count()
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
