# udpsend.py ADDR FRAMES: send each frame's bytes as one UDP datagram to
# ADDR (HOST:PORT), in order.
import socket
import sys

import lgrtest

host, port = lgrtest.host_port(sys.argv[1])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
for body in lgrtest.read_frames(sys.argv[2]):
    s.sendto(body, (host, port))
s.close()
