#!/usr/bin/python3
"""Stand-in binding cache for t/lgr-bindings.bats.

binding_server.py DIR: serves GET /v2/bindings (and /bindings) on
127.0.0.1, port chosen by the kernel and written to DIR/port once
listening. The body is DIR/bindings.json, read afresh on every request,
so a test changes the list by rewriting that file. While DIR/fail exists
every request gets 500. Each request appends its path to DIR/requests.

binding_server.py DIR CERT KEY CA: the same over TLS, as the binding
cache serves: the client must show a certificate signed by CA."""
import http.server
import os
import ssl
import sys

DIR = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(os.path.join(DIR, "requests"), "a") as f:
            f.write(self.path + "\n")
        if os.path.exists(os.path.join(DIR, "fail")):
            self.send_error(500, "told to fail")
            return
        if self.path not in ("/v2/bindings", "/bindings"):
            self.send_error(404)
            return
        with open(os.path.join(DIR, "bindings.json"), "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
if len(sys.argv) == 5:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    ctx.load_verify_locations(sys.argv[4])
    ctx.verify_mode = ssl.CERT_REQUIRED
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
tmp = os.path.join(DIR, "port.tmp")
with open(tmp, "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(tmp, os.path.join(DIR, "port"))
srv.serve_forever()
