#!/usr/bin/env python3
"""The table bench/run prints: every figure with its peer from the same run, as a ratio.

Reads DIR/results (core.tsv from benches/core.rs, hyperfine JSON exports, /usr/bin/time -v
outputs) and the machines in DIR (machine.txt, snapshots, text dumps).
"""

import gzip
import json
import os
import statistics
import sys

W = sys.argv[1]
RES = os.path.join(W, "results")
SIZES = ["laptop2", "laptop16", "rack64", "server256"]


def fmt_t(seconds):
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e9:.0f} ns"


def mmm(values):
    """min / median / max of seconds."""
    return " / ".join(fmt_t(v) for v in (min(values), statistics.median(values), max(values)))


def machine(size):
    out = {}
    with open(os.path.join(W, size, "machine.txt")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            out[k] = v if k == "name" else int(v)
    return out


def hyperfine(name):
    with open(os.path.join(RES, f"hf-{name}.json")) as f:
        return [r["times"] for r in json.load(f)["results"]]


rows = []


def row(figure, ours, peer, peer_times, ratio, target, met):
    rows.append((figure, ours, peer, peer_times, ratio, target, "yes" if met else "NO"))


# benches/core.rs: paired in-process figures.
core = []
with open(os.path.join(RES, "core.tsv")) as f:
    for line in f:
        core.append(line.rstrip("\n").split("\t"))
for c in core:
    figure, unit = c[0], c[1]
    a = [float(x) * 1e-9 for x in c[2:5]]
    if c[5]:
        b = [float(x) * 1e-9 for x in c[6:9]]
        ratio = float(c[9])
        row(
            f"{figure} (per {unit})",
            " / ".join(fmt_t(x) for x in a),
            c[5],
            " / ".join(fmt_t(x) for x in b),
            f"{ratio:.2f}x (rounds {float(c[10]):.2f}-{float(c[11]):.2f})",
            c[12],
            ratio <= 1.3,
        )
    elif c[12].startswith("<="):
        limit = float(c[12].split()[1]) * 1e-3
        row(f"{figure}", " / ".join(fmt_t(x) for x in a), "-", "-", "-", c[12], a[1] <= limit)

# MSR capture vs a process per pair.
srv = machine("server256")
pairs = srv["cpus"] * srv["root_msrs"]
ours, od = hyperfine("rdmsr")
ours_pp = [t / pairs for t in ours]
od_pp = [t / 256 for t in od]
r = statistics.median(od_pp) / statistics.median(ours_pp)
row(
    f"MSR capture CLI, {srv['cpus']} CPUs x {srv['root_msrs']} (per pair)",
    mmm(ours_pp),
    "od per pair",
    mmm(od_pp),
    f"{r:.0f}x faster",
    ">= 50x",
    r >= 50,
)

# PCI.
ours, lspci, cap = hyperfine("pci")
r = statistics.median(lspci) / statistics.median(ours)
row(
    f"PCI capture + show, {srv['devices']} devices",
    mmm(ours),
    "lspci -xxxx -vvv",
    mmm(lspci),
    f"{r:.1f}x faster",
    ">= 3x",
    r >= 3,
)
r2 = statistics.median(lspci) / statistics.median(cap)
row(
    f"PCI capture only, {srv['devices']} devices",
    mmm(cap),
    "lspci -xxxx -vvv",
    mmm(lspci),
    f"{r2:.1f}x faster",
    "-",
    True,
)

# diff.
ours, gdiff, sdiff = hyperfine("diff")
r = statistics.median(gdiff) / statistics.median(ours)
row(
    "regdrift diff CLI, server pair (read + parse 2 x "
    f"{os.path.getsize(os.path.join(W, 'server256', 'baseline.json')) / 1e6:.1f} MB)",
    mmm(ours),
    "diff of text dumps",
    mmm(gdiff),
    f"{r:.1f}x faster",
    "<= 150 ms, faster",
    r > 1 and statistics.median(ours) <= 0.150,
)
r = statistics.median(sdiff) / statistics.median(ours)
row(
    "regdrift diff CLI, server pair",
    mmm(ours),
    "diff of show outputs",
    mmm(sdiff),
    f"{r:.1f}x faster",
    "faster",
    r > 1,
)

w = [max(len(str(x[i])) for x in rows + [("figure", "regdrift min / median / max", "peer",
                                          "peer min / median / max", "ratio", "target", "met")])
     for i in range(7)]
head = ("figure", "regdrift min / median / max", "peer", "peer min / median / max", "ratio",
        "target", "met")
print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(head)) + " |")
print("|" + "|".join("-" * (w[i] + 2) for i in range(7)) + "|")
for x in rows:
    print("| " + " | ".join(str(v).ljust(w[i]) for i, v in enumerate(x)) + " |")


