"""Torch engine on CPU (separate command: `python -m pytest collector/tests -m torch`)."""

import pytest

pytestmark = pytest.mark.torch


@pytest.fixture
def eng():
    pytest.importorskip("torch", reason="torch not installed: pip install torch")
    from aicfg_collector.engines.torch_engine import TorchEngine

    return TorchEngine("vllm", quick=True)


def test_fallback_drops_an_implementation_only_after_it_never_worked(eng):
    calls = []

    def bad(p):
        calls.append("bad")
        raise ValueError("kernel rejects this")

    def good(p):
        calls.append("good")
        return lambda: None

    impls = [("bad", bad), ("good", good)]
    for _ in range(3):
        ms, src = eng._run("t", impls, {})
        assert src == "good" and ms >= 0
    assert ("t", "bad") in eng._broken  # three failures, never a success
    calls.clear()
    eng._run("t", impls, {})
    assert calls == ["good"]


def test_an_import_error_drops_at_once_and_a_working_kernel_survives_one_failure(eng):
    def missing(p):
        raise ImportError("no flashinfer")

    state = {"n": 0}

    def flaky(p):
        state["n"] += 1
        if state["n"] == 2:
            raise RuntimeError("unsupported head size")
        return lambda: None

    assert eng._run("u", [("missing", missing), ("flaky", flaky)], {})[1] == "flaky"
    assert ("u", "missing") in eng._broken
    from aicfg_collector.engines import Unsupported

    with pytest.raises(Unsupported, match="unsupported head size"):
        eng._run("u", [("flaky", flaky)], {})
    assert ("u", "flaky") not in eng._broken
    assert eng._run("u", [("flaky", flaky)], {})[1] == "flaky"


def test_cpu_engine_offers_bf16_and_probed_fp8(eng):
    d = eng.gemm_dtypes()
    assert d[0] == "bfloat16"
    assert "nvfp4" not in d and "fp8_block" not in d  # GPU-only kernels
    ms, src = eng.measure("gemm_perf", {"gemm_dtype": "bfloat16", "m": 4, "n": 64, "k": 64})
    assert ms > 0 and src == "torch.nn.functional.linear"
    ms, src = eng.measure("moe_perf", {"moe_dtype": "bfloat16", "distribution": "balanced",
                                       "topk": 2, "num_experts": 8, "hidden_size": 64,
                                       "inter_size": 32, "moe_tp_size": 1, "moe_ep_size": 2,
                                       "num_tokens": 8})
    assert ms > 0 and "emulation" in src
