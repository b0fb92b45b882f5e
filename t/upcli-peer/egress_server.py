#!/usr/bin/python3
# egress_server.py: a server-streaming peer for lib/upcli on
# python3-grpcio. It serves /loggregator.v2.Egress/BatchedReceiver and
# /plumbing.Doppler/BatchSubscribe with generic handlers (the request
# arrives as bytes, responses leave as bytes), as a doppler would.
#
#   egress_server.py [--listen HOST:PORT] [--certs DIR [--name NAME]]
#                    [--source-id ID] [--count N] [--batch K]
#                    [--interval-ms MS] [--end-after K [--status CODE]]
#                    [--big-once BYTES]
#   egress_server.py --garbage | --silent [--listen HOST:PORT]
#   egress_server.py --raw-h2 MODE [--listen HOST:PORT]
#
# --listen        where to listen (default 127.0.0.1:0, any free port)
# --certs DIR     serve mTLS with the files lgr-certs made in DIR: NAME.crt
#                 and NAME.key, client certificates signed by DIR/ca.crt
# --name NAME     the server certificate's name (default doppler)
# --source-id ID  the envelopes' source_id (v1: app_id; default "app")
# --count N       messages to send in all, over every call (default 100);
#                 then calls stay open, sending nothing
# --batch K       envelopes per message (default 1)
# --interval-ms   pause between messages (default 0)
# --end-after K   end each call after it sent K messages, with --status
#                 CODE (default 14, UNAVAILABLE) and a message saying so
# --big-once B    the first message of all is one envelope with a B-byte
#                 payload; the call then waits to be cancelled
#
# Envelope n (counting from 0 over the server's life) is a log whose
# payload is the text of n: BatchedReceiver sends EnvelopeBatch messages
# of v2 envelopes, BatchSubscribe sends BatchResponse messages whose
# payloads are v1 (dropsonde) LogMessage envelopes.
#
# --garbage: no gRPC at all. Each connection gets an HTTP/1.1 answer and
# bytes that are not HTTP/2, then is closed.
#
# --silent: connections are accepted and never spoken to (closed after a
# minute).
#
# --raw-h2 MODE: a hand-made HTTP/2 server (no library) answering each
# request with :status 200 and content-type application/grpc, then:
#   split       three messages, "one", "two", "three!", sent one byte per
#               DATA frame, prefixes and all; the stream stays open
#   compressed  a message whose compressed flag is 1
#   huge        a message prefix saying 4294967295 bytes
#   cut         half a message, then trailers with grpc-status 13
#   404         :status 404 and the end of the stream, no gRPC at all
#   half        the first 1500 bytes of a 3000-byte message; the rest
#               never comes
#
# When it listens it prints the port on stdout, alone on a line. On
# stderr one line per event: listening, each call (method, request in
# hex, user-agent), each call's end. SIGTERM stops it (exit 0).
import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

PROG = "egress_server"
HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "..", "share", "proto")


def log(level, fields):
    sys.stderr.write("%s: level=%s %s\n" % (PROG, level, fields))
    sys.stderr.flush()


def split_listen(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def listen_socket(addr):
    host, port = split_listen(addr)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(16)
    return s


def serve_raw(a, handle):
    """Accept connections forever, each in a thread running handle."""
    s = listen_socket(a.listen)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    s.settimeout(0.1)
    log("info", "event=listening addr=%s:%d mode=%s" %
        (a.listen.rpartition(":")[0], s.getsockname()[1],
         a.mode))
    sys.stdout.write("%d\n" % s.getsockname()[1])
    sys.stdout.flush()
    while not stop.is_set():
        try:
            conn, peer = s.accept()
        except socket.timeout:
            continue
        log("info", "event=accept peer=%s" % (peer,))
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
    log("info", "event=stop")


# --- garbage -------------------------------------------------------------

def silent(conn):
    time.sleep(60)
    conn.close()


def garbage(conn):
    try:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                     b"\r\n" + bytes(range(256)) * 4)
        time.sleep(0.3)
    except OSError:
        pass
    conn.close()


# --- a hand-made HTTP/2 server -------------------------------------------

