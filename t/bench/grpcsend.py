# grpcsend: the gRPC load generator for make bench. Sends COUNT envelopes
# in EnvelopeBatch messages of BATCH on one BatchSender stream, to TARGET,
# over mTLS with the certificates in CERTS (or h2c when CERTS is "-").
# The batch is serialized once and sent as bytes, so the client spends
# its time in gRPC's C core, not in Python.
import sys, time
import grpc

target, certs, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, sys.argv[5])
from v2 import envelope_pb2 as pb

b = pb.EnvelopeBatch()
for i in range(batch):
    e = b.batch.add(timestamp=1700000000000000000 + i, source_id="bench-app", instance_id="0")
    e.log.payload = b"x" * 200
    e.tags["source_type"] = "APP/PROC/WEB"
data = b.SerializeToString()

if certs == "-":
    ch = grpc.insecure_channel(target)
else:
    rd = lambda n: open(certs + "/" + n, "rb").read()
    creds = grpc.ssl_channel_credentials(rd("ca.crt"), rd("client.key"), rd("client.crt"))
    ch = grpc.secure_channel(target, creds, options=[("grpc.ssl_target_name_override", "metron")])
send = ch.stream_unary("/loggregator.v2.Ingress/BatchSender",
                       request_serializer=lambda m: m, response_deserializer=lambda m: m)
n = count // batch
t0 = time.monotonic()
send(data for _ in range(n))
print(n * batch, time.monotonic() - t0)
