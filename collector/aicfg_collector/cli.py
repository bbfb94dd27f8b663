"""python -m aicfg_collector --system-name NAME --backend {trtllm,vllm,sglang} --out DIR ..."""

import argparse
import os
import sys

from . import __version__, engines, schema
from .collect import CollectError, collect


def parser():
    p = argparse.ArgumentParser(
        prog="python -m aicfg_collector",
        description="Measure op latencies (GEMM, attention, MoE, NCCL, element-wise) on this "
        "machine and write them in the database layout `aicfg data install --from DIR` reads.",
    )
    p.add_argument("--system-name", required=True,
                   help="name of the system the tables describe (e.g. my_h200); a built-in aicfg "
                   "name (h200_sxm) uses its built-in system file, any other needs --systems-path DIR")
    p.add_argument("--backend", required=True, choices=["trtllm", "vllm", "sglang"],
                   help="serving framework whose tables these are (its kernels are used when installed)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--ops", default=",".join(schema.OPS),
                   help=f"comma-separated op families (default: {','.join(schema.OPS)})")
    p.add_argument("--grid", choices=["full", "coarse", "quick"], default="full",
                   help="full: the public tables' grids; coarse: a subset of their points (a GPU "
                   "check in minutes, comparable point by point); quick: tiny grids, few repeats")
    p.add_argument("--quick", action="store_true",
                   help="same as --grid quick (smoke test, CPU runs)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted collection in --out (measured points are kept)")
    p.add_argument("--retry-skipped", action="store_true",
                   help="with --resume: measure again the points an earlier run recorded as "
                   "unsupported (e.g. after installing a kernel library)")
    p.add_argument("--engine", default="auto", choices=["auto", "torch", "numpy"],
                   help="auto: torch when importable, else numpy (CPU-only smoke runs)")
    p.add_argument("--backend-version",
                   help="version directory to write (default: the installed framework's version, "
                   "else the engine's, e.g. torch2.9.0)")
    p.add_argument("--head-dims",
                   help="attention head sizes to collect, comma-separated (default: all of "
                   "64,128,192,256,512; e.g. 128 for a shorter run)")
    p.add_argument("--max-points", type=int,
                   help="stop after this many new measurements (continue later with --resume)")
    p.add_argument("--version", action="version", version=f"aicfg-collector {__version__}")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parser().parse_args(argv)
    ops = [o.strip() for o in a.ops.split(",") if o.strip()]
    bad = [o for o in ops if o not in schema.OPS]
    if bad or not ops:
        print(f"error: --ops: unknown {bad or 'empty list'}; known: {','.join(schema.OPS)}",
              file=sys.stderr)
        return 2
    if a.retry_skipped and not a.resume:
        print("error: --retry-skipped needs --resume", file=sys.stderr)
        return 2
    if a.max_points is not None and a.max_points < 0:
        print("error: --max-points must be >= 0", file=sys.stderr)
        return 2
    head_dims = None
    if a.head_dims:
        try:
            head_dims = [int(x) for x in a.head_dims.split(",") if x.strip()]
        except ValueError:
            print(f"error: --head-dims: not a list of integers: {a.head_dims!r}", file=sys.stderr)
            return 2
    grid = "quick" if a.quick else a.grid
    quick = {"full": False, "quick": True, "coarse": "coarse"}[grid]
    try:
        eng = engines.load(a.engine, a.backend, grid == "quick")
    except Exception as e:
        print(f"error: cannot start the {a.engine} engine: {e}", file=sys.stderr)
        return 1
    if not eng.is_gpu:
        print(f"note: no GPU in use ({eng.name} engine on {eng.device}); the tables describe "
              "this CPU and are for smoke tests only", file=sys.stderr)
    try:
        s = collect(eng, a.system_name, a.backend, a.out, ops, quick, a.resume,
                    version=a.backend_version, max_points=a.max_points, argv=argv,
                    head_dims=head_dims, retry_skipped=a.retry_skipped)
    except CollectError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = os.path.abspath(a.out)
    print(f"wrote {out} (version directory {s['version']})")
    for t, info in s["tables"].items():
        print(f"  {t}: {info['rows']} rows, {info['skipped']} skipped, {info['status']}")
    print(f"system file skeleton: {s['system_yaml']} (complete the TODO values)")
    if s["interrupted"]:
        print("stopped before the end: rerun with --resume to continue")
        return 3
    print(f"next: aicfg data install --from {out}")
    return 0
