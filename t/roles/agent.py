# agent.py MODE ...: the emitters the role suites (t/metron.bats,
# t/statsd-injector.bats) drive metron and statsd-injector with, on
# Debian's python3-grpcio, python3-protobuf and python3-statsd. The
# protobuf modules are the ones protoc made from share/proto into the
# directory named by $LGR_PB.
#
#   agent.py grpc [--certs DIR --cert NAME] [--timeout S] [--rate N] ADDR HOW
#                 FRAMES
#       Send the envelopes of FRAMES (a frame stream, e.g. lgr-emit's
#       output) to the v2 Ingress service at ADDR, each as the bytes it
#       is. HOW is "sender" (one Sender call, one envelope a message),
#       "batch:N" (one BatchSender call, N envelopes a message) or "send"
#       (one unary Send with them all). With --certs, talk mTLS: trust
#       DIR/ca.crt, present DIR/NAME.crt and DIR/NAME.key, and want the
#       server to be "metron". --timeout is the call's deadline (default
#       30 s); --rate paces the messages to N envelopes a second. Prints the call's status (OK, UNAVAILABLE, ...) on stdout,
#       its details on stderr.
#
#   agent.py udp ADDR FRAMES [DEPLOYMENT]
#       Turn each v2 log envelope of FRAMES into a dropsonde LogMessage
#       (origin "emitter", app_id = source_id, the same payload, type and
#       timestamp; the v1 deployment field set when DEPLOYMENT is given)
#       and send it to ADDR as one UDP datagram.
#
#   agent.py statsd ADDR PREFIX < CALLS
#       Run each line of CALLS as Python with c, a python3-statsd
#       StatsClient for ADDR with PREFIX, e.g. c.incr("hits", 2), and
#       raw(TEXT), which sends TEXT as one datagram from the same socket
#       (for what the client cannot say, such as #tags). The client's
#       sampling is made certain: every call with a rate is sent.
#
# ADDR is HOST:PORT or [V6]:PORT.
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.environ["LGR_PB"])
from events import dropsonde_pb2  # noqa: E402
from v2 import envelope_pb2  # noqa: E402


def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off < len(data):
        (n,) = struct.unpack(">I", data[off:off + 4])
        body = data[off + 4:off + 4 + n]
        if len(body) != n:
            sys.exit("agent.py: %s ends inside a frame at %d" % (path, off))
        out.append(body)
        off += 4 + n
    return out


def as_field1(body):
    """body as field 1, length-delimited: an EnvelopeBatch entry."""
    n, head = len(body), bytearray(b"\x0a")
    while n >= 0x80:
        head.append((n & 0x7F) | 0x80)
        n >>= 7
    head.append(n)
    return bytes(head) + body


def grpc_mode(args):
    import grpc

    certs = name = None
    timeout = 30.0
    rate = 0.0
    while args[0].startswith("--"):
        opt, val, args = args[0], args[1], args[2:]
        if opt == "--certs":
            certs = val
        elif opt == "--cert":
            name = val
        elif opt == "--timeout":
            timeout = float(val)
        elif opt == "--rate":
            rate = float(val)
        else:
            sys.exit("agent.py: unknown option %s" % opt)
    addr, how, path = args
    opts = [("grpc.enable_retries", 0),
            ("grpc.max_send_message_length", -1)]
    if certs:
        def read(f):
            with open(os.path.join(certs, f), "rb") as fh:
                return fh.read()
        creds = grpc.ssl_channel_credentials(
            read("ca.crt"), read(name + ".key"), read(name + ".crt"))
        opts.append(("grpc.ssl_target_name_override", "metron"))
        ch = grpc.secure_channel(addr, creds, options=opts)
    else:
        ch = grpc.insecure_channel(addr, options=opts)
    envs = frames(path)

    def paced(msgs, per_msg):
        start = time.monotonic()
        for i, m in enumerate(msgs):
            if rate:
                delay = start + i * per_msg / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield m

    same = dict(request_serializer=lambda b: b,
                response_deserializer=lambda b: b)
    try:
        if how == "sender":
            call = ch.stream_unary("/loggregator.v2.Ingress/Sender", **same)
            call(paced(envs, 1), timeout=timeout)
        elif how.startswith("batch:"):
            n = int(how[6:])
            msgs = [b"".join(as_field1(e) for e in envs[i:i + n])
                    for i in range(0, len(envs), n)]
            call = ch.stream_unary("/loggregator.v2.Ingress/BatchSender",
                                   **same)
            call(paced(msgs, n), timeout=timeout)
        elif how == "send":
            call = ch.unary_unary("/loggregator.v2.Ingress/Send", **same)
            call(b"".join(as_field1(e) for e in envs), timeout=timeout)
        else:
            sys.exit("agent.py: unknown way to send: %s" % how)
        print("OK")
    except grpc.RpcError as e:
        sys.stderr.write("agent.py: %s: %s\n" % (e.code().name, e.details()))
        print(e.code().name)
    ch.close()


def udp_mode(args):
    addr, path = args[0], args[1]
    deployment = args[2] if len(args) > 2 else None
    host, port = split_addr(addr)
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                      socket.SOCK_DGRAM)
    for body in frames(path):
        v2 = envelope_pb2.Envelope.FromString(body)
        if not v2.HasField("log"):
            sys.exit("agent.py: udp sends log envelopes only")
        v1 = dropsonde_pb2.Envelope(
            origin="emitter", eventType=dropsonde_pb2.Envelope.LogMessage,
            timestamp=v2.timestamp)
        if deployment is not None:
            v1.deployment = deployment
        m = v1.logMessage
        m.message = v2.log.payload
        m.message_type = (dropsonde_pb2.LogMessage.ERR if v2.log.type ==
                          envelope_pb2.Log.ERR else
                          dropsonde_pb2.LogMessage.OUT)
        m.timestamp = v2.timestamp
        m.app_id = v2.source_id
        s.sendto(v1.SerializeToString(), (host, port))
    s.close()


def statsd_mode(args):
    import statsd

    random.random = lambda: 0.0     # sample every call
    host, port = split_addr(args[0])
    c = statsd.StatsClient(host, port, prefix=args[1])
    for line in sys.stdin:
        if line.strip():
            exec(line, {"c": c, "raw": c._send})
    c.close()


modes = {"grpc": grpc_mode, "udp": udp_mode, "statsd": statsd_mode}
if len(sys.argv) < 2 or sys.argv[1] not in modes:
    sys.exit("usage: agent.py grpc|udp|statsd ...")
modes[sys.argv[1]](sys.argv[2:])
