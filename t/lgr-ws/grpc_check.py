# grpc_check.py MODE ...: what a subscriber of lgr-ws got (a frame file
# written by grpc_sub.py) against what was sent (a frame file of v2
# envelopes from lgr-emit), worked out here independently of lgr: the
# selection rules of SPEC §1/§5 and the v2 -> v1 conversion of §3, with
# python3-protobuf. Prints what differs and exits 1 on a mismatch.
#
#   v2 SENT GOT SPEC...    GOT is exactly the envelopes of SENT that any
#                          selector SPEC (grpc_sub.py's form) selects, in
#                          order, byte for byte, none twice
#   v1 SENT GOT [--app ID] [--class log|metric]
#                          GOT is the v1 conversion of SENT, as doppler's
#                          v1 router gives it to that filter (every
#                          envelope a complete events.Envelope)
#   split ALL GOT...       the GOT files, each non-empty, hold together
#                          exactly the envelopes of ALL, none twice
#   count FILE             print the number of frames in FILE
#   v1text FILE            print each v1 envelope of FILE on one line
#                          (protobuf text format, timestamps as T)
import collections
import os
import re
import struct
import sys

sys.path.insert(0, os.environ["LGR_PB"])

from events import dropsonde_pb2 as ev  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from v2 import envelope_pb2  # noqa: E402


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off < len(data):
        if len(data) - off < 4:
            sys.exit("%s: ends inside a header at %d" % (path, off))
        (n,) = struct.unpack(">I", data[off:off + 4])
        if len(data) - off - 4 < n:
            sys.exit("%s: ends inside a frame at %d" % (path, off))
        out.append(data[off + 4:off + 4 + n])
        off += 4 + n
    return out


def v2(b):
    e = envelope_pb2.Envelope()
    e.ParseFromString(b)
    return e


def show(m, cut=None):
    t = text_format.MessageToString(m, as_one_line=True)
    return t if cut is None or len(t) <= cut else t[:cut] + "..."


def fail(what, items, parse):
    sys.stderr.write("%s (%d):\n" % (what, len(items)))
    for b in items[:5]:
        sys.stderr.write("  %s\n" % show(parse(b), 300))


# --- v2 selection ----------------------------------------------------------

def selects(spec, e):
    sid, _, kind = spec.rpartition("/")
    kind, _, arg = kind.partition(":")
    if e.WhichOneof("message") != kind:
        return False
    if sid and e.source_id != sid:
        return False
    if kind == "counter" and arg and e.counter.name != arg:
        return False
    if kind == "gauge" and arg and \
            set(e.gauge.metrics.keys()) != set(arg.split(",")):
        return False
    return True


def check_v2(sent, got, specs):
    want = [b for b in sent if any(selects(s, v2(b)) for s in specs)]
    if want == got:
        return 0
    wc, gc = collections.Counter(want), collections.Counter(got)
    missing = list((wc - gc).elements())
    extra = list((gc - wc).elements())
    sys.stderr.write("want %d envelopes, got %d\n" % (len(want), len(got)))
    if missing:
        fail("missing", missing, v2)
    if extra:
        fail("not wanted or twice", extra, v2)
    if not missing and not extra:
        sys.stderr.write("same envelopes, another order\n")
    return 1


# --- v2 -> v1 (SPEC §3), and doppler's v1 routing (§5) -------------------

FIVE = ("origin", "deployment", "job", "index", "ip")
CONTAINER = ("cpu", "memory", "disk", "memory_quota", "disk_quota")


def tag(e, k):
    if k in e.tags:
        return e.tags[k]
    if k in e.deprecated_tags:
        v = e.deprecated_tags[k]
        w = v.WhichOneof("data")
        if w == "text":
            return v.text
        if w == "integer":
            return "%d" % v.integer
        if w == "decimal":
            return "%f" % v.decimal
    return ""


def go_int(s, bits):
    """Go's strconv.ParseInt(s, 10, bits), 0 on any error."""
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        return 0
    v, lim = int(s), 1 << (bits - 1)
    return v if -lim <= v < lim else 0


