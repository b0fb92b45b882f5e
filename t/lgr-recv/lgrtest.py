# Shared by the lgr-recv test helpers: the generated protobuf modules (in
# the directory named by $LGR_PB) and frame streams (4-byte big-endian
# length, then the bytes).
import os
import struct
import sys

sys.path.insert(0, os.environ["LGR_PB"])

from events import dropsonde_pb2  # noqa: E402,F401
from v2 import envelope_pb2  # noqa: E402,F401


def read_frames(path):
    """The bodies of the frames in the file at path."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off < len(data):
        if len(data) - off < 4:
            sys.exit("%s: stream ends inside a header at %d" % (path, off))
        (n,) = struct.unpack(">I", data[off:off + 4])
        if len(data) - off - 4 < n:
            sys.exit("%s: stream ends inside a frame at %d" % (path, off))
        out.append(data[off + 4:off + 4 + n])
        off += 4 + n
    return out


def write_frame(f, body):
    f.write(struct.pack(">I", len(body)) + body)


def host_port(addr):
    """("127.0.0.1", 3457) from "127.0.0.1:3457" or "[::1]:3457"."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)
