"""An MTA-STS policy server for tests and benchmarks on loopback: HTTPS on 127.0.0.1:PORT
with CERT and KEY, answering GET /.well-known/mta-sts.txt for host H with ROOT/H.txt as
text/plain, and 404 for anything else. Usage: mta_sts_policy_server.py PORT CERT KEY ROOT"""
import os, ssl, sys
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
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