def base(e):
    v = ev.Envelope(origin=tag(e, "origin"), deployment=tag(e, "deployment"),
                    job=tag(e, "job"), index=tag(e, "index"),
                    ip=tag(e, "ip"), timestamp=e.timestamp)
    tags = dict(e.tags)
    for k in e.deprecated_tags:
        tags[k] = tag(e, k) if k not in e.tags else tags[k]
    for k in FIVE + ("__v1_type",):
        tags.pop(k, None)
    if e.source_id:
        tags["source_id"] = e.source_id
    return v, tags


def uuid(s):
    if len(s) != 36:
        return None
    try:
        b = bytes.fromhex(s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])
    except ValueError:
        return None
    if len(b) != 16:
        return None
    return ev.UUID(low=int.from_bytes(b[:8], "little"),
                   high=int.from_bytes(b[8:], "little"))


def to_v1(e):
    """The complete v1 envelopes of e, as Go's ToV1 and Marshal give."""
    k = e.WhichOneof("message")
    out = []
    if k == "log" and tag(e, "__v1_type") != "Error":
        v, tags = base(e)
        v.eventType = ev.Envelope.LogMessage
        v.logMessage.message = e.log.payload
        v.logMessage.message_type = (ev.LogMessage.OUT if e.log.type == 0
                                     else ev.LogMessage.ERR)
        v.logMessage.timestamp = e.timestamp
        v.logMessage.app_id = e.source_id
        v.logMessage.source_type = tag(e, "source_type")
        v.logMessage.source_instance = e.instance_id
        tags.pop("source_type", None)
        out.append((v, tags))
    elif k == "counter":
        v, tags = base(e)
        v.eventType = ev.Envelope.CounterEvent
        if e.instance_id:
            tags["instance_id"] = e.instance_id
        v.counterEvent.name = e.counter.name
        v.counterEvent.delta = e.counter.delta
        v.counterEvent.total = e.counter.total
        out.append((v, tags))
    elif k == "gauge":
        m = e.gauge.metrics
        if len(m) != 1 and all(c in m and not (m[c].unit == "" and
                                               m[c].value == 0)
                               for c in CONTAINER):
            v, tags = base(e)
            v.eventType = ev.Envelope.ContainerMetric
            c = v.containerMetric
            c.applicationId = e.source_id
            c.instanceIndex = (int(m["instance_index"].value)
                               if "instance_index" in m
                               else go_int(e.instance_id, 32))
            c.cpuPercentage = m["cpu"].value
            c.memoryBytes = int(m["memory"].value)
            c.diskBytes = int(m["disk"].value)
            c.memoryBytesQuota = int(m["memory_quota"].value)
            c.diskBytesQuota = int(m["disk_quota"].value)
            out.append((v, tags))
        else:
            for name, g in m.items():
                v, tags = base(e)
                v.eventType = ev.Envelope.ValueMetric
                if e.instance_id:
                    tags["instance_id"] = e.instance_id
                v.valueMetric.name = name
                v.valueMetric.unit = g.unit
                v.valueMetric.value = g.value
                out.append((v, tags))
    elif k == "timer":
        v, tags = base(e)
        req = uuid(tag(e, "request_id"))
        if req is None:
            return []       # Go cannot marshal it: doppler drops it
        v.eventType = ev.Envelope.HttpStartStop
        h = v.httpStartStop
        h.startTimestamp = e.timer.start
        h.stopTimestamp = e.timer.stop
        h.requestId.CopyFrom(req)
        app = uuid(e.source_id)
        if app is not None:
            h.applicationId.CopyFrom(app)
        h.peerType = ev.PeerType.Value(tag(e, "peer_type")) \
            if tag(e, "peer_type") in ev.PeerType.keys() else 0
        h.method = ev.Method.Value(tag(e, "method")) \
            if tag(e, "method") in ev.Method.keys() else 0
        h.uri = tag(e, "uri")
        h.remoteAddress = tag(e, "remote_address")
        h.userAgent = tag(e, "user_agent")
        h.statusCode = go_int(tag(e, "status_code"), 64) & 0xFFFFFFFF
        if h.statusCode >= 1 << 31:
            h.statusCode -= 1 << 32
        h.contentLength = go_int(tag(e, "content_length"), 64)
        h.instanceIndex = go_int(e.instance_id, 32)
        h.instanceId = tag(e, "routing_instance_id")
        h.forwarded.extend(tag(e, "forwarded").split("\n"))
        for t in ("peer_type", "method", "request_id", "uri",
                  "remote_address", "user_agent", "status_code",
                  "content_length", "routing_instance_id", "forwarded"):
            tags.pop(t, None)
        out.append((v, tags))
    res = []
    for v, tags in out:
        for tk, tv in tags.items():
            v.tags[tk] = tv
        res.append(v)
    return res


