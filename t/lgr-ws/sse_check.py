# sse_check.py MODE ...: what curl got from lgr-ws's GET /v2/read, as the
# RLP gateway sends it: server-sent events, each `data: <JSON batch>`,
# `event: heartbeat` + `data: <unix seconds>`, or the closing event.
#
#   shape FILE         every event is one of the three, in the gateway's
#                      exact shape; prints "data=N heartbeat=N closing=N
#                      envelopes=N" (a closing event must be the last)
#   data FILE WANT     the envelopes of the data events, in order, are the
#                      lines of WANT (lgr-cat's JSON of the frames expected)
#                      byte for byte; each event is a valid JSON batch
import json
import re
import sys

PREFIX, SUFFIX = '{"batch":[', ']}'


def events(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    if text and not text.endswith("\n\n"):
        sys.exit("the stream ends inside an event: %r" % text[-80:])
    return [e for e in text.split("\n\n") if e != ""]


def classify(ev):
    lines = ev.split("\n")
    if len(lines) == 1 and lines[0].startswith("data: "):
        body = lines[0][6:]
        doc = json.loads(body)
        if not body.startswith(PREFIX) or not body.endswith(SUFFIX):
            sys.exit("not a batch: %r" % body[:80])
        if not isinstance(doc.get("batch"), list) or not doc["batch"]:
            sys.exit("an empty or odd batch: %r" % body[:80])
        return "data", body
    if len(lines) == 2 and lines[0] == "event: heartbeat" and \
            re.fullmatch(r"data: [0-9]+", lines[1]):
        return "heartbeat", None
    if lines == ["event: closing", "data: closing due to stream timeout"]:
        return "closing", None
    sys.exit("not a gateway event: %r" % ev[:120])


def main():
    mode, path = sys.argv[1], sys.argv[2]
    n = {"data": 0, "heartbeat": 0, "closing": 0}
    bodies = []
    evs = events(path)
    for i, ev in enumerate(evs):
        kind, body = classify(ev)
        n[kind] += 1
        if kind == "closing" and i != len(evs) - 1:
            sys.exit("events after the closing event")
        if body is not None:
            bodies.append(body)
    envs = sum(len(json.loads(b)["batch"]) for b in bodies)
    if mode == "shape":
        print("data=%d heartbeat=%d closing=%d envelopes=%d" %
              (n["data"], n["heartbeat"], n["closing"], envs))
        return 0
    if mode == "data":
        with open(sys.argv[3], encoding="utf-8") as f:
            want = f.read().split("\n")
        if want and want[-1] == "":
            want.pop()
        # Batches hold envelopes joined by commas: joined again, all the
        # events must read as the wanted lines joined the same way.
        got = ",".join(b[len(PREFIX):-len(SUFFIX)] for b in bodies)
        if got != ",".join(want):
            sys.stderr.write("want %d envelopes, got %d\n" %
                             (len(want), envs))
            for w in want[:3]:
                sys.stderr.write("  want %s\n" % w[:300])
            for b in bodies[:3]:
                sys.stderr.write("  got  %s\n" % b[:300])
            return 1
        print(envs)
        return 0
    sys.exit("sse_check: unknown mode %s" % mode)


sys.exit(main())
