from aicfg_collector import grids, schema


def test_gemm_m_axis_matches_the_public_tables():
    # The m values of the public gemm_perf tables (aiconfigurator-core 0.12.0), by hand.
    expected = (list(range(1, 18))
                + [32, 33, 48, 49, 64, 65, 80, 81, 96, 97, 112, 113, 128, 129, 160, 161, 192,
                   193, 224, 225, 256, 257]
                + [512, 513, 768, 769, 1024, 1025, 1280, 1281, 1536, 1537, 1792, 1793, 2048,
                   2049, 2304, 2305, 2560, 2561, 2816, 2817, 3072, 3073, 3328, 3329, 3584, 3585,
                   3840, 3841, 4096, 4097, 4352, 4353]
                + [8192, 16384, 32768])
    assert grids.GEMM_M == expected
    assert len(grids.GEMM_M) == 74
    assert len(grids.GEMM_NK) == 22 and grids.GEMM_NK[0] == 32 and grids.GEMM_NK[-1] == 65536


def test_gemm_full_grid_is_the_cartesian_product():
    pts = list(grids.gemm(["bfloat16", "fp8"]))
    assert len(pts) == 2 * 74 * 22 * 22
    assert len({schema.point_key("gemm_perf", p) for p in pts}) == len(pts)
    assert pts[0] == {"gemm_dtype": "bfloat16", "m": 1, "n": 32, "k": 32}


def test_quick_gemm_grid():
    pts = list(grids.gemm(["bfloat16"], quick=True))
    assert len(pts) == 4 * 2 * 2
    assert {p["m"] for p in pts} == {1, 4, 16, 64}


def test_context_attention_grid_respects_the_token_cap():
    pts = list(grids.context_attention(["bfloat16"]))
    assert all(p["batch_size"] * p["isl"] <= 131072 for p in pts)
    one = [p for p in pts if (p["num_heads"], p["num_key_value_heads"], p["head_dim"],
                              p["window_size"]) == (32, 8, 128, 0)]
    # batch 1,2,4,8: all 17 isl; 16: <=8192 (14); 32: 12; 64: 10; 128: 8; 256: 7.
    assert len(one) == 4 * 17 + 14 + 12 + 10 + 8 + 7
    assert all(p["step"] == 0 and p["beam_width"] == 1 for p in pts)


def test_generation_attention_grid():
    pts = list(grids.generation_attention(["bfloat16", "fp8"]))
    assert all(p["isl"] == 1 for p in pts)
    assert all(p["num_key_value_heads"] <= 8 for p in pts)
    assert all(p["batch_size"] * (p["isl"] + p["step"]) <= 2 ** 22 for p in pts)
    one = [p for p in pts if (p["num_heads"], p["num_key_value_heads"], p["head_dim"],
                              p["window_size"], p["kv_cache_dtype"]) == (32, 8, 128, 0, "fp8")]
    # KV length 2..131072 (17 values); batch 1..32 take all, 64 stops at 65536, ... 2048 at 2048.
    assert len(one) == 6 * 17 + 16 + 15 + 14 + 13 + 12 + 11
    assert max(p["step"] for p in one) == 131071


def test_quick_attention_covers_a_gqa_and_an_mha_slice():
    pts = list(grids.context_attention(["bfloat16"], quick=True))
    assert {(p["num_heads"], p["num_key_value_heads"]) for p in pts} == {
        (8, 8), (16, 8), (32, 8), (8, 4), (16, 4)}
    assert len(pts) == 5 * 2 * 2


def test_moe_grid_keeps_only_divisible_shardings():
    pts = list(grids.moe(["bfloat16"]))
    for p in pts:
        assert p["num_experts"] % p["moe_ep_size"] == 0
        assert p["inter_size"] % p["moe_tp_size"] == 0
    mixtral = {(p["moe_tp_size"], p["moe_ep_size"]) for p in pts
               if (p["hidden_size"], p["num_experts"]) == (4096, 8)}
    assert (1, 8) in mixtral and (1, 16) not in mixtral  # 8 experts cannot spread over 16
    q = list(grids.moe(["bfloat16"], quick=True))
    assert len(q) == 2 * 1 * 3


def test_gpu_counts():
    assert grids.gpu_counts(1) == []
    assert grids.gpu_counts(2) == [2]
    assert grids.gpu_counts(8) == [2, 4, 8]
    assert grids.gpu_counts(6) == [2, 4, 6]


def test_nccl_and_p2p_grids():
    pts = list(grids.nccl(8))
    assert len(pts) == 4 * 2 * 3 * 23
    assert {p["op_name"] for p in pts} == {"all_gather", "reduce_scatter", "all_reduce", "alltoall"}
    assert min(p["message_size"] for p in pts) == 128
    assert max(p["message_size"] for p in pts) == 536870912
    assert [p["dst"] for p in grids.p2p(4, quick=True)] == [1, 1]
    assert list(grids.p2p(1)) == []


def test_every_grid_point_has_the_tables_key_columns():
    tables = {
        "gemm_perf": grids.gemm(["bfloat16"], quick=True),
        "computescale_perf": grids.quantize(quick=True),
        "context_attention_perf": grids.context_attention(["bfloat16"], quick=True),
        "generation_attention_perf": grids.generation_attention(["bfloat16"], quick=True),
        "moe_perf": grids.moe(["bfloat16"], quick=True),
        "nccl_perf": grids.nccl(2, quick=True),
        "p2p_perf": grids.p2p(2, quick=True),
        "elementwise_perf": grids.elementwise(quick=True),
    }
    for t, pts in tables.items():
        cols = set(schema.column_names(t))
        for p in pts:
            assert set(schema.TABLES[t][2]) <= set(p), t
            assert set(p) <= cols, (t, set(p) - cols)


def test_head_dim_filter():
    pts = list(grids.context_attention(["bfloat16"], head_dims=[128]))
    assert {p["head_dim"] for p in pts} == {128}
    assert {p["window_size"] for p in pts} == {0, 128, 8192}
    assert list(grids.generation_attention(["bfloat16"], quick=True, head_dims=[64])) == []


def test_coarse_grid_points_are_full_grid_points():
    pairs = [
        (grids.gemm(["bfloat16"], quick="coarse"), grids.gemm(["bfloat16"]), "gemm_perf", 15 * 36),
        (grids.context_attention(["bfloat16"], quick="coarse"),
         grids.context_attention(["bfloat16"]), "context_attention_perf", None),
        (grids.generation_attention(["bfloat16"], quick="coarse"),
         grids.generation_attention(["bfloat16"]), "generation_attention_perf", None),
        (grids.moe(["bfloat16"], quick="coarse"), grids.moe(["bfloat16"]), "moe_perf", None),
        (grids.nccl(8, quick="coarse"), grids.nccl(8), "nccl_perf", 4 * 1 * 3 * 8),
        (grids.elementwise(quick="coarse"), grids.elementwise(), "elementwise_perf", 5 * 2 * 4),
    ]
    for coarse, full, table, n in pairs:
        c = [schema.point_key(table, p) for p in coarse]
        f = {schema.point_key(table, p) for p in full}
        assert c and set(c) <= f, table
        if n is not None:
            assert len(c) == n, table
