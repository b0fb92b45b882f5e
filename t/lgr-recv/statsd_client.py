# statsd_client.py ADDR PREFIX < CALLS: python3-statsd's StatsClient for
# ADDR (HOST:PORT) with PREFIX, running each line of CALLS as Python with
# the client named c, e.g. `c.incr("requests", 2, rate=0.5)`.
#
# The client samples: with rate < 1 it sends only when random.random() is
# at most the rate. Here random.random() is always 0, so every call is sent
# (with its "|@rate"), and the values the server computes are known.
import random
import sys

import statsd

import lgrtest

random.random = lambda: 0.0
host, port = lgrtest.host_port(sys.argv[1])
c = statsd.StatsClient(host, port, prefix=sys.argv[2])
for line in sys.stdin:
    if line.strip():
        exec(line, {"c": c})
c.close()
