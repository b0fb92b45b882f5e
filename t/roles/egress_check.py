# egress_check.py MODE ...: what a subscriber of an egress role got (a
# frame file from egress_sub.py, or the SSE a curl saved) against what
# was sent (frame files of v2 envelopes from lgr-emit or lgr-cat),
# worked out here with python3-protobuf, independently of lgr: the v2 ->
# v1 conversion and the tag convergence of SPEC §3, the v1 app routing
# of §5. Prints what differs on stderr and exits 1 on a mismatch.
#
#   count FILE              the number of whole frames in FILE (a client
#                           may be writing it)
#   v1count SENT... [--app ID]
#                           the number of v1 envelopes doppler makes of
#                           SENT (that a filter on app ID takes)
#   v2 GOT SENT...          GOT is exactly the envelopes of SENT, byte
#                           for byte, in order (SENT files one after
#                           another)
#   v1 GOT SENT... [--app ID] [--merged]
#                           GOT is exactly the v1 conversion of SENT (what
#                           a filter on app ID takes of it); --merged: GOT
#                           interleaves the SENT files, each one's order
#                           kept, instead of following them one by one
#   split SENT GOT...       the GOT files (v1), each non-empty, hold
#                           together exactly the v1 conversion of SENT,
#                           none twice
#   converge GOT SENT [--deprecated]
#                           GOT is SENT, in order, with its tags converged
#                           as use_preferred_tags asks (all into tags), or
#                           with --deprecated as its absence asks (all
#                           into deprecated_tags as text)
#   write-converged SENT OUT
#                           write SENT, converged (preferred), to OUT
#   sse SSE WANT.jsonl      the `data:` events of the SSE stream SSE, each
#                           a JSON batch, hold exactly the envelopes of
#                           WANT.jsonl (JSON lines, lgr-cat's), in order;
#                           other events are heartbeats
#   sse-count SSE           the envelopes in the complete data: events of
#                           SSE (curl may be writing it)
#   json FRAMES JSONL       JSONL (lgr-cat's JSON of FRAMES) equals the
#                           canonical protobuf JSON python3-protobuf makes
#                           of FRAMES (SPEC §7)
import collections
import decimal
import json
import math
import os
import re
import struct
import sys
import uuid

sys.path.insert(0, os.environ["LGR_PB"])

from events import dropsonde_pb2 as ev  # noqa: E402
from google.protobuf import json_format, text_format  # noqa: E402
from v2 import envelope_pb2  # noqa: E402


def frames(path, partial=False):
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off < len(data):
        if len(data) - off < 4:
            if partial:
                break
            sys.exit("%s: ends inside a header at %d" % (path, off))
        (n,) = struct.unpack(">I", data[off:off + 4])
        if len(data) - off - 4 < n:
            if partial:
                break
            sys.exit("%s: ends inside a frame at %d" % (path, off))
        out.append(data[off + 4:off + 4 + n])
        off += 4 + n
    return out


def v2(b):
    e = envelope_pb2.Envelope()
    e.ParseFromString(b)
    return e


def v1(b):
    e = ev.Envelope()
    e.ParseFromString(b)
    return e


def show(m):
    return text_format.MessageToString(m, as_one_line=True)


def key(m):
    """A message's canonical bytes: map entries sorted, so two equal
    messages have the same key whatever order their maps came in."""
    return m.SerializeToString(deterministic=True)


def report(what, msgs):
    sys.stderr.write("%s (%d):\n" % (what, len(msgs)))
    for m in msgs[:5]:
        sys.stderr.write("  %s\n" % show(m))


# --- v2 -> v1 (SPEC §3) -------------------------------------------------------

FIVE = ("origin", "deployment", "job", "index", "ip")
METHODS = ("GET POST PUT DELETE HEAD ACL BASELINE_CONTROL BIND CHECKIN "
           "CHECKOUT CONNECT COPY DEBUG LABEL LINK LOCK MERGE MKACTIVITY "
           "MKCALENDAR MKCOL MKREDIRECTREF MKWORKSPACE MOVE OPTIONS "
           "ORDERPATCH PATCH PRI PROPFIND PROPPATCH REBIND REPORT SEARCH "
           "SHOWMETHOD SPACEJUMP TEXTSEARCH TRACE TRACK UNBIND UNCHECKOUT "
           "UNLINK UNLOCK UPDATE UPDATEREDIRECTREF VERSION_CONTROL").split()
HTTP_TAGS = ("peer_type", "method", "request_id", "uri", "remote_address",
             "user_agent", "status_code", "content_length",
             "routing_instance_id", "forwarded")
CONTAINER = ("cpu", "memory", "disk", "memory_quota", "disk_quota")


def value_text(v):
    kind = v.WhichOneof("data")
    if kind == "text":
        return v.text
    if kind == "integer":
        return str(v.integer)
    if kind == "decimal":
        return "%f" % v.decimal
    return ""


