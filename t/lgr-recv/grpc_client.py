# grpc_client.py [OPTIONS] ADDR MODE ARGS...: call lgr-recv with
# python3-grpcio and print the status code name of each call (OK,
# UNAVAILABLE, ...) on stdout, its details on stderr. Exits 0 when the
# calls were made, whatever their status.
#
# Options:
#   --ca FILE          use TLS, trusting the CA in FILE (server name metron)
#   --cert FILE --key FILE   and present this client certificate
#   --timeout SECONDS  deadline of each call (default 10)
#   --gzip             compress the messages
#
# Modes (FRAMES is a frame stream file; each frame's bytes are sent as they
# are, so what comes out can be compared byte for byte):
#   sender FRAMES          one Ingress/Sender call, one message per frame
#   batch FRAMES [N]       one Ingress/BatchSender call, N frames per
#                          EnvelopeBatch (default: all in one)
#   send FRAMES            one Ingress/Send call, all frames in one batch
#   pusher FRAMES          one DopplerIngestor/Pusher call, one
#                          EnvelopeData{payload} per frame (dropsonde bytes)
#   stream PATH FRAMES     one client-streaming call to PATH, each frame a
#                          message as it is
#   unary PATH FRAMES      one unary call to PATH with the first frame
#   many N                 N concurrent Sender calls on one channel, call i
#                          sending one log envelope with payload "call-i";
#                          prints "i CODE" per call
import sys

import grpc
import lgrtest


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field1(body):
    """body as field 1 (length-delimited) of a message."""
    return b"\x0a" + varint(len(body)) + body


def ident(b):
    return b


def channel(addr, ca, cert, key):
    opts = [("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
            ("grpc.enable_retries", 0)]
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
    opts.append(("grpc.ssl_target_name_override", "metron"))
    return grpc.secure_channel(addr, creds, options=opts)


def status(call_fn):
    try:
        call_fn()
        return "OK"
    except grpc.RpcError as e:
        sys.stderr.write("grpc_client: %s: %s\n" % (e.code().name,
                                                     e.details()))
        return e.code().name


def main():
    args = sys.argv[1:]
    ca = cert = key = None
    timeout = 10.0
    comp = None
    while args and args[0].startswith("--"):
        if args[0] == "--gzip":
            comp = grpc.Compression.Gzip
            args = args[1:]
            continue
        opt, val = args[0], args[1]
        args = args[2:]
        if opt == "--ca":
            ca = val
        elif opt == "--cert":
            cert = val
        elif opt == "--key":
            key = val
        elif opt == "--timeout":
            timeout = float(val)
        else:
            sys.exit("grpc_client: unknown option %s" % opt)
    addr, mode, rest = args[0], args[1], args[2:]
    ch = channel(addr, ca, cert, key)

    def stream(path, msgs):
        call = ch.stream_unary(path, request_serializer=ident,
                               response_deserializer=ident)
        return status(lambda: call(iter(msgs), timeout=timeout,
                                   compression=comp))

    if mode == "sender":
        print(stream("/loggregator.v2.Ingress/Sender",
                     lgrtest.read_frames(rest[0])))
    elif mode == "batch":
        frames = lgrtest.read_frames(rest[0])
        n = int(rest[1]) if len(rest) > 1 else max(len(frames), 1)
        msgs = [b"".join(field1(b) for b in frames[i:i + n])
                for i in range(0, len(frames), n)]
        print(stream("/loggregator.v2.Ingress/BatchSender", msgs))
    elif mode == "pusher":
        print(stream("/plumbing.DopplerIngestor/Pusher",
                     [field1(b) for b in lgrtest.read_frames(rest[0])]))
    elif mode == "stream":
        print(stream(rest[0], lgrtest.read_frames(rest[1])))
    elif mode in ("send", "unary"):
        if mode == "send":
            path = "/loggregator.v2.Ingress/Send"
            msg = b"".join(field1(b) for b in lgrtest.read_frames(rest[0]))
        else:
            path = rest[0]
            msg = lgrtest.read_frames(rest[1])[0]
        call = ch.unary_unary(path, request_serializer=ident,
                              response_deserializer=ident)
        print(status(lambda: call(msg, timeout=timeout, compression=comp)))
    elif mode == "many":
        n = int(rest[0])
        call = ch.stream_unary("/loggregator.v2.Ingress/Sender",
                               request_serializer=ident,
                               response_deserializer=ident)
        futs = []
        for i in range(n):
            env = lgrtest.envelope_pb2.Envelope(source_id="many")
            env.log.payload = ("call-%d" % i).encode()
            futs.append(call.future(iter([env.SerializeToString()]),
                                    timeout=timeout))
        for i, f in enumerate(futs):
            print("%d %s" % (i, status(f.result)))
    else:
        sys.exit("grpc_client: unknown mode %s" % mode)
    ch.close()


main()
