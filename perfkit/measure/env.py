"""The environment fingerprint recorded with every result: hardware, software, providers, commit."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib import metadata

from perfkit.core.records import Environment

# The CPU features that decide which kernels onnxruntime can use (fp16, int8 dot products, AMX tiles).
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "neon", "asimd", "asimddp", "sve")
PACKAGES = ("perfkit", "onnxruntime", "onnxruntime-gpu", "onnx", "numpy", "onnxconverter-common",
            # the frameworks of native models and their converters: a native row's figures depend on them
            "scikit-learn", "skl2onnx", "onnxmltools", "lightgbm", "xgboost", "xgboost-cpu", "torch", "onnxscript",
            "tensorflow", "keras", "tf2onnx")


def fingerprint(cwd: str | None = None) -> Environment:
    cpu_model, flags, physical = _cpuinfo()
    return Environment(
        cpu_model=cpu_model, cpu_flags=flags, logical_cores=os.cpu_count() or 1, physical_cores=physical,
        os=platform.platform(), python=platform.python_version(), packages=installed_packages(),
        providers=_providers(), git_commit=_git_commit(cwd), load_average=_load(),
    )


def installed_packages() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def conflicting_runtimes(packages: dict[str, str]) -> str | None:
    """Both onnxruntime and onnxruntime-gpu installed: they share one module and the GPU one loses."""
    if "onnxruntime" in packages and "onnxruntime-gpu" in packages:
        return ("onnxruntime and onnxruntime-gpu are both installed; the CUDA provider may be missing — "
                "pip uninstall onnxruntime onnxruntime-gpu, then install only perfkit[gpu]")
    return None


def _cpuinfo() -> tuple[str, tuple[str, ...], int | None]:
    model, flags, cores = platform.processor() or platform.machine(), set(), set()
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return model, (), None
    physical_id = "0"
    for line in text.splitlines():
        key, _, value = (p.strip() for p in line.partition(":"))
        if key in ("model name", "Model", "Hardware") and value:
            model = value
        elif key in ("flags", "Features"):
            flags.update(value.split())
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
    return model, tuple(f for f in CPU_FLAGS if f in flags), len(cores) or None


def _providers() -> tuple[str, ...]:
    try:
        import onnxruntime
    except ImportError:
        return ()
    return tuple(onnxruntime.get_available_providers())


def _git_commit(cwd: str | None) -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def available_memory() -> int | None:
    """Bytes the kernel could give without swapping (MemAvailable); None where /proc/meminfo is absent."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
