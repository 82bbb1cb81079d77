#!/usr/bin/env python3
"""Issue 3's ratio tables, ours against ggml, from one command.

Runs `cargo bench --bench kernels -- FILTERS` once per tier (forced with LLAVA_CPU), parses
divan's output and prints Markdown tables: vec_dot per type; matmul per type, shape, n and
threads with ratio = ggml time / our time (above 1: we are faster); n = 1 from DRAM in GB/s
against the bandwidth probe of the same run. ggml's cases run again in every tier's run, so
each ratio compares two figures of the same run.

    tools/kernel_ratios.py                                # avx512 and avx2, n = 1 and 512
    tools/kernel_ratios.py --tiers avx512 --filters matmul_n1 vec_dot
    tools/kernel_ratios.py --filters matmul_n512 --full   # every type at n = 512
    tools/kernel_ratios.py --filters dram memory_bandwidth
    tools/kernel_ratios.py --bin /tmp/kernels-main --filters vec_dot_4096   # a saved binary

The machine should be idle: `uptime` is printed before and after each run.
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
RATE_UNITS = {"B/s": 1e-9, "KB/s": 1e-6, "MB/s": 1e-3, "GB/s": 1.0, "TB/s": 1e3,
              "KiB/s": 1.024e-6, "MiB/s": 1.048576e-3, "GiB/s": 1.073741824, "TiB/s": 1099.511627776}
STATS = ["fastest", "slowest", "median", "mean"]
# A divan row: tree prefix, name, then four "value unit" columns separated by │.
ROW = re.compile(r"^[│ ]*[├╰]─ (?P<name>.+?)\s{2,}(?P<cols>\S.*)$")
TOP = re.compile(r"^[├╰]─ (?P<group>\w+)")
CASE = re.compile(r"^(?P<ty>\w+) (?P<rows>\d+)x(?P<k>\d+) n=(?P<n>\d+) t=(?P<t>\d+) "
                  r"(?P<who>\S+)(?P<dots> dots)?$")
RATE = re.compile(r"([\d.]+) ([KMGT]?i?B/s)")


def sh(cmd, env=None):
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-4000:]}")
    return out.stdout


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def columns(text, units):
    """The four statistics of a divan row, converted with `units`."""
    values = []
    for cell in text.split("│")[:4]:
        parts = cell.split()
        if len(parts) < 2 or parts[1] not in units:
            return None
        values.append(float(parts[0]) * units[parts[1]])
    return dict(zip(STATS, values)) if len(values) == 4 else None


def parse(text):
    """{(group, case name): {"time": stats in s, "rate": stats in GB/s}} from divan's tree."""
    out, group, last = {}, None, None
    for line in text.splitlines():
        top = TOP.match(line)
        if top:
            group, last = top.group("group"), None
            continue
        row = ROW.match(line)
        if row and group:
            stats = columns(row.group("cols"), UNITS)
            if stats:
                last = (group, row.group("name").strip())
                out[last] = {"time": stats}
            continue
        # The throughput line under a row has no name, only its four rates.
        cells = RATE.findall(line)
        if last and len(cells) >= 4:
            out[last]["rate"] = dict(zip(STATS, (float(v) * RATE_UNITS[u] for v, u in cells[:4])))
        last = None
    return out


def fmt_time(s):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.4g} {unit}"
    return f"{s / 1e-9:.4g} ns"


def run_tier(tier, filters, full, raw, binary=None):
    env = dict(os.environ, LLAVA_CPU=tier)
    if full:
        env["LLAVA_BENCH_FULL"] = "1"
    else:
        env.pop("LLAVA_BENCH_FULL", None)
    before = uptime()
    cmd = [binary, "--bench"] if binary else ["cargo", "bench", "--bench", "kernels", "--"]
    text = sh([*cmd, *filters], env)
    if raw:
        Path(f"{raw}.{tier}.txt").write_text(text)
    return parse(text), before, uptime()


def matmul_rows(results, tier, stat):
    """(type, shape, n, t, ours, ggml, ratio) for every case with both figures."""
    ours, theirs = {}, {}
    for (group, name), r in results.items():
        m = CASE.match(name)
        if not m or not group.startswith("matmul_") or m.group("dots"):
            continue
        kind = group.rsplit("_", 1)[0]  # matmul_n1, matmul_n512, matmul_dram, matmul_clip
        key = (kind, m.group("ty"), f"{m.group('rows')}×{m.group('k')}", int(m.group("n")),
               int(m.group("t")))
        (theirs if m.group("who") == "ggml" else ours)[key] = r
    rows = []
    def order(key):
        rows, k = (int(v) for v in key[2].split("×"))
        # Issue 3's order: 4096×4096, 11008×4096, 4096×11008; then threads.
        return (key[0], key[3], key[1], rows * k, -rows, key[4])

    for key in sorted(ours, key=order):
        if key in theirs:
            a, b = ours[key]["time"][stat], theirs[key]["time"][stat]
            rows.append((key, a, b, b / a, ours[key].get("rate"), theirs[key].get("rate")))
    return rows


