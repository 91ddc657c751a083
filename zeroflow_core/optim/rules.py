"""Descent rules shared by every optimizer: SGD with momentum and Adam, both with L2 weight decay.

A rule maps (parameter, gradient or estimate, state) to the step Δ (θ ← θ − Δ) and the state it
would leave, without committing anything: Conserve evaluates candidate steps first and commits
once. The arithmetic follows torch.optim.SGD / torch.optim.Adam (dampening 0, no Nesterov,
non-decoupled weight decay), so FO rows of the benchmark are the stock optimizers.
"""
from __future__ import annotations

import torch

RULES = ("sgd", "adam")


def checked(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown descent rule {rule!r}; known: {', '.join(RULES)}")
    return rule


def propose(rule: str, group: dict, param: torch.Tensor, grad: torch.Tensor, state: dict):
    """Return (delta, new_state) for one parameter; `state` is read, never written. `rule` was checked when
    the optimizer was built."""
    if group["weight_decay"]:
        grad = grad.add(param, alpha=group["weight_decay"])
    return _sgd(group, grad, state) if rule == "sgd" else _adam(group, grad, state)


def _sgd(group: dict, grad: torch.Tensor, state: dict):
    momentum = group["momentum"]
    if not momentum:
        return grad.mul(group["lr"]), {}
    buffer = state.get("momentum_buffer")
    buffer = grad.clone() if buffer is None else buffer.mul(momentum).add_(grad)
    return buffer.mul(group["lr"]), {"momentum_buffer": buffer}


def _adam(group: dict, grad: torch.Tensor, state: dict):
    beta1, beta2 = group["betas"]
    step = state.get("step", 0) + 1
    exp_avg = state.get("exp_avg")
    exp_avg_sq = state.get("exp_avg_sq")
    if exp_avg is None:
        exp_avg = torch.zeros_like(grad)
        exp_avg_sq = torch.zeros_like(grad)
    exp_avg = exp_avg.mul(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq = exp_avg_sq.mul(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(group["eps"])
    delta = (exp_avg / denom).mul_(group["lr"] / bias_correction1)
    return delta, {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