def all_tags(e):
    """tags and deprecated_tags as one map of text: the v1 tags. On a
    clash the deprecated tag wins, as go-loggregator's convertTags has
    it (its getV2Tag, tag(), reads tags first)."""
    t = dict(e.tags)
    t.update({k: value_text(v) for k, v in e.deprecated_tags.items()})
    return t


def tag(e, k):
    """A tag's value as the conversion reads it: tags first."""
    if k in e.tags:
        return e.tags[k]
    if k in e.deprecated_tags:
        return value_text(e.deprecated_tags[k])
    return ""


def to_int(s):
    try:
        return int(s)
    except ValueError:
        return 0


def to_uuid(m, text):
    b = uuid.UUID(text).bytes
    m.low = int.from_bytes(b[:8], "little")
    m.high = int.from_bytes(b[8:], "little")


def is_uuid(text):
    return re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}",
                        text) is not None


def to_v1(e):
    """The v1 envelopes doppler makes of v2 envelope e."""
    tags = all_tags(e)
    base = ev.Envelope(timestamp=e.timestamp)
    for f in FIVE:
        setattr(base, f, tag(e, f))
        tags.pop(f, None)
    tags.pop("__v1_type", None)
    if e.source_id:
        tags["source_id"] = e.source_id
    kind = e.WhichOneof("message")
    out = []
    if kind == "log" and tag(e, "__v1_type") == "Error":
        m = ev.Envelope()
        m.CopyFrom(base)
        m.eventType = ev.Envelope.Error
        m.error.source = tag(e, "source")
        m.error.code = to_int(tag(e, "code"))
        tags.pop("source", None)
        tags.pop("code", None)
        m.error.message = e.log.payload.decode()
        out.append(m)
    elif kind == "log":
        m = ev.Envelope()
        m.CopyFrom(base)
        m.eventType = ev.Envelope.LogMessage
        lm = m.logMessage
        lm.message = e.log.payload
        lm.message_type = ev.LogMessage.OUT if e.log.type == 0 \
            else ev.LogMessage.ERR
        lm.timestamp = e.timestamp
        lm.app_id = e.source_id
        lm.source_type = tag(e, "source_type")
        tags.pop("source_type", None)
        lm.source_instance = e.instance_id
        out.append(m)
    elif kind == "counter":
        m = ev.Envelope()
        m.CopyFrom(base)
        m.eventType = ev.Envelope.CounterEvent
        m.counterEvent.name = e.counter.name
        m.counterEvent.delta = e.counter.delta
        m.counterEvent.total = e.counter.total
        if e.instance_id:
            tags["instance_id"] = e.instance_id
        out.append(m)
    elif kind == "gauge" and len(e.gauge.metrics) > 1 and all(
            k in e.gauge.metrics and (e.gauge.metrics[k].unit or
                                      e.gauge.metrics[k].value != 0)
            for k in CONTAINER):
        m = ev.Envelope()
        m.CopyFrom(base)
        m.eventType = ev.Envelope.ContainerMetric
        g, cm = e.gauge.metrics, m.containerMetric
        cm.applicationId = e.source_id
        if "instance_index" in g:
            cm.instanceIndex = int(g["instance_index"].value)
        else:
            cm.instanceIndex = to_int(e.instance_id)
        cm.cpuPercentage = g["cpu"].value
        cm.memoryBytes = int(g["memory"].value)
        cm.diskBytes = int(g["disk"].value)
        cm.memoryBytesQuota = int(g["memory_quota"].value)
        cm.diskBytesQuota = int(g["disk_quota"].value)
        out.append(m)
    elif kind == "gauge":
        if e.instance_id:
            tags["instance_id"] = e.instance_id
        for name, gv in e.gauge.metrics.items():
            m = ev.Envelope()
            m.CopyFrom(base)
            m.eventType = ev.Envelope.ValueMetric
            m.valueMetric.name = name
            m.valueMetric.value = gv.value
            m.valueMetric.unit = gv.unit
            out.append(m)
    elif kind == "timer":
        m = ev.Envelope()
        m.CopyFrom(base)
        m.eventType = ev.Envelope.HttpStartStop
        h = m.httpStartStop
        h.startTimestamp = e.timer.start
        h.stopTimestamp = e.timer.stop
        rid = tag(e, "request_id")
        if len(rid) == 36 and is_uuid(rid):
            to_uuid(h.requestId, rid)
        else:
            return []	# no requestId: doppler cannot marshal it
        if is_uuid(e.source_id):
            to_uuid(h.applicationId, e.source_id)
        h.peerType = {"Client": 1, "Server": 2}.get(tag(e, "peer_type"), 0)
        meth = tag(e, "method")
        h.method = METHODS.index(meth) + 1 if meth in METHODS else 0
        h.uri = tag(e, "uri")
        h.remoteAddress = tag(e, "remote_address")
        h.userAgent = tag(e, "user_agent")
        h.statusCode = to_int(tag(e, "status_code"))
        h.contentLength = to_int(tag(e, "content_length"))
        h.instanceId = tag(e, "routing_instance_id")
        h.instanceIndex = to_int(e.instance_id)
        h.forwarded.extend(tag(e, "forwarded").split("\n"))
        # Every tag the HttpStartStop holds leaves the v1 tags (SPEC §3
        # names only routing_instance_id; go-loggregator's convertTimer
        # deletes them all).
        for k in HTTP_TAGS:
            tags.pop(k, None)
        out.append(m)
    for m in out:
        m.tags.update(tags)
    return out


