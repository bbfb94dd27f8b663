"""Shape grids: the points each table is measured at.

The full grids follow the public aiconfigurator-core tables (the axis values aicfg interpolates
between, with the same memory caps on batch x sequence). `quick=True` gives a tiny grid for smoke
tests and CPU runs; `quick="coarse"` a subset of the full grid's points (a GPU check in minutes
whose points all coincide with the public tables'). Every generator yields dicts of the table's key/axis columns in a fixed order,
so the same run writes the same rows in the same order.
"""

# GEMM: m is dense at small sizes and around the 256-multiples where tile counts change.
GEMM_M = (
    list(range(1, 18))
    + [x + d for x in range(32, 257, 16) if x not in (144, 176, 208, 240) for d in (0, 1)]
    + [x + d for x in range(512, 4353, 256) for d in (0, 1)]
    + [8192, 16384, 32768]
)
GEMM_NK = [32, 64, 128, 256, 512, 768, 1024, 1536, 2048, 2560, 3072, 3584, 4096, 5120, 6144,
           7168, 8192, 10240, 12288, 16384, 51200, 65536]

QUICK_GEMM_M = [1, 4, 16, 64]
QUICK_GEMM_NK = [64, 256]
COARSE_GEMM_M = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
COARSE_GEMM_NK = [256, 1024, 2048, 4096, 8192, 16384]

# Attention heads: (num_heads, num_key_value_heads); equal counts are MHA.
MHA_HEADS = [1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 64]
GQA_HEADS = [
    (2, 1), (3, 1), (4, 1), (4, 2), (5, 1), (6, 1), (8, 1), (8, 2), (8, 4), (10, 2), (12, 1),
    (12, 2), (12, 4), (16, 1), (16, 2), (16, 4), (16, 8), (20, 4), (24, 1), (24, 2), (24, 4),
    (24, 8), (32, 1), (32, 2), (32, 4), (32, 8), (40, 1), (40, 2), (40, 4), (40, 8), (48, 1),
    (48, 2), (48, 4), (48, 8), (64, 1), (64, 2), (64, 4), (64, 8), (96, 8),
]
# (head_dim, sliding window or 0): the slices the public tables carry, the common one first.
ATTN_SLICES = [(128, 0), (64, 0), (128, 128), (64, 128), (256, 0), (192, 0), (192, 128),
               (256, 1024), (128, 8192), (512, 0)]
CTX_BATCH = [1, 2, 4, 8, 16, 32, 64, 128, 256]
CTX_ISL = [1, 16, 32, 64, 128, 256, 512, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 10240, 12288,
           16384]
CTX_MAX_TOKENS = 131072  # batch x isl cap of the public context tables
GEN_BATCH = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
GEN_SEQ = [2 ** j for j in range(1, 18)]  # KV length = isl (1) + step
GEN_MAX_KV_TOKENS = 2 ** 22  # batch x KV length cap of the public generation tables
GEN_MAX_KV_HEADS = 8

QUICK_HEADS = [(8, 8), (16, 8), (32, 8), (8, 4), (16, 4)]  # kv 8 and 4: Llama/Qwen3-8B at tp 1 and 2
QUICK_ATTN_SLICES = [(128, 0)]
QUICK_CTX_BATCH = [1, 2]
QUICK_CTX_ISL = [16, 64]
QUICK_GEN_BATCH = [1, 4]
QUICK_GEN_SEQ = [16, 64]
COARSE_HEADS = [(8, 1), (16, 2), (32, 4), (32, 8), (64, 8), (32, 32)]
COARSE_ATTN_SLICES = [(128, 0), (64, 0)]
COARSE_CTX_BATCH = [1, 2, 8, 32, 128]
COARSE_CTX_ISL = [16, 128, 1024, 4096, 16384]
COARSE_GEN_BATCH = [1, 4, 16, 64, 256, 1024]
COARSE_GEN_SEQ = [16, 128, 1024, 8192, 65536]

