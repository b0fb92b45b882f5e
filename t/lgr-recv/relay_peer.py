# relay_peer.py SOCKET DIR MODE ARGS...: a stand-in for lgr-ws's relay
# socket (see src/lib/relay.h). Listens on the unix socket SOCKET, writes
# DIR/ready once listening, and serves each connection in its own thread:
# reads frame(path) and frame(request), logs "open K PATH REQUEST_HEX" to
# DIR/events (K counts connections from 1), then answers as MODE says.
# Every response message sent on connection K is also written, as a frame,
# to DIR/sent.K; what happens at the end is logged to DIR/events as
# "done K", "eof K" (lgr-recv closed its side), "blocked K BYTES" and so on.
#
# Modes:
#   stream N SIZE        "0 ", N messages of SIZE bytes, then close (OK)
#   reject CODE TEXT     "CODE TEXT", then close
#   late N CODE TEXT     "0 ", N messages, then 0xff "CODE TEXT", close
#   cut N                "0 ", N messages, then half a frame, close
#   big SIZE             "0 ", then a frame header announcing SIZE bytes
#                        and 64 KiB of them; waits for lgr-recv to close
#   badstatus            a first frame that is not a status, then waits
#   close                closes the connection without an answer
#   hold N               "0 ", N messages, then waits for lgr-recv to
#                        close: logs "eof K", or "open-still K" after 30 s
#   flood SIZE SECONDS   "0 ", then messages of SIZE bytes as fast as the
#                        socket takes them, until lgr-recv closes ("eof K")
#                        or 512 MiB went ("unblocked K BYTES" unless it
#                        blocked); the first time the socket stays full
#                        for SECONDS, logs "blocked K BYTES" (bytes of
#                        messages sent so far) and goes on
#   silent               reads the request, never answers, waits as hold
import os
import select
import socket
import struct
import sys
import threading

HOLD_SECONDS = 30
FLOOD_LIMIT = 512 << 20

lock = threading.Lock()


def log(d, line):
    with lock:
        with open(os.path.join(d, "events"), "a") as f:
            f.write(line + "\n")


def read_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            raise EOFError("connection ended after %d of %d bytes" %
                           (len(buf), n))
        buf += b
    return bytes(buf)


def read_frame(s):
    (n,) = struct.unpack(">I", read_exact(s, 4))
    return read_exact(s, n)


def frame(body):
    return struct.pack(">I", len(body)) + body


def message(i, size):
    head = b"%d:" % i
    fill = bytes((i + j) & 0xFF for j in range(256))
    body = head + fill * (size // 256 + 1)
    return body[:max(size, len(head))]


def wait_eof(s, d, k):
    s.settimeout(HOLD_SECONDS)
    try:
        while s.recv(4096):
            pass
        log(d, "eof %d" % k)
    except socket.timeout:
        log(d, "open-still %d" % k)
    except OSError as e:
        log(d, "eof %d %s" % (k, e.strerror))


def send_messages(s, sent, n, size):
    for i in range(n):
        m = message(i, size)
        sent.write(frame(m))
        sent.flush()
        s.sendall(frame(m))


def serve(s, d, k, mode, args):
    try:
        path = read_frame(s)
        req = read_frame(s)
    except (EOFError, OSError) as e:
        log(d, "bad %d %s" % (k, e))
        s.close()
        return
    log(d, "open %d %s %s" % (k, path.decode(), req.hex()))
    with open(os.path.join(d, "sent.%d" % k), "wb") as sent:
        try:
            answer(s, d, k, mode, args, sent)
        except OSError as e:
            log(d, "error %d %s" % (k, e.strerror))
        finally:
            s.close()


def answer(s, d, k, mode, args, sent):
    if mode == "reject":
        s.sendall(frame(("%s %s" % (args[0], args[1])).encode()))
        log(d, "done %d" % k)
        return
    if mode == "close":
        log(d, "done %d" % k)
        return
    if mode == "silent":
        wait_eof(s, d, k)
        return
    if mode == "badstatus":
        s.sendall(frame(b"\x0a\x03abc"))
        wait_eof(s, d, k)
        return
    s.sendall(frame(b"0 "))
    if mode == "stream":
        send_messages(s, sent, int(args[0]), int(args[1]))
        log(d, "done %d" % k)
    elif mode == "late":
        send_messages(s, sent, int(args[0]), 100)
        s.sendall(frame(b"\xff" + ("%s %s" % (args[1], args[2])).encode()))
        log(d, "done %d" % k)
    elif mode == "cut":
        send_messages(s, sent, int(args[0]), 100)
        s.sendall(frame(b"x" * 100)[:50])
        log(d, "done %d" % k)
    elif mode == "big":
        s.sendall(struct.pack(">I", int(args[0])) + b"y" * 65536)
        wait_eof(s, d, k)
    elif mode == "hold":
        send_messages(s, sent, int(args[0]), 100)
        log(d, "sent %d" % k)
        wait_eof(s, d, k)
    elif mode == "flood":
        flood(s, d, k, int(args[0]), float(args[1]))
    else:
        log(d, "unknown-mode %d %s" % (k, mode))


def flood(s, d, k, size, seconds):
    """Messages as fast as s takes them; log once when s stays full for
    seconds. Ends when lgr-recv closes (logs "eof K") or at FLOOD_LIMIT
    (logs "unblocked K BYTES" unless it blocked, then waits as hold)."""
    total, i, blocked = 0, 0, False
    s.setblocking(False)
    while total < FLOOD_LIMIT:
        buf = memoryview(frame(message(i, size)))
        while buf:
            _, w, _ = select.select([], [s], [], 60 if blocked else seconds)
            if not w:
                if blocked:
                    log(d, "stuck %d %d" % (k, total))
                    return
                log(d, "blocked %d %d" % (k, total))
                blocked = True
                continue
            try:
                buf = buf[s.send(buf):]
            except BlockingIOError:
                continue
            except OSError:
                log(d, "eof %d" % k)
                return
        total += size
        i += 1
    if not blocked:
        log(d, "unblocked %d %d" % (k, total))
    s.setblocking(True)
    wait_eof(s, d, k)


def main():
    path, d, mode, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(64)
    open(os.path.join(d, "ready"), "w").close()
    k = 0
    while True:
        s, _ = ls.accept()
        k += 1
        threading.Thread(target=serve, args=(s, d, k, mode, args),
                         daemon=True).start()


main()
