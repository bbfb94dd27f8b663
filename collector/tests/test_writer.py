import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from aicfg_collector import schema, writer


def gemm_rows():
    lat = [0.1, 1e-300, 123456.789, 2.0 ** -40, 0.30000000000000004, 5e-324]
    return [{"framework": "VLLM", "version": "0.1", "device": "Dev ü", "op_name": "gemm",
             "kernel_source": "k", "gemm_dtype": d, "m": m, "n": 4096, "k": 2 ** 40,
             "latency": lat[i % len(lat)]}
            for i, (d, m) in enumerate([(d, m) for d in ("bfloat16", "fp8") for m in (1, 3, 8192)])]


def test_parquet_round_trips_exactly(tmp_path):
    rows = gemm_rows()
    p = str(tmp_path / "gemm_perf.parquet")
    writer.write_table(p, "gemm_perf", rows)
    assert writer.read_table(p) == rows  # values, order, and float bits
    back = pq.read_table(p)
    # The column types aicfg's reader expects: utf8 strings, int64 axes, double latency.
    assert back.schema.field("gemm_dtype").type == pa.string()
    assert back.schema.field("m").type == pa.int64()
    assert back.schema.field("latency").type == pa.float64()
    assert pq.ParquetFile(p).metadata.row_group(0).column(0).compression == "ZSTD"
    assert not os.path.exists(p + ".tmp")


@pytest.mark.parametrize("table", sorted(schema.TABLES))
def test_every_table_schema_starts_with_provenance_and_ends_with_latency(table):
    names = schema.column_names(table)
    assert names[:5] == ["framework", "version", "device", "op_name", "kernel_source"]
    assert names[-1] == "latency"
    assert len(names) == len(set(names))
    assert set(schema.TABLES[table][2]) <= set(names)


def test_attention_columns_are_the_ones_aicfg_reads():
    need = {"batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "attn_dtype",
            "kv_cache_dtype", "latency", "window_size", "step"}
    for t in ("context_attention_perf", "generation_attention_perf"):
        assert need <= set(schema.column_names(t))
    assert {"moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts",
            "moe_tp_size", "moe_ep_size", "distribution"} <= set(schema.column_names("moe_perf"))
    assert {"nccl_dtype", "op_name", "num_gpus", "message_size"} <= set(
        schema.column_names("nccl_perf"))


def test_missing_column_or_bad_latency_is_refused(tmp_path):
    s = writer.TableStore(str(tmp_path), "sys", "gemm_perf", "vllm", "1.0")
    row = dict(gemm_rows()[0])
    del row["m"]
    with pytest.raises(ValueError, match="lacks"):
        s.add(row)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        r = dict(gemm_rows()[0], latency=bad)
        with pytest.raises(ValueError, match="latency"):
            s.add(r)
    s.close()


def test_layout_and_meta(tmp_path):
    out = str(tmp_path)
    s = writer.TableStore(out, "my_gpu", "context_attention_perf", "sglang", "0.5.1")
    assert s.parquet == os.path.join(out, "data", "my_gpu", "attention", "sglang", "0.5.1",
                                     "context_attention_perf.parquet")
    assert s.progress.startswith(os.path.join(out, ".progress"))
    writer.write_meta(s.dir, "sglang", "0.5.1", {"context_attention_perf": "partial"})
    writer.write_meta(s.dir, "sglang", "0.5.1", {"generation_attention_perf": "complete"},
                      {"engine": "torch"})
    with open(os.path.join(s.dir, "collection_meta.yaml")) as f:
        m = yaml.safe_load(f)
    assert m == {"schema_version": 1, "provenance": "collected",
                 "runtime": {"framework": "sglang", "version": "0.5.1"},
                 "tables": {"context_attention_perf": {"status": "partial"},
                            "generation_attention_perf": {"status": "complete"}},
                 "collector": {"engine": "torch"}}


def test_store_checkpoints_and_reloads(tmp_path):
    out = str(tmp_path)
    s = writer.TableStore(out, "g", "gemm_perf", "vllm", "1")
    rows = gemm_rows()
    for r in rows[:4]:
        s.add(r)
    s.skip({"gemm_dtype": "fp8", "m": 7, "n": 1, "k": 1}, "no fp8")
    s.close()
    s2 = writer.TableStore(out, "g", "gemm_perf", "vllm", "1")
    assert s2.load() == 5
    assert [s2.rows[schema.point_key("gemm_perf", r)] for r in rows[:4]] == rows[:4]
    assert s2.done({"gemm_dtype": "fp8", "m": 7, "n": 1, "k": 1})
    assert not s2.done(rows[4])


def test_torn_last_line_is_dropped_and_cut(tmp_path):
    out = str(tmp_path)
    s = writer.TableStore(out, "g", "gemm_perf", "vllm", "1")
    rows = gemm_rows()
    s.add(rows[0])
    s.add(rows[1])
    s.close()
    with open(s.progress, "a") as f:
        f.write('{"framework": "VLLM", "gemm_dt')  # killed mid-write
    s2 = writer.TableStore(out, "g", "gemm_perf", "vllm", "1")
    assert s2.load() == 2
    s2.add(rows[2])
    s2.close()
    s3 = writer.TableStore(out, "g", "gemm_perf", "vllm", "1")
    assert s3.load() == 3


def test_write_orders_rows_by_the_grid(tmp_path):
    s = writer.TableStore(str(tmp_path), "g", "gemm_perf", "vllm", "1")
    rows = gemm_rows()
    for r in reversed(rows):
        s.add(r)
    order = [{k: r[k] for k in ("gemm_dtype", "m", "n", "k")} for r in rows]
    assert s.write(order) == len(rows)
    s.close()
    assert writer.read_table(s.parquet) == rows


def test_system_skeleton_from_gpu_properties():
    from aicfg_collector import env

    dev = {"name": "NVIDIA H200", "kind": "cuda", "sm_version": 90, "multi_processor_count": 132,
           "total_memory": 150_000_000_000, "device_count": 8, "memory_bus_width": 6144,
           "measured_p2p_bw": 3.9e11}
    smi = [{"clocks.max.sm": "1980", "clocks.max.memory": "3201", "power.limit": "700.00"}]
    y = yaml.safe_load(env.system_yaml("my_h200", dev, smi, "2.21.5"))
    assert y["name"] == "my_h200"
    # 4096 FLOP/clk/SM (Hopper) x 132 SMs x 1.98 GHz; 2 x 3.201 GHz x 6144 bit / 8.
    assert y["gpu"]["bfloat16_tc_flops"] == 4096 * 132 * 1980e6
    assert y["gpu"]["fp8_tc_flops"] == 2 * y["gpu"]["bfloat16_tc_flops"]
    assert "fp4_tc_flops" not in y["gpu"]
    assert y["gpu"]["mem_bw"] == 2 * 3201e6 * 6144 / 8
    assert y["gpu"]["sm_version"] == 90 and y["gpu"]["power"] == 700
    assert y["node"]["num_gpus_per_node"] == 8 and y["node"]["intra_node_bw"] == 3.9e11
    assert y["misc"]["nccl_version"] == "2.21.5"
    assert y["misc"]["k8s_gpu_product"] == "NVIDIA-H200"
