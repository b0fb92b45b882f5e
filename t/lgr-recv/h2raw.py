# h2raw.py ADDR MODE ...: a client that does not play by the rules, on a
# bare TCP connection (no TLS).
#
#   garbage SEED N   send N pseudo-random bytes (from SEED), then wait up to
#                    10 s for the server to close; prints "closed" or "open"
#   streams N        speak HTTP/2 and start N Ingress/Sender calls at once,
#                    ignoring the server's SETTINGS_MAX_CONCURRENT_STREAMS;
#                    call i sends one log envelope with payload "raw-i" and
#                    half-closes. Prints "i RESULT" per call, RESULT being
#                    ok       answered with headers, a message and trailers
#                    failed   answered with trailers only (a gRPC error)
#                    refused  reset before any answer, or above the last
#                             stream id of the server's GOAWAY
#                    none     no answer at all (the server lost it)
#                    then "goaway LAST_ID ERROR_CODE" if one came.
#   partial N SIZE   start N Sender calls that each announce a message of
#                    SIZE bytes and send one byte of it; once the server
#                    has read it all (two PINGs answered), print per call
#                    "i pending" (no answer yet), "i failed" (trailers
#                    only) or "i refused", then close the connection
#   conns N          open N connections one after the other, each sending
#                    the client preface and SETTINGS; prints "i open" for
#                    each the server answers with its SETTINGS and "i closed"
#                    for each it closes instead; then closes them all
#   idle             open a connection, send the preface and SETTINGS, then
#                    nothing; prints "closed" when the server closes it
#                    within 20 s, else "open"
#
# Answers are told apart by their frames alone, so no HPACK decoder is
# needed: requests are written with literal header fields.
import random
import socket
import struct
import sys
import time

