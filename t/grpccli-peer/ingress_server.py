#!/usr/bin/python3
# ingress_server.py: a loggregator.v2.Ingress server on python3-grpcio,
# the peer lgr's gRPC clients are tested against (lib/grpccli, lgr-route's
# grpc:// sinks, metron). It serves BatchSender, Sender and Send with
# generic handlers, so each message arrives as the bytes the client sent.
#
#   ingress_server.py [--listen HOST:PORT] [--certs DIR [--name NAME]]
#                     [--out FILE] [--frames FILE] [--fail-after N]
#
# --listen        where to listen (default 127.0.0.1:0, any free port)
# --certs DIR     serve mTLS with the files lgr-certs made in DIR:
#                 NAME.crt and NAME.key, and client certificates must be
#                 signed by DIR/ca.crt
# --name NAME     the server certificate's name (default doppler)
# --out FILE      append each envelope received as one JSON line: the
#                 json_format form with the .proto field names and unset
#                 fields as their zero values, keys sorted, no spaces (the
#                 same as `decode --json` in t/lib.bash)
# --frames FILE   append each envelope's bytes, as received, as a frame
#                 (4-byte big-endian length, then the bytes)
# --fail-after N  end every Sender and BatchSender call with UNAVAILABLE
#                 once it has brought N messages
#
# When it listens it prints the port on stdout, alone on a line. On
# stderr, one line per event: listening, each message (method, envelopes
# in it), each call's end. SIGTERM stops it (exit 0). Keepalive is
# enforced as Loggregator's Go servers do: client pings no more often
# than every 10 s, with or without calls.
#
# The protobuf modules are made with protoc from share/proto into a
# temporary directory at start.
import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from concurrent import futures

import grpc

PROG = "ingress_server"
HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "..", "share", "proto")


def log(level, fields):
    sys.stderr.write("%s: level=%s %s\n" % (PROG, level, fields))
    sys.stderr.flush()


def varint(data, off):
    """(value, new offset) of the varint at data[off:]."""
    v = shift = 0
    while True:
        if off >= len(data) or shift > 63:
            raise ValueError("bad varint at %d" % off)
        b = data[off]
        off += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, off
        shift += 7


def batch_envelopes(msg):
    """The bytes of each envelope in an EnvelopeBatch (repeated field 1),
    as they are on the wire; other fields are skipped."""
    out, off = [], 0
    while off < len(msg):
        key, off = varint(msg, off)
        num, wire = key >> 3, key & 7
        if wire == 0:
            _, off = varint(msg, off)
        elif wire == 1:
            off += 8
        elif wire == 5:
            off += 4
        elif wire == 2:
            n, off = varint(msg, off)
            if off + n > len(msg):
                raise ValueError("field %d runs past the end" % num)
            if num == 1:
                out.append(msg[off:off + n])
            off += n
        else:
            raise ValueError("wire type %d" % wire)
        if off > len(msg):
            raise ValueError("field %d runs past the end" % num)
    return out


class Recorder:
    def __init__(self, out, frames, envelope_cls, json_format):
        self.lock = threading.Lock()
        self.out = open(out, "a") if out else None
        self.frames = open(frames, "ab") if frames else None
        self.envelope_cls = envelope_cls
        self.json_format = json_format

    def record(self, method, envs):
        lines = []
        for raw in envs:
            env = self.envelope_cls.FromString(raw)
            d = self.json_format.MessageToDict(
                env, preserving_proto_field_name=True,
                including_default_value_fields=True)
            lines.append(json.dumps(d, sort_keys=True,
                                    separators=(",", ":")) + "\n")
        with self.lock:
            if self.frames:
                for raw in envs:
                    self.frames.write(struct.pack(">I", len(raw)) + raw)
                self.frames.flush()
            if self.out:
                self.out.write("".join(lines))
                self.out.flush()
            log("info", "event=message method=%s size=%d" %
                (method, len(envs)))


def main():
    p = argparse.ArgumentParser(prog=PROG)
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--certs")
    p.add_argument("--name", default="doppler")
    p.add_argument("--out")
    p.add_argument("--frames")
    p.add_argument("--fail-after", type=int, default=0)
    a = p.parse_args()

    pb = tempfile.mkdtemp(prefix="ingress_server.")
    try:
        subprocess.run(["protoc", "--python_out=" + pb, "-I", PROTO,
                        "v2/envelope.proto", "v2/ingress.proto"], check=True)
        sys.path.insert(0, pb)
        from google.protobuf import json_format
        from v2 import envelope_pb2
        serve(a, Recorder(a.out, a.frames, envelope_pb2.Envelope,
                          json_format))
    finally:
        shutil.rmtree(pb, ignore_errors=True)


def serve(a, rec):
    def stream_call(method, split):
        def handler(requests, context):
            n = 0
            try:
                for msg in requests:
                    n += 1
                    try:
                        envs = split(msg)
                        rec.record(method, envs)
                    except Exception as e:  # a bad message ends the call
                        log("warn", "event=bad_message method=%s error=\"%s\""
                            % (method, e))
                        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                      "bad message: %s" % e)
                    if a.fail_after and n >= a.fail_after:
                        log("info", "event=call_failed method=%s messages=%d"
                            % (method, n))
                        context.abort(grpc.StatusCode.UNAVAILABLE,
                                      "failing after %d messages" % n)
            finally:
                log("info", "event=call_end method=%s messages=%d" %
                    (method, n))
            return b""
        return handler

    def send(request, context):
        try:
            envs = batch_envelopes(request)
            rec.record("Send", envs)
        except Exception as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "bad message: %s" % e)
        return b""

    handlers = {
        "BatchSender": grpc.stream_unary_rpc_method_handler(
            stream_call("BatchSender", batch_envelopes)),
        "Sender": grpc.stream_unary_rpc_method_handler(
            stream_call("Sender", lambda m: [m])),
        "Send": grpc.unary_unary_rpc_method_handler(send),
    }
    opts = [
        ("grpc.max_receive_message_length", 10 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
        # Loggregator's servers: pings at most every 10 s, calls or not.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10000),
        ("grpc.http2.max_ping_strikes", 2),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                         options=opts)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "loggregator.v2.Ingress", handlers),))
    if a.certs:
        def read(name):
            with open(os.path.join(a.certs, name), "rb") as f:
                return f.read()
        creds = grpc.ssl_server_credentials(
            [(read(a.name + ".key"), read(a.name + ".crt"))],
            root_certificates=read("ca.crt"), require_client_auth=True)
        port = server.add_secure_port(a.listen, creds)
    else:
        port = server.add_insecure_port(a.listen)
    if port == 0:
        log("error", "event=listen_failed addr=%s" % a.listen)
        sys.exit(1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    log("info", "event=listening addr=%s:%d tls=%s" %
        (a.listen.rpartition(":")[0], port, "yes" if a.certs else "no"))
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()
    stop.wait()
    server.stop(1).wait()
    log("info", "event=stop")


if __name__ == "__main__":
    main()
