import os

import pytest
import yaml

from aicfg_collector import grids, writer
from aicfg_collector.collect import CollectError, collect


def parquet(out, table, fam, version="fake1.0"):
    return os.path.join(out, "data", "sysx", fam, "vllm", version, table + ".parquet")


def status(out, fam, table, version="fake1.0"):
    p = os.path.join(out, "data", "sysx", fam, "vllm", version, "collection_meta.yaml")
    with open(p) as f:
        return yaml.safe_load(f)["tables"][table]["status"]


def test_interrupted_run_resumes_without_remeasuring(tmp_path, fake_engine):
    out = str(tmp_path / "out")
    total = len(list(grids.gemm(["bfloat16", "fp8"], quick=True)))
    e1 = fake_engine(interrupt_after=5)
    s = collect(e1, "sysx", "vllm", out, ["gemm"], quick=True, resume=False)
    assert s["interrupted"]
    assert len(e1.calls) == 5
    rows = writer.read_table(parquet(out, "gemm_perf", "gemm"))
    assert len(rows) == 5  # what was measured is on disk, as a partial table
    assert status(out, "gemm", "gemm_perf") == "partial"

    with pytest.raises(CollectError, match="--resume"):
        collect(fake_engine(), "sysx", "vllm", out, ["gemm"], quick=True, resume=False)

    e2 = fake_engine()
    s = collect(e2, "sysx", "vllm", out, ["gemm"], quick=True, resume=True)
    assert not s["interrupted"]
    measured = {tuple(sorted(p.items())) for _, p in e2.calls if _ == "gemm_perf"}
    first = {tuple(sorted(p.items())) for _, p in e1.calls}
    assert not measured & first  # the 5 points of the first run were not measured again
    assert len(measured) == total - 5
    rows = writer.read_table(parquet(out, "gemm_perf", "gemm"))
    assert len(rows) == total
    assert status(out, "gemm", "gemm_perf") == "complete"

    # Same rows, same order and same bytes as an uninterrupted run.
    out2 = str(tmp_path / "fresh")
    collect(fake_engine(), "sysx", "vllm", out2, ["gemm"], quick=True, resume=False)
    assert writer.read_table(parquet(out2, "gemm_perf", "gemm")) == rows
    with open(parquet(out2, "gemm_perf", "gemm"), "rb") as a, \
            open(parquet(out, "gemm_perf", "gemm"), "rb") as b:
        assert a.read() == b.read()


def test_max_points_stops_like_an_interruption(tmp_path, fake_engine):
    out = str(tmp_path)
    s = collect(fake_engine(), "sysx", "vllm", out, ["gemm", "attention"], quick=True,
                resume=False, max_points=20)
    assert s["interrupted"]
    assert s["tables"]["gemm_perf"]["rows"] == 20
    assert "context_attention_perf" not in s["tables"]
    for _ in range(10):
        s = collect(fake_engine(), "sysx", "vllm", out, ["gemm", "attention"], quick=True,
                    resume=True, max_points=20)
        if not s["interrupted"]:
            break
    assert not s["interrupted"]
    assert s["tables"]["generation_attention_perf"]["status"] == "complete"


def test_unsupported_points_are_recorded_and_not_retried(tmp_path, fake_engine):
    out = str(tmp_path)
    e = fake_engine(unsupported={"computescale_perf"})
    s = collect(e, "sysx", "vllm", out, ["gemm"], quick=True, resume=False)
    n = len(list(grids.quantize(quick=True)))
    assert s["tables"]["computescale_perf"] == {
        "rows": 0, "skipped": n, "left": 0, "status": "complete", "path": None}
    assert not os.path.exists(parquet(out, "computescale_perf", "quantize"))
    e2 = fake_engine()
    collect(e2, "sysx", "vllm", out, ["gemm"], quick=True, resume=True)
    assert e2.calls == []


def test_bad_system_name_and_ops(tmp_path, fake_engine):
    with pytest.raises(CollectError, match="system name"):
        collect(fake_engine(), "../x", "vllm", str(tmp_path), ["gemm"], True, False)
    with pytest.raises(CollectError, match="unknown op family"):
        collect(fake_engine(), "x", "vllm", str(tmp_path / "b"), ["gemmm"], True, False)


def test_retry_skipped_measures_unsupported_points_again(tmp_path, fake_engine):
    out = str(tmp_path)
    collect(fake_engine(unsupported={"gemm_perf"}), "sysx", "vllm", out, ["gemm"], quick=True,
            resume=False)
    assert not os.path.exists(parquet(out, "gemm_perf", "gemm"))
    e = fake_engine()
    collect(e, "sysx", "vllm", out, ["gemm"], quick=True, resume=True)
    assert e.calls == []  # skipped points stay skipped on a plain resume
    e = fake_engine()
    s = collect(e, "sysx", "vllm", out, ["gemm"], quick=True, resume=True, retry_skipped=True)
    n = len(list(grids.gemm(["bfloat16", "fp8"], quick=True)))
    assert len([c for c in e.calls if c[0] == "gemm_perf"]) == n
    assert s["tables"]["gemm_perf"]["rows"] == n and s["tables"]["gemm_perf"]["skipped"] == 0
    # The progress file now holds a skip then a row per point: the row wins on reload.
    st = writer.TableStore(out, "sysx", "gemm_perf", "vllm", "fake1.0")
    st.load()
    assert len(st.rows) == n and not st.skipped


def test_a_sticky_device_error_stops_the_run_without_marking_points(tmp_path, fake_engine):
    out = str(tmp_path)
    s = collect(fake_engine(device_error_after=3), "sysx", "vllm", out, ["gemm"], quick=True,
                resume=False)
    assert s["interrupted"] and "illegal" in s["device_error"]
    assert s["tables"]["gemm_perf"]["rows"] == 3 and s["tables"]["gemm_perf"]["skipped"] == 0
    e = fake_engine()
    s = collect(e, "sysx", "vllm", out, ["gemm"], quick=True, resume=True)
    assert not s["interrupted"]
