"""Measurement engines: `torch` (GPU, or CPU for smoke runs) and `numpy` (CPU only, light deps).

An engine answers `measure(table, point) -> (latency_ms, kernel_source)` or raises
`Unsupported(reason)` for a point it cannot run (a dtype the device lacks, out of memory); the
collector records the reason and moves on.
"""


class Unsupported(Exception):
    pass


class DeviceError(Exception):
    """A sticky device error (illegal address, device-side assert, ECC): every later kernel in
    this process would fail too, so the run stops (tables written as partial) instead of
    recording the rest of the grid as unsupported; `--resume` in a fresh process continues."""


STICKY = ("illegal memory access", "device-side assert", "unspecified launch failure",
          "uncorrectable ecc", "misaligned address", "an illegal instruction",
          "cuda error: unknown error", "device not ready")


def is_sticky(err):
    s = str(err).lower()
    return any(x in s for x in STICKY)


def load(name, backend, quick):
    if name == "numpy":
        from .numpy_engine import NumpyEngine

        return NumpyEngine(backend, quick)
    if name == "torch":
        from .torch_engine import TorchEngine

        return TorchEngine(backend, quick)
    if name == "auto":
        try:
            import torch  # noqa: F401
        except Exception:
            return load("numpy", backend, quick)
        return load("torch", backend, quick)
    raise ValueError(f"unknown engine {name!r} (torch, numpy, auto)")
