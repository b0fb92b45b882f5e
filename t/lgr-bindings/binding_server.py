#!/usr/bin/python3
"""Stand-in binding cache for t/lgr-bindings.bats.

binding_server.py DIR: serves GET /v2/bindings (and /bindings) on
127.0.0.1, port chosen by the kernel and written to DIR/port once
listening. The body is DIR/bindings.json, read afresh on every request,
so a test changes the list by rewriting that file. While DIR/fail exists
every request gets 500. Each request appends its path to DIR/requests."""
import http.server
import os
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
tmp = os.path.join(DIR, "port.tmp")
with open(tmp, "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(tmp, os.path.join(DIR, "port"))
srv.serve_forever()
