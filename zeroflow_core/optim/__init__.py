"""The optimizers (the paper's nine and the later ones, `zeroflow optimizers`) behind the torch.optim.Optimizer API:
step(closure), the closure returning the loss.

Science core: imports models/ and settings.py, nothing of the pipeline or the book (tests/test_layers.py)."""
from zeroflow_core.optim.base import NonFiniteLossError, ZeroFlowOptimizer
from zeroflow_core.optim.first_order import FirstOrderOptimizer
from zeroflow_core.optim.forward_grad import ForwardGradient
from zeroflow_core.optim.registry import FAMILIES, OPTIMIZERS, create_optimizer, optimizer_spec, resolve_hyper
from zeroflow_core.optim.zeroth_order import ZerothOrderOptimizer

__all__ = [
    "FAMILIES", "OPTIMIZERS", "FirstOrderOptimizer", "ForwardGradient", "NonFiniteLossError", "ZeroFlowOptimizer",
    "ZerothOrderOptimizer", "create_optimizer", "optimizer_spec", "resolve_hyper",
]
