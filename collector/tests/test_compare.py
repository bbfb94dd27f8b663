import os

from aicfg_collector import compare, writer


def gemm(m, lat, src="k"):
    return {"framework": "F", "version": "v", "device": "d", "op_name": "gemm",
            "kernel_source": src, "gemm_dtype": "bfloat16", "m": m, "n": 64, "k": 64,
            "latency": lat}


def test_ratios_over_common_points_fastest_kernel_per_point(tmp_path, capsys):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    writer.write_table(os.path.join(a, "gemm", "vllm", "1", "gemm_perf.parquet"), "gemm_perf",
                       [gemm(1, 2.0), gemm(2, 4.0), gemm(3, 6.0), gemm(99, 1.0)])
    # B: an older and a newer version (0.10 is newer than 0.9); two kernels at m=1.
    writer.write_table(os.path.join(b, "gemm", "vllm", "0.9", "gemm_perf.parquet"), "gemm_perf",
                       [gemm(1, 100.0)])
    writer.write_table(os.path.join(b, "gemm", "vllm", "0.10", "gemm_perf.parquet"), "gemm_perf",
                       [gemm(1, 1.0), gemm(1, 3.0, "slow"), gemm(2, 2.0), gemm(3, 3.0)])
    rows = compare.compare(a, b, "vllm")
    assert rows == [{"table": "gemm_perf", "version_a": "1", "version_b": "0.10", "points": 3,
                     "p10": 2.0, "median": 2.0, "p90": 2.0}]
    assert compare.main([a, b, "--backend", "vllm"]) == 0
    assert "gemm_perf" in capsys.readouterr().out
    assert compare.main([a, str(tmp_path / "none"), "--backend", "vllm"]) == 2