def h2_frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def hpack_literal(name, value):
    """A literal header field without indexing, new name, no Huffman."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def grpc_msg(body, flag=0):
    return bytes([flag]) + struct.pack(">I", len(body)) + body


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        got = conn.recv(n - len(buf))
        if not got:
            raise EOFError
        buf += got
    return buf


def raw_h2(mode):
    def handle(conn):
        try:
            serve_h2(conn, mode)
        except (EOFError, OSError):
            pass
        conn.close()
    return handle


def serve_h2(conn, mode):
    preface = recv_exact(conn, 24)
    if preface != b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n":
        log("warn", "event=bad_preface")
        return
    conn.sendall(h2_frame(4, 0, 0, b""))         # SETTINGS
    while True:
        hd = recv_exact(conn, 9)
        length = struct.unpack(">I", b"\x00" + hd[:3])[0]
        ftype, flags = hd[3], hd[4]
        stream = struct.unpack(">I", hd[5:9])[0] & 0x7FFFFFFF
        recv_exact(conn, length)
        if ftype == 4 and not flags & 1:          # SETTINGS: ack it
            conn.sendall(h2_frame(4, 1, 0, b""))
        elif ftype == 6 and not flags & 1:        # PING: answer it
            pass
        elif ftype == 1:                          # HEADERS: a call
            log("info", "event=call stream=%d mode=%s" % (stream, mode))
            answer_h2(conn, stream, mode)


def answer_h2(conn, stream, mode):
    if mode == "404":
        # :status 404 is static table entry 13; END_STREAM, END_HEADERS.
        conn.sendall(h2_frame(1, 5, stream, b"\x8d"))
        return
    head = b"\x88" + hpack_literal(b"content-type", b"application/grpc")
    conn.sendall(h2_frame(1, 4, stream, head))   # HEADERS, END_HEADERS
    if mode == "split":
        data = b"".join(grpc_msg(m) for m in (b"one", b"two", b"three!"))
        for i in range(len(data)):
            conn.sendall(h2_frame(0, 0, stream, data[i:i + 1]))
    elif mode == "compressed":
        conn.sendall(h2_frame(0, 0, stream, grpc_msg(b"abc", flag=1)))
    elif mode == "huge":
        conn.sendall(h2_frame(0, 0, stream,
                              b"\x00\xff\xff\xff\xff" + b"x" * 100))
    elif mode == "half":
        conn.sendall(h2_frame(0, 0, stream, grpc_msg(b"h" * 3000)[:1505]))
    elif mode == "cut":
        conn.sendall(h2_frame(0, 0, stream, grpc_msg(b"whole")))
        conn.sendall(h2_frame(0, 0, stream, grpc_msg(b"x" * 100)[:50]))
        trailers = hpack_literal(b"grpc-status", b"13") + \
            hpack_literal(b"grpc-message", b"cut%20short")
        conn.sendall(h2_frame(1, 5, stream, trailers))  # END_STREAM


# --- the gRPC server -------------------------------------------------------

class Source:
    """Numbers envelopes over the server's life, and counts messages."""

    def __init__(self, a, pb):
        self.a = a
        self.pb = pb
        self.lock = threading.Lock()
        self.seq = 0
        self.sent = 0
        self.big_done = a.big_once == 0

    def take(self):
        """The envelope numbers of the next message, or None when the
        count is reached; "big" for the one big message."""
        with self.lock:
            if not self.big_done:
                self.big_done = True
                return "big"
            if self.sent >= self.a.count:
                return None
            self.sent += 1
            first = self.seq
            self.seq += self.a.batch
            return range(first, first + self.a.batch)

    def v2(self, nums):
        pb = self.pb
        batch = pb["envelope"].EnvelopeBatch()
        for payload in self.payloads(nums):
            e = batch.batch.add()
            e.timestamp = time.time_ns()
            e.source_id = self.a.source_id
            e.log.payload = payload
        return batch.SerializeToString()

    def v1(self, nums):
        pb = self.pb
        resp = pb["doppler"].BatchResponse()
        for payload in self.payloads(nums):
            e = pb["dropsonde"].Envelope()
            e.origin = "egress_server"
            e.eventType = pb["dropsonde"].Envelope.LogMessage
            e.timestamp = time.time_ns()
            e.logMessage.message = payload
            e.logMessage.message_type = pb["dropsonde"].LogMessage.OUT
            e.logMessage.timestamp = e.timestamp
            e.logMessage.app_id = self.a.source_id
            resp.payload.append(e.SerializeToString())
        return resp.SerializeToString()

    def payloads(self, nums):
        if nums == "big":
            return [b"x" * self.a.big_once]
        return [str(n).encode() for n in nums]


