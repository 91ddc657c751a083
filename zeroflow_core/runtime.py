"""Device, threads and memory measurement shared by runs, pretraining and benchmarks."""
from __future__ import annotations

import resource

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


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated by torch; CPU: peak resident set size of this process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
