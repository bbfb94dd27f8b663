"""Collectives and P2P over torch.distributed, one process per local GPU (NCCL), or two CPU
processes over gloo for smoke tests.

`message_size` is in elements of the largest buffer, as the public tables and nccl-tests count
it: the all-reduce tensor, the all-gather output, the reduce-scatter input, the all-to-all
buffer. A point's latency is the slowest rank's median (ranks are aligned by a barrier before
every timed batch). Rank 0 appends each finished point to the table's progress file, so an
interrupted run resumes at the next point.
"""

import json
import os
import statistics
import tempfile
import time

GLOO_UNSUPPORTED = {"reduce_scatter"}


def run(engine, table, points, progress_path, framework, version):
    import torch.multiprocessing as mp

    groups = {}
    if table == "nccl_perf":
        for p in points:
            groups.setdefault(p["num_gpus"], []).append(p)
    else:
        groups[engine.local_devices()] = list(points)
    t = engine.timing
    for world, pts in sorted(groups.items()):
        with tempfile.TemporaryDirectory() as tmp:
            init = os.path.join(tmp, "init")
            args = (world, "file://" + init, table, pts, progress_path, framework,
                    engine.device, engine.is_gpu, (t.warmup, t.repeats, t.inner), version)
            mp.spawn(_worker, args=args, nprocs=world, join=True)


def _append(path, rec):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _worker(rank, world, init, table, points, progress_path, framework, device, is_gpu, timing,
            version):
    import torch
    import torch.distributed as dist

    from .. import schema
    from ..collect import _row

    warmup, repeats, inner = timing
    if is_gpu:
        torch.cuda.set_device(rank)
        dev = torch.device("cuda", rank)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    dist.init_process_group(backend, init_method=init, rank=rank, world_size=world)
    try:
        for p in points:
            try:
                fn, label = _op(torch, dist, table, p, rank, world, dev, backend)
                ms = _time(torch, dist, fn, dev, is_gpu, warmup, repeats, inner)
                if table == "p2p_perf":
                    ms /= 2  # ping-pong round trip -> one transfer
                t = torch.tensor([ms], dtype=torch.float64, device=dev)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                ms = float(t.item())
                if rank == 0:
                    _append(progress_path, _row(table, p, framework, version, device, ms, label))
            except _Skip as e:
                if rank == 0:
                    _append(progress_path, {"key": list(schema.point_key(table, p)),
                                            "skip": str(e)})
            dist.barrier()
    finally:
        dist.destroy_process_group()


class _Skip(Exception):
    pass


DTYPES = {"half": "bfloat16", "int8": "int8", "bfloat16": "bfloat16"}


def _op(torch, dist, table, p, rank, world, dev, backend):
    dt = getattr(torch, DTYPES[p.get("nccl_dtype") or p.get("p2p_dtype")])
    if not dev.type == "cuda" and dt == torch.bfloat16:
        dt = torch.float16  # gloo's 16-bit reductions
    size = p["message_size"]
    lib = "NCCL" if backend == "nccl" else "gloo"
    if table == "p2p_perf":
        src, dst = p["src"], p["dst"]
        x = torch.ones(size, dtype=dt, device=dev)

        def ping():
            if rank == src:
                dist.send(x, dst)
                dist.recv(x, dst)
            elif rank == dst:
                dist.recv(x, src)
                dist.send(x, src)

        return ping, f"torch.distributed.send/recv ping-pong ({lib})"
    op = p["op_name"]
    if backend == "gloo" and op in GLOO_UNSUPPORTED:
        raise _Skip(f"gloo has no {op}")
    chunk = max(1, size // world)
    if op == "all_reduce":
        x = torch.ones(size, dtype=dt, device=dev)
        fn = lambda: dist.all_reduce(x)  # noqa: E731
    elif op == "all_gather":
        inp = torch.ones(chunk, dtype=dt, device=dev)
        out = torch.empty(chunk * world, dtype=dt, device=dev)
        fn = lambda: dist.all_gather_into_tensor(out, inp)  # noqa: E731
    elif op == "reduce_scatter":
        inp = torch.ones(chunk * world, dtype=dt, device=dev)
        out = torch.empty(chunk, dtype=dt, device=dev)
        fn = lambda: dist.reduce_scatter_tensor(out, inp)  # noqa: E731
    elif op == "alltoall":
        inp = torch.ones(chunk * world, dtype=dt, device=dev)
        out = torch.empty_like(inp)
        fn = lambda: dist.all_to_all_single(out, inp)  # noqa: E731
    else:
        raise _Skip(f"unknown collective {op}")
    try:
        fn()  # unsupported (op, dtype, backend) combinations raise alike on every rank
    except RuntimeError as e:
        raise _Skip(f"{op} {dt} over {lib}: {str(e)[:120]}")
    return fn, f"torch.distributed.{op} ({lib})"


def _time(torch, dist, fn, dev, is_gpu, warmup, repeats, inner):
    for _ in range(warmup):
        fn()
    if is_gpu:
        torch.cuda.synchronize(dev)
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(repeats):
        dist.barrier()
        if is_gpu:
            torch.cuda.synchronize(dev)
            s.record()
            for _ in range(inner):
                fn()
            e.record()
            e.synchronize()
            samples.append(s.elapsed_time(e) / inner)
        else:
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - t0) * 1e3 / inner)
    return statistics.median(samples)
