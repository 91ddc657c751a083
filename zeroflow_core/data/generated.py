"""Generated many-class image sets for the embedded (CPU, offline) profile.

`synthetic` stands in for the paper's continual-learning datasets (100 classes, so a 10-task
split like the paper's exists); `pretext` stands in for ImageNet-21K: a disjoint family of
classes on which the pipeline pretrains its small backbone. `hues` is the smoke book's
continual set: shapes of the synthetic family, each drawn in several hues, so that a backbone
pretrained on grey images sees a shape but not its hue (see `load_hues`).

A class is a set of parameters (a few coloured Gaussian blobs plus oriented colour gratings).
A sample re-renders its class with a random shift and scale of the whole pattern, small
independent moves of each blob, random grating phase, random background, colour jitter and pixel
noise. Raw pixels then carry class information (nearest class mean is far above chance) but not
a trivial one, so a small ViT must learn shapes and the tasks interfere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .datasets import ImageSet, register_dataset


@dataclass(frozen=True)
class Family:
    """Parameter ranges of one generator family. Coordinates are in units of the image side."""

    tag: int                 # enters the seed stream, so families never share random draws
    prefix: str              # class-name prefix
    n_blobs: int
    n_gratings: int
    sigma: tuple[float, float]       # blob std-dev
    freq: tuple[float, float]        # grating cycles per image side
    grating_amp: tuple[float, float]


SYNTHETIC = Family(tag=101, prefix="syn", n_blobs=3, n_gratings=1, sigma=(0.07, 0.18),
                   freq=(1.5, 4.0), grating_amp=(0.12, 0.3))
# Different layout (fewer blobs, a plaid of two gratings) and a different seed stream, so no
# pretext class can coincide with a synthetic class; similar low-level statistics keep the
# pretrained features useful, as ImageNet features are for CIFAR.
PRETEXT = Family(tag=202, prefix="pre", n_blobs=2, n_gratings=2, sigma=(0.06, 0.2),
                 freq=(1.0, 5.0), grating_amp=(0.08, 0.22))

# Per-sample jitter, shared by both families.
_SHIFT = 0.10         # whole-pattern translation, fraction of the side
_SCALE = (0.8, 1.2)   # whole-pattern zoom about the centre
_BLOB_MOVE = 0.05     # independent move of each blob centre
_AMP = (0.6, 1.2)     # blob / grating amplitude factor
_GAIN = (0.75, 1.25)  # per-channel colour gain
_NOISE = 0.08         # pixel noise std-dev (images in [0, 1])
_CHUNK = 512          # samples rendered at once; bounds memory for large image sizes


def class_parameters(family: Family, n_classes: int, seed: int) -> dict[str, np.ndarray]:
    """Random parameters defining each class of a family (deterministic in seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, family.tag, 0]))
    c, b, g = n_classes, family.n_blobs, family.n_gratings
    return {
        "blob_xy": rng.uniform(0.2, 0.8, size=(c, b, 2)),
        "blob_sigma": rng.uniform(*family.sigma, size=(c, b)),
        "blob_rgb": rng.uniform(-1.0, 1.0, size=(c, b, 3)) * 0.6,
        "grating_theta": rng.uniform(0.0, np.pi, size=(c, g)),
        "grating_freq": rng.uniform(*family.freq, size=(c, g)),
        "grating_rgb": rng.uniform(-1.0, 1.0, size=(c, g, 3)),
        "grating_amp": rng.uniform(*family.grating_amp, size=(c, g)),
    }


