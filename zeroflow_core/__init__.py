"""ZeroFlow companion: forward-pass-only optimizers for class-incremental continual learning.

The package has three layers, each in its own place, and imports only downwards (tests/test_layers.py checks every
import, those inside functions too):

  the science core   optim/ (the optimizers), methods/ (the continual-learning methods), models/ (the adapter ViT),
                     data/ (datasets and the scenario), run/ (one run: config, train, metrics; pretraining and the
                     step benchmark), settings.py and io.py. It imports nothing of the pipeline or the book.
  pipeline/          what schedules runs from params.yaml: cells, the executor, DVC stages, budgets, the rate search.
                     It imports the core, never the book.
  book/              what reports the results: one module per page's tables and statements, the figures, the
                     Jupyter Book build. It imports the core and the pipeline.
  cli.py             the `zeroflow` command, over all three.

A researcher who wants the science alone imports it from here; nothing of the pipeline or the book is loaded:

    from zeroflow_core import create_optimizer, METHODS, train
"""

__version__ = "0.1.0"

# The science core's entry points, each resolved from its module on first use: importing the package runs nothing,
# so a pipeline or book module importing zeroflow_core.x does not load torch and the whole core through this file.
ENTRY_POINTS = {
    "OPTIMIZERS": "zeroflow_core.optim",
    "create_optimizer": "zeroflow_core.optim",
    "METHODS": "zeroflow_core.methods",
    "create_method": "zeroflow_core.methods",
    "create_adapter_vit": "zeroflow_core.models",
    "load_dataset": "zeroflow_core.data",
    "ClassIncrementalScenario": "zeroflow_core.data",
    "resolve_config": "zeroflow_core.run.config",
    "train": "zeroflow_core.run.train",
}

__all__ = ["__version__", *ENTRY_POINTS]


def __getattr__(name: str):
    if name not in ENTRY_POINTS:
        raise AttributeError(f"module 'zeroflow_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(ENTRY_POINTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(ENTRY_POINTS))
