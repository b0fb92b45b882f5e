# fake_cache.py: a stand-in for lgr-cache's traffic-controller endpoints,
# and a reader of their multipart answers (python3-protobuf, the
# dropsonde.proto modules in $LGR_PB).
#
#   fake_cache.py serve PORT_FILE [--logs T,T...] [--metrics I:T,I:T...]
#       GET /apps/ID/recentlogs: a LogMessage per T (timestamp T, message
#       "log T"); GET /apps/ID/containermetrics: a ContainerMetric per I:T
#       (instance I, timestamp T); both as Go's multipart writer frames
#       them (multipart/x-protobuf, header-less parts). Each request's
#       path and query go to stdout, one a line. Anything else: 404.
#   fake_cache.py parse BODY_FILE CONTENT_TYPE
#       one line per part: "log T MESSAGE" or "metric I T"; the body must
#       be framed exactly as Go's multipart writer frames it
import http.server
import os
import re
import sys

sys.path.insert(0, os.environ["LGR_PB"])

from events import dropsonde_pb2 as ev  # noqa: E402

BOUNDARY = "f" * 60


def log_env(app, ts):
    e = ev.Envelope(origin="cache", eventType=ev.Envelope.LogMessage,
                    timestamp=ts)
    e.logMessage.message = b"log %d" % ts
    e.logMessage.message_type = ev.LogMessage.OUT
    e.logMessage.timestamp = ts
    e.logMessage.app_id = app
    return e.SerializeToString()


def metric_env(app, inst, ts):
    e = ev.Envelope(origin="cache", eventType=ev.Envelope.ContainerMetric,
                    timestamp=ts)
    c = e.containerMetric
    c.applicationId, c.instanceIndex = app, inst
    c.cpuPercentage, c.memoryBytes, c.diskBytes = float(ts), 1, 2
    return e.SerializeToString()


def multipart(parts):
    out = b""
    for i, p in enumerate(parts):
        out += (b"\r\n" if i else b"") + b"--" + BOUNDARY.encode() + \
            b"\r\n\r\n" + p
    return out + b"\r\n--" + BOUNDARY.encode() + b"--\r\n"


def serve(port_file, opts):
    logs = [int(t) for t in opts.get("--logs", "").split(",") if t]
    metrics = [tuple(int(x) for x in m.split(":"))
               for m in opts.get("--metrics", "").split(",") if m]

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            sys.stdout.write(self.path + "\n")
            sys.stdout.flush()
            m = re.fullmatch(r"/apps/([^/?]+)/(recentlogs|containermetrics)"
                             r"(\?.*)?", self.path)
            if m is None:
                self.send_error(404)
                return
            app = m.group(1)
            if m.group(2) == "recentlogs":
                parts = [log_env(app, t) for t in logs]
            else:
                parts = [metric_env(app, i, t) for i, t in metrics]
            body = multipart(parts)
            self.send_response(200)
            self.send_header("Content-Type",
                             "multipart/x-protobuf; boundary=" + BOUNDARY)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(port_file + ".tmp", port_file)
    srv.serve_forever()


def parse(path, ctype):
    m = re.fullmatch(r"multipart/x-protobuf; boundary=([0-9a-f]{60})", ctype)
    if m is None:
        sys.exit("not the Go multipart content type: %r" % ctype)
    b = m.group(1).encode()
    with open(path, "rb") as f:
        body = f.read()
    if body == b"\r\n--" + b + b"--\r\n":
        return 0
    if not body.startswith(b"--" + b + b"\r\n\r\n") or \
            not body.endswith(b"\r\n--" + b + b"--\r\n"):
        sys.exit("not framed as Go frames it: %r" % body[:80])
    inner = body[len(b) + 6:-(len(b) + 8)]
    for p in inner.split(b"\r\n--" + b + b"\r\n\r\n"):
        e = ev.Envelope()
        e.ParseFromString(p)
        if e.eventType == ev.Envelope.LogMessage:
            print("log %d %s" % (e.timestamp,
                                 e.logMessage.message.decode()))
        elif e.eventType == ev.Envelope.ContainerMetric:
            print("metric %d %d" % (e.containerMetric.instanceIndex,
                                    e.timestamp))
        else:
            print("other %d" % e.eventType)
    return 0


def main():
    if sys.argv[1] == "serve":
        opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
        return serve(sys.argv[2], opts)
    if sys.argv[1] == "parse":
        return parse(sys.argv[2], sys.argv[3])
    sys.exit("fake_cache: unknown mode %s" % sys.argv[1])


sys.exit(main())
