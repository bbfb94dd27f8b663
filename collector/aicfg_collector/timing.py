"""Kernel timing: warm-up, repeated timed batches, median kept.

On a GPU one timed batch is `inner` back-to-back launches between two CUDA events (or one replay
of a CUDA graph holding `inner` launches, which removes the host launch cost the way the serving
frameworks' decode graphs do); on the CPU it is `time.perf_counter` around `inner` calls. The
median over `repeats` batches is kept, divided by `inner`: ms per call.
"""

import statistics
import time


# A call this long (s) is timed with one warm-up, 3 repeats of one call and no graph: launch
# overhead is negligible there and the big GEMMs of the grid would otherwise take minutes each.
HEAVY_S = 5e-3


class Timing:
    def __init__(self, warmup=3, repeats=7, inner=1, min_batch_s=0.0):
        if warmup < 0 or repeats < 1 or inner < 1:
            raise ValueError("warmup >= 0, repeats >= 1 and inner >= 1 are required")
        self.warmup = warmup
        self.repeats = repeats
        self.inner = inner
        # Grow `inner` until one batch takes this long (clock resolution, launch jitter).
        self.min_batch_s = min_batch_s

    @classmethod
    def quick(cls):
        return cls(warmup=1, repeats=3, inner=1)

    @classmethod
    def gpu(cls):
        return cls(warmup=5, repeats=11, inner=4, min_batch_s=2e-4)

    @classmethod
    def cpu(cls):
        return cls(warmup=2, repeats=5, inner=1, min_batch_s=1e-3)


def median_ms(samples_s, inner):
    return statistics.median(samples_s) * 1e3 / inner


def _grow_inner(run_batch, t, inner):
    """Double `inner` until one batch lasts `t.min_batch_s` (bounded at 1024 calls)."""
    while t.min_batch_s > 0 and inner < 1024:
        if run_batch(inner) >= t.min_batch_s:
            break
        inner *= 2
    return inner


def time_cpu(fn, t):
    """ms per call of `fn` with the host clock."""
    def batch(n):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - t0

    first = batch(1)
    if first > 10 * HEAVY_S:
        t = Timing(warmup=0, repeats=min(t.repeats, 3), inner=1)
    for _ in range(max(0, t.warmup - 1)):
        fn()
    inner = _grow_inner(batch, t, t.inner)
    return median_ms([batch(inner) for _ in range(t.repeats)], inner), "perf_counter"


def time_cuda(fn, t, torch, graph=True):
    """ms per call of `fn` on the current CUDA stream: CUDA-graph replays when `fn` captures,
    else CUDA events around eager launches. Returns (ms, method)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()  # first call: autotuning, JIT, lazy allocations
    start.record()
    fn()
    end.record()
    end.synchronize()
    if start.elapsed_time(end) / 1e3 > HEAVY_S:
        t = Timing(warmup=0, repeats=min(t.repeats, 3), inner=1)
        graph = False
    for _ in range(max(0, t.warmup - 2)):
        fn()
    torch.cuda.synchronize()
    runner, method = None, "cuda_events"
    if graph:
        try:
            g = torch.cuda.CUDAGraph()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                fn()  # allocations of the capture come from the graph pool after this
            torch.cuda.current_stream().wait_stream(s)
            with torch.cuda.graph(g):
                fn()
            g.replay()
            torch.cuda.synchronize()
            runner, method = g.replay, "cuda_graph"
        except Exception:  # not capturable (host sync, dynamic shapes): time eagerly
            torch.cuda.synchronize()
            runner = None
    call = runner or fn

    def batch(n):
        start.record()
        for _ in range(n):
            call()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    inner = _grow_inner(batch, t, t.inner)
    return median_ms([batch(inner) for _ in range(t.repeats)], inner), method