def app_of(v):
    """The app id doppler's v1 router keys v by."""
    if v.eventType == ev.Envelope.LogMessage and v.logMessage.app_id:
        return v.logMessage.app_id
    if v.eventType == ev.Envelope.ContainerMetric and \
            v.containerMetric.applicationId:
        return v.containerMetric.applicationId
    if v.eventType == ev.Envelope.HttpStartStop and \
            v.httpStartStop.HasField("applicationId"):
        u = v.httpStartStop.applicationId
        b = (u.low.to_bytes(8, "little") + u.high.to_bytes(8, "little")).hex()
        return "%s-%s-%s-%s-%s" % (b[:8], b[8:12], b[12:16], b[16:20], b[20:])
    return "system"


def v1(b):
    m = ev.Envelope()
    m.ParseFromString(b)    # proto2: a missing required field fails here
    return m


def canon(m):
    return m.SerializeToString(deterministic=True)


def check_v1(sent, got, opts):
    app, cls = opts.get("--app"), opts.get("--class")
    want = []
    for b in sent:
        for v in to_v1(v2(b)):
            is_log = v.eventType == ev.Envelope.LogMessage
            if cls == "log" and not is_log or cls == "metric" and is_log:
                continue
            if app is not None and app_of(v) != app:
                continue
            want.append(canon(v))
    try:
        have = [canon(v1(b)) for b in got]
    except Exception as e:
        sys.stderr.write("a v1 envelope does not decode: %s\n" % e)
        return 1
    wc, gc = collections.Counter(want), collections.Counter(have)
    if wc != gc:
        sys.stderr.write("want %d v1 envelopes, got %d\n" %
                         (len(want), len(have)))
        missing = list((wc - gc).elements())
        extra = list((gc - wc).elements())
        if missing:
            fail("missing", missing, v1)
        if extra:
            fail("not wanted or twice", extra, v1)
        return 1
    # The order too, but for the value metrics of one gauge (unordered).
    def order(seq):
        return [x for x in seq
                if v1(x).eventType != ev.Envelope.ValueMetric]
    if order(want) != order(have):
        sys.stderr.write("same v1 envelopes, another order\n")
        return 1
    return 0


def check_split(allf, gots):
    want = collections.Counter(allf)
    have = collections.Counter()
    rc = 0
    for i, g in enumerate(gots):
        if not g:
            sys.stderr.write("subscriber %d got nothing\n" % (i + 1))
            rc = 1
        have.update(g)
    if len(want) != sum(want.values()):
        sys.stderr.write("the envelopes of ALL are not distinct\n")
        return 1
    if want != have:
        sys.stderr.write("want %d envelopes in all, got %d (%d distinct)\n"
                         % (len(allf), sum(have.values()), len(have)))
        sys.stderr.write("missing %d, twice or not wanted %d\n" %
                         (sum((want - have).values()),
                          sum((have - want).values())))
        rc = 1
    print(" ".join(str(len(g)) for g in gots))
    return rc


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "v2":
        return check_v2(frames(args[0]), frames(args[1]), args[2:])
    if mode == "v1":
        opts = dict(zip(args[2::2], args[3::2]))
        return check_v1(frames(args[0]), frames(args[1]), opts)
    if mode == "split":
        return check_split(frames(args[0]), [frames(a) for a in args[1:]])
    if mode == "v1text":
        for b in frames(args[0]):
            m = v1(b)
            if m.HasField("timestamp"):
                m.timestamp = 0
            if m.HasField("logMessage"):
                m.logMessage.timestamp = 0
            print(show(m).replace("timestamp: 0", "timestamp: T"))
        return 0
    if mode == "count":
        print(len(frames(args[0])))
        return 0
    sys.exit("grpc_check: unknown mode %s" % mode)


sys.exit(main())