def app_of(m):
    """v1 routing's app id (SPEC §5)."""
    if m.HasField("logMessage"):
        return m.logMessage.app_id
    if m.HasField("containerMetric"):
        return m.containerMetric.applicationId
    if m.HasField("httpStartStop") and m.httpStartStop.HasField(
            "applicationId"):
        b = (m.httpStartStop.applicationId.low.to_bytes(8, "little") +
             m.httpStartStop.applicationId.high.to_bytes(8, "little"))
        return str(uuid.UUID(bytes=b))
    return "system"


def want_v1(paths, app):
    lists = []
    for p in paths:
        w = [m for b in frames(p) for m in to_v1(v2(b))]
        if app is not None:
            w = [m for m in w if app_of(m) == app]
        lists.append(w)
    return lists


# --- tag convergence (SPEC §3) -------------------------------------------------

def go_float(x):
    """x as Go's %v prints a float64 (strconv's 'g' format, shortest):
    the shortest digits that read back as x, in %e form when the
    exponent is below -4 or 6 and above (1234567 is 1.234567e+06)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    t = decimal.Decimal(repr(x)).normalize().as_tuple()
    digits = "".join(map(str, t.digits))
    exp = len(digits) + t.exponent - 1
    sign = "-" if t.sign else ""
    if exp < -4 or exp >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return "%s%se%s%02d" % (sign, mant, "-" if exp < 0 else "+",
                                abs(exp))
    return sign + format(decimal.Decimal(repr(abs(x))).normalize(), "f")


def converge(e, preferred):
    c = envelope_pb2.Envelope()
    c.CopyFrom(e)
    if preferred:
        for k, v in e.deprecated_tags.items():
            kind = v.WhichOneof("data")
            c.tags[k] = (go_float(v.decimal) if kind == "decimal"
                         else str(v.integer) if kind == "integer"
                         else v.text)
        c.ClearField("deprecated_tags")
    else:
        for k, v in e.tags.items():
            c.deprecated_tags[k].text = v
        c.ClearField("tags")
    return c


# --- SSE ----------------------------------------------------------------------

def sse_events(path):
    """The events of an SSE stream: (event name, data) each."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            else:
                sys.exit("sse: a line neither event: nor data: %r" % line)
        out.append((name, "\n".join(data)))
    if not text.endswith("\n\n") and text:
        out.pop()	# the event being written when curl stopped
    return out


# --- modes ----------------------------------------------------------------------

def gauge_of(m):
    """For a v1 ValueMetric, the key of the v2 gauge it came from: the
    envelope without its valueMetric; None for anything else."""
    if not isinstance(m, ev.Envelope) or not m.HasField("valueMetric"):
        return None
    c = ev.Envelope()
    c.CopyFrom(m)
    c.ClearField("valueMetric")
    return key(c)


def normal(msgs):
    """msgs with the ValueMetrics of each gauge sorted by name: a gauge's
    entries come out in no set order (SPEC §3)."""
    out, i = [], 0
    while i < len(msgs):
        g, j = gauge_of(msgs[i]), i + 1
        if g is not None:
            while j < len(msgs) and gauge_of(msgs[j]) == g:
                j += 1
        out.extend(sorted(msgs[i:j], key=lambda m: m.valueMetric.name)
                   if g is not None else msgs[i:j])
        i = j
    return out


def cmp_lists(got, want, what):
    got, want = normal(got), normal(want)
    if [key(m) for m in got] == [key(m) for m in want]:
        return 0
    g = collections.Counter(key(m) for m in got)
    w = collections.Counter(key(m) for m in want)
    missing = [m for m in want if g[key(m)] < w[key(m)]]
    extra = [m for m in got if g[key(m)] > w[key(m)]]
    sys.stderr.write("%s: got %d, wanted %d\n" % (what, len(got), len(want)))
    if missing or extra:
        report("missing", missing)
        report("unexpected or doubled", extra)
    else:
        sys.stderr.write("the same envelopes, in another order\n")
        for i, (a, b) in enumerate(zip(got, want)):
            if key(a) != key(b):
                sys.stderr.write("first difference at %d:\n  got  %s\n"
                                 "  want %s\n" % (i, show(a), show(b)))
                break
    return 1


