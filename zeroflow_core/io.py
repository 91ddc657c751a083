"""Atomic file writes: a crash leaves the previous file or the new one, never half of one.

Science core, under every layer: imports nothing of zeroflow_core."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import re

import yaml


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` (no dot) as a string; researchers write learning rates that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\.inf|\.nan)$"),
    list("-+0123456789."),
)


def load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp's private mode is not what a results file should have
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | Path, data) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def write_yaml(path: str | Path, data) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(yaml.safe_dump(data, sort_keys=False)))


def save_torch(path: str | Path, obj) -> None:
    """torch.save, atomically. Through a file handle: given a path, torch names the archive's inner folder after the
    file, here a temporary name, which would then be part of the bytes (a DVC output must be a function of what
    made it)."""
    import torch

    def save(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            torch.save(obj, handle)

    write_atomically(path, save)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
