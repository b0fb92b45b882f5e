# dropsonde: write one marshalled dropsonde LogMessage envelope (the UDP
# datagram an app's logs arrive as) to stdout, for make bench.
import sys
sys.path.insert(0, sys.argv[1])
from events import dropsonde_pb2 as d
e = d.Envelope(origin="rep", eventType=d.Envelope.LogMessage, timestamp=1700000000000000000)
m = e.logMessage
m.message = b"x" * 200
m.message_type = d.LogMessage.OUT
m.timestamp = 1700000000000000000
m.app_id = "6f2e4d1c-1b2a-4c3d-9e8f-0a1b2c3d4e5f"
m.source_type = "APP/PROC/WEB"
m.source_instance = "0"
sys.stdout.buffer.write(e.SerializeToString())
