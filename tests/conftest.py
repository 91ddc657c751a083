import os

import pytest
import torch

# Two threads per test worker: the suite runs with `-n 2` on a 2-core machine.
torch.set_num_threads(1)
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture
def quadratic():
    """L(θ) = ½ θᵀHθ − bᵀθ in 10 dimensions, with its exact gradient."""
    generator = torch.Generator().manual_seed(7)
    a = torch.randn(10, 10, generator=generator)
    h = a @ a.T / 10 + torch.eye(10)
    b = torch.randn(10, generator=generator)

    class Quadratic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.theta = torch.nn.Parameter(torch.randn(10, generator=generator))

        def loss(self):
            return 0.5 * self.theta @ h @ self.theta - b @ self.theta

        def gradient(self):
            return (h @ self.theta - b).detach()

        def minimum(self):
            return float(-0.5 * b @ torch.linalg.solve(h, b))

    return Quadratic()
