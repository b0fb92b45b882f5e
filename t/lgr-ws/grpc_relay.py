# grpc_relay.py SOCK PATH REQUEST_HEX: one call on lgr-ws's relay socket
# as lgr-recv --egress-relay makes it (src/lib/relay.h): frame(PATH),
# frame(request), then the first frame back, the status line
# "STATUS MESSAGE", printed on stdout. Exits 1 if lgr-ws closes the
# connection first.
import socket
import struct
import sys


def frame(b):
    return struct.pack(">I", len(b)) + b


def read_exact(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            sys.exit("grpc_relay: lgr-ws closed the connection")
        out += b
    return out


def main():
    path, req = sys.argv[2].encode(), bytes.fromhex(sys.argv[3])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sys.argv[1])
    s.sendall(frame(path) + frame(req))
    (n,) = struct.unpack(">I", read_exact(s, 4))
    print(read_exact(s, n).decode("utf-8", "backslashreplace"))
    s.close()


main()
