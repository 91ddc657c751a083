"""Image transforms in torch + PIL (torchvision cannot be used next to CPU torch here).

Every transform is a callable `tf(pil_image, generator=None) -> torch.Tensor` returning a
float32 C x H x W tensor in [0, 1] (no normalisation, as in the reference code). Random ones
draw only from the `torch.Generator` they are given (the global torch RNG when None), so an
augmentation is reproducible from a seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

TRANSFORM_KINDS = ("reference", "light")


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 C x H x W tensor in [0, 1]."""
    return array_to_tensor(np.asarray(img.convert("RGB"), dtype=np.uint8))


def array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 H x W x 3 array -> float32 C x H x W tensor in [0, 1]."""
    return torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)


def _uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    return float(torch.empty(1).uniform_(low, high, generator=generator))


def _randint(generator: torch.Generator | None, high_inclusive: int) -> int:
    return int(torch.randint(0, high_inclusive + 1, (1,), generator=generator))


def sample_crop_box(width: int, height: int, scale: tuple[float, float] = (0.08, 1.0),
                    ratio: tuple[float, float] = (3 / 4, 4 / 3),
                    generator: torch.Generator | None = None,
                    attempts: int = 10) -> tuple[int, int, int, int]:
    """Random-resized-crop box (top, left, h, w).

    Area fraction uniform in `scale`, aspect ratio log-uniform in `ratio`; a draw that does not
    fit is retried up to `attempts` times, then the largest central crop whose aspect ratio is
    clamped into `ratio` is used, so the sampler always returns a valid box.
    """
    if scale[0] > scale[1] or ratio[0] > ratio[1] or scale[0] <= 0 or ratio[0] <= 0:
        raise ValueError(f"need 0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1], got "
                         f"{scale}, {ratio}")
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(attempts):
        target = area * _uniform(generator, scale[0], scale[1])
        aspect = math.exp(_uniform(generator, log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = _randint(generator, height - h)
            left = _randint(generator, width - w)
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resize_shorter(img: Image.Image, size: int, resample=Image.BICUBIC) -> Image.Image:
    """Resize so the shorter side is `size`, keeping the aspect ratio."""
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), resample)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    if w < size or h < size:
        raise ValueError(f"cannot centre-crop {size} px from a {w} x {h} image")
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def _flip_coin(generator: torch.Generator | None, p: float = 0.5) -> bool:
    return bool(torch.rand(1, generator=generator) < p)


class ReferenceTrain:
    """RandomResizedCrop(size, scale, ratio) with bilinear resampling + horizontal flip."""

    def __init__(self, size: int = 224, scale: tuple[float, float] = (0.05, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True):
        self.size, self.scale, self.ratio, self.flip = size, tuple(scale), tuple(ratio), flip

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        img = img.convert("RGB")
        top, left, h, w = sample_crop_box(img.width, img.height, self.scale, self.ratio, generator)
        # resizing straight from the box avoids an intermediate crop copy
        out = img.resize((self.size, self.size), Image.BILINEAR,
                         box=(left, top, left + w, top + h))
        if self.flip and _flip_coin(generator):
            out = out.transpose(Image.FLIP_LEFT_RIGHT)
        return pil_to_tensor(out)

    def __repr__(self) -> str:
        return f"ReferenceTrain(size={self.size}, scale={self.scale}, ratio={self.ratio}, flip={self.flip})"


class ReferenceTest:
    """Resize shorter side to `resize` (bicubic), centre crop `size`."""

    def __init__(self, size: int = 224, resize: int | None = None):
        self.size = size
        # 256 for 224, the same 0.875 crop fraction at other sizes
        self.resize = resize if resize is not None else int(round(size / 0.875))
        if self.resize < size:
            raise ValueError(f"resize ({self.resize}) must be >= crop size ({size})")

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        return pil_to_tensor(center_crop(resize_shorter(img.convert("RGB"), self.resize), self.size))

    def __repr__(self) -> str:
        return f"ReferenceTest(size={self.size}, resize={self.resize})"


def _resize_square(img: Image.Image, size: int) -> Image.Image:
    img = img.convert("RGB")
    if img.size == (size, size):
        return img
    # bicubic keeps strokes smooth when tiny images (8 x 8 digits) are upscaled
    return img.resize((size, size), Image.BICUBIC)


class LightTrain:
    """Resize to size x size, random crop after zero padding, optional horizontal flip."""

    def __init__(self, size: int = 32, padding: int = 4, flip: bool = True):
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.size, self.padding, self.flip = size, padding, flip

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._augment(pil_to_tensor(_resize_square(img, self.size)), generator)

    def from_array(self, array: np.ndarray, generator: torch.Generator | None = None) -> torch.Tensor:
        """The same as calling it on Image.fromarray(array), without PIL when no resize is needed."""
        if array.shape[:2] != (self.size, self.size):
            return self(Image.fromarray(array), generator)
        return self._augment(array_to_tensor(array), generator)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.padding:
            p = self.padding
            x = F.pad(x, (p, p, p, p))
            top, left = _randint(generator, 2 * p), _randint(generator, 2 * p)
            x = x[:, top:top + self.size, left:left + self.size].contiguous()
        if self.flip and _flip_coin(generator):
            x = x.flip(-1)
        return x

    def __repr__(self) -> str:
        return f"LightTrain(size={self.size}, padding={self.padding}, flip={self.flip})"


class LightTest:
    """Resize to size x size."""

    def __init__(self, size: int = 32):
        self.size = size

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        return pil_to_tensor(_resize_square(img, self.size))

    def from_array(self, array: np.ndarray, generator: torch.Generator | None = None) -> torch.Tensor:
        if array.shape[:2] != (self.size, self.size):
            return self(Image.fromarray(array), generator)
        return array_to_tensor(array)

    def __repr__(self) -> str:
        return f"LightTest(size={self.size})"


def build_transforms(kind: str, image_size: int, *, flip: bool = True, padding: int = 4,
                     scale: tuple[float, float] = (0.05, 1.0)):
    """(train_tf, test_tf) for `kind`: "reference" (paper profile) or "light" (small default).

    `flip` turns the training horizontal flip off (e.g. for digits, where mirroring changes
    meaning); `padding` is the light random-crop padding (0 disables the crop); `scale` is the
    reference crop's area range.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if kind == "reference":
        return ReferenceTrain(image_size, scale=scale, flip=flip), ReferenceTest(image_size)
    if kind == "light":
        return LightTrain(image_size, padding=padding, flip=flip), LightTest(image_size)
    raise ValueError(f"unknown transform kind {kind!r}; expected one of {TRANSFORM_KINDS}")
