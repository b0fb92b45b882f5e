# egress_sub.py MODE ...: a subscriber of the egress roles, as real
# clients are: python3-grpcio for gRPC (what traffic controllers, reverse
# log proxies and nozzles use) and python3-websockets for the traffic
# controller's websockets (what `cf logs` and firehose nozzles use).
# Every envelope received is appended to the file OUT as a frame (4-byte
# big-endian length, then the envelope's bytes as they came on the wire:
# a v2 Envelope, or the v1 Envelope of a Response payload), cut out of
# batches without re-encoding, and flushed at once so a test can count
# them while the client runs.
#
#   grpc ADDR METHOD OUT [options]
#       METHOD: receiver, batched (/loggregator.v2.Egress/Receiver,
#       /BatchedReceiver), subscribe, batch_subscribe
#       (/plumbing.Doppler/Subscribe, /BatchSubscribe).
#       --sel SPEC        a v2 selector (repeatable): [SOURCE_ID/]KIND[:ARG],
#                         KIND log, counter[:NAME], gauge[:NAME,...], timer,
#                         event
#       --preferred       use_preferred_tags
#       --shard ID        shard_id / shardID
#       --app ID, --class log|metric   the v1 Filter
#       --certs DIR       TLS trusting DIR/ca.crt; with --cert NAME, mutual
#                         TLS as DIR/NAME.crt (without it, no client
#                         certificate)
#       --server-name N   name the server's certificate must carry (doppler)
#     At the end one line on stdout: the call's status code name, its
#     details and the count, e.g. "CANCELLED count=10" after --count.
#
#   ws URL OUT [options]
#     Prints "open" once the handshake is done, "http STATUS" if it is
#     refused, and at the end "closed code=C reason=R count=N" when the
#     server closed, or "done count=N" after --count.
#
# Both:
#   --ready FILE   create FILE once the call is in place (gRPC: the
#                  response headers are in; ws: the handshake is done)
#   --count N      end after N envelopes (and --linger)
#   --linger S     after --count, keep reading S seconds more (anything
#                  more is written too, so doubles show) (0.3)
#   --idle S       once an envelope came, end when none comes for S
#                  seconds (as after --count)
#   --timeout S    give up after S seconds: print "timeout count=N" and
#                  exit 1 (15)
import argparse
import asyncio
import os
import struct
import sys
import threading
import time

PATHS = {
    "receiver": "/loggregator.v2.Egress/Receiver",
    "batched": "/loggregator.v2.Egress/BatchedReceiver",
    "subscribe": "/plumbing.Doppler/Subscribe",
    "batch_subscribe": "/plumbing.Doppler/BatchSubscribe",
}


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def touch(path):
    if path:
        with open(path, "w"):
            pass


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
    """Every length-delimited field 1 of msg as raw bytes: the envelopes
    of an EnvelopeBatch, the payloads of a BatchResponse, the payload of
    a Response."""
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


class Out:
    """The frame file, and the count of what went into it."""

    def __init__(self, path):
        self.f = open(path, "ab")
        self.n = 0

    def put(self, env):
        self.f.write(struct.pack(">I", len(env)) + env)
        self.f.flush()
        self.n += 1


# --- gRPC --------------------------------------------------------------------

def selector(egress_pb2, spec):
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
    else:
        sys.exit("egress_sub: bad selector %s" % spec)
    return s


def request(a):
    sys.path.insert(0, os.environ["LGR_PB"])
    from plumbing import doppler_pb2
    from v2 import egress_pb2
    if a.method in ("receiver", "batched"):
        r = egress_pb2.EgressBatchRequest(shard_id=a.shard,
                                          use_preferred_tags=a.preferred)
        r.selectors.extend(selector(egress_pb2, s) for s in a.sel)
        return r.SerializeToString()
    r = doppler_pb2.SubscriptionRequest(shardID=a.shard)
    if a.app is not None or a.cls is not None:
        r.filter.appID = a.app or ""
        if a.cls == "log":
            r.filter.log.SetInParent()
        elif a.cls == "metric":
            r.filter.metric.SetInParent()
    return r.SerializeToString()


def channel(a):
    import grpc
    opts = [("grpc.max_receive_message_length", 16 << 20),
            ("grpc.enable_retries", 0)]
    if a.certs is None:
        return grpc.insecure_channel(a.addr, options=opts)

    def read(name):
        with open(os.path.join(a.certs, name), "rb") as f:
            return f.read()
    key = chain = None
    if a.cert:
        key, chain = read(a.cert + ".key"), read(a.cert + ".crt")
    creds = grpc.ssl_channel_credentials(read("ca.crt"), key, chain)
    opts.append(("grpc.ssl_target_name_override", a.server_name))
    return grpc.secure_channel(a.addr, creds, options=opts)


