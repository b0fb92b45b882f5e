#!/usr/bin/python3
# uaa_cc.py: a stand-in for UAA's check_token and Cloud Controller's log
# access check, the two services a traffic controller asks (lib/auth,
# lgr-ws). Both on one port, on loopback, over HTTP or TLS.
#
#   uaa_cc.py [--port-file FILE] [--listen HOST] [--tls-cert FILE
#             --tls-key FILE [--client-ca FILE]] [--client ID]
#             [--secret S] [--allow GUID,...] [--gone GUID,...]
#             [--broken GUID,...] [--hang]
#
# POST /check_token (form token=..., basic auth ID:S, default
# doppler:secret; wrong or none → 401 {"error":"unauthorized"}):
#   admin-token       200, scope ["doppler.firehose", "openid"]
#   logs-admin-token  200, scope ["logs.admin"]
#   user-token        200, scope ["openid", "cloud_controller.read"]
#   anything else     400 {"error":"invalid_token"} (what UAA answers for
#                     an unknown or expired token)
# GET /internal/v4/log_access/GUID (Authorization as a client sent it;
# "bearer " in any case, then one of the three tokens above):
#   bad or no token   401
#   GUID in --allow   200
#   GUID in --gone    404 (no such app)
#   GUID in --broken  500
#   other GUIDs       403
# GET /hits: {"check_token": N, "log_access": N}, the calls so far.
# Anything else: 404.
#
# --client-ca makes TLS mutual: a client without a certificate signed by
# that CA is refused in the handshake, as Cloud Controller's internal API
# (port 9023) does. --hang accepts connections and requests and never
# answers (for timeouts); /hits still answers.
#
# When it listens it prints the port on stdout, alone on a line, and
# writes it to --port-file (written whole, then renamed into place). One
# log line per request on stderr; tokens are never logged. SIGTERM stops
# it (exit 0).
import argparse
import base64
import http.server
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.parse

PROG = "uaa_cc"
TOKENS = {
    "admin-token": ["doppler.firehose", "openid"],
    "logs-admin-token": ["logs.admin"],
    "user-token": ["openid", "cloud_controller.read"],
}
LOG_ACCESS = "/internal/v4/log_access/"
MAX_BODY = 65536


def log(level, fields):
    sys.stderr.write("%s: level=%s %s\n" % (PROG, level, fields))
    sys.stderr.flush()


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.hits = {"check_token": 0, "log_access": 0}
        split = lambda s: set(x for x in (s or "").split(",") if x)
        self.allow = split(args.allow)
        self.gone = split(args.gone)
        self.broken = split(args.broken)

    def hit(self, name):
        with self.lock:
            self.hits[name] += 1


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uaa_cc"

    def log_message(self, fmt, *args):
        pass  # one line per request of our own, without the token

    def answer(self, status, body, ctype="application/json"):
        data = json.dumps(body).encode() if ctype == "application/json" \
            else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        log("info", "event=request method=%s path=%s status=%d" %
            (self.command, self.path.split("?")[0], status))

    def hang(self):
        # Hold the connection open, answering nothing, until killed.
        while True:
            time.sleep(3600)

    def client_ok(self):
        st = self.server.state
        want = "%s:%s" % (st.args.client, st.args.secret)
        h = self.headers.get("Authorization", "")
        if not h.lower().startswith("basic "):
            return False
        try:
            got = base64.b64decode(h[6:].strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return got == want

    def do_POST(self):
        st = self.server.state
        if self.path.split("?")[0] != "/check_token":
            return self.answer(404, {"error": "not_found"})
        st.hit("check_token")
        if st.args.hang:
            return self.hang()
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n < 0 or n > MAX_BODY:
            return self.answer(413, {"error": "too_large"})
        form = urllib.parse.parse_qs(self.rfile.read(n).decode("latin-1"))
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("application/x-www-form-urlencoded"):
            return self.answer(415, {"error": "unsupported_media_type"})
        if not self.client_ok():
            return self.answer(401, {
                "error": "unauthorized",
                "error_description": "Bad credentials"})
        token = form.get("token", [""])[0]
        scope = TOKENS.get(token)
        if scope is None:
            return self.answer(400, {
                "error": "invalid_token",
                "error_description": "The token expired, was revoked, or "
                "the token ID is incorrect."})
        return self.answer(200, {
            "user_id": "u-1", "client_id": "cf", "scope": scope,
            "exp": int(time.time()) + 600, "iss": "uaa_cc"})

    def do_GET(self):
        st = self.server.state
        path = self.path.split("?")[0]
        if path == "/hits":
            with st.lock:
                hits = dict(st.hits)
            return self.answer(200, hits)
        if not path.startswith(LOG_ACCESS):
            return self.answer(404, {"error": "not_found"})
        st.hit("log_access")
        if st.args.hang:
            return self.hang()
        guid = path[len(LOG_ACCESS):]
        h = self.headers.get("Authorization", "")
        if not h.lower().startswith("bearer ") or h[7:] not in TOKENS:
            return self.answer(401, {"errors": [{"code": 10002,
                "title": "CF-NotAuthenticated"}]})
        if guid in st.allow:
            return self.answer(200, {})
        if guid in st.gone:
            return self.answer(404, {"errors": [{"code": 10010,
                "title": "CF-ResourceNotFound"}]})
        if guid in st.broken:
            return self.answer(500, {"errors": [{"code": 10001,
                "title": "CF-ServerError"}]})
        return self.answer(403, {"errors": [{"code": 10003,
            "title": "CF-NotAuthorized"}]})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, state, ctx):
        self.state = state
        self.ctx = ctx
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.ctx is not None:
            # The handshake runs in the handler's thread (a client that
            # never handshakes must not stop the others).
            sock = self.ctx.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False)
        return sock, addr

    def process_request_thread(self, request, client_address):
        if self.ctx is not None:
            try:
                request.settimeout(10)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                log("info", "event=handshake_failed reason=\"%s\"" %
                    str(e).replace('"', "'"))
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)

    def handle_error(self, request, client_address):
        log("info", "event=request_error reason=\"%s\"" %
            str(sys.exc_info()[1]).replace('"', "'"))


def main():
    p = argparse.ArgumentParser(prog=PROG)
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port-file")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--client-ca")
    p.add_argument("--client", default="doppler")
    p.add_argument("--secret", default="secret")
    p.add_argument("--allow")
    p.add_argument("--gone")
    p.add_argument("--broken")
    p.add_argument("--hang", action="store_true")
    args = p.parse_args()
    if args.listen not in ("127.0.0.1", "::1", "localhost"):
        p.error("--listen: loopback only")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        p.error("--client-ca needs --tls-cert")

    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)

    if ":" in args.listen:
        Server.address_family = __import__("socket").AF_INET6
    srv = Server((args.listen, 0), State(args), ctx)
    port = srv.server_address[1]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    log("info", "event=listening port=%d tls=%s mtls=%s" %
        (port, "yes" if ctx else "no", "yes" if args.client_ca else "no"))
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
