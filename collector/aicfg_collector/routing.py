"""MoE token routing for the measured rank (numpy only, deterministic).

`balanced`: token t takes experts t*topk .. t*topk+topk-1 (mod E): every expert gets the same
load. `power_law_A`: expert popularity proportional to rank**-A (a shuffled ranking); each token
draws topk distinct experts by it (Gumbel top-k). With expert parallelism the measured GPU holds
E/ep experts; it is given the busiest contiguous block, since the slowest rank sets the step time.
"""

import numpy as np

SEED = 20260601


def route(num_tokens, num_experts, topk, distribution, seed=SEED):
    """(num_tokens, topk) expert ids."""
    if topk > num_experts:
        raise ValueError(f"topk {topk} > experts {num_experts}")
    if distribution in ("balanced", "uniform"):
        t = np.arange(num_tokens)[:, None] * topk + np.arange(topk)[None, :]
        return (t % num_experts).astype(np.int64)
    if not distribution.startswith("power_law_"):
        raise ValueError(f"unknown distribution {distribution!r}")
    alpha = float(distribution[len("power_law_"):])
    rng = np.random.default_rng(seed)
    p = (np.arange(1, num_experts + 1, dtype=np.float64)) ** -alpha
    p = p[rng.permutation(num_experts)]
    g = rng.gumbel(size=(num_tokens, num_experts)) + np.log(p)[None, :]
    return np.argsort(-g, axis=1, kind="stable")[:, :topk].astype(np.int64)


def local_load(ids, num_experts, ep):
    """Tokens per local expert of the busiest EP rank: (counts of its E/ep experts, first id)."""
    per_rank = num_experts // ep
    counts = np.bincount(ids.ravel(), minlength=num_experts)
    blocks = counts.reshape(ep, per_rank)
    r = int(np.argmax(blocks.sum(axis=1)))
    return blocks[r], r * per_rank
