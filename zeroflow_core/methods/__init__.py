"""Continual-learning methods, one per file, behind `ContinualMethod` (see base.py).

Science core: imports models/, optim/ and settings.py, nothing of the pipeline or the book (tests/test_layers.py)."""
from zeroflow_core.methods.aper import Aper
from zeroflow_core.methods.base import ContinualMethod
from zeroflow_core.methods.ease import Ease
from zeroflow_core.methods.finetune import Finetune
from zeroflow_core.methods.lwf import LwF
from zeroflow_core.methods.replay import Replay
from zeroflow_core.methods.simplecil import SimpleCIL

METHODS: dict[str, type[ContinualMethod]] = {m.name: m for m in (SimpleCIL, Ease, Aper, Finetune, Replay, LwF)}


def create_method(name: str, vit, n_classes: int, classes_per_task: int, **config) -> ContinualMethod:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name](vit, n_classes, classes_per_task, **config)


__all__ = ["METHODS", "ContinualMethod", "create_method"]