def run_grpc(a):
    import grpc
    out = Out(a.out)
    ch = channel(a)
    call = ch.unary_stream(PATHS[a.method], request_serializer=lambda b: b,
                           response_deserializer=lambda b: b)(
        request(a), timeout=a.timeout)
    batched = a.method in ("batched", "batch_subscribe")
    timer = None
    code, details = "OK", ""

    def ready():
        try:
            call.initial_metadata()
            touch(a.ready)
        except Exception:
            pass
    if a.ready:
        threading.Thread(target=ready, daemon=True).start()
    last = [None]
    ended = threading.Event()

    def idle():
        while not ended.wait(0.05):
            if last[0] is not None and time.monotonic() - last[0] > a.idle:
                call.cancel()
                return
    if a.idle:
        threading.Thread(target=idle, daemon=True).start()
    try:
        for msg in call:
            last[0] = time.monotonic()
            envs = field1(msg) if batched else [
                msg if a.method == "receiver" else
                (field1(msg) or [b""])[0]]
            for e in envs:
                out.put(e)
            if a.count and out.n >= a.count and timer is None:
                timer = threading.Timer(a.linger, call.cancel)
                timer.start()
    except grpc.RpcError as e:
        code, details = e.code().name, e.details() or ""
    ended.set()
    if code == "DEADLINE_EXCEEDED":
        say("timeout count=%d" % out.n)
        return 1
    say("%s %s count=%d" % (code, details, out.n))
    return 0


# --- websockets --------------------------------------------------------------

async def ws_main(a):
    import websockets
    out = Out(a.out)
    try:
        ws = await websockets.connect(
            a.url, max_size=16 << 20, ping_interval=None, close_timeout=2,
            open_timeout=10)
    except websockets.exceptions.InvalidStatusCode as e:
        say("http %d" % e.status_code)
        return 0
    say("open")
    touch(a.ready)
    end = None
    try:
        while True:
            wait = None if end is None else max(0.0, end - time.monotonic())
            if a.idle and out.n > 0 and (wait is None or wait > a.idle):
                wait = a.idle
            try:
                msg = await asyncio.wait_for(ws.recv(), wait)
            except asyncio.TimeoutError:
                await ws.close(1000)
                say("done count=%d" % out.n)
                return 0
            if isinstance(msg, str):
                msg = msg.encode()
            out.put(msg)
            if a.count and out.n >= a.count and end is None:
                end = time.monotonic() + a.linger
    except websockets.exceptions.ConnectionClosed as e:
        rcvd = e.rcvd
        code = rcvd.code if rcvd is not None else 1006
        reason = rcvd.reason if rcvd is not None else ""
        say("closed code=%d reason=%s count=%d" % (code, reason, out.n))
    return 0


def run_ws(a):
    async def bounded():
        try:
            return await asyncio.wait_for(ws_main(a), a.timeout)
        except asyncio.TimeoutError:
            n = 0
            with open(a.out, "rb") as f:
                data = f.read()
            off = 0
            while off + 4 <= len(data):
                off += 4 + struct.unpack(">I", data[off:off + 4])[0]
                n += 1
            say("timeout count=%d" % n)
            return 1
    return asyncio.run(bounded())


def main():
    p = argparse.ArgumentParser(prog="egress_sub.py")
    sub = p.add_subparsers(dest="mode", required=True)
    g = sub.add_parser("grpc")
    g.add_argument("addr")
    g.add_argument("method", choices=sorted(PATHS))
    g.add_argument("out")
    g.add_argument("--sel", action="append", default=[])
    g.add_argument("--preferred", action="store_true")
    g.add_argument("--shard", default="")
    g.add_argument("--app")
    g.add_argument("--class", dest="cls", choices=("log", "metric"))
    g.add_argument("--certs")
    g.add_argument("--cert")
    g.add_argument("--server-name", default="doppler")
    w = sub.add_parser("ws")
    w.add_argument("url")
    w.add_argument("out")
    for q in (g, w):
        q.add_argument("--ready")
        q.add_argument("--count", type=int, default=0)
        q.add_argument("--linger", type=float, default=0.3)
        q.add_argument("--idle", type=float, default=0)
        q.add_argument("--timeout", type=float, default=15)
    a = p.parse_args()
    open(a.out, "ab").close()
    sys.exit(run_grpc(a) if a.mode == "grpc" else run_ws(a))


if __name__ == "__main__":
    main()
