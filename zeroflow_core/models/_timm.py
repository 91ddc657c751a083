"""Import timm in environments where torchvision is missing or broken.

timm imports torchvision at import time, but only uses it for data pipelines and a frozen
batch-norm class that no ViT needs. The CPU torch wheel has no matching torchvision build (the
registry's one fails with "operator torchvision::nms does not exist"), so when torchvision cannot
be imported we register a stand-in whose attributes are inert placeholders. timm's model code
works with it; timm's data transforms do not, which is why our transforms are in torch/PIL.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types


class _PlaceholderMeta(type):
    # Class-level attributes too (timm builds dicts keyed by InterpolationMode.NEAREST etc.):
    # each name gets its own cached, hashable placeholder class.
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        placeholder = _PlaceholderMeta(name, (_Placeholder,), {})
        setattr(cls, name, placeholder)
        return placeholder


class _Placeholder(metaclass=_PlaceholderMeta):
    """Stands for any torchvision object; may be subclassed, instantiated and called."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Placeholder()


class _StandInModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        # Classes, so that timm can subclass e.g. torchvision.transforms.RandomResizedCrop.
        placeholder = _PlaceholderMeta(name, (_Placeholder,), {})
        setattr(self, name, placeholder)
        return placeholder


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandInModule(spec.name)
        module.__path__ = []
        module.__zeroflow_stand_in__ = True
        return module

    def exec_module(self, module):
        pass


def _torchvision_importable() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        return False
    return True


def _no_compiler_disable(fn=None, recursive=True, **kwargs):
    return fn if fn is not None else (lambda f: f)


def import_timm():
    if "timm" in sys.modules:
        return sys.modules["timm"]
    if not _torchvision_importable():
        sys.meta_path.insert(0, _StandInFinder())
    import torch

    # timm decorates a few models' methods with torch.compiler.disable at import time, which
    # imports torch._dynamo: 1.4 s of every pipeline stage's start-up, for models we never
    # compile. Those decorators become no-ops; torch.compiler.disable itself is restored.
    original = torch.compiler.disable
    torch.compiler.disable = _no_compiler_disable
    try:
        import timm
    finally:
        torch.compiler.disable = original
    return timm