def serve_grpc(a, pb):
    import grpc

    src = Source(a, pb)
    codes = {c.value[0]: c for c in grpc.StatusCode}
    stop = threading.Event()

    def idle(context, limit):
        t = time.monotonic() + limit
        while context.is_active() and not stop.is_set() and \
                time.monotonic() < t:
            time.sleep(0.02)

    def streaming(method, encode):
        def handler(request, context):
            ua = dict(context.invocation_metadata()).get("user-agent", "")
            log("info", "event=call method=%s request=%s user_agent=%s" %
                (method, request.hex(), ua.replace(" ", "_")))
            n = 0
            try:
                while context.is_active() and not stop.is_set():
                    nums = src.take()
                    if nums is None:
                        idle(context, 3600)
                        break
                    yield encode(nums)
                    n += 1
                    if nums == "big":
                        log("info", "event=big_sent method=%s bytes=%d" %
                            (method, a.big_once))
                        idle(context, 10)
                        break
                    if a.end_after and n >= a.end_after:
                        log("info", "event=call_failed method=%s "
                            "messages=%d" % (method, n))
                        context.abort(codes[a.status],
                                      "ending after %d messages" % n)
                    if a.interval_ms:
                        time.sleep(a.interval_ms / 1000.0)
            finally:
                log("info", "event=call_end method=%s messages=%d" %
                    (method, n))
        return handler

    opts = [
        ("grpc.so_reuseport", 0),
        # Loggregator's servers: pings at most every 10 s, calls or not.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10000),
        ("grpc.http2.max_ping_strikes", 2),
    ]
    server = grpc.server(
        __import__("concurrent.futures").futures.ThreadPoolExecutor(
            max_workers=128), options=opts)
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("loggregator.v2.Egress", {
            "BatchedReceiver": grpc.unary_stream_rpc_method_handler(
                streaming("BatchedReceiver", src.v2)),
        }),
        grpc.method_handlers_generic_handler("plumbing.Doppler", {
            "BatchSubscribe": grpc.unary_stream_rpc_method_handler(
                streaming("BatchSubscribe", src.v1)),
        }),
    ))
    if a.certs:
        def read(name):
            with open(os.path.join(a.certs, name), "rb") as f:
                return f.read()
        creds = grpc.ssl_server_credentials(
            [(read(a.name + ".key"), read(a.name + ".crt"))],
            root_certificates=read("ca.crt"), require_client_auth=True)
        port = server.add_secure_port(a.listen, creds)
    else:
        port = server.add_insecure_port(a.listen)
    if port == 0:
        log("error", "event=listen_failed addr=%s" % a.listen)
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    log("info", "event=listening addr=%s:%d tls=%s" %
        (a.listen.rpartition(":")[0], port, "yes" if a.certs else "no"))
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()
    stop.wait()
    server.stop(0.5).wait()
    log("info", "event=stop")


def load_protos():
    """Generate the protobuf modules into a temporary directory."""
    d = tempfile.mkdtemp(prefix="egress_server.")
    subprocess.run(["protoc", "--python_out=" + d, "-I", PROTO,
                    "v2/envelope.proto", "plumbing/doppler.proto",
                    "events/dropsonde.proto"], check=True)
    sys.path.insert(0, d)
    from v2 import envelope_pb2
    from plumbing import doppler_pb2
    from events import dropsonde_pb2
    return d, {"envelope": envelope_pb2, "doppler": doppler_pb2,
               "dropsonde": dropsonde_pb2}


def main():
    p = argparse.ArgumentParser(prog=PROG)
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--certs")
    p.add_argument("--name", default="doppler")
    p.add_argument("--source-id", default="app")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--interval-ms", type=int, default=0)
    p.add_argument("--end-after", type=int, default=0)
    p.add_argument("--status", type=int, default=14)
    p.add_argument("--big-once", type=int, default=0)
    p.add_argument("--garbage", action="store_true")
    p.add_argument("--silent", action="store_true")
    p.add_argument("--raw-h2",
                   choices=("split", "compressed", "huge", "cut", "404",
                            "half"))
    a = p.parse_args()

    if a.garbage:
        a.mode = "garbage"
        serve_raw(a, garbage)
        return
    if a.silent:
        a.mode = "silent"
        serve_raw(a, silent)
        return
    if a.raw_h2:
        a.mode = "raw-h2 " + a.raw_h2
        serve_raw(a, raw_h2(a.raw_h2))
        return
    d, pb = load_protos()
    try:
        serve_grpc(a, pb)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