def print_tables(tier, results, stat, before, after):
    print(f"\n### Tier {tier}\n")
    print(f"load before: `{before}`; after: `{after}`; statistic: {stat}\n")
    dots = {name: r for (group, name), r in results.items() if group == "vec_dot_4096"}
    types = sorted({n.split()[0] for n in dots})
    if types:
        print(f"vec_dot, one row of 4096 ({stat}):\n")
        print(f"| type | {tier} | ggml | ggml / {tier} |")
        print("|---|---:|---:|---:|")
        for ty in types:
            a, b = dots.get(f"{ty} {tier}"), dots.get(f"{ty} ggml")
            if a and b:
                ta, tb = a["time"][stat], b["time"][stat]
                print(f"| {ty} | {fmt_time(ta)} | {fmt_time(tb)} | {tb / ta:.2f} |")
        print()
    rows = matmul_rows(results, tier, stat)
    for kind in ("matmul_n1", "matmul_n512", "matmul_clip"):
        sel = [r for r in rows if r[0][0] == kind]
        if not sel:
            continue
        print(f"{kind} ({stat} time; ratio = ggml / ours):\n")
        print("| type | rows×k | n | threads | ours | ggml | ratio |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for (key, a, b, ratio, _, _) in sel:
            _, ty, shape, n, t = key
            print(f"| {ty} | {shape} | {n} | {t} | {fmt_time(a)} | {fmt_time(b)} | {ratio:.2f} |")
        print()
    probe = {name: r.get("rate", {}).get(stat) for (group, name), r in results.items()
             if group == "memory_bandwidth"}
    dram = [r for r in rows if r[0][0] == "matmul_dram"]
    if probe or dram:
        print(f"n = 1 from DRAM against the probe ({stat}, GB/s of weight bytes):\n")
        print("| case | threads | ours GB/s | % of probe | ggml GB/s | % of probe | ggml / ours time |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for t, gbs in sorted(probe.items()):
            print(f"| probe | {t} | {gbs:.2f} | 100 | | | |" if gbs else f"| probe | {t} | ? | | | | |")
        for (key, a, b, ratio, ra, rb) in dram:
            _, ty, shape, n, t = key
            p = probe.get(str(t))
            ga, gb = (ra or {}).get(stat), (rb or {}).get(stat)
            pct = (lambda g: f"{100 * g / p:.0f}" if (g and p) else "")
            print(f"| {ty} {shape} | {t} | {ga or 0:.2f} | {pct(ga)} | {gb or 0:.2f} | {pct(gb)} | "
                  f"{ratio:.2f} |")
        print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiers", default="avx512,avx2",
                    help="comma-separated LLAVA_CPU values, one bench run each (default: avx512,avx2)")
    ap.add_argument("--filters", nargs="*", default=["vec_dot_4096", "matmul_n1", "matmul_n512"],
                    help="divan filters (default: vec_dot_4096 matmul_n1 matmul_n512)")
    ap.add_argument("--full", action="store_true",
                    help="LLAVA_BENCH_FULL=1: every type at n = 512 (slow)")
    ap.add_argument("--stat", choices=STATS, default="median")
    ap.add_argument("--raw", help="also save divan's output of each tier to RAW.TIER.txt")
    ap.add_argument("--bin", help="run this built bench binary (e.g. a copy of another branch's "
                    "target/release/deps/kernels-*) instead of `cargo bench`")
    args = ap.parse_args()
    if not args.bin:
        sh(["cargo", "bench", "--bench", "kernels", "--no-run"])
    print(f"`tools/kernel_ratios.py --tiers {args.tiers} --filters {' '.join(args.filters)}"
          f"{' --full' if args.full else ''} --stat {args.stat}`")
    for tier in args.tiers.split(","):
        results, before, after = run_tier(tier.strip(), args.filters, args.full, args.raw, args.bin)
        print_tables(tier.strip(), results, args.stat, before, after)


if __name__ == "__main__":
    main()
