import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)  # collector/
REPO = os.path.dirname(ROOT)
sys.path.insert(0, ROOT)  # tests run from a checkout without `pip install`


class FakeEngine:
    """Deterministic latencies (a function of the point) and a switch to interrupt after n
    points, for checkpoint and writer tests."""

    name = "fake"
    is_gpu = False
    device = "fake device"

    def __init__(self, interrupt_after=None, unsupported=(), device_error_after=None):
        self.calls = []
        self.interrupt_after = interrupt_after
        self.device_error_after = device_error_after
        self.unsupported = set(unsupported)
        from aicfg_collector.timing import Timing

        self.timing = Timing.quick()

    def gemm_dtypes(self):
        return ["bfloat16", "fp8"]

    def kv_dtypes(self):
        return ["bfloat16"]

    def moe_dtypes(self):
        return ["bfloat16"]

    def local_devices(self):
        return 0

    def versions(self):
        return {"fake": "1.0"}

    def device_record(self):
        return {"name": self.device, "device_count": 1, "total_memory": 1 << 30}

    def measured_bandwidths(self, *a):
        return {}

    @staticmethod
    def latency(table, p):
        # Exact binary fractions and a few awkward doubles, to test exact round trips.
        v = sum(x for x in p.values() if isinstance(x, int)) + len(table)
        return v / 1024.0 + 1e-9 * (v % 7)

    def measure(self, table, p):
        from aicfg_collector.engines import Unsupported

        if self.interrupt_after is not None and len(self.calls) >= self.interrupt_after:
            raise KeyboardInterrupt
        if self.device_error_after is not None and len(self.calls) >= self.device_error_after:
            from aicfg_collector.engines import DeviceError

            raise DeviceError("illegal memory access")
        self.calls.append((table, dict(p)))
        if table in self.unsupported:
            raise Unsupported(f"{table} unsupported here")
        return self.latency(table, p), "fake_kernel"


@pytest.fixture
def fake_engine():
    return FakeEngine


def aicfg_bin():
    """The aicfg binary for end-to-end tests: $AICFG_BIN, else the workspace's debug build."""
    b = os.environ.get("AICFG_BIN") or os.path.join(REPO, "target", "debug", "aicfg")
    return b if os.path.isfile(b) and os.access(b, os.X_OK) else None
