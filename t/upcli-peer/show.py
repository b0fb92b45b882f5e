#!/usr/bin/python3
# show.py: the messages upcli_sub wrote (frames: 4-byte big-endian length,
# then one gRPC response message), one line per envelope:
#
#   show.py [--v1 | --raw] [--pb DIR] FILE
#
# default  each message is a loggregator.v2.EnvelopeBatch: prints
#          "SOURCE_ID PAYLOAD" for each log envelope in it
# --v1     each message is a plumbing.BatchResponse of dropsonde
#          envelopes: prints "APP_ID MESSAGE"
# --raw    prints each message's bytes as text
# --pb DIR where the protobuf modules are, or are made (with protoc, from
#          share/proto) if missing; default a temporary directory
#
# Exits 1 if the file ends inside a frame or a message does not decode.
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "..", "share", "proto")


def frames(data):
    off = 0
    while off < len(data):
        if len(data) - off < 4:
            sys.exit("show: the file ends inside a header at %d" % off)
        (n,) = struct.unpack(">I", data[off:off + 4])
        if len(data) - off - 4 < n:
            sys.exit("show: the file ends inside a frame at %d" % off)
        yield data[off + 4:off + 4 + n]
        off += 4 + n


def modules(pb):
    if not os.path.exists(os.path.join(pb, "v2", "envelope_pb2.py")):
        subprocess.run(["protoc", "--python_out=" + pb, "-I", PROTO,
                        "v2/envelope.proto", "plumbing/doppler.proto",
                        "events/dropsonde.proto"], check=True)
    sys.path.insert(0, pb)
    from v2 import envelope_pb2
    from plumbing import doppler_pb2
    from events import dropsonde_pb2
    return envelope_pb2, doppler_pb2, dropsonde_pb2


def main():
    mode, pb, path = "v2", None, None
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a in ("--v1", "--raw"):
            mode = a[2:]
        elif a == "--pb":
            pb = args.pop(0)
        else:
            path = a
    with open(path, "rb") as f:
        data = f.read()
    tmp = None
    if mode != "raw":
        if pb is None:
            pb = tmp = tempfile.mkdtemp(prefix="show.")
        os.makedirs(pb, exist_ok=True)
        v2, doppler, dropsonde = modules(pb)
    out = []
    try:
        for msg in frames(data):
            if mode == "raw":
                out.append(msg.decode("utf-8", "backslashreplace"))
            elif mode == "v2":
                b = v2.EnvelopeBatch.FromString(msg)
                for e in b.batch:
                    out.append("%s %s" % (e.source_id,
                                          e.log.payload.decode()))
            else:
                r = doppler.BatchResponse.FromString(msg)
                for p in r.payload:
                    e = dropsonde.Envelope.FromString(p)
                    out.append("%s %s" % (e.logMessage.app_id,
                                          e.logMessage.message.decode()))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    for line in out:
        print(line)


if __name__ == "__main__":
    main()
