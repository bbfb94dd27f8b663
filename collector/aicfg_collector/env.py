"""Environment record (environment.json) and the system YAML skeleton (data/systems format)."""

import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import time

from . import __version__

FRAMEWORK_PACKAGES = {
    "trtllm": ["tensorrt_llm", "tensorrt-llm"],
    "vllm": ["vllm"],
    "sglang": ["sglang"],
}
KERNEL_PACKAGES = ["torch", "flashinfer-python", "flashinfer", "flash-attn", "flash_attn",
                   "vllm-flash-attn", "deep_gemm", "triton", "numpy", "pyarrow"]


def package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def framework_version(backend):
    for p in FRAMEWORK_PACKAGES[backend]:
        v = package_version(p)
        if v:
            return v
    return None


def nvidia_smi():
    """Per-GPU properties nvidia-smi reports (empty without a driver)."""
    q = "name,driver_version,memory.total,clocks.max.sm,clocks.max.memory,power.limit,pci.bus_id"
    try:
        r = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if r.returncode != 0:
        return []
    keys = q.split(",")
    return [dict(zip(keys, (x.strip() for x in line.split(","))))
            for line in r.stdout.strip().splitlines() if line.strip()]


def record(out, engine, backend, args):
    """Append this run to OUT/environment.json."""
    path = os.path.join(out, "environment.json")
    doc = {"runs": []}
    if os.path.exists(path):
        with open(path) as f:
            doc = json.load(f)
    packages = {p: v for p in FRAMEWORK_PACKAGES[backend] + KERNEL_PACKAGES
                if (v := package_version(p))}
    run = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "collector": __version__,
        "argv": args,
        "engine": engine.name,
        "backend": backend,
        "framework_version": framework_version(backend),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": packages,
        "device": engine.device_record(),
        "nvidia_smi": nvidia_smi(),
    }
    doc["runs"].append(run)
    os.makedirs(out, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return run


# Dense tensor-core FLOP per clock per SM, by compute capability (datasheet dense peak divided by
# SM count x boost clock: A100 312 TF / (108 x 1.41 GHz) = 2048; H100 SXM 989 TF / (132 x 1.83 GHz)
# = 4096; L40S 362 TF / (142 x 2.52 GHz) = 1024; B200 2.25 PF / (148 x 1.86 GHz) = 8192).
BF16_FLOP_PER_CLK_SM = {80: 2048, 86: 1024, 87: 1024, 89: 1024, 90: 4096, 100: 8192, 103: 8192,
                        110: 8192, 120: 1024, 121: 1024}
# Relative to bf16 (datasheets: fp8 and int8 2x on Ada/Hopper/Blackwell, fp4 4x on Blackwell).
FP8_X = {89: 2, 90: 2, 100: 2, 103: 2, 110: 2, 120: 2, 121: 2}
INT8_X = {80: 2, 86: 2, 87: 2, 89: 2, 90: 2, 100: 2, 103: 2, 110: 2, 120: 2, 121: 2}
FP4_X = {100: 4, 103: 4, 110: 4, 120: 4, 121: 4}


def _num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def system_yaml(system, dev, smi, nccl_version=None):
    """A system description filled from what the device reports; `TODO` marks what the user must
    check against the datasheet (the format wants datasheet peaks, not derived values)."""
    lines = [
        f"# aicfg system description: {system} (skeleton written by aicfg-collector {__version__})",
        "# Format: data/systems/README.md in the aicfg repository. Units: bytes, bytes/s, FLOP/s",
        "# (dense), seconds, watts. Values marked TODO are placeholders or derived estimates:",
        "# replace them with the datasheet figures before relying on the model.",
        f"# Device: {dev.get('name', 'unknown')}",
        f"name: {system}",
        "gpu:",
    ]
    s0 = smi[0] if smi else {}
    cc = dev.get("sm_version")
    sms = dev.get("multi_processor_count")
    clock_mhz = _num(s0.get("clocks.max.sm"))
    if not clock_mhz and dev.get("clock_rate_khz"):
        clock_mhz = dev["clock_rate_khz"] / 1e3
    mem_clock_mhz = _num(s0.get("clocks.max.memory"))
    bus = dev.get("memory_bus_width")
    if bus and mem_clock_mhz:
        bw = mem_clock_mhz * 1e6 * 2 * bus / 8  # double data rate x bus width
        lines.append(f"  mem_bw: {bw:.0f}  # TODO check datasheet; derived: 2 x {mem_clock_mhz:.0f} MHz x {bus}-bit bus")
    else:
        meas = dev.get("measured_copy_bw")
        bw = meas or 1e11
        src = f"measured device copy bandwidth {meas:.3g} B/s" if meas else "placeholder"
        lines.append(f"  mem_bw: {bw:.0f}  # TODO datasheet HBM/DRAM bandwidth ({src})")
    mem = dev.get("total_memory") or 1
    lines.append(f"  mem_capacity: {int(mem)}  # device memory reported by the runtime")
    if cc in BF16_FLOP_PER_CLK_SM and sms and clock_mhz:
        bf16 = BF16_FLOP_PER_CLK_SM[cc] * sms * clock_mhz * 1e6
        how = f"{BF16_FLOP_PER_CLK_SM[cc]} FLOP/clk/SM x {sms} SMs x {clock_mhz:.0f} MHz"
        lines.append(f"  bfloat16_tc_flops: {bf16:.0f}  # TODO check datasheet dense peak; derived: {how}")
        for key, table in (("int8_tc_flops", INT8_X), ("fp8_tc_flops", FP8_X), ("fp4_tc_flops", FP4_X)):
            if cc in table:
                lines.append(f"  {key}: {bf16 * table[cc]:.0f}  # TODO check datasheet; {table[cc]}x bf16")
    else:
        lines.append("  bfloat16_tc_flops: 1000000000000  # TODO datasheet dense BF16 peak (placeholder)")
    power = _num(s0.get("power.limit"))
    if power:
        lines.append(f"  power: {power:.0f}  # board power limit reported by nvidia-smi")
    if cc:
        lines.append(f"  sm_version: {cc}  # CUDA compute capability x10")
    n = max(1, int(dev.get("device_count") or 1))
    p2p = dev.get("measured_p2p_bw")
    lines += [
        "node:",
        f"  num_gpus_per_node: {n}  # GPUs visible to the collector",
        (f"  intra_node_bw: {p2p:.0f}  # TODO datasheet NVLink/PCIe per GPU, one direction (measured P2P {p2p:.3g} B/s)"
         if p2p else "  intra_node_bw: 64000000000  # TODO NVLink/PCIe per GPU, one direction (placeholder: PCIe Gen5 x16)"),
        "  inter_node_bw: 50000000000  # TODO NIC line rate per GPU, one direction (placeholder: 400 Gb/s)",
        "misc:",
        "  other_mem: 3758096384  # TODO runtime/context reserve per GPU (3.5 GiB default)",
    ]
    if nccl_version:
        lines.append(f"  nccl_version: '{nccl_version}'  # NCCL version the collected comm tables were measured with")
    if dev.get("kind") == "cuda" and dev.get("name"):
        label = re.sub(r"[^A-Za-z0-9._-]", "", dev["name"].strip().replace(" ", "-"))[:63]
        if label:
            lines.append(f"  k8s_gpu_product: {label}  # nvidia.com/gpu.product label (NVML name, spaces as '-'); TODO check on a node")
    return "\n".join(lines) + "\n"