import lgrtest

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def hpack_int(n, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if n < limit:
        return bytes([first | n])
    out = bytearray([first | limit])
    n -= limit
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def literal(name, value):
    """Literal header field without indexing, new name, no Huffman."""
    return b"\x00" + hpack_int(len(name), 7) + name + \
        hpack_int(len(value), 7) + value


def connect(addr):
    host, port = lgrtest.host_port(addr)
    s = socket.create_connection((host, port), timeout=10)
    return s


def garbage(addr, seed, n):
    rng = random.Random(seed)
    data = bytes(rng.getrandbits(8) for _ in range(n))
    s = connect(addr)
    deadline = time.monotonic() + 10
    try:
        s.sendall(data)
        while time.monotonic() < deadline:
            if not s.recv(65536):
                print("closed")
                return
    except (ConnectionResetError, BrokenPipeError):
        print("closed")
        return
    except socket.timeout:
        pass
    print("open")


def request_headers(addr):
    return b"".join(literal(k, v) for k, v in (
        (b":method", b"POST"), (b":scheme", b"http"),
        (b":path", b"/loggregator.v2.Ingress/Sender"),
        (b":authority", addr.encode()),
        (b"content-type", b"application/grpc"), (b"te", b"trailers")))


class Reader:
    """Frames from the server, one at a time; answers its SETTINGS and
    PINGs, notes its GOAWAY."""

    def __init__(self, s):
        self.s, self.buf, self.goaway = s, b"", None

    def next(self):
        while True:
            if len(self.buf) >= 9:
                length = struct.unpack(">I", b"\x00" + self.buf[:3])[0]
                if len(self.buf) >= 9 + length:
                    f = self.buf[:9 + length]
                    self.buf = self.buf[9 + length:]
                    ftype, flags = f[3], f[4]
                    sid = struct.unpack(">I", f[5:9])[0] & 0x7FFFFFFF
                    payload = f[9:]
                    if ftype == SETTINGS and not flags & ACK:
                        self.s.sendall(frame(SETTINGS, ACK, 0))
                    elif ftype == PING and not flags & ACK:
                        self.s.sendall(frame(PING, ACK, 0, payload))
                    elif ftype == GOAWAY:
                        last, code = struct.unpack(">II", payload[:8])
                        self.goaway = (last & 0x7FFFFFFF, code)
                    return ftype, flags, sid, payload
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk


def partial(addr, n, size):
    s = connect(addr)
    out = [preface()]
    block = request_headers(addr)
    for i in range(n):
        sid = 2 * i + 1
        out.append(frame(HEADERS, END_HEADERS, sid, block))
        out.append(frame(DATA, 0, sid, b"\x00" + struct.pack(">I", size) +
                         b"\x0a"))
    s.sendall(b"".join(out))
    state = {}
    r = Reader(s)
    for ping in (b"pingone!", b"pingtwo!"):
        s.sendall(frame(PING, 0, 0, ping))
        while True:
            f = r.next()
            if f is None:
                break
            ftype, flags, sid, payload = f
            if ftype == PING and flags & ACK and payload == ping:
                break
            if ftype == HEADERS and flags & END_STREAM:
                state.setdefault(sid, "failed")
            elif ftype == HEADERS:
                state[sid] = "answered"
            elif ftype == RST_STREAM:
                state.setdefault(sid, "refused")
    s.close()
    for i in range(n):
        print("%d %s" % (i, state.get(2 * i + 1, "pending")))


def streams(addr, n):
    s = connect(addr)
    out = [preface()]
    block = request_headers(addr)
    for i in range(n):
        sid = 2 * i + 1
        env = lgrtest.envelope_pb2.Envelope(source_id="raw")
        env.log.payload = ("raw-%d" % i).encode()
        body = env.SerializeToString()
        msg = b"\x00" + struct.pack(">I", len(body)) + body
        out.append(frame(HEADERS, END_HEADERS, sid, block))
        out.append(frame(DATA, END_STREAM, sid, msg))
    state = {}          # stream id -> "headers", "data", or a result
    try:
        s.sendall(b"".join(out))
    except (ConnectionResetError, BrokenPipeError):
        pass
    r = Reader(s)
    deadline = time.monotonic() + 20

    def result(sid):
        v = state.get(sid)
        if v in ("ok", "failed", "refused"):
            return v
        if r.goaway is not None and sid > r.goaway[0]:
            return "refused"
        return None

    try:
        while time.monotonic() < deadline and \
                any(result(2 * i + 1) is None for i in range(n)):
            f = r.next()
            if f is None:
                break
            ftype, flags, sid, _ = f
            st = state.get(sid)
            if ftype == HEADERS:
                if flags & END_STREAM:
                    state[sid] = "ok" if st == "data" else "failed"
                else:
                    state[sid] = "headers"
            elif ftype == DATA:
                if st == "headers":
                    state[sid] = "data"
            elif ftype == RST_STREAM:
                if st is None:
                    state[sid] = "refused"
                elif st in ("headers", "data"):
                    state[sid] = "failed"
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    for i in range(n):
        print("%d %s" % (i, result(2 * i + 1) or "none"))
    if r.goaway:
        print("goaway %d %d" % r.goaway)


def preface():
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0)


def answer(s):
    """"open" when the server's first frame is its SETTINGS, else
    "closed" (nothing but EOF or a reset)."""
    buf = b""
    try:
        while len(buf) < 9:
            chunk = s.recv(65536)
            if not chunk:
                return "closed"
            buf += chunk
    except (ConnectionResetError, socket.timeout):
        return "closed"
    return "open" if buf[3] == SETTINGS else "closed"


def conns(addr, n):
    socks = []
    for i in range(n):
        s = connect(addr)
        try:
            s.sendall(preface())
        except (ConnectionResetError, BrokenPipeError):
            pass
        print("%d %s" % (i, answer(s)))
        socks.append(s)
    for s in socks:
        s.close()


def idle(addr):
    s = connect(addr)
    s.settimeout(20)
    s.sendall(preface())
    try:
        while s.recv(65536):
            pass
        print("closed")
    except ConnectionResetError:
        print("closed")
    except socket.timeout:
        print("open")


if sys.argv[2] == "garbage":
    garbage(sys.argv[1], int(sys.argv[3]), int(sys.argv[4]))
elif sys.argv[2] == "streams":
    streams(sys.argv[1], int(sys.argv[3]))
elif sys.argv[2] == "partial":
    partial(sys.argv[1], int(sys.argv[3]), int(sys.argv[4]))
elif sys.argv[2] == "conns":
    conns(sys.argv[1], int(sys.argv[3]))
elif sys.argv[2] == "idle":
    idle(sys.argv[1])
else:
    sys.exit("h2raw: unknown mode %s" % sys.argv[2])
