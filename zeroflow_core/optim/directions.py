"""Random directions regenerated from seeds, and the fixed sparse masks of the paper's section 6.

Nothing here touches the global RNG: every draw comes from a private generator seeded by a hash
of (run seed, purpose, step, query), so regenerating a direction costs a draw, not memory, and a
resumed run draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

import hashlib
import struct

import torch

DIRECTIONS = ("gaussian", "rademacher")


def derive_seed(*parts: int | str) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return struct.unpack("<Q", digest)[0] >> 1  # torch seeds must fit a signed 64-bit integer


class DirectionStream:
    """Draws one direction tensor per parameter, in parameter order, for one (step, query).

    Restarting the stream replays the same tensors, which is how perturbation, restore and
    update all see the same z without storing it. `masks` multiply each parameter's z: the 0/1 sparse masks,
    Sparse MeZO's magnitude masks, or HiZOO's D^{-1/2}.
    """

    def __init__(self, seed: int, kind: str, masks: list[torch.Tensor | None] | None = None):
        self.seed = seed
        self.kind = kind
        self.masks = masks
        self._generators: dict[torch.device, torch.Generator] = {}

    def draw_all(self, params: list[torch.Tensor]):
        """Yield z for each parameter in order (one tensor alive at a time)."""
        for device in {p.device for p in params}:
            self._generator(device).manual_seed(self.seed)
        for index, param in enumerate(params):
            yield self._draw(param, index)

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device)
        return self._generators[device]

    def _draw(self, param: torch.Tensor, index: int) -> torch.Tensor:
        generator = self._generators[param.device]
        if self.kind == "gaussian":
            z = torch.randn(param.shape, generator=generator, device=param.device, dtype=torch.float32)
        else:
            z = torch.randint(0, 2, param.shape, generator=generator, device=param.device, dtype=torch.int8)
            z = z.to(torch.float32).mul_(2).sub_(1)
        if self.masks is not None and self.masks[index] is not None:
            z.mul_(self.masks[index])
        return z


def sparse_masks(params: list[torch.Tensor], sparsity: list[float], seed: int) -> list[torch.Tensor | None]:
    """One 0/1 mask per parameter that zeroes exactly round(sparsity[i] * numel) entries of parameter i
    (None where that is none: its directions stay dense).

    (The official code compares a normal draw with r and so zeroes Φ(r) of the entries instead.)
    """
    masks = []
    for index, (param, zeroed) in enumerate(zip(params, sparsity)):
        if not zeroed:
            masks.append(None)
            continue
        generator = torch.Generator(device="cpu").manual_seed(derive_seed(seed, "mask-param", index))
        n = param.numel()
        dropped = torch.randperm(n, generator=generator)[: round(zeroed * n)]
        mask = torch.ones(n, dtype=torch.float32)
        mask[dropped] = 0.0
        masks.append(mask.view(param.shape).to(param.device))
    return masks
