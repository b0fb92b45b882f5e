# golden.py FILE FN DIR: from the golden vectors in FILE (one JSON record
# a line: set, case, fn, in, params, out, ...), take the records whose fn
# contains FN and write, in file order:
#   DIR/in.frames    each record's input bytes (hex "in") as one frame
#   DIR/want.frames  each record's outputs ("out", hex) as frames
#   DIR/cases        "CASE NOUT PARAMS" per record, PARAMS as K=V,...
import json
import os
import sys

import lgrtest

path, fn, outdir = sys.argv[1:4]
os.makedirs(outdir, exist_ok=True)
with open(path) as f, \
        open(os.path.join(outdir, "in.frames"), "wb") as fin, \
        open(os.path.join(outdir, "want.frames"), "wb") as fout, \
        open(os.path.join(outdir, "cases"), "w") as fcases:
    for line in f:
        rec = json.loads(line)
        if fn not in rec["fn"]:
            continue
        lgrtest.write_frame(fin, bytes.fromhex(rec["in"]))
        outs = rec.get("out") or []
        for o in outs:
            lgrtest.write_frame(fout, bytes.fromhex(o))
        params = ",".join("%s=%s" % kv for kv in
                          sorted((rec.get("params") or {}).items()))
        fcases.write("%s %d %s\n" % (rec["case"], len(outs), params or "-"))