# MoE shapes (hidden, full intermediate width, topk, experts) of the public tables' models.
MOE_SHAPES = [
    (2048, 512, 8, 256), (2048, 768, 8, 128), (2048, 5120, 22, 512), (2688, 1856, 6, 128),
    (2816, 704, 8, 128), (3072, 1024, 8, 256), (4096, 1024, 10, 512), (4096, 1536, 8, 128),
    (4096, 2048, 8, 256), (4096, 14336, 2, 8), (5120, 8192, 1, 16), (5120, 8192, 1, 128),
    (6144, 2048, 8, 256), (6144, 2560, 8, 160), (6144, 3072, 4, 128), (6144, 16384, 2, 8),
    (7168, 2048, 8, 256), (7168, 2048, 8, 384), (2880, 2880, 4, 32), (2880, 2880, 4, 128),
]
MOE_SHARDINGS = [(1, 1), (1, 2), (1, 4), (1, 8), (1, 16), (1, 32), (1, 64), (1, 128), (1, 256),
                 (2, 1), (4, 1), (8, 1), (16, 1), (32, 1)]
MOE_TOKENS = [1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024,
              1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384]
MOE_DISTRIBUTIONS = ["balanced", "power_law_1.01", "power_law_1.2"]

QUICK_MOE_SHAPES = [(256, 128, 2, 8)]
QUICK_MOE_SHARDINGS = [(1, 1), (1, 2)]
QUICK_MOE_TOKENS = [1, 8, 32]
QUICK_MOE_DISTRIBUTIONS = ["balanced"]
COARSE_MOE_SHAPES = [(2048, 768, 8, 128), (4096, 14336, 2, 8), (7168, 2048, 8, 256)]
COARSE_MOE_SHARDINGS = [(1, 1), (1, 8), (8, 1)]
COARSE_MOE_TOKENS = [1, 8, 64, 512, 4096]
COARSE_MOE_DISTRIBUTIONS = ["balanced", "power_law_1.01"]

# Collectives: message sizes in elements.
COMM_SIZES = [2 ** j for j in range(7, 30)]
NCCL_OPS = ["all_gather", "reduce_scatter", "all_reduce", "alltoall"]
NCCL_DTYPES = ["half", "int8"]
QUICK_COMM_SIZES = [1024, 65536]
QUICK_NCCL_DTYPES = ["half"]
COARSE_COMM_SIZES = [2 ** j for j in range(7, 30, 3)]

# Element-wise ops priced by formula in aicfg; measured for comparison.
ELEMENTWISE_OPS = ["add", "mul", "silu_and_mul", "rms_norm", "rope"]
ELEMENTWISE_TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
ELEMENTWISE_HIDDEN = [1024, 2048, 4096, 5120, 7168, 8192]
QUICK_ELEMENTWISE_TOKENS = [1, 16, 128]
QUICK_ELEMENTWISE_HIDDEN = [256]
COARSE_ELEMENTWISE_TOKENS = [1, 16, 256, 4096]
COARSE_ELEMENTWISE_HIDDEN = [4096, 8192]


def _pick(quick, full, tiny, coarse):
    """The axis values of a grid size: False = full, True = quick, "coarse"."""
    if quick == "coarse":
        return coarse
    return tiny if quick else full


def gemm(dtypes, quick=False):
    ms = _pick(quick, GEMM_M, QUICK_GEMM_M, COARSE_GEMM_M)
    nks = _pick(quick, GEMM_NK, QUICK_GEMM_NK, COARSE_GEMM_NK)
    for d in dtypes:
        for n in nks:
            for k in nks:
                for m in ms:
                    yield {"gemm_dtype": d, "m": m, "n": n, "k": k}


def quantize(quick=False):
    """Activation quantization of an (m, k) input, for the fp8 GEMM correction."""
    ms = _pick(quick, GEMM_M, QUICK_GEMM_M, COARSE_GEMM_M)
    ks = _pick(quick, GEMM_NK, QUICK_GEMM_NK, COARSE_GEMM_NK)
    for k in ks:
        for m in ms:
            yield {"quant_dtype": "fp8", "m": m, "k": k}


def _heads(quick, max_kv=None):
    pairs = _pick(quick, sorted([(n, n) for n in MHA_HEADS] + GQA_HEADS), QUICK_HEADS,
                  COARSE_HEADS)
    return [p for p in pairs if max_kv is None or p[1] <= max_kv]


def _slices(quick, head_dims):
    s = _pick(quick, ATTN_SLICES, QUICK_ATTN_SLICES, COARSE_ATTN_SLICES)
    return [x for x in s if not head_dims or x[0] in head_dims]


