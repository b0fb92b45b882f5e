# egress_client.py [OPTIONS] ADDR PATH REQUEST_HEX OUT: one server-streaming
# call to PATH (an egress method: /loggregator.v2.Egress/BatchedReceiver,
# ...) with python3-grpcio, sending the request message REQUEST_HEX as it
# is. Each response message is written to the file OUT as a frame, as it
# came; the call's status code name (OK, UNAVAILABLE, ...) is printed on
# stdout and its details on stderr. Exits 0 when the call was made,
# whatever its status.
#
# Options:
#   --ca FILE          use TLS, trusting the CA in FILE (server name metron)
#   --cert FILE --key FILE   and present this client certificate
#   --timeout SECONDS  deadline of the call (default 20)
#   --cancel-after K   cancel the call after K messages; prints CANCELLED
#   --stall FILE K     after the first message read nothing until FILE
#                      exists (60 s at most), then read K more messages
#                      and cancel; prints "resumed", then CANCELLED
import os
import sys
import time

import grpc
import lgrtest


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


def wait_file(path, seconds):
    end = time.monotonic() + seconds
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.05)


def main():
    args = sys.argv[1:]
    ca = cert = key = stall = None
    timeout, cancel_after, more = 20.0, None, 0
    while args and args[0].startswith("--"):
        opt = args[0]
        if opt == "--ca":
            ca, args = args[1], args[2:]
        elif opt == "--cert":
            cert, args = args[1], args[2:]
        elif opt == "--key":
            key, args = args[1], args[2:]
        elif opt == "--timeout":
            timeout, args = float(args[1]), args[2:]
        elif opt == "--cancel-after":
            cancel_after, args = int(args[1]), args[2:]
        elif opt == "--stall":
            stall, more, args = args[1], int(args[2]), args[3:]
        else:
            sys.exit("egress_client: unknown option %s" % opt)
    addr, path, req, out = args
    ch = channel(addr, ca, cert, key)
    call = ch.unary_stream(path, request_serializer=ident,
                           response_deserializer=ident)
    it = call(bytes.fromhex(req), timeout=timeout)
    n = 0
    with open(out, "wb") as f:
        try:
            for m in it:
                lgrtest.write_frame(f, m)
                f.flush()
                n += 1
                if stall is not None and n == 1:
                    wait_file(stall, 60)
                    print("resumed", flush=True)
                if stall is not None and n == 1 + more:
                    it.cancel()
                if cancel_after is not None and n == cancel_after:
                    it.cancel()
        except grpc.RpcError:
            pass
    sys.stderr.write("egress_client: %s: %s (%d messages)\n" %
                     (it.code().name, it.details(), n))
    print(it.code().name)
    ch.close()


main()
