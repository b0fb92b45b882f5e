# ws_client.py URL OUT [options]: a websocket client of lgr-ws (Debian's
# python3-websockets), as `cf logs` and firehose nozzles are. Every
# message it gets is appended to OUT as a frame (4-byte big-endian length,
# then the bytes), so t/lgr-ws/grpc_check.py can check it. It reads until
# the server closes, and prints one line a step on stdout:
#
#   open                      the handshake is done (flushed at once)
#   http STATUS [K: V]...     the server refused the handshake
#   closed code=C reason=R count=N
#   timeout count=N           --timeout passed first (exit 1)
#
#   --header K:V      an extra request header (repeatable)
#   --stall S         after the handshake, read nothing for S seconds
#                     (the library stops reading the socket once its small
#                     queue is full: a consumer that stops reading)
#   --send-big N      after the handshake, send one binary message of N bytes
#   --max N           close (code 1000) after N messages
#   --no-pong         never answer the server's pings
#   --rcvbuf N        the socket's receive buffer (with --stall: a small
#                     one makes the server's writes block sooner)
#   --ca FILE         trust this CA for wss:// URLs
#   --timeout S       give up after S seconds (default 30)
import argparse
import asyncio
import socket
import ssl
import struct
import sys

import websockets


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run(a):
    headers = []
    for h in a.header:
        k, _, v = h.partition(":")
        headers.append((k.strip(), v.strip()))
    kw = dict(extra_headers=headers, max_size=16 << 20, ping_interval=None,
              close_timeout=2, open_timeout=10)
    if a.stall:
        kw.update(max_queue=1, read_limit=4096, write_limit=4096)
    if a.ca:
        kw["ssl"] = ssl.create_default_context(cafile=a.ca)
    if a.rcvbuf:
        host, _, port = a.url.split("/")[2].rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
        sock.connect((host.strip("[]"), int(port)))
        kw["sock"] = sock
    try:
        ws = await websockets.connect(a.url, **kw)
    except websockets.exceptions.InvalidStatusCode as e:
        hs = getattr(e, "headers", None) or {}
        extra = ["%s: %s" % (k, hs[k]) for k in ("WWW-Authenticate",
                                                 "Sec-Websocket-Version")
                 if k in hs]
        say(" ".join(["http %d" % e.status_code] + extra))
        return 0
    if a.no_pong:
        # The protocol object answers pings as it reads them; drop them.
        ws.pong = lambda data=b"": asyncio.sleep(0)
    say("open")
    count = 0
    with open(a.out, "ab") as out:
        try:
            if a.send_big:
                await ws.send(b"x" * a.send_big)
            if a.stall:
                await asyncio.sleep(a.stall)
            while True:
                msg = await ws.recv()
                if isinstance(msg, str):
                    msg = msg.encode()
                out.write(struct.pack(">I", len(msg)) + msg)
                out.flush()
                count += 1
                if a.max and count >= a.max:
                    await ws.close(1000)
        except websockets.exceptions.ConnectionClosed as e:
            rcvd = getattr(e, "rcvd", None)
            code = rcvd.code if rcvd is not None else 1006
            reason = rcvd.reason if rcvd is not None else ""
            say("closed code=%d reason=%s count=%d" % (code, reason, count))
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("out")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--stall", type=float, default=0)
    p.add_argument("--send-big", type=int, default=0)
    p.add_argument("--max", type=int, default=0)
    p.add_argument("--no-pong", action="store_true")
    p.add_argument("--rcvbuf", type=int, default=0)
    p.add_argument("--ca")
    p.add_argument("--timeout", type=float, default=30)
    a = p.parse_args()
    try:
        return asyncio.run(asyncio.wait_for(run(a), a.timeout))
    except asyncio.TimeoutError:
        say("timeout")
        return 1


sys.exit(main())
