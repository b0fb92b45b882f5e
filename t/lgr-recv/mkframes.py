# mkframes.py KIND [--partial] < LINES > FRAMES
#
# One frame per input line. KIND says what a line is:
#   v2   a loggregator.v2.Envelope in protobuf JSON (json_format)
#   v1   an events.Envelope (dropsonde) in protobuf JSON; --partial lets
#        required fields be missing
#   hex  the frame's bytes in hex (blank: an empty frame)
#   text the line itself, with \n and \\ escapes, as bytes
import sys

import lgrtest
from google.protobuf import json_format

kind = sys.argv[1]
partial = "--partial" in sys.argv[2:]
out = sys.stdout.buffer
for line in sys.stdin:
    line = line.rstrip("\n")
    if kind == "v2":
        m = json_format.Parse(line, lgrtest.envelope_pb2.Envelope())
        body = m.SerializeToString()
    elif kind == "v1":
        m = json_format.Parse(line, lgrtest.dropsonde_pb2.Envelope())
        body = m.SerializePartialToString() if partial else \
            m.SerializeToString()
    elif kind == "hex":
        body = bytes.fromhex(line)
    elif kind == "text":
        body = line.encode("utf-8").decode("unicode_escape").encode("latin-1")
    else:
        sys.exit("mkframes.py: unknown kind %s" % kind)
    lgrtest.write_frame(out, body)