def mode_v1(args):
    app, merged, paths = None, False, []
    it = iter(args)
    for a in it:
        if a == "--app":
            app = next(it)
        elif a == "--merged":
            merged = True
        else:
            paths.append(a)
    got = [v1(b) for b in frames(paths[0])]
    lists = want_v1(paths[1:], app)
    want = [m for w in lists for m in w]
    if not merged:
        return cmp_lists(got, want, "v1")
    # Merged: the same envelopes, and each source's own order kept.
    if sorted(map(key, got)) != sorted(map(key, want)):
        return cmp_lists(got, want, "v1 merged")
    for i, w in enumerate(lists):
        ks = set(map(key, w))
        mine = normal([m for m in got if key(m) in ks])
        if list(map(key, mine)) != list(map(key, normal(w))):
            sys.stderr.write("v1 merged: %s out of order\n" % paths[1 + i])
            return 1
    return 0


def mode_v1count(args):
    app, paths = None, []
    it = iter(args)
    for a in it:
        if a == "--app":
            app = next(it)
        else:
            paths.append(a)
    print(sum(len(w) for w in want_v1(paths, app)))
    return 0


def mode_split(args):
    want = [m for w in want_v1(args[:1], None) for m in w]
    gots = [[v1(b) for b in frames(p)] for p in args[1:]]
    for p, g in zip(args[1:], gots):
        if not g:
            sys.stderr.write("split: %s got nothing\n" % p)
            return 1
    return cmp_lists(sorted((m for g in gots for m in g), key=key),
                     sorted(want, key=key), "split")


def mode_v2(args):
    got = frames(args[0])
    want = [b for p in args[1:] for b in frames(p)]
    if got == want:
        return 0
    return cmp_lists([v2(b) for b in got], [v2(b) for b in want], "v2")


def mode_converge(args):
    preferred = "--deprecated" not in args
    paths = [a for a in args if a != "--deprecated"]
    got = [v2(b) for b in frames(paths[0])]
    want = [converge(v2(b), preferred) for b in frames(paths[1])]
    return cmp_lists(got, want, "converged")


def mode_write_converged(args):
    with open(args[1], "wb") as f:
        for b in frames(args[0]):
            c = converge(v2(b), True).SerializeToString()
            f.write(struct.pack(">I", len(c)) + c)
    return 0


def sse_batches(path):
    """The envelopes (JSON) of the data: events of an SSE stream, checking
    the stream's shape."""
    got = []
    for name, data in sse_events(path):
        if name == "heartbeat":
            if not re.fullmatch(r"[0-9]+", data):
                sys.exit("sse: heartbeat data %r" % data)
            continue
        if name != "message":
            sys.exit("sse: unexpected event %r" % name)
        if "\n" in data:
            sys.exit("sse: a batch on more than one data: line")
        batch = json.loads(data)
        if set(batch) != {"batch"} or not batch["batch"]:
            sys.exit("sse: not a non-empty batch: %s" % data[:200])
        got.extend(batch["batch"])
    return got


def mode_sse_count(args):
    print(len(sse_batches(args[0])))
    return 0


def mode_sse(args):
    got = sse_batches(args[0])
    with open(args[1], encoding="utf-8") as f:
        want = [json.loads(line) for line in f if line.strip()]
    if got == want:
        return 0
    sys.stderr.write("sse: got %d envelopes, wanted %d\n" % (len(got),
                                                             len(want)))
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            sys.stderr.write("first difference at %d:\n  got  %s\n"
                             "  want %s\n" % (i, json.dumps(g),
                                              json.dumps(w)))
            break
    return 1


def mode_json(args):
    got = []
    with open(args[1], encoding="utf-8") as f:
        got = [json.loads(line) for line in f if line.strip()]
    want = [json_format.MessageToDict(
        v2(b), preserving_proto_field_name=True,
        including_default_value_fields=True) for b in frames(args[0])]
    if got == want:
        return 0
    sys.stderr.write("json: got %d, wanted %d\n" % (len(got), len(want)))
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            sys.stderr.write("first difference at %d:\n  lgr-cat  %s\n"
                             "  protobuf %s\n" % (i, json.dumps(g),
                                                  json.dumps(w)))
            break
    return 1


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "count":
        print(len(frames(args[0], partial=True)))
        return 0
    return {"v1": mode_v1, "v1count": mode_v1count, "v2": mode_v2, "split": mode_split,
            "converge": mode_converge,
            "write-converged": mode_write_converged, "sse": mode_sse,
            "sse-count": mode_sse_count,
            "json": mode_json}[mode](args)


if __name__ == "__main__":
    sys.exit(main())
