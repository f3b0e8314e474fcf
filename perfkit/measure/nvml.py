"""GPU memory of this process through NVML (the nvidia-ml-py package), where a driver and the package are
present; None everywhere else — a figure is never guessed."""

from __future__ import annotations

import os


def process_device_bytes(device_id: int = 0) -> int | None:
    """Device memory this process holds on GPU `device_id`. onnxruntime's and PyTorch's allocators keep what
    they took, so after the timed calls this is the case's peak."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(device_id)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == os.getpid():
                    return int(proc.usedGpuMemory) if proc.usedGpuMemory is not None else None
            return 0
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return None
