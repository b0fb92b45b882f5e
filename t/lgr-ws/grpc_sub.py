# grpc_sub.py [OPTIONS] ADDR METHOD OUT: one subscription to lgr-ws with
# python3-grpcio, a real gRPC client. METHOD is receiver, batched,
# subscribe or batch_subscribe (/loggregator.v2.Egress/Receiver,
# /BatchedReceiver, /plumbing.Doppler/Subscribe, /BatchSubscribe). Every
# envelope received is written to the file OUT as a frame holding its
# bytes as they came on the wire (a v2 Envelope, or the v1 Envelope of a
# Response payload), cut out of batches without re-encoding. At the end
# one line on stdout: the call's status code name and its details, e.g.
# "OK " or "INVALID_ARGUMENT Selectors cannot be empty". Exits 0 when the
# call was made, whatever its status.
#
# Request (v2):
#   --sel SPEC       a selector (repeatable): [SOURCE_ID/]KIND[:ARG], KIND
#                    log, counter[:NAME], gauge[:NAME,NAME...], timer,
#                    event, or none (a selector without a message)
#   --legacy SPEC    legacy_selector
# Request (v1):
#   --app ID         Filter.appID
#   --class C        Filter message: log or metric
# Both:
#   --shard ID       shard_id / shardID
#   --raw HEX        send these bytes as the request instead
#
# Behaviour:
#   --ca F [--cert F --key F]   TLS to server name doppler, trusting F
#   --timeout S      deadline of the call (30)
#   --count N        cancel the call after N envelopes
#   --ready FILE     create FILE once the response headers are in (the
#                    subscription is in place)
#   --stall S        once the headers are in, read nothing for S seconds
#   --hold FILE      once the headers are in, read nothing until FILE
#                    exists (30 s at most)
#   --cycles N       instead of one call: N calls one after another, each
#                    opened, its headers awaited, then cancelled (a new
#                    channel every 10); prints "cycles N ok" or the failure
import os
import struct
import sys
import time

import grpc

sys.path.insert(0, os.environ["LGR_PB"])

from plumbing import doppler_pb2  # noqa: E402
from v2 import egress_pb2  # noqa: E402

PATHS = {
    "receiver": "/loggregator.v2.Egress/Receiver",
    "batched": "/loggregator.v2.Egress/BatchedReceiver",
    "subscribe": "/plumbing.Doppler/Subscribe",
    "batch_subscribe": "/plumbing.Doppler/BatchSubscribe",
}


def ident(b):
    return b


def varint(b, off):
    v = shift = 0
    while True:
        c = b[off]
        off += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, off


def field1(msg):
    """The values of every length-delimited field 1 of msg, as raw bytes:
    the envelopes of an EnvelopeBatch, the payloads of a BatchResponse,
    the payload of a Response."""
    out, off = [], 0
    while off < len(msg):
        key, off = varint(msg, off)
        wt = key & 7
        if wt == 0:
            _, off = varint(msg, off)
        elif wt == 1:
            off += 8
        elif wt == 5:
            off += 4
        elif wt == 2:
            n, off = varint(msg, off)
            if key >> 3 == 1:
                out.append(bytes(msg[off:off + n]))
            off += n
        else:
            raise ValueError("wire type %d in a response" % wt)
    return out


def selector(spec):
    sid, _, kind = spec.rpartition("/")
    kind, _, arg = kind.partition(":")
    s = egress_pb2.Selector(source_id=sid)
    if kind == "log":
        s.log.SetInParent()
    elif kind == "counter":
        s.counter.name = arg
    elif kind == "gauge":
        s.gauge.SetInParent()
        if arg:
            s.gauge.names.extend(arg.split(","))
    elif kind == "timer":
        s.timer.SetInParent()
    elif kind == "event":
        s.event.SetInParent()
    elif kind != "none":
        sys.exit("grpc_sub: bad selector %s" % spec)
    return s


