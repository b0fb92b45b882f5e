# listen.py: a stream listener on loopback for lgr-route's unix: and tcp:
# sinks. It records every byte each connection brings, in the order they
# come, so a test can compare them with the frames it sent.
#
#   listen.py (--unix PATH | --tcp HOST:PORT) --out FILE [--hold] [--later]
#
# --unix PATH   listen on a unix stream socket at PATH
# --tcp ADDR    listen on HOST:PORT (port 0: any free port)
# --out FILE    append the bytes of every connection to FILE
# --hold        accept connections but never read from them: a peer that
#               takes nothing, so its sender's socket buffer fills
# --later       bind, print the port, and only listen once SIGUSR1 comes:
#               until then a TCP connect is refused (a bound socket that
#               does not listen answers with a reset) and a unix connect
#               finds no socket, as when the listener is down
#
# Once bound it prints the port on stdout, alone on a line (0 for unix).
# On stderr, one line per event: listening, each connection accepted and
# closed (with its byte count). SIGTERM stops it (exit 0).
import argparse
import os
import signal
import socket
import sys
import threading

PROG = "listen"


def log(fields):
    sys.stderr.write("%s: level=info %s\n" % (PROG, fields))
    sys.stderr.flush()


def main():
    p = argparse.ArgumentParser(prog=PROG)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--unix")
    g.add_argument("--tcp")
    p.add_argument("--out", required=True)
    p.add_argument("--hold", action="store_true")
    p.add_argument("--later", action="store_true")
    a = p.parse_args()

    stop = threading.Event()
    go = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: go.set())

    if a.unix:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        port = 0
    else:
        host, _, port = a.tcp.rpartition(":")
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, int(port)))
        port = srv.getsockname()[1]
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()
    if a.later:
        log("event=waiting")
        while not go.wait(0.05):
            if stop.is_set():
                return
    if a.unix:
        srv.bind(a.unix)
    srv.listen(16)
    srv.settimeout(0.05)
    log("event=listening addr=%s" % (a.unix or "%s:%d" % (host, port)))

    out = open(a.out, "ab")
    lock = threading.Lock()
    held = []
    threads = []
    count = [0]

    def serve(conn, n):
        total = 0
        conn.settimeout(0.05)
        while not stop.is_set():
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            total += len(data)
            with lock:
                out.write(data)
                out.flush()
        conn.close()
        log("event=closed conn=%d bytes=%d" % (n, total))

    while not stop.is_set():
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        count[0] += 1
        log("event=accepted conn=%d" % count[0])
        if a.hold:
            held.append(conn)
            continue
        t = threading.Thread(target=serve, args=(conn, count[0]))
        t.start()
        threads.append(t)
    srv.close()
    for t in threads:
        t.join()
    if a.unix:
        os.unlink(a.unix)
    for c in held:
        c.close()
    log("event=stop")


if __name__ == "__main__":
    main()
