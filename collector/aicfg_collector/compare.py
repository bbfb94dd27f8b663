"""Compare two op databases point by point (e.g. your collection against the public tables).

    python -m aicfg_collector.compare MINE/data/my_h200 ~/.local/share/aicfg/<install>/data/h200_sxm \
        --backend vllm [--version-a V] [--version-b V]

For every table both sides have, the points measured on both (same key and axis columns) are
joined; where a side has several kernels for one point the fastest is taken (what a dispatcher
picks). Prints per table: matched points, and the ratio A/B at the 10th, 50th and 90th percentile.
"""

import argparse
import os
import re
import sys

import numpy as np

from . import schema, writer


def _versions(system_dir, family, backend):
    d = os.path.join(system_dir, family, backend)
    if not os.path.isdir(d):
        return []
    # Natural order: 0.5.14 after 0.5.9.
    return sorted(os.listdir(d), key=lambda v: [(0, int(x), "") if x.isdigit() else (1, 0, x)
                                                 for x in re.split(r"(\d+)", v) if x])


def load(system_dir, backend, table, version=None):
    """{point key: fastest latency} of one table, from `version` or the newest-named one."""
    fam = schema.family(table)
    be = "nccl" if table == "nccl_perf" else backend
    vs = _versions(system_dir, fam, be)
    if version and version in vs:
        vs = [version]
    for v in reversed(vs):
        p = os.path.join(system_dir, fam, be, v, table + ".parquet")
        if os.path.exists(p):
            out = {}
            keys = schema.TABLES[table][2]
            for r in writer.read_table(p):
                if any(k not in r for k in keys):
                    continue
                k = tuple(r[c] for c in keys)
                lat = r["latency"]
                if lat and lat > 0 and (k not in out or lat < out[k]):
                    out[k] = lat
            return v, out
    return None, {}


def compare(dir_a, dir_b, backend, version_a=None, version_b=None):
    rows = []
    for table in schema.TABLES:
        va, a = load(dir_a, backend, table, version_a)
        vb, b = load(dir_b, backend, table, version_b)
        common = sorted(set(a) & set(b), key=repr)
        if not common:
            continue
        r = np.array([a[k] / b[k] for k in common])
        rows.append({"table": table, "version_a": va, "version_b": vb, "points": len(common),
                     "p10": float(np.percentile(r, 10)), "median": float(np.median(r)),
                     "p90": float(np.percentile(r, 90))})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m aicfg_collector.compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="data/<system> directory A (e.g. your collection)")
    ap.add_argument("b", help="data/<system> directory B (e.g. the public tables)")
    ap.add_argument("--backend", required=True, choices=["trtllm", "vllm", "sglang"])
    ap.add_argument("--version-a")
    ap.add_argument("--version-b")
    a = ap.parse_args(argv)
    for d in (a.a, a.b):
        if not os.path.isdir(d):
            print(f"error: {d} is not a directory", file=sys.stderr)
            return 2
    rows = compare(a.a, a.b, a.backend, a.version_a, a.version_b)
    if not rows:
        print("no table has points measured on both sides")
        return 1
    print(f"{'table':28} {'A version':>14} {'B version':>14} {'points':>7} "
          f"{'A/B p10':>8} {'median':>8} {'p90':>8}")
    for r in rows:
        print(f"{r['table']:28} {r['version_a']:>14} {r['version_b']:>14} {r['points']:>7} "
              f"{r['p10']:8.3f} {r['median']:8.3f} {r['p90']:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
