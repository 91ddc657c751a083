"""The nine optimizers behind the torch.optim.Optimizer API: step(closure), the closure returning the loss."""
from zeroflow_core.optim.base import NonFiniteLossError, ZeroFlowOptimizer
from zeroflow_core.optim.first_order import FirstOrderOptimizer
from zeroflow_core.optim.forward_grad import ForwardGradient
from zeroflow_core.optim.registry import FAMILIES, OPTIMIZERS, create_optimizer, optimizer_spec, resolve_hyper
from zeroflow_core.optim.zeroth_order import ZerothOrderOptimizer

__all__ = [
    "FAMILIES", "OPTIMIZERS", "FirstOrderOptimizer", "ForwardGradient", "NonFiniteLossError", "ZeroFlowOptimizer",
    "ZerothOrderOptimizer", "create_optimizer", "optimizer_spec", "resolve_hyper",
]
