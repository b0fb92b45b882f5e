#!/usr/bin/python3
"""gen_bindings.py APPS DRAINS JSON EXPECTED: a v5 binding list of APPS
apps with DRAINS drains each (some shared between apps) into JSON, and
the source_id lines lgr-bindings should write, sorted, into EXPECTED."""
import json
import sys

apps, drains = int(sys.argv[1]), int(sys.argv[2])
by_url = {}
lines = []
for a in range(apps):
    app_id = "app-%05d" % a
    for d in range(drains):
        # Every tenth app shares its drains with the app before it.
        owner = a - 1 if a % 10 == 9 else a
        url = "syslog://127.0.0.1:%d/?n=%d" % (1000 + owner % 60000, d)
        by_url.setdefault(url, []).append(
            {"hostname": "org.space.%s" % app_id, "app_id": app_id})
    kept = sorted(set("syslog://127.0.0.1:%d/?n=%d" %
                      (1000 + (a - 1 if a % 10 == 9 else a) % 60000, d)
                      for d in range(drains)))[:5]
    lines += ["source_id=%s %s" % (app_id, u) for u in kept]
out = [{"url": u, "credentials": [{"cert": "", "key": "", "ca": "",
                                   "apps": apps_}]}
       for u, apps_ in by_url.items()]
with open(sys.argv[3], "w") as f:
    json.dump(out, f)
with open(sys.argv[4], "w") as f:
    f.write("".join(l + "\n" for l in sorted(lines)))
