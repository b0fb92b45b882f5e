# hostile.py MODE HOST PORT ...: clients that misbehave, for lgr-ws's HTTP
# side. Each prints one line of what happened.
#
#   conns N HOLD      open N TCP connections, print "opened N" once all are
#                     connected, hold them HOLD seconds (or until killed)
#   raw TEXT          send TEXT (with \r \n escapes) and print the status
#                     line the server answers, or "closed" if it closes
#                     without one (5 s at most)
#   head TEXT         send TEXT and print the answer's head, one header a
#                     line, without the CRs
#   half HOLD         send the start of a request, never its end; hold
import socket
import sys
import time


def answer(s):
    s.settimeout(5)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return "timeout"
    if not data:
        return "closed"
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    args = sys.argv[4:]
    if mode == "conns":
        n, hold = int(args[0]), float(args[1])
        socks = []
        for _ in range(n):
            s = socket.create_connection((host, port), timeout=5)
            socks.append(s)
        print("opened %d" % len(socks), flush=True)
        time.sleep(hold)
        for s in socks:
            s.close()
        return 0
    if mode == "raw":
        text = args[0].encode("latin-1").decode("unicode_escape")
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(text.encode("latin-1"))
        print(answer(s), flush=True)
        return 0
    if mode == "head":
        text = args[0].encode("latin-1").decode("unicode_escape")
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(text.encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        print(head.replace("\r\n", "\n"), flush=True)
        return 0
    if mode == "half":
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b"GET /v2/read?log HTTP/1.1\r\nHost: x\r\nAccept: ")
        print("sent", flush=True)
        time.sleep(float(args[0]))
        return 0
    sys.exit("hostile: unknown mode %s" % mode)


sys.exit(main())
