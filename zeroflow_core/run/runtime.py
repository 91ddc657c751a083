"""Device, threads and memory measurement shared by runs, pretraining and benchmarks."""
from __future__ import annotations

import resource
import sys

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def set_threads(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)


def proc_status_kib(field: str) -> int | None:
    """A `kB` field of /proc/self/status (VmHWM, VmRSS), or None where there is no /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated by torch. CPU: peak resident set of this process.

    On Linux the peak is VmHWM, not getrusage's ru_maxrss: ru_maxrss carries the parent's
    high-water mark across fork + exec, so a run started by a large `dvc repro` would report
    the parent's peak instead of its own.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    kib = proc_status_kib("VmHWM")
    if kib is None:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB on Linux
    return kib / 1024


def current_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    kib = proc_status_kib("VmRSS")
    return 0.0 if kib is None else kib / 1024
