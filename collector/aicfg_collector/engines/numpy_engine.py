"""CPU engine on numpy alone: exercises grids, timing, checkpoints and the writer without torch.

numpy has no bfloat16 or fp8: the `bfloat16` rows are float32 arithmetic (labelled
`numpy_float32` in kernel_source), quantized formats and collectives are not offered. Its numbers
describe this CPU, not a GPU; it exists for smoke tests and CI.
"""

import os
import platform

import numpy as np

from .. import routing
from ..timing import Timing, time_cpu
from . import Unsupported


class NumpyEngine:
    name = "numpy"
    is_gpu = False

    def __init__(self, backend, quick):
        self.backend = backend
        self.timing = Timing.quick() if quick else Timing.cpu()
        self.device = platform.processor() or platform.machine() or "cpu"
        self.rng = np.random.default_rng(0)

    # What this engine can measure.
    def gemm_dtypes(self):
        return ["bfloat16"]

    def kv_dtypes(self):
        return ["bfloat16"]

    def moe_dtypes(self):
        return ["bfloat16"]

    def local_devices(self):
        return 0

    def versions(self):
        return {"numpy": np.__version__}

    def device_record(self):
        try:
            mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            mem = None
        return {"name": self.device, "kind": "cpu", "device_count": 1, "total_memory": mem,
                "cpu_count": os.cpu_count()}

    def measured_bandwidths(self, out, system, backend, version):
        return {}

    def _rand(self, *shape):
        return self.rng.standard_normal(shape, dtype=np.float32)

    def _time(self, fn):
        ms, _ = time_cpu(fn, self.timing)
        return ms

    def measure(self, table, p):
        f = getattr(self, "_" + table, None)
        if f is None:
            raise Unsupported(f"{table} is not measured by the numpy engine")
        return f(p)

    def _gemm_perf(self, p):
        if p["gemm_dtype"] != "bfloat16":
            raise Unsupported(f"numpy has no {p['gemm_dtype']}")
        a, b = self._rand(p["m"], p["k"]), self._rand(p["k"], p["n"])
        return self._time(lambda: a @ b), "numpy_float32.matmul"

    def _attention(self, q, k, v, causal_offset, window):
        """q (b, n, sq, d), k/v (b, kv, sk, d): grouped heads, causal (query i sees keys up to
        offset+i), optional sliding window."""
        b, n, sq, d = q.shape
        kv, sk = k.shape[1], k.shape[2]
        g = n // kv
        qg = q.reshape(b, kv, g * sq, d)
        s = qg @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
        s = s.reshape(b, kv, g, sq, sk)
        qi = np.arange(sq)[:, None] + causal_offset
        kj = np.arange(sk)[None, :]
        mask = kj > qi
        if window > 0:
            mask |= kj <= qi - window
        s = np.where(mask, -np.inf, s)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        return s.reshape(b, kv, g * sq, sk) @ v

    def _context_attention_perf(self, p):
        if p["kv_cache_dtype"] != "bfloat16":
            raise Unsupported("numpy has no fp8 KV cache")
        b, s, n, kv, d = p["batch_size"], p["isl"], p["num_heads"], p["num_key_value_heads"], p["head_dim"]
        q, k, v = self._rand(b, n, s, d), self._rand(b, kv, s, d), self._rand(b, kv, s, d)
        w = p["window_size"]
        return self._time(lambda: self._attention(q, k, v, 0, w)), "numpy_float32.attention"

    def _generation_attention_perf(self, p):
        if p["kv_cache_dtype"] != "bfloat16":
            raise Unsupported("numpy has no fp8 KV cache")
        b, n, kv, d = p["batch_size"], p["num_heads"], p["num_key_value_heads"], p["head_dim"]
        s = p["isl"] + p["step"]
        q, k, v = self._rand(b, n, 1, d), self._rand(b, kv, s, d), self._rand(b, kv, s, d)
        w = p["window_size"]
        return self._time(lambda: self._attention(q, k, v, s - 1, w)), "numpy_float32.attention"

    def _moe_perf(self, p):
        if p["moe_dtype"] != "bfloat16":
            raise Unsupported(f"numpy has no {p['moe_dtype']}")
        h, inter = p["hidden_size"], p["inter_size"] // p["moe_tp_size"]
        e_local = p["num_experts"] // p["moe_ep_size"]
        ids = routing.route(p["num_tokens"], p["num_experts"], p["topk"], p["distribution"])
        counts, first = routing.local_load(ids, p["num_experts"], p["moe_ep_size"])
        x = self._rand(p["num_tokens"], h)
        w1 = self._rand(e_local, h, 2 * inter)
        w2 = self._rand(e_local, inter, h)
        # Token lists per local expert (routing is not part of the timed kernel).
        lists = [np.nonzero((ids == first + e).any(axis=1))[0] for e in range(e_local)]

        def run():
            out = np.zeros_like(x)
            for e, rows in enumerate(lists):
                if len(rows) == 0:
                    continue
                y = x[rows] @ w1[e]
                a = y[:, :inter]
                y = (a / (1 + np.exp(-a))) * y[:, inter:]
                out[rows] += y @ w2[e]
            return out

        assert int(sum(len(r) for r in lists)) == int(counts.sum())
        return self._time(run), "numpy_float32.grouped_gemm_emulation"

    def _elementwise_perf(self, p):
        t, h = p["num_tokens"], p["hidden_size"]
        x, y = self._rand(t, h), self._rand(t, h)
        op = p["op_name"]
        if op == "add":
            fn = lambda: x + y  # noqa: E731
        elif op == "mul":
            fn = lambda: x * y  # noqa: E731
        elif op == "silu_and_mul":
            xy = self._rand(t, 2 * h)
            fn = lambda: (xy[:, :h] / (1 + np.exp(-xy[:, :h]))) * xy[:, h:]  # noqa: E731
        elif op == "rms_norm":
            wt = self._rand(h)
            fn = lambda: x / np.sqrt((x * x).mean(axis=1, keepdims=True) + 1e-6) * wt  # noqa: E731
        elif op == "rope":
            c, s = self._rand(t, h // 2), self._rand(t, h // 2)

            def fn():
                a, b = x[:, : h // 2], x[:, h // 2:]
                return np.concatenate([a * c - b * s, b * c + a * s], axis=1)
        else:
            raise Unsupported(f"unknown element-wise op {op}")
        return self._time(fn), "numpy_float32." + op
