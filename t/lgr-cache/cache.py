# cache.py MODE ...: what t/lgr-cache.bats needs beside curl and jq, with
# python3-protobuf (modules in $LGR_PB) and the standard library only:
#
#   parts HEADERS BODY OUT  the multipart answer curl saved (-D HEADERS,
#                           -o BODY) is exactly Go's multipart.Writer
#                           framing of its parts with the boundary of its
#                           Content-Type (60 hex digits); each part, which
#                           must decode as a v1 events.Envelope, goes to
#                           OUT as a frame. Prints the number of parts.
#   v1json FRAMES           each v1 envelope of FRAMES as one line of
#                           protobuf JSON (camelCase names)
#   gen N SIZE OUT [K]      N log envelopes with SIZE-byte payloads as
#                           frames in OUT, source ids src-0 ... src-N-1,
#                           or with K, src-0 ... src-K-1 round robin
#   storm URL N [THREADS]   N GET requests to URL at once (THREADS
#                           clients, default N); prints "STATUS COUNT"
#                           lines, "error COUNT" for requests that got no
#                           HTTP answer
import collections
import concurrent.futures
import json
import os
import re
import struct
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.environ.get("LGR_PB", "."))


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off < len(data):
        (n,) = struct.unpack(">I", data[off:off + 4])
        out.append(data[off + 4:off + 4 + n])
        off += 4 + n
    return out


def mode_parts(headers, body, out):
    from events import dropsonde_pb2 as ev
    with open(headers, "rb") as f:
        head = f.read().decode("latin-1")
    m = re.search(r"(?im)^content-type: multipart/x-protobuf; "
                  r"boundary=([0-9a-f]{60})\r?$", head)
    if m is None:
        sys.exit("parts: no multipart/x-protobuf Content-Type with a "
                 "60-hex-digit boundary in:\n" + head)
    b = m.group(1).encode()
    with open(body, "rb") as f:
        data = f.read()
    # Split on the delimiter, then write the parts back as Go's writer
    # does: the answer must be exactly that.
    if data == b"\r\n--" + b + b"--\r\n":
        parts = []
    else:
        if not data.startswith(b"--" + b + b"\r\n\r\n") or \
                not data.endswith(b"\r\n--" + b + b"--\r\n"):
            sys.exit("parts: body does not open and close as Go's "
                     "multipart.Writer: %r ... %r" % (data[:80], data[-80:]))
        inner = data[len(b) + 6:-(len(b) + 8)]
        parts = inner.split(b"\r\n--" + b + b"\r\n\r\n")
    again = b"".join((b"\r\n" if i else b"") + b"--" + b + b"\r\n\r\n" + p
                     for i, p in enumerate(parts)) + b"\r\n--" + b + b"--\r\n"
    if again != data:
        sys.exit("parts: the framing differs from multipart.Writer's")
    with open(out, "wb") as f:
        for p in parts:
            e = ev.Envelope()
            e.ParseFromString(p)
            if not e.IsInitialized():
                sys.exit("parts: a part lacks a required field: %r" % p)
            f.write(struct.pack(">I", len(p)) + p)
    print(len(parts))


def mode_v1json(path):
    from events import dropsonde_pb2 as ev
    from google.protobuf import json_format
    for b in frames(path):
        e = ev.Envelope()
        e.ParseFromString(b)
        print(json.dumps(json_format.MessageToDict(e), sort_keys=True,
                         separators=(",", ":")))


def mode_gen(n, size, out, sources=None):
    from v2 import envelope_pb2
    e = envelope_pb2.Envelope()
    e.timestamp = 1700000000000000000
    e.instance_id = "0"
    e.tags["source_type"] = "APP/PROC/WEB"
    e.log.payload = b"x" * int(size)
    n = int(n)
    if sources is None:
        with open(out, "wb") as f:
            for i in range(n):
                e.source_id = "src-%d" % i
                e.timestamp += 1
                b = e.SerializeToString()
                f.write(struct.pack(">I", len(b)) + b)
        return
    # Many frames over a few sources, round robin: each source's frame
    # made once (one timestamp), written again and again.
    made = []
    for i in range(int(sources)):
        e.source_id = "src-%d" % i
        b = e.SerializeToString()
        made.append(struct.pack(">I", len(b)) + b)
    k = len(made)
    with open(out, "wb") as f:
        for i in range(0, n, k):
            f.write(b"".join(made[:min(k, n - i)]))


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            r.read()
            return str(r.status)
    except urllib.error.HTTPError as e:
        e.read()
        return str(e.code)
    except Exception:
        return "error"


def mode_storm(url, n, threads=None):
    n = int(n)
    threads = int(threads) if threads else n
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as x:
        got = collections.Counter(x.map(get, [url] * n))
    for k in sorted(got):
        print(k, got[k])


MODES = {"parts": mode_parts, "v1json": mode_v1json, "gen": mode_gen,
         "storm": mode_storm}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        sys.exit("usage: cache.py parts|v1json|gen|storm ...")
    sys.exit(MODES[sys.argv[1]](*sys.argv[2:]))