def context_attention(kv_dtypes, quick=False, head_dims=None):
    slices = _slices(quick, head_dims)
    batches = _pick(quick, CTX_BATCH, QUICK_CTX_BATCH, COARSE_CTX_BATCH)
    isls = _pick(quick, CTX_ISL, QUICK_CTX_ISL, COARSE_CTX_ISL)
    for kv in kv_dtypes:
        for hd, win in slices:
            for n, nkv in _heads(quick):
                for b in batches:
                    for s in isls:
                        if b * s > CTX_MAX_TOKENS:
                            continue
                        yield {"attn_dtype": "bfloat16", "kv_cache_dtype": kv, "head_dim": hd,
                               "window_size": win, "num_heads": n, "num_key_value_heads": nkv,
                               "batch_size": b, "isl": s, "step": 0, "beam_width": 1}


def generation_attention(kv_dtypes, quick=False, head_dims=None):
    slices = _slices(quick, head_dims)
    batches = _pick(quick, GEN_BATCH, QUICK_GEN_BATCH, COARSE_GEN_BATCH)
    seqs = _pick(quick, GEN_SEQ, QUICK_GEN_SEQ, COARSE_GEN_SEQ)
    for kv in kv_dtypes:
        for hd, win in slices:
            for n, nkv in _heads(quick, GEN_MAX_KV_HEADS):
                for b in batches:
                    for s in seqs:
                        if b * s > GEN_MAX_KV_TOKENS:
                            continue
                        yield {"attn_dtype": "bfloat16", "kv_cache_dtype": kv, "head_dim": hd,
                               "window_size": win, "num_heads": n, "num_key_value_heads": nkv,
                               "batch_size": b, "isl": 1, "step": s - 1, "beam_width": 1}


def moe(dtypes, quick=False):
    shapes = _pick(quick, MOE_SHAPES, QUICK_MOE_SHAPES, COARSE_MOE_SHAPES)
    shardings = _pick(quick, MOE_SHARDINGS, QUICK_MOE_SHARDINGS, COARSE_MOE_SHARDINGS)
    tokens = _pick(quick, MOE_TOKENS, QUICK_MOE_TOKENS, COARSE_MOE_TOKENS)
    dists = _pick(quick, MOE_DISTRIBUTIONS, QUICK_MOE_DISTRIBUTIONS, COARSE_MOE_DISTRIBUTIONS)
    for d in dtypes:
        for hidden, inter, topk, experts in shapes:
            for tp, ep in shardings:
                # One GPU runs one rank's slice: experts / ep of width inter / tp.
                if experts % ep or inter % tp or experts // ep < 1:
                    continue
                for dist in dists:
                    for t in tokens:
                        yield {"moe_dtype": d, "distribution": dist, "topk": topk,
                               "num_experts": experts, "hidden_size": hidden,
                               "inter_size": inter, "moe_tp_size": tp, "moe_ep_size": ep,
                               "num_tokens": t}


def gpu_counts(n_local):
    """2, 4, 8, ... up to the local GPU count (and the count itself when not a power of 2)."""
    out, g = [], 2
    while g <= n_local:
        out.append(g)
        g *= 2
    if n_local >= 2 and n_local not in out:
        out.append(n_local)
    return out


def nccl(n_local, quick=False):
    sizes = _pick(quick, COMM_SIZES, QUICK_COMM_SIZES, COARSE_COMM_SIZES)
    dtypes = _pick(quick, NCCL_DTYPES, QUICK_NCCL_DTYPES, QUICK_NCCL_DTYPES)
    for op in NCCL_OPS:
        for d in dtypes:
            for g in gpu_counts(n_local):
                for s in sizes:
                    yield {"op_name": op, "nccl_dtype": d, "num_gpus": g, "message_size": s}


def p2p(n_local, quick=False):
    sizes = _pick(quick, COMM_SIZES, QUICK_COMM_SIZES, COARSE_COMM_SIZES)
    dsts = _pick(quick, list(range(1, n_local)), [1], list(range(1, n_local)))
    for dst in dsts:
        if dst >= n_local:
            continue
        for s in sizes:
            yield {"p2p_dtype": "bfloat16", "src": 0, "dst": dst, "message_size": s}


def elementwise(quick=False):
    tokens = _pick(quick, ELEMENTWISE_TOKENS, QUICK_ELEMENTWISE_TOKENS, COARSE_ELEMENTWISE_TOKENS)
    hidden = _pick(quick, ELEMENTWISE_HIDDEN, QUICK_ELEMENTWISE_HIDDEN, COARSE_ELEMENTWISE_HIDDEN)
    for op in ELEMENTWISE_OPS:
        for h in hidden:
            for t in tokens:
                yield {"op_name": op, "dtype": "bfloat16", "hidden_size": h, "num_tokens": t}
