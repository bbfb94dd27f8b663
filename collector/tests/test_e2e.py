"""CPU --quick runs of the real CLI, installed and queried by the aicfg binary.

The numpy engine needs only the package's own dependencies and runs in CI. The torch engine
test (`-m torch`) needs torch installed (a multi-GB download from PyPI) and is a separate
command: `pip install torch && python -m pytest collector/tests -m torch`.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

from aicfg_collector import writer
from aicfg_collector.cli import main

from conftest import ROOT, aicfg_bin

EXPECTED_TABLES = {"gemm_perf", "context_attention_perf", "generation_attention_perf",
                   "moe_perf", "elementwise_perf"}


def need_aicfg():
    b = aicfg_bin()
    if b is None:
        if os.environ.get("CI") or os.environ.get("AICFG_BIN"):
            pytest.fail("aicfg binary not found (set AICFG_BIN or build target/debug/aicfg)")
        pytest.skip("aicfg binary not built (cargo build, or set AICFG_BIN)")
    return b


def aicfg(b, data_dir, *args):
    env = dict(os.environ, AICFG_DATA_DIR=data_dir)
    return subprocess.run([b, *args], capture_output=True, text=True, env=env, timeout=300)


def install_and_estimate(out, system, backend, data_dir, tp=1):
    b = need_aicfg()
    r = aicfg(b, data_dir, "data", "install", "--from", out)
    assert r.returncode == 0, r.stderr
    assert "1 system YAMLs" in r.stdout, r.stdout
    r = aicfg(b, data_dir, "data", "list")
    assert r.returncode == 0 and system in r.stdout and backend in r.stdout, r.stdout + r.stderr
    r = aicfg(b, data_dir, "cli", "estimate", "--model", "Qwen/Qwen3-8B", "--system", system,
              "--systems-path", out, "--backend", backend, "--database-mode", "silicon",
              "--isl", "256", "--osl", "32", "--tp-size", str(tp), "--json")
    assert r.returncode == 0, r.stderr
    est = json.loads(r.stdout)
    srcs = {o["name"]: o["source"] for o in est["decode_ops"]}
    return est, srcs


def test_numpy_quick_run_installs_and_answers_silicon(tmp_path):
    out = str(tmp_path / "db")
    rc = main(["--system-name", "cpu_quick", "--backend", "vllm", "--out", out, "--quick",
               "--engine", "numpy"])
    assert rc == 0
    vdir = os.path.join(out, "data", "cpu_quick")
    found = {f[:-8] for _, _, fs in os.walk(vdir) for f in fs if f.endswith(".parquet")}
    assert found == EXPECTED_TABLES
    g = writer.read_table(os.path.join(vdir, "gemm", "vllm", os.listdir(os.path.join(vdir, "gemm", "vllm"))[0], "gemm_perf.parquet"))
    assert len(g) == 16 and all(r["latency"] > 0 for r in g)
    assert all(r["kernel_source"].startswith("numpy_float32") for r in g)
    with open(os.path.join(out, "cpu_quick.yaml")) as f:
        sy = yaml.safe_load(f)
    assert sy["name"] == "cpu_quick" and sy["gpu"]["mem_capacity"] > 0
    with open(os.path.join(out, "environment.json")) as f:
        envr = json.load(f)
    assert envr["runs"][0]["engine"] == "numpy" and "numpy" in envr["runs"][0]["packages"]

    est, srcs = install_and_estimate(out, "cpu_quick", "vllm", str(tmp_path / "aicfg-data"))
    # GEMMs and attention come from the collected tables; norms stay on the formulas.
    assert srcs.get("qkv_proj") == "silicon", srcs
    assert srcs.get("attention") == "silicon", srcs
    assert srcs.get("add_norm_1") == "empirical", srcs


def test_cli_errors(tmp_path, capsys):
    assert main(["--system-name", "x", "--backend", "vllm", "--out", str(tmp_path),
                 "--ops", "gemm,bogus", "--engine", "numpy"]) == 2
    assert "unknown" in capsys.readouterr().err
    out = str(tmp_path / "o")
    assert main(["--system-name", "x", "--backend", "vllm", "--out", out, "--quick",
                 "--engine", "numpy", "--ops", "gemm", "--max-points", "3"]) == 3
    assert main(["--system-name", "x", "--backend", "vllm", "--out", out, "--quick",
                 "--engine", "numpy", "--ops", "gemm"]) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(["--system-name", "x", "--backend", "vllm", "--out", out, "--quick",
                 "--engine", "numpy", "--ops", "gemm", "--resume"]) == 0


def test_module_entry_point_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "aicfg_collector", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--system-name" in r.stdout


@pytest.mark.torch
def test_torch_cpu_quick_run_installs_and_answers_silicon(tmp_path):
    pytest.importorskip("torch", reason="torch not installed: pip install torch")
    out = str(tmp_path / "db")
    rc = main(["--system-name", "cpu_torch", "--backend", "sglang", "--out", out, "--quick",
               "--engine", "torch"])
    assert rc == 0
    tables = {f[:-8] for _, _, fs in os.walk(os.path.join(out, "data")) for f in fs
              if f.endswith(".parquet")}
    # fp8 GEMM (torch._scaled_mm) brings the quantize tables; gloo gives collectives and P2P.
    assert EXPECTED_TABLES | {"computescale_perf", "scale_matrix_perf", "nccl_perf",
                              "p2p_perf"} <= tables
    est, srcs = install_and_estimate(out, "cpu_torch", "sglang", str(tmp_path / "aicfg-data"),
                                     tp=2)
    assert srcs.get("qkv_proj") == "silicon", srcs
    # The TP all-reduce answers from the collected (gloo) nccl_perf table, the system skeleton
    # naming its version in misc.nccl_version.
    assert srcs.get("attn_allreduce") == "silicon", srcs