def channel(addr, ca, cert, key, small_window=False):
    opts = [("grpc.max_receive_message_length", -1),
            ("grpc.enable_retries", 0)]
    if small_window:
        # No window growth: what the client has not read stays queued
        # in lgr-ws, not in flight.
        opts.append(("grpc.http2.bdp_probe", 0))
        opts.append(("grpc.http2.lookahead_bytes", 65536))
    if ca is None:
        return grpc.insecure_channel(addr, options=opts)
    with open(ca, "rb") as f:
        root = f.read()
    chain = pkey = None
    if cert is not None:
        with open(cert, "rb") as f:
            chain = f.read()
        with open(key, "rb") as f:
            pkey = f.read()
    creds = grpc.ssl_channel_credentials(root, pkey, chain)
    opts.append(("grpc.ssl_target_name_override", "doppler"))
    return grpc.secure_channel(addr, creds, options=opts)


def request(o, method):
    if o["raw"] is not None:
        return bytes.fromhex(o["raw"])
    if method in ("receiver", "batched"):
        r = egress_pb2.EgressBatchRequest(shard_id=o["shard"])
        r.selectors.extend(selector(s) for s in o["sel"])
        if o["legacy"] is not None:
            r.legacy_selector.CopyFrom(selector(o["legacy"]))
        return r.SerializeToString()
    r = doppler_pb2.SubscriptionRequest(shardID=o["shard"])
    if o["app"] is not None or o["class"] is not None:
        r.filter.appID = o["app"] or ""
        if o["class"] == "log":
            r.filter.log.SetInParent()
        elif o["class"] == "metric":
            r.filter.metric.SetInParent()
    return r.SerializeToString()


def cycles(o, addr, path, req, n):
    ch = None
    for i in range(n):
        if i % 10 == 0:
            if ch is not None:
                ch.close()
            ch = channel(addr, o["ca"], o["cert"], o["key"])
        call = ch.unary_stream(path, request_serializer=ident,
                               response_deserializer=ident)
        it = call(req, timeout=o["timeout"])
        it.initial_metadata()
        if it.done() and it.code() != grpc.StatusCode.OK:
            print("cycles %d %s %s" % (i, it.code().name, it.details()))
            return
        it.cancel()
    ch.close()
    print("cycles %d ok" % n)


def main():
    o = {"sel": [], "legacy": None, "app": None, "class": None, "shard": "",
         "raw": None, "ca": None, "cert": None, "key": None,
         "timeout": 30.0, "count": None, "ready": None, "stall": 0.0,
         "cycles": None, "hold": None}
    args = sys.argv[1:]
    while args and args[0].startswith("--"):
        name = args[0][2:]
        if name not in o or len(args) < 2:
            sys.exit("grpc_sub: bad option %s" % args[0])
        v = args[1]
        args = args[2:]
        if name == "sel":
            o["sel"].append(v)
        elif name in ("timeout", "stall"):
            o[name] = float(v)
        elif name in ("count", "cycles"):
            o[name] = int(v)
        else:
            o[name] = v
    if len(args) != 3 or args[1] not in PATHS:
        sys.exit("usage: grpc_sub.py [OPTIONS] ADDR METHOD OUT")
    addr, method, out = args
    path = PATHS[method]
    req = request(o, method)
    if o["cycles"] is not None:
        cycles(o, addr, path, req, o["cycles"])
        return
    ch = channel(addr, o["ca"], o["cert"], o["key"],
                 o["hold"] is not None or o["stall"] > 0)
    call = ch.unary_stream(path, request_serializer=ident,
                           response_deserializer=ident)
    it = call(req, timeout=o["timeout"])
    n = 0
    with open(out, "wb") as f:
        try:
            it.initial_metadata()
            if o["ready"] is not None:
                open(o["ready"], "w").close()
            if o["stall"] > 0:
                time.sleep(o["stall"])
            end = time.monotonic() + 30
            while o["hold"] is not None and not os.path.exists(o["hold"]) \
                    and time.monotonic() < end:
                time.sleep(0.02)
            for m in it:
                envs = [m] if method == "receiver" else field1(m)
                f.write(b"".join(struct.pack(">I", len(e)) + e
                                 for e in envs))
                f.flush()       # others watch the file grow
                n += len(envs)
                if o["count"] is not None and n >= o["count"]:
                    it.cancel()
                    break
        except grpc.RpcError:
            pass
    print("%s %s" % (it.code().name, it.details() or ""))
    sys.stderr.write("grpc_sub: %s %s: %s (%d envelopes)\n" %
                     (method, addr, it.code().name, n))
    ch.close()


main()