# Memory and CPU growth.
with open(os.path.join(RES, "growth.json")) as f:
    growth = json.load(f)
print()
print("Growth (CPU = user + sys, least of 3 runs; RSS = /usr/bin/time -v maximum resident set,")
print("most of 3; units = CPUs x MSRs + devices; capture reads the tree, diff the snapshot pair)")
print()
print("| machine | units | capture CPU | capture RSS | diff CPU | diff RSS "
      "| capture µs/unit | diff µs/unit | diff KB/unit |")
print("|---|---|---|---|---|---|---|---|---|")
per = {}
for size in SIZES:
    m = machine(size)
    cap_units = m["cpus"] * m["root_msrs"] + m["devices"]
    diff_units = m["cpus"] * m["msrs"] + m["devices"]
    t = {}
    for what in ("capture", "diff"):
        runs = growth[size][what]
        t[what] = (min(r["cpu"] for r in runs), max(r["rss"] for r in runs))
    per[size] = (t, cap_units, diff_units)
    print(
        f"| {size} ({m['cpus']} x {m['msrs']}, {m['devices']} dev) | {diff_units} "
        f"| {t['capture'][0] * 1e3:.1f} ms | {t['capture'][1]:.1f} MB "
        f"| {t['diff'][0] * 1e3:.1f} ms | {t['diff'][1]:.1f} MB "
        f"| {t['capture'][0] / cap_units * 1e6:.2f} | {t['diff'][0] / diff_units * 1e6:.2f} "
        f"| {t['diff'][1] * 1024 / diff_units:.2f} |"
    )
(ts, cs, ds), (tl, cl, dl) = per["server256"], per["laptop16"]
print()
print(
    f"laptop16 -> server256: {ds / dl:.1f}x the units; capture CPU "
    f"{ts['capture'][0] / tl['capture'][0]:.1f}x, diff CPU {ts['diff'][0] / tl['diff'][0]:.1f}x, "
    f"capture RSS {ts['capture'][1] / tl['capture'][1]:.1f}x, diff RSS "
    f"{ts['diff'][1] / tl['diff'][1]:.1f}x (peak RSS on the big server: capture "
    f"{ts['capture'][1]:.0f} MB, diff {ts['diff'][1]:.0f} MB)"
)

# Snapshot size.
snap = os.path.join(W, "server256", "baseline.json")
size = os.path.getsize(snap)
dump = os.path.getsize(os.path.join(W, "server256", "baseline.txt"))
with open(snap, "rb") as f:
    data = f.read()
gz = len(gzip.compress(data, 6))
doc = json.loads(data)
config_bytes = sum(d["config"]["len"] for d in doc["pci"]["devices"].values())
stored_hex = sum(len(d["config"]["hex"]) for d in doc["pci"]["devices"].values())
values = sum(len(c["values"]) for c in doc["msr"]["cpus"].values())
raw = values * 12 + config_bytes
print()
print(
    f"Snapshot, server256: {size / 1e6:.1f} MB JSON ({gz / 1e6:.1f} MB gzipped); "
    f"the text dumps (rdmsr lines + lspci -xxxx) {dump / 1e6:.1f} MB = {dump / size:.1f}x; "
    f"raw binary ({values} x 12 bytes + {config_bytes} config bytes) {raw / 1e6:.1f} MB = "
    f"{size / raw:.2f}x of it. Config space: {stored_hex // 2} of {config_bytes} bytes stored "
    f"({100 * stored_hex / 2 / config_bytes:.0f}%: trailing zeros are not written)."
)

# The recording's and the TUI's own figures, as their benches print them.
print()
print("Recording (benches/record.rs):")
with open(os.path.join(RES, "record.txt")) as f:
    for line in f:
        if line.startswith(("hour", "seek", "open", "append")):
            print("  " + line.rstrip())
print("TUI frame render (benches/tui.rs, criterion --quick: [low estimate high]):")
name = ""
with open(os.path.join(RES, "tui.txt")) as f:
    for line in f:
        head, _, t = line.strip().partition("time:")
        if head.strip():
            name = head.strip()
        if t:
            print(f"  {name}: {t.strip()}")
