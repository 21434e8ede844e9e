#!/usr/bin/env python3
"""Peak memory and CPU of `regdrift capture` and `regdrift diff` on each machine size.

Each command runs under `/usr/bin/time -v` (its maximum resident set size); the CPU time
(user + system) comes from wait4's resource usage, in microseconds rather than the
hundredths /usr/bin/time prints. Writes DIR/results/growth.json.

    bench/growth.py REGDRIFT DIR laptop2 laptop16 rack64 server256
"""

import json
import os
import subprocess
import sys
import tempfile
import time

regdrift, W, sizes = sys.argv[1], sys.argv[2], sys.argv[3:]
RUNS = 3


def run(cmd):
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        start = time.perf_counter()
        p = subprocess.Popen(["/usr/bin/time", "-v", "-o", tf.name, *cmd],
                             stdout=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            sys.exit(f"bench/growth.py: {' '.join(cmd)} exited with {code}")
        rss = None
        for line in tf.read().splitlines():
            if "Maximum resident set size" in line:
                rss = int(line.rsplit(":", 1)[1]) / 1024
        return {"cpu": ru.ru_utime + ru.ru_stime, "rss": rss, "wall": wall}


out = {}
for size in sizes:
    d = os.path.join(W, size)
    with open(os.path.join(d, "root-msrs.txt")) as f:
        msrs = f.read().strip()
    cmds = {
        "capture": [regdrift, "capture", "--msrs", msrs, "--root",
                    os.path.join(d, "root-current"), "-o", "/dev/null"],
        "diff": [regdrift, "diff", os.path.join(d, "baseline.json"),
                 os.path.join(d, "current.json"), "-o", "/dev/null"],
    }
    out[size] = {what: [run(cmd) for _ in range(RUNS)] for what, cmd in cmds.items()}
    print(f"{size}: done")
with open(os.path.join(W, "results", "growth.json"), "w") as f:
    json.dump(out, f, indent=1)
