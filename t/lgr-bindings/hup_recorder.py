#!/usr/bin/python3
"""hup_recorder.py PIDFILE LOG: writes its pid to PIDFILE, then appends
one line "hup" to LOG for every SIGHUP until SIGTERM."""
import os
import signal
import sys

log = sys.argv[2]


def hup(signo, frame):
    with open(log, "a") as f:
        f.write("hup\n")


signal.signal(signal.SIGHUP, hup)
signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
open(log, "a").close()
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(tmp, sys.argv[1])
while True:
    signal.pause()
