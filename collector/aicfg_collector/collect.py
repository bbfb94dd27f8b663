"""The collection loop: for each table, the grid's points not yet measured, one at a time."""

import os
import re
import sys
import time

from . import __version__, env, grids, schema, writer
from .engines import DeviceError, Unsupported
from .writer import TableStore, write_meta

FRAMEWORK_LABEL = {"trtllm": "TRTLLM", "vllm": "VLLM", "sglang": "SGLang"}
COMM_TABLES = {"nccl_perf", "p2p_perf"}
TIMING = {True: "median of repeated CUDA-graph replays (CUDA events around eager launches when a "
                "kernel cannot be captured; collectives eager with CUDA events)",
          False: "median of repeated time.perf_counter batches (CPU)"}


class CollectError(Exception):
    pass


def safe_dir(v):
    """A version string as a directory name (`2.15.0+cu132` -> `2.15.0_cu132`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", v)


def default_version(engine, backend):
    """The framework's version when it is installed; else the engine's own (`torch2.15.0`),
    so tables measured without the framework's kernels never pose as them."""
    v = env.framework_version(backend)
    if v:
        return safe_dir(v)
    return safe_dir(engine.name + engine.versions()[engine.name])


def plan(engine, ops, quick, n_local, head_dims=None):
    """(table, points) in collection order."""
    out = []
    for op in ops:
        if op == "gemm":
            dts = engine.gemm_dtypes()
            out.append(("gemm_perf", list(grids.gemm(dts, quick))))
            if "fp8" in dts:
                out.append(("computescale_perf", list(grids.quantize(quick))))
                out.append(("scale_matrix_perf", list(grids.quantize(quick))))
        elif op == "attention":
            kv = engine.kv_dtypes()
            out.append(("context_attention_perf",
                        list(grids.context_attention(kv, quick, head_dims))))
            out.append(("generation_attention_perf",
                        list(grids.generation_attention(kv, quick, head_dims))))
        elif op == "moe":
            out.append(("moe_perf", list(grids.moe(engine.moe_dtypes(), quick))))
        elif op == "comm":
            if n_local >= 2:
                out.append(("nccl_perf", list(grids.nccl(n_local, quick))))
                out.append(("p2p_perf", list(grids.p2p(n_local, quick))))
        elif op == "elementwise":
            out.append(("elementwise_perf", list(grids.elementwise(quick))))
        else:
            raise CollectError(f"unknown op family {op!r} (known: {', '.join(schema.OPS)})")
    return out


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def collect(engine, system, backend, out, ops, quick, resume, version=None, max_points=None,
            argv=None, head_dims=None, retry_skipped=False):
    """Measure, checkpoint and write every table of `ops`. Returns a summary dict.

    `max_points` stops after that many new measurements, as an interruption would (the tables
    are written as `partial`; `resume=True` continues)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", system):
        raise CollectError(f"system name {system!r}: use letters, digits, '.', '_' or '-'")
    progress_root = os.path.join(out, ".progress")
    if os.path.isdir(progress_root) and not resume:
        raise CollectError(f"{out} holds an earlier collection; pass --resume to continue it, "
                           "or choose an empty --out")
    version = safe_dir(version) if version else default_version(engine, backend)
    n_local = engine.local_devices() if "comm" in ops else 0
    if "comm" in ops and n_local < 2:
        _log(f"comm: skipped ({engine.name} engine sees {n_local} device(s); collectives need 2+)")
    run = env.record(out, engine, backend, argv or [])
    framework = FRAMEWORK_LABEL[backend]
    summary = {"version": version, "tables": {}, "interrupted": False}
    budget = [max_points]
    meta_extra = {"name": "aicfg-collector", "version": __version__, "engine": engine.name,
                  "device": engine.device, "grid": "coarse" if quick == "coarse" else ("quick" if quick else "full"),
                  "timing": TIMING[engine.is_gpu]}
    for table, points in plan(engine, ops, quick, n_local, head_dims):
        if table == "nccl_perf":
            bdir, vdir, fw_meta = "nccl", safe_dir(engine.comm_version()), engine.comm_library()
        else:
            bdir, vdir, fw_meta = backend, version, backend
        store = TableStore(out, system, table, bdir, vdir)
        if resume:
            store.load()
            if retry_skipped:
                store.skipped.clear()
        todo = [p for p in points if not store.done(p)]
        _log(f"{table}: {len(points)} points, {len(points) - len(todo)} already done")
        stopped = False
        try:
            if table in COMM_TABLES:
                stopped = _comm(engine, table, todo, store, framework, vdir, budget)
            else:
                stopped = _measure(engine, table, todo, store, framework, vdir, budget)
        except KeyboardInterrupt:
            summary["interrupted"] = True
            stopped = True
        except DeviceError as e:
            _log(f"device error, stopping (rerun with --resume in a fresh process): {e}")
            summary["interrupted"] = True
            summary["device_error"] = str(e)
            stopped = True
        finally:
            store.close()
            if table in COMM_TABLES:
                store.load()
            n = store.write(points)
            left = sum(1 for p in points if not store.done(p))
            status = "partial" if left else "complete"
            if n:
                write_meta(store.dir, fw_meta, vdir, {table: status}, meta_extra)
            summary["tables"][table] = {"rows": n, "skipped": len(store.skipped), "left": left,
                                        "status": status, "path": store.parquet if n else None}
            _log(f"{table}: {n} rows written, {len(store.skipped)} skipped, {left} left ({status})")
        if stopped:
            break
    summary["interrupted"] = summary["interrupted"] or any(
        t["left"] for t in summary["tables"].values())
    dev = engine.device_record()
    dev.update(engine.measured_bandwidths(out, system, backend, version))
    p2p = summary["tables"].get("p2p_perf", {}).get("path")
    if p2p:
        big = max(writer.read_table(p2p), key=lambda r: r["message_size"])
        dev["measured_p2p_bw"] = 2 * big["message_size"] / (big["latency"] / 1e3)  # 16-bit
    ypath = os.path.join(out, system + ".yaml")
    if not os.path.exists(ypath):
        nccl_v = engine.comm_version() if n_local >= 2 else None
        with open(ypath, "w") as f:
            f.write(env.system_yaml(system, dev, run["nvidia_smi"], nccl_v))
    summary["system_yaml"] = ypath
    return summary


def _row(table, p, framework, version, device, latency, source):
    row = {"framework": framework, "version": version, "device": device,
           "op_name": p.get("op_name", table[: -len("_perf")]), "kernel_source": source}
    row.update(p)
    row["latency"] = float(latency)
    return {c: row[c] for c in schema.column_names(table)}


def _measure(engine, table, todo, store, framework, version, budget):
    t0, last = time.monotonic(), time.monotonic()
    for i, p in enumerate(todo):
        if budget[0] is not None and budget[0] <= 0:
            return True
        try:
            ms, source = engine.measure(table, p)
            if not (ms > 0 and ms < float("inf")):
                raise Unsupported(f"non-positive or non-finite time {ms}")
            store.add(_row(table, p, framework, version, engine.device, ms, source))
        except Unsupported as e:
            store.skip(p, str(e))
        if budget[0] is not None:
            budget[0] -= 1
        now = time.monotonic()
        if now - last > 10:
            last = now
            rate = (i + 1) / (now - t0)
            _log(f"  {table}: {i + 1}/{len(todo)} ({rate:.1f} points/s, "
                 f"~{(len(todo) - i - 1) / max(rate, 1e-9) / 60:.1f} min left)")
    return False


def _comm(engine, table, todo, store, framework, version, budget):
    if not todo:
        return False
    if budget[0] is not None:
        if budget[0] <= 0:
            return True
        take = todo[: budget[0]]
        budget[0] -= len(take)
    else:
        take = todo
    store.close()
    engine.run_comm(table, take, store.progress, framework, version)
    return len(take) < len(todo)