def _render(params: dict[str, np.ndarray], cls: np.ndarray, size: int,
            rng: np.random.Generator) -> np.ndarray:
    """Render one sample per entry of `cls`; returns float32 N x size x size x 3 in [0, 1]."""
    n = len(cls)
    b = params["blob_xy"].shape[1]
    g = params["grating_theta"].shape[1]
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    yy, xx = np.meshgrid(coords, coords, indexing="ij")              # H x W

    shift = rng.uniform(-_SHIFT, _SHIFT, size=(n, 1, 2))
    scale = rng.uniform(*_SCALE, size=(n, 1))
    xy = params["blob_xy"][cls] + rng.uniform(-_BLOB_MOVE, _BLOB_MOVE, size=(n, b, 2))
    xy = 0.5 + (xy - 0.5) * scale[..., None] + shift                  # n x b x 2
    sigma = params["blob_sigma"][cls] * scale                          # n x b
    blob_amp = rng.uniform(*_AMP, size=(n, b))

    background = rng.uniform(0.25, 0.6, size=(n, 1, 1, 1)) + rng.normal(0, 0.05, size=(n, 1, 1, 3))
    img = np.broadcast_to(background, (n, size, size, 3)).astype(np.float32)

    dx = xx[None, None] - xy[..., 0, None, None].astype(np.float32)   # n x b x H x W
    dy = yy[None, None] - xy[..., 1, None, None].astype(np.float32)
    r2 = (dx * dx + dy * dy) / (2.0 * sigma[..., None, None] ** 2).astype(np.float32)
    blobs = np.exp(-r2) * blob_amp[..., None, None].astype(np.float32)
    img = img + np.einsum("nbhw,nbc->nhwc", blobs, params["blob_rgb"][cls].astype(np.float32))

    theta = params["grating_theta"][cls]                                # n x g
    # the grating rides on the same shifted/zoomed frame as the blobs
    freq = params["grating_freq"][cls] / scale
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, g))
    amp = params["grating_amp"][cls] * rng.uniform(*_AMP, size=(n, g))
    u = ((xx[None, None] - 0.5) * np.cos(theta)[..., None, None]
         + (yy[None, None] - 0.5) * np.sin(theta)[..., None, None])    # n x g x H x W
    wave = np.sin(2 * np.pi * freq[..., None, None] * u + phase[..., None, None]).astype(np.float32)
    wave *= amp[..., None, None].astype(np.float32)
    img = img + np.einsum("nghw,ngc->nhwc", wave, params["grating_rgb"][cls].astype(np.float32))

    img = img * rng.uniform(*_GAIN, size=(n, 1, 1, 3)).astype(np.float32)
    img = img + rng.normal(0.0, _NOISE, size=img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def generate_images(family: Family, split: str, *, seed: int, n_classes: int,
                    n_per_class: int, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images N x S x S x 3, int64 labels), class-sorted, deterministic in all args."""
    if n_classes < 1 or n_per_class < 1 or image_size < 4:
        raise ValueError(f"need n_classes >= 1, n_per_class >= 1, image_size >= 4; got "
                         f"{n_classes}, {n_per_class}, {image_size}")
    params = class_parameters(family, n_classes, seed)
    # train and test draw from separate streams: resizing one split leaves the other unchanged
    split_id = {"train": 1, "test": 2}[split]
    rng = np.random.default_rng(np.random.SeedSequence([seed, family.tag, split_id]))
    labels = np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class)
    images = np.empty((len(labels), image_size, image_size, 3), dtype=np.uint8)
    for start in range(0, len(labels), _CHUNK):
        stop = min(start + _CHUNK, len(labels))
        chunk = _render(params, labels[start:stop], image_size, rng)
        images[start:stop] = np.round(chunk * 255.0).astype(np.uint8)
    return images, labels


def _generated_set(family: Family, name: str, split: str, seed: int, n_classes: int,
                   n_train: int, n_test: int, image_size: int) -> ImageSet:
    n_per_class = n_train if split == "train" else n_test
    images, labels = generate_images(family, split, seed=seed, n_classes=n_classes,
                                     n_per_class=n_per_class, image_size=image_size)
    names = [f"{family.prefix}-{k:03d}" for k in range(n_classes)]
    return ImageSet(labels=labels, class_names=names, images=images, name=name, split=split,
                    info={"seed": seed, "n_classes": n_classes, "n_train": n_train,
                          "n_test": n_test, "image_size": image_size})


@register_dataset("synthetic", "nothing on disk (generated from a seed)", needs_root=False, label="Synthetic-100")
def load_synthetic(root, split: str, seed: int = 0, n_classes: int = 100, n_train: int = 60,
                   n_test: int = 20, image_size: int = 32) -> ImageSet:
    """Generated stand-in for the continual-learning datasets."""
    return _generated_set(SYNTHETIC, "synthetic", split, seed, n_classes, n_train, n_test,
                          image_size)


@register_dataset("pretext", "nothing on disk (generated from a seed)", needs_root=False)
def load_pretext(root, split: str, seed: int = 0, n_classes: int = 64, n_train: int = 100,
                 n_test: int = 20, image_size: int = 32) -> ImageSet:
    """Generated pretraining data; its classes are disjoint from `synthetic`'s."""
    return _generated_set(PRETEXT, "pretext", split, seed, n_classes, n_train, n_test,
                          image_size)


def hue_rotation(angle: float) -> np.ndarray:
    """3 x 3 rotation of RGB about the grey axis (1, 1, 1): keeps every pixel's mean of R, G, B."""
    c, s = np.cos(angle), np.sin(angle)
    cross = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) / np.sqrt(3.0)
    return c * np.eye(3) + (1.0 - c) / 3.0 * np.ones((3, 3)) + s * cross


@register_dataset("hues", "nothing on disk (generated from a seed)", needs_root=False, label="Hues")
def load_hues(root, split: str, seed: int = 0, n_shapes: int = 10, n_hues: int = 5, n_train: int = 40,
              n_test: int = 20, image_size: int = 32) -> ImageSet:
    """Generated shapes in several hues: class = (shape, hue), n_shapes x n_hues classes.

    A shape is a class of the synthetic family; hue h rotates its colours by 2*pi*h/n_hues about
    the grey axis, which leaves every pixel's grey level (the mean of R, G and B) unchanged up to
    clipping. The smoke backbone is pretrained on grey images (`pretrain(grayscale=True)`), so its
    frozen features separate the shapes but hardly the hues: class prototypes of the frozen model
    (SimpleCIL) confuse the hues of a shape, and only training the adapters can tell them apart.
    This is the smoke book's stand-in for a domain shift between pretraining and the continual
    tasks, a factor the pretrained features do not separate.
    """
    if n_hues < 1:
        raise ValueError(f"need n_hues >= 1, got {n_hues}")
    n_per_class = n_train if split == "train" else n_test
    images, shapes = generate_images(SYNTHETIC, split, seed=seed, n_classes=n_shapes,
                                     n_per_class=n_per_class * n_hues, image_size=image_size)
    labels = np.empty_like(shapes)
    for shape in range(n_shapes):
        rows = np.flatnonzero(shapes == shape)
        for hue in range(n_hues):
            part = rows[hue * n_per_class:(hue + 1) * n_per_class]
            rotated = images[part].astype(np.float32) @ hue_rotation(2 * np.pi * hue / n_hues).T.astype(np.float32)
            images[part] = np.round(np.clip(rotated, 0.0, 255.0)).astype(np.uint8)
            labels[part] = shape * n_hues + hue
    names = [f"{SYNTHETIC.prefix}-{shape:03d}-hue{hue}" for shape in range(n_shapes) for hue in range(n_hues)]
    return ImageSet(labels=labels, class_names=names, images=images, name="hues", split=split,
                    info={"seed": seed, "n_shapes": n_shapes, "n_hues": n_hues, "n_train": n_train,
                          "n_test": n_test, "image_size": image_size})
