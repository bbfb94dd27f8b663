"""Tables aicfg reads: name, op family directory and columns (data/perfdb/README.md).

Every table starts with the provenance columns the public tables carry (framework, version,
device, op_name, kernel_source), then its key and axis columns, then `latency` (ms per call).
`KEY_COLUMNS` are the columns that identify one measured point (used for resumption).
"""

import pyarrow as pa

PROVENANCE = [
    ("framework", pa.string()),
    ("version", pa.string()),
    ("device", pa.string()),
    ("op_name", pa.string()),
    ("kernel_source", pa.string()),
]

_ATTN = [
    ("batch_size", pa.int64()),
    ("isl", pa.int64()),
    ("num_heads", pa.int64()),
    ("num_key_value_heads", pa.int64()),
    ("head_dim", pa.int64()),
    ("beam_width", pa.int64()),
    ("attn_dtype", pa.string()),
    ("kv_cache_dtype", pa.string()),
    ("step", pa.int64()),
    ("window_size", pa.int64()),
]

# table -> (op family directory, columns after the provenance ones, point key columns)
TABLES = {
    "gemm_perf": (
        "gemm",
        [("gemm_dtype", pa.string()), ("m", pa.int64()), ("n", pa.int64()), ("k", pa.int64())],
        ["gemm_dtype", "m", "n", "k"],
    ),
    "computescale_perf": (
        "quantize",
        [("m", pa.int64()), ("k", pa.int64()), ("quant_dtype", pa.string())],
        ["quant_dtype", "m", "k"],
    ),
    "scale_matrix_perf": (
        "quantize",
        [("m", pa.int64()), ("k", pa.int64()), ("quant_dtype", pa.string())],
        ["quant_dtype", "m", "k"],
    ),
    "context_attention_perf": (
        "attention",
        _ATTN,
        ["attn_dtype", "kv_cache_dtype", "head_dim", "window_size", "num_heads",
         "num_key_value_heads", "batch_size", "isl", "step"],
    ),
    "generation_attention_perf": (
        "attention",
        _ATTN,
        ["attn_dtype", "kv_cache_dtype", "head_dim", "window_size", "num_heads",
         "num_key_value_heads", "batch_size", "isl", "step"],
    ),
    "moe_perf": (
        "moe",
        [
            ("moe_dtype", pa.string()),
            ("num_tokens", pa.int64()),
            ("hidden_size", pa.int64()),
            ("inter_size", pa.int64()),
            ("topk", pa.int64()),
            ("num_experts", pa.int64()),
            ("moe_tp_size", pa.int64()),
            ("moe_ep_size", pa.int64()),
            ("distribution", pa.string()),
        ],
        ["moe_dtype", "distribution", "topk", "num_experts", "hidden_size", "inter_size",
         "moe_tp_size", "moe_ep_size", "num_tokens"],
    ),
    # Under comm/nccl/<nccl version>/, shared by the backends.
    "nccl_perf": (
        "comm",
        [("nccl_dtype", pa.string()), ("num_gpus", pa.int64()), ("message_size", pa.int64())],
        ["op_name", "nccl_dtype", "num_gpus", "message_size"],
    ),
    # aicfg prices P2P and element-wise ops with its formulas; these tables are recorded for
    # comparison (`aicfg bench ops`) and future use, and are ignored by the reader today.
    "p2p_perf": (
        "comm",
        [("p2p_dtype", pa.string()), ("message_size", pa.int64()), ("src", pa.int64()),
         ("dst", pa.int64())],
        ["p2p_dtype", "src", "dst", "message_size"],
    ),
    "elementwise_perf": (
        "elementwise",
        [("dtype", pa.string()), ("num_tokens", pa.int64()), ("hidden_size", pa.int64())],
        ["op_name", "dtype", "hidden_size", "num_tokens"],
    ),
}

# Which tables each --ops family produces.
OP_TABLES = {
    "gemm": ["gemm_perf", "computescale_perf", "scale_matrix_perf"],
    "attention": ["context_attention_perf", "generation_attention_perf"],
    "moe": ["moe_perf"],
    "comm": ["nccl_perf", "p2p_perf"],
    "elementwise": ["elementwise_perf"],
}
OPS = list(OP_TABLES)


def arrow_schema(table):
    _, cols, _ = TABLES[table]
    return pa.schema(PROVENANCE + cols + [("latency", pa.float64())])


def column_names(table):
    return [f.name for f in arrow_schema(table)]


def point_key(table, row):
    """The tuple that identifies one measured point of `table`."""
    return tuple(row[c] for c in TABLES[table][2])


def family(table):
    return TABLES[table][0]
