"""torch engine: the framework's kernels when installed, torch's own otherwise, labelled per row.

GPU (CUDA): CUDA-graph replays (CUDA events when a kernel cannot be captured), bf16 and the
quantized formats the device runs (each offered only after a probe call succeeds). CPU: the
same code on torch's CPU kernels with the host clock, for smoke tests; collectives then run over
gloo between 2 local processes.

Every measured row names its kernel in `kernel_source`: e.g. `torch.nn.functional.linear`,
`torch._scaled_mm+dynamic_per_tensor_quant`, `flashinfer.BatchPrefillWithRaggedKVCacheWrapper`,
`torch_sdpa`, `vllm.fused_experts`, `torch_grouped_mm_emulation`.
"""

import math
import platform
import sys

from .. import routing
from ..timing import Timing, time_cpu, time_cuda
from . import DeviceError, Unsupported, is_sticky

FP8_MAX = 448.0  # largest finite float8_e4m3fn


def _warn(msg):
    print(f"  note: {msg}", file=sys.stderr, flush=True)


class TorchEngine:
    name = "torch"

    def __init__(self, backend, quick):
        import torch

        self.torch = torch
        self.backend = backend
        self.quick = quick
        self.is_gpu = torch.cuda.is_available()
        self.dev = torch.device("cuda:0" if self.is_gpu else "cpu")
        if self.is_gpu:
            torch.cuda.set_device(self.dev)
            props = torch.cuda.get_device_properties(self.dev)
            self.device = props.name
            self.sm = props.major * 10 + props.minor
            self.timing = Timing.quick() if quick else Timing.gpu()
        else:
            self.device = "cpu " + (platform.processor() or platform.machine())
            self.sm = None
            # One thread: OpenMP teams stall badly on a shared, oversubscribed host.
            torch.set_num_threads(1)
            self.timing = Timing.quick() if quick else Timing.cpu()
        self.bf16 = torch.bfloat16
        self._gen = torch.Generator(device=self.dev).manual_seed(0)
        # (table, impl) -> error: an implementation that cannot be imported, or that failed
        # on its first points without ever succeeding, is skipped for the rest of the table; one
        # that has worked and fails on a point only loses that point (a shape it does not take).
        self._broken = {}
        self._fails = {}
        self._worked = set()
        self._gemm_impls = None

    # ---- what the device can run ---------------------------------------------------------

    def versions(self):
        return {"torch": self.torch.__version__}

    def device_record(self):
        t = self.torch
        if not self.is_gpu:
            import os

            try:
                mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            except (ValueError, OSError, AttributeError):
                mem = None
            return {"name": self.device, "kind": "cpu", "device_count": 1, "total_memory": mem,
                    "torch": t.__version__}
        p = t.cuda.get_device_properties(self.dev)
        rec = {"name": p.name, "kind": "cuda", "device_count": t.cuda.device_count(),
               "total_memory": int(p.total_memory), "multi_processor_count": p.multi_processor_count,
               "sm_version": self.sm, "torch": t.__version__, "cuda": t.version.cuda}
        for attr in ("L2_cache_size", "memory_bus_width", "memory_clock_rate", "clock_rate", "uuid"):
            v = getattr(p, attr, None)
            if v is not None:
                rec[attr if attr != "clock_rate" else "clock_rate_khz"] = v if attr != "uuid" else str(v)
        try:
            rec["nccl"] = ".".join(str(x) for x in t.cuda.nccl.version())
        except Exception:
            pass
        return rec

    def _rand(self, *shape, dtype=None):
        return self.torch.randn(*shape, dtype=dtype or self.bf16, device=self.dev, generator=self._gen)

    def _time(self, fn):
        if self.is_gpu:
            return time_cuda(fn, self.timing, self.torch)
        return time_cpu(fn, self.timing)

    def _run(self, table, impls, p):
        """Time the first implementation that works for point `p`; one that raised is dropped
        for the rest of the table (a missing symbol, an unsupported shape family)."""
        t = self.torch
        last = None
        for name, make in impls:
            if (table, name) in self._broken:
                continue
            try:
                fn = make(p)
                if fn is None:
                    continue
                ms, method = self._time(fn)
                self._worked.add((table, name))
                return ms, name
            except Unsupported as e:
                last = str(e)
                continue
            except Exception as e:  # noqa: BLE001 - any kernel error: try the next implementation
                if self.is_gpu and isinstance(e, t.cuda.OutOfMemoryError):
                    t.cuda.empty_cache()
                    raise Unsupported("out of memory")
                if "out of memory" in str(e).lower():
                    raise Unsupported("out of memory")
                if self.is_gpu and is_sticky(e):
                    raise DeviceError(f"{table}: {name}: {str(e)[:200]}") from e
                key = (table, name)
                self._fails[key] = self._fails.get(key, 0) + 1
                if isinstance(e, ImportError) or (key not in self._worked and self._fails[key] >= 3):
                    self._broken[key] = f"{type(e).__name__}: {e}"
                    _warn(f"{table}: {name} unusable ({type(e).__name__}: {str(e)[:160]}); "
                          "falling back")
                last = f"{name}: {type(e).__name__}: {str(e)[:120]}"
        raise Unsupported(last or "no implementation")

    def measure(self, table, p):
        f = getattr(self, "_" + table, None)
        if f is None:
            raise Unsupported(f"{table} is not measured by the torch engine")
        return f(table, p)

    # ---- GEMM -----------------------------------------------------------------------------

    def _probe(self, fn):
        try:
            fn()
            if self.is_gpu:
                self.torch.cuda.synchronize()
            return True
        except Exception:
            return False

    def gemm_dtypes(self):
        if self._gemm_impls is None:
            self._gemm_impls = {"bfloat16": [("torch.nn.functional.linear", self._make_bf16)]}
            t = self.torch
            have_fp8 = hasattr(t, "float8_e4m3fn") and hasattr(t, "_scaled_mm")
            if have_fp8 and (not self.is_gpu or self.sm >= 89):
                if self._probe(lambda: self._make_fp8({"m": 16, "n": 128, "k": 128})()):
                    self._gemm_impls["fp8"] = [("torch._scaled_mm+dynamic_per_tensor_quant",
                                                self._make_fp8)]
            if have_fp8 and self.is_gpu and self.sm >= 90:
                impls = [(n, f) for n, f in self._block_impls()
                         if self._probe(lambda f=f: f({"m": 16, "n": 256, "k": 256})())]
                if impls:
                    self._gemm_impls["fp8_block"] = impls
            if self.is_gpu and self.sm >= 100:
                impls = [(n, f) for n, f in self._fp4_impls()
                         if self._probe(lambda f=f: f({"m": 16, "n": 256, "k": 256})())]
                if impls:
                    self._gemm_impls["nvfp4"] = impls
                else:
                    _warn("nvfp4 GEMM: no FP4 kernel found (vLLM's cutlass_scaled_fp4_mm); not collected")
            # A kernel that passed its probe only loses the points it rejects (e.g. odd shapes).
            for impls in self._gemm_impls.values():
                self._worked.update(("gemm_perf", n) for n, _ in impls)
        return list(self._gemm_impls)

    def _make_bf16(self, p):
        F = self.torch.nn.functional
        a, w = self._rand(p["m"], p["k"]), self._rand(p["n"], p["k"])
        return lambda: F.linear(a, w)

    def _quant_tensor(self, x):
        s = x.abs().amax().float().clamp(min=1e-12) / FP8_MAX
        return (x / s).to(self.torch.float8_e4m3fn), s

    def _make_fp8(self, p):
        """Per-tensor fp8: the activation's dynamic quantization (amax, scale, cast) is part of
        the timed op, as the serving tables are collected; aicfg subtracts the quantize tables."""
        t = self.torch
        a = self._rand(p["m"], p["k"])
        w8, sw = self._quant_tensor(self._rand(p["n"], p["k"]))

        def run():
            a8, sa = self._quant_tensor(a)
            return t._scaled_mm(a8, w8.t(), scale_a=sa, scale_b=sw, out_dtype=self.bf16)

        return run

    def _group_quant(self, x, group=128):
        """Per-token, per-128-channel dynamic fp8 quantization (DeepSeek-style activations)."""
        m, k = x.shape
        g = x.view(m, k // group, group)
        s = g.abs().amax(-1).float().clamp(min=1e-12) / FP8_MAX
        return (g / s.unsqueeze(-1)).to(self.torch.float8_e4m3fn).view(m, k), s

    def _block_impls(self):
        """fp8 with 1x128 activation and 128x128 weight blocks: the framework's kernel."""
        t = self.torch
        out = []
        for mod_name in ("vllm.model_executor.layers.quantization.utils.fp8_utils",
                         "sglang.srt.layers.quantization.fp8_kernel"):
            try:
                mod = __import__(mod_name, fromlist=["w8a8_block_fp8_matmul"])
                fn = mod.w8a8_block_fp8_matmul
            except Exception:
                continue

            def make(p, fn=fn, label=mod_name):
                if p["k"] % 128 or p["n"] % 128:
                    raise Unsupported("fp8_block needs n, k multiples of 128")
                a = self._rand(p["m"], p["k"])
                w = self._rand(p["n"], p["k"])
                wb = w.view(p["n"] // 128, 128, p["k"] // 128, 128)
                ws = wb.abs().amax(dim=(1, 3)).float().clamp(min=1e-12) / FP8_MAX
                w8 = (wb / ws[:, None, :, None]).to(t.float8_e4m3fn).view(p["n"], p["k"])

                def run():
                    a8, sa = self._group_quant(a)
                    return fn(a8, w8, sa, ws, [128, 128], output_dtype=self.bf16)

                return run

            out.append((mod_name.split(".")[0] + ".w8a8_block_fp8_matmul+group_quant", make))
        return out

    def _fp4_impls(self):
        out = []
        try:
            from vllm import _custom_ops as ops

            if hasattr(ops, "cutlass_scaled_fp4_mm") and hasattr(ops, "scaled_fp4_quant"):
                t = self.torch

                def make(p):
                    if p["k"] % 32 or p["n"] % 32:
                        raise Unsupported("nvfp4 needs n, k multiples of 32")
                    a = self._rand(p["m"], p["k"])
                    w = self._rand(p["n"], p["k"])
                    gs_w = (FP8_MAX * 6.0) / w.abs().amax().float()
                    w4, w_sf = ops.scaled_fp4_quant(w, gs_w)
                    gs_a = t.tensor(FP8_MAX * 6.0, device=self.dev) / a.abs().amax().float()
                    alpha = 1.0 / (gs_a * gs_w)

                    def run():
                        a4, a_sf = ops.scaled_fp4_quant(a, gs_a)
                        return ops.cutlass_scaled_fp4_mm(a4, w4, a_sf, w_sf, alpha, self.bf16)

                    return run

                out.append(("vllm.cutlass_scaled_fp4_mm+scaled_fp4_quant", make))
        except Exception:
            pass
        return out

    def _gemm_perf(self, table, p):
        self.gemm_dtypes()
        impls = self._gemm_impls.get(p["gemm_dtype"])
        if not impls:
            raise Unsupported(f"{p['gemm_dtype']} GEMM not available on this device")
        return self._run(table, impls, p)

    def _quant_input(self, p):
        a = self._rand(p["m"], p["k"])
        inv = self.torch.tensor(1.0 / 0.05, device=self.dev)
        return a, inv

    def _scale_matrix_perf(self, table, p):
        """Static-scale quantization: scale and cast the input."""
        a, inv = self._quant_input(p)
        f8 = self.torch.float8_e4m3fn
        return self._run(table, [("torch_static_scaled_fp8_quant", lambda _: lambda: (a * inv).to(f8))], p)

    def _computescale_perf(self, table, p):
        """Computing the dynamic scale: dynamic quantization minus static quantization."""
        a, inv = self._quant_input(p)
        f8 = self.torch.float8_e4m3fn
        try:
            dyn, _ = self._time(lambda: self._quant_tensor(a))
            sta, _ = self._time(lambda: (a * inv).to(f8))
        except RuntimeError as e:  # out of memory, or no fp8 cast on this device
            raise Unsupported(f"{type(e).__name__}: {str(e)[:120]}")
        if dyn <= sta:
            raise Unsupported("dynamic quantization not slower than static at this size")
        return dyn - sta, "torch_dynamic_per_tensor_fp8_quant_minus_static"

    # ---- attention ------------------------------------------------------------------------

    def kv_dtypes(self):
        kv = ["bfloat16"]
        if self.is_gpu and self.sm >= 89 and self._has("flashinfer"):
            kv.append("fp8")
        return kv

    def _has(self, mod):
        try:
            __import__(mod)
            return True
        except Exception:
            return False

    def _attn_order(self):
        """Framework attention backends, most representative first."""
        if not self.is_gpu:
            return ["sdpa"]
        pref = {"vllm": ["vllm_fa", "flash_attn", "flashinfer"],
                "sglang": ["flashinfer", "flash_attn"],
                "trtllm": ["flashinfer", "flash_attn"]}[self.backend]
        return pref + ["sdpa"]

    def _ctx_impls(self):
        m = {"flashinfer": ("flashinfer.BatchPrefillWithRaggedKVCacheWrapper", self._fi_prefill),
             "flash_attn": ("flash_attn.flash_attn_varlen_func", self._fa_prefill("flash_attn")),
             "vllm_fa": ("vllm.vllm_flash_attn.flash_attn_varlen_func",
                         self._fa_prefill("vllm.vllm_flash_attn")),
             "sdpa": ("torch_sdpa", self._sdpa_prefill)}
        return [m[k] for k in self._attn_order()]

    def _gen_impls(self):
        m = {"flashinfer": ("flashinfer.BatchDecodeWithPagedKVCacheWrapper", self._fi_decode),
             "flash_attn": ("flash_attn.flash_attn_with_kvcache", self._fa_decode("flash_attn")),
             "vllm_fa": ("vllm.vllm_flash_attn.flash_attn_with_kvcache",
                         self._fa_decode("vllm.vllm_flash_attn")),
             "sdpa": ("torch_sdpa", self._sdpa_decode)}
        return [m[k] for k in self._attn_order()]

    def _shape(self, p):
        return (p["batch_size"], p["num_heads"], p["num_key_value_heads"], p["head_dim"],
                p["window_size"])

    def _kv_dtype(self, p):
        return self.torch.float8_e4m3fn if p["kv_cache_dtype"] == "fp8" else self.bf16

    def _workspace(self):
        if not hasattr(self, "_ws"):
            self._ws = self.torch.empty(512 << 20, dtype=self.torch.uint8, device=self.dev)
        return self._ws

    def _fi_prefill(self, p):
        import flashinfer

        t = self.torch
        b, n, kv, d, win = self._shape(p)
        s = p["isl"]
        indptr = t.arange(0, (b + 1) * s, s, dtype=t.int32, device=self.dev)
        w = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(self._workspace(), "NHD")
        w.plan(indptr, indptr, n, kv, d, causal=True, window_left=win - 1 if win else -1,
               q_data_type=self.bf16, kv_data_type=self._kv_dtype(p))
        q = self._rand(b * s, n, d)
        k = self._rand(b * s, kv, d).to(self._kv_dtype(p))
        v = self._rand(b * s, kv, d).to(self._kv_dtype(p))
        return lambda: w.run(q, k, v)

    def _fi_decode(self, p):
        import flashinfer

        t = self.torch
        b, n, kv, d, win = self._shape(p)
        S = p["isl"] + p["step"]
        page = 16
        pps = (S + page - 1) // page
        cache = self._rand(b * pps, 2, page, kv, d).to(self._kv_dtype(p))
        indptr = t.arange(0, (b + 1) * pps, pps, dtype=t.int32, device=self.dev)
        indices = t.arange(b * pps, dtype=t.int32, device=self.dev)
        last = t.full((b,), S - (pps - 1) * page, dtype=t.int32, device=self.dev)
        w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(self._workspace(), "NHD",
                                                          use_tensor_cores=n // kv >= 4)
        w.plan(indptr, indices, last, n, kv, d, page, window_left=win - 1 if win else -1,
               q_data_type=self.bf16, kv_data_type=self._kv_dtype(p))
        q = self._rand(b, n, d)
        return lambda: w.run(q, cache)

    def _fa_prefill(self, module):
        def make(p):
            if p["kv_cache_dtype"] != "bfloat16":
                raise Unsupported("fp8 KV through flash_attn is not collected")
            mod = __import__(module, fromlist=["flash_attn_varlen_func"])
            t = self.torch
            b, n, kv, d, win = self._shape(p)
            s = p["isl"]
            cu = t.arange(0, (b + 1) * s, s, dtype=t.int32, device=self.dev)
            q, k, v = self._rand(b * s, n, d), self._rand(b * s, kv, d), self._rand(b * s, kv, d)
            ws = (win - 1, 0) if win else (-1, -1)
            return lambda: mod.flash_attn_varlen_func(q, k, v, cu_seqlens_q=cu, cu_seqlens_k=cu,
                                                      max_seqlen_q=s, max_seqlen_k=s, causal=True,
                                                      window_size=ws)
        return make

    def _fa_decode(self, module):
        def make(p):
            if p["kv_cache_dtype"] != "bfloat16":
                raise Unsupported("fp8 KV through flash_attn is not collected")
            mod = __import__(module, fromlist=["flash_attn_with_kvcache"])
            t = self.torch
            b, n, kv, d, win = self._shape(p)
            S = p["isl"] + p["step"]
            kc, vc = self._rand(b, S, kv, d), self._rand(b, S, kv, d)
            lens = t.full((b,), S, dtype=t.int32, device=self.dev)
            q = self._rand(b, 1, n, d)
            ws = (win - 1, 0) if win else (-1, -1)
            return lambda: mod.flash_attn_with_kvcache(q, kc, vc, cache_seqlens=lens, causal=True,
                                                       window_size=ws)
        return make

    def _sdpa(self, q, k, v, causal, mask=None):
        F = self.torch.nn.functional
        n, kv = q.shape[1], k.shape[1]
        if n != kv:
            try:
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                      is_causal=causal and mask is None,
                                                      enable_gqa=True)
            except TypeError:  # torch < 2.5: expand the KV heads
                k = k.repeat_interleave(n // kv, dim=1)
                v = v.repeat_interleave(n // kv, dim=1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                              is_causal=causal and mask is None)

    def _sdpa_prefill(self, p):
        if p["kv_cache_dtype"] != "bfloat16":
            raise Unsupported("torch SDPA has no fp8 KV cache")
        t = self.torch
        b, n, kv, d, win = self._shape(p)
        s = p["isl"]
        q, k, v = self._rand(b, n, s, d), self._rand(b, kv, s, d), self._rand(b, kv, s, d)
        mask = None
        if win and win < s:
            i = t.arange(s, device=self.dev)
            mask = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - win)
        return lambda: self._sdpa(q, k, v, True, mask)

    def _sdpa_decode(self, p):
        if p["kv_cache_dtype"] != "bfloat16":
            raise Unsupported("torch SDPA has no fp8 KV cache")
        b, n, kv, d, win = self._shape(p)
        S = p["isl"] + p["step"]
        live = min(S, win) if win else S  # a sliding window reads only its last `win` keys
        q = self._rand(b, n, 1, d)
        k, v = self._rand(b, kv, live, d), self._rand(b, kv, live, d)
        return lambda: self._sdpa(q, k, v, False)

    def _context_attention_perf(self, table, p):
        return self._run(table, self._ctx_impls(), p)

    def _generation_attention_perf(self, table, p):
        return self._run(table, self._gen_impls(), p)

    # ---- MoE ------------------------------------------------------------------------------

    def moe_dtypes(self):
        return ["bfloat16"]

    def _moe_setup(self, p):
        t = self.torch
        h, inter = p["hidden_size"], p["inter_size"] // p["moe_tp_size"]
        E, ep, k = p["num_experts"], p["moe_ep_size"], p["topk"]
        el = E // ep
        ids = routing.route(p["num_tokens"], E, k, p["distribution"])
        _, first = routing.local_load(ids, E, ep)
        x = self._rand(p["num_tokens"], h)
        w1 = self._rand(el, 2 * inter, h) * (1.0 / math.sqrt(h))
        w2 = self._rand(el, h, inter) * (1.0 / math.sqrt(inter))
        ids_t = t.as_tensor(ids, device=self.dev)
        return x, w1, w2, ids_t, first, el, inter

    def _moe_framework(self, p):
        if self.backend == "vllm":
            from vllm.model_executor.layers.fused_moe import fused_experts
        elif self.backend == "sglang":
            from sglang.srt.layers.moe.fused_moe_triton.fused_moe import fused_experts
        else:
            raise Unsupported("no fused MoE entry point for this backend")
        t = self.torch
        x, w1, w2, ids, first, el, _ = self._moe_setup(p)
        # Non-local experts map to -1 (dropped), the way an EP rank sees its slice.
        emap = t.full((p["num_experts"],), -1, dtype=t.int32, device=self.dev)
        emap[first:first + el] = t.arange(el, dtype=t.int32, device=self.dev)
        wts = t.full(ids.shape, 1.0 / p["topk"], dtype=t.float32, device=self.dev)
        ids32 = ids.to(t.int32)
        kw = {}
        if p["moe_ep_size"] > 1:
            kw = {"global_num_experts": p["num_experts"], "expert_map": emap}
        return lambda: fused_experts(x, w1, w2, wts, ids32, **kw)

    def _moe_emulation(self, p, grouped):
        """Grouped-GEMM MoE: gather the rank's tokens per expert, gate/up GEMM, SiLU-and-mul,
        down GEMM, weighted scatter-add. `grouped` uses torch._grouped_mm (one launch per GEMM),
        else one GEMM per active expert."""
        t = self.torch
        F = t.nn.functional
        x, w1, w2, ids, first, el, inter = self._moe_setup(p)
        local = ((ids >= first) & (ids < first + el))
        tok, slot = local.nonzero(as_tuple=True)
        exp = ids[tok, slot] - first
        order = t.argsort(exp, stable=True)
        tok, exp = tok[order], exp[order]
        counts = t.bincount(exp, minlength=el)
        offs = t.cumsum(counts, 0).to(t.int32)
        wt = 1.0 / p["topk"]
        if grouped:
            if not hasattr(t, "_grouped_mm") or not self.is_gpu:
                raise Unsupported("torch._grouped_mm unavailable")
            w1t, w2t = w1.transpose(1, 2), w2.transpose(1, 2)

            def run():
                a = x.index_select(0, tok)
                y = t._grouped_mm(a, w1t, offs=offs, out_dtype=self.bf16)
                y = F.silu(y[:, :inter]) * y[:, inter:]
                z = t._grouped_mm(y.contiguous(), w2t, offs=offs, out_dtype=self.bf16)
                return t.zeros_like(x).index_add_(0, tok, z, alpha=wt)

            return run
        bounds = [0] + offs.tolist()
        active = [(e, bounds[e], bounds[e + 1]) for e in range(el) if bounds[e + 1] > bounds[e]]

        def run():
            a = x.index_select(0, tok)
            outs = []
            for e, lo, hi in active:
                y = F.linear(a[lo:hi], w1[e])
                y = F.silu(y[:, :inter]) * y[:, inter:]
                outs.append(F.linear(y, w2[e]))
            z = t.cat(outs) if outs else a
            return t.zeros_like(x).index_add_(0, tok, z, alpha=wt)

        return run

    def _moe_perf(self, table, p):
        if p["moe_dtype"] != "bfloat16":
            raise Unsupported(f"{p['moe_dtype']} MoE is not collected by the torch engine")
        impls = []
        if self.is_gpu and self.backend in ("vllm", "sglang"):
            impls.append((f"{self.backend}.fused_experts", self._moe_framework))
        impls.append(("torch_grouped_mm_emulation", lambda q: self._moe_emulation(q, True)))
        impls.append(("torch_per_expert_gemm_emulation", lambda q: self._moe_emulation(q, False)))
        return self._run(table, impls, p)

    # ---- element-wise ---------------------------------------------------------------------

    def _elementwise_perf(self, table, p):
        t = self.torch
        F = t.nn.functional
        n, h = p["num_tokens"], p["hidden_size"]
        op = p["op_name"]
        impls = []
        if op == "rms_norm":
            w = self._rand(h)
            x = self._rand(n, h)

            def fi_rms(_):
                from flashinfer.norm import rmsnorm

                return lambda: rmsnorm(x, w, 1e-6)

            if self.is_gpu:
                impls.append(("flashinfer.norm.rmsnorm", fi_rms))
            if hasattr(F, "rms_norm"):
                impls.append(("torch.nn.functional.rms_norm",
                              lambda _: lambda: F.rms_norm(x, (h,), w, 1e-6)))
            impls.append(("torch_eager.rms_norm", lambda _: lambda: x * t.rsqrt(
                x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(x.dtype) * w))
        elif op == "silu_and_mul":
            xy = self._rand(n, 2 * h)

            def fi_silu(_):
                from flashinfer.activation import silu_and_mul

                return lambda: silu_and_mul(xy)

            if self.is_gpu:
                impls.append(("flashinfer.activation.silu_and_mul", fi_silu))
            impls.append(("torch_eager.silu_and_mul",
                          lambda _: lambda: F.silu(xy[:, :h]) * xy[:, h:]))
        elif op in ("add", "mul"):
            x, y = self._rand(n, h), self._rand(n, h)
            fn = (lambda: x + y) if op == "add" else (lambda: x * y)
            impls.append((f"torch_eager.{op}", lambda _: fn))
        elif op == "rope":
            x = self._rand(n, h)
            c, s = self._rand(n, h // 2), self._rand(n, h // 2)

            def rope():
                a, b = x[:, : h // 2], x[:, h // 2:]
                return t.cat([a * c - b * s, b * c + a * s], dim=1)

            impls.append(("torch_eager.rope", lambda _: rope))
        else:
            raise Unsupported(f"unknown element-wise op {op}")
        return self._run(table, impls, p)

    # ---- collectives ----------------------------------------------------------------------

    def local_devices(self):
        t = self.torch
        if self.is_gpu:
            return t.cuda.device_count()
        return 2 if t.distributed.is_available() else 0  # two gloo processes on the CPU

    def comm_library(self):
        return "nccl" if self.is_gpu else "gloo"

    def comm_version(self):
        if self.is_gpu:
            try:
                return ".".join(str(x) for x in self.torch.cuda.nccl.version())
            except Exception:
                return "unknown"
        return "gloo-torch" + self.torch.__version__.split("+")[0]

    def run_comm(self, table, points, progress_path, framework, version):
        from . import torch_comm

        torch_comm.run(self, table, points, progress_path, framework, version)

    def measured_bandwidths(self, out, system, backend, version):
        """Device copy bandwidth (for the system skeleton's comments)."""
        if not self.is_gpu:
            return {}
        try:
            n = 1 << 28  # 512 MiB of bf16 per buffer
            a = self.torch.empty(n, dtype=self.bf16, device=self.dev)
            b = self.torch.empty_like(a)
            ms, _ = time_cuda(lambda: b.copy_(a), Timing(2, 5, 1), self.torch, graph=False)
            return {"measured_copy_bw": 2 * 2 * n / (ms / 1e3)}
        except Exception:
            return {}
