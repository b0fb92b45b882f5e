"""egresscount.py ADDR CERTS N TIMEOUT PBDIR: one v2 BatchedReceiver
client (mTLS, name doppler) that counts envelopes, without decoding them
past the batch, until N have come or TIMEOUT seconds pass; prints the
count and the seconds."""
import sys
import time

import grpc


def count_batch(b):
    """Envelopes in an EnvelopeBatch: field 1 entries, read from the bytes."""
    n = i = 0
    while i < len(b):
        tag = b[i]
        i += 1
        ln = shift = 0
        while True:
            c = b[i]
            i += 1
            ln |= (c & 0x7f) << shift
            shift += 7
            if c < 0x80:
                break
        i += ln
        n += tag == 0x0a
    return n


def main():
    addr, certs, want, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    rd = lambda f: open(f"{certs}/{f}", "rb").read()
    creds = grpc.ssl_channel_credentials(rd("ca.crt"), rd("client.key"), rd("client.crt"))
    ch = grpc.secure_channel(addr, creds, options=[
        ("grpc.ssl_target_name_override", "doppler"),
        ("grpc.max_receive_message_length", 16 << 20)])
    # EgressBatchRequest{selectors: [Selector{log: {}}]}
    req = bytes([0x22, 0x02, 0x12, 0x00])
    call = ch.unary_stream("/loggregator.v2.Egress/BatchedReceiver",
                           request_serializer=lambda m: m,
                           response_deserializer=lambda b: b)(req, timeout=timeout)
    got, t0 = 0, time.monotonic()
    try:
        for b in call:
            got += count_batch(b)
            if got >= want:
                break
    except grpc.RpcError:
        pass
    call.cancel()
    print(got, "%.3f" % (time.monotonic() - t0))


main()
