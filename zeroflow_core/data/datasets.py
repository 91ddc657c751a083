"""Datasets behind one interface, `ImageSet`, and the `load_dataset` registry.

Real datasets (CIFAR-100, CUB-200, ImageNet-A, OmniBenchmark) are read from a data root in
their usual on-disk layouts; nothing is ever downloaded. Missing or malformed data raises
`DatasetError` whose message names the dataset, the path that was looked at, and the layout
that was expected, so a user knows where to put the files.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

SPLITS = ("train", "test")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


class DatasetError(ValueError):
    """A dataset is unknown, missing, or not in the expected layout."""

    def __init__(self, message: str, *, dataset: str | None = None,
                 path: str | Path | None = None, layout: str | None = None):
        super().__init__(message)
        self.dataset = dataset
        self.path = None if path is None else str(path)
        self.layout = layout


@dataclass
class ImageSet:
    """One split of a dataset: labels, class names, and images in memory or on disk.

    Exactly one of `images` (uint8, N x H x W x 3, RGB) and `paths` (read lazily with PIL)
    is set. Labels index `class_names`.
    """

    labels: np.ndarray
    class_names: list[str]
    images: np.ndarray | None = None
    paths: list[Path] | None = None
    name: str = ""
    split: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.class_names = [str(c) for c in self.class_names]
        if (self.images is None) == (self.paths is None):
            raise ValueError("ImageSet needs exactly one of `images` or `paths`")
        if self.labels.ndim != 1:
            raise ValueError(f"labels must be 1-D, got shape {self.labels.shape}")
        if self.images is not None:
            self.images = np.asarray(self.images)
            if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
                raise ValueError("images must be a uint8 array N x H x W x 3, got "
                                 f"{self.images.dtype} {self.images.shape}")
            n = len(self.images)
        else:
            self.paths = [Path(p) for p in self.paths]
            n = len(self.paths)
        if n != len(self.labels):
            raise ValueError(f"{n} images but {len(self.labels)} labels")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(f"labels must lie in [0, {len(self.class_names)}), got "
                             f"[{self.labels.min()}, {self.labels.max()}]")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def get_pil(self, i: int) -> Image.Image:
        """Image `i` as an RGB PIL image."""
        if self.images is not None:
            return Image.fromarray(self.images[i])
        with Image.open(self.paths[i]) as im:
            return im.convert("RGB")

    def get_array(self, i: int) -> np.ndarray:
        """Image `i` as a uint8 H x W x 3 array."""
        if self.images is not None:
            return self.images[i]
        return np.asarray(self.get_pil(i), dtype=np.uint8)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "ImageSet":
        """A new ImageSet with the given items; class names (and label meaning) are kept."""
        idx = np.asarray(indices, dtype=np.int64)
        return ImageSet(
            labels=self.labels[idx],
            class_names=list(self.class_names),
            images=None if self.images is None else self.images[idx],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
            name=self.name, split=self.split, info=dict(self.info),
        )

    def __repr__(self) -> str:
        where = "memory" if self.in_memory else "disk"
        return (f"ImageSet(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"classes={self.n_classes}, in {where})")


# ----------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class DatasetSpec:
    name: str
    loader: Callable[..., ImageSet]
    layout: str
    needs_root: bool
    label: str  # the name the book prints


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(name: str, layout: str, needs_root: bool = True, label: str | None = None):
    """Decorator adding a loader `fn(root, split, **options) -> ImageSet` to the registry; `label` is the name
    the book prints (the registry name by default)."""

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = DatasetSpec(name, fn, layout, needs_root, label or name)
        return fn

    return deco


def available_datasets() -> list[str]:
    return sorted(_REGISTRY)


def dataset_label(name: str) -> str:
    """The name the book prints for a dataset; an unknown one keeps its own."""
    return _REGISTRY[name].label if name in _REGISTRY else name


def needs_files(name: str) -> bool:
    """Whether the dataset is read from files under a data root (not bundled or generated)."""
    return _spec(name).needs_root


def expected_layout(name: str) -> str:
    """Human-readable description of where the dataset's files must be."""
    return _spec(name).layout


def _spec(name: str) -> DatasetSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: "
                           f"{', '.join(available_datasets())}", dataset=name) from None


def load_dataset(name: str, root: str | Path | None = None, split: str = "train",
                 **options) -> ImageSet:
    """Load one split (`train` or `test`) of a registered dataset from `root`."""
    spec = _spec(name)
    if split not in SPLITS:
        raise DatasetError(f"{name}: unknown split {split!r}; expected one of {SPLITS}",
                           dataset=name)
    if spec.needs_root:
        if root is None:
            raise DatasetError(f"{name}: no data root given; expected {spec.layout}",
                               dataset=name, layout=spec.layout)
        root = Path(root).expanduser()
    return spec.loader(root, split, **options)


def _fail(dataset: str, layout: str, problem: str, path: Path) -> DatasetError:
    return DatasetError(f"{dataset}: expected {layout}; {problem}: {path}",
                        dataset=dataset, path=path, layout=layout)


# ----------------------------------------------------------------------------- CIFAR-100

CIFAR100_LAYOUT = ("the official python archive at <root>/cifar-100-python/{train,test,meta} "
                   "(extract cifar-100-python.tar.gz there)")


def _get(d: dict, key: str):
    # The official archive was pickled by Python 2, so keys arrive as bytes; a re-pickled
    # copy may have str keys. Accept both.
    if key.encode() in d:
        return d[key.encode()]
    if key in d:
        return d[key]
    raise KeyError(key)


def _unpickle(path: Path):
    # pickle is the archive's own format; the user points us at the file they extracted.
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


@register_dataset("cifar100", CIFAR100_LAYOUT, label="CIFAR-100")
def load_cifar100(root: Path, split: str) -> ImageSet:
    layout = CIFAR100_LAYOUT
    base = root / "cifar-100-python"
    data_path, meta_path = base / split, base / "meta"
    for p in (data_path, meta_path):
        if not p.is_file():
            raise _fail("cifar100", layout, "not found", p)

    def malformed(path: Path, what: str) -> DatasetError:
        return _fail("cifar100", layout, f"malformed file ({what})", path)

    try:
        meta = _unpickle(meta_path)
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in _get(meta, "fine_label_names")]
    except Exception as e:  # any unpickling/key/type problem means the file is not the archive
        raise malformed(meta_path, f"no fine_label_names: {type(e).__name__}: {e}") from e
    try:
        d = _unpickle(data_path)
        data = np.asarray(_get(d, "data"))
        labels = np.asarray(_get(d, "fine_labels"), dtype=np.int64)
    except Exception as e:
        raise malformed(data_path, f"need b'data' and b'fine_labels': {type(e).__name__}: {e}") from e
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise malformed(data_path, f"b'data' must be uint8 N x 3072, got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise malformed(data_path, f"{data.shape[0]} images but {labels.shape} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise malformed(data_path, f"labels outside [0, {len(names)})")
    # rows are channel-major (all R, then G, then B) of a 32 x 32 image
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return ImageSet(labels=labels, class_names=names, images=images, name="cifar100",
                    split=split, info={"source": str(data_path)})


# ----------------------------------------------------------------------------- folder trees

def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def _class_dirs(split_dir: Path) -> list[Path]:
    return sorted((p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def load_image_folder(dataset: str, base: Path, split: str, layout: str) -> ImageSet:
    """Read `<base>/{train,test}/<class>/<image>`; class index = sorted train class folders.

    The train split defines the class index even when loading test, so both splits always
    agree on what label k means.
    """
    if not base.is_dir():
        raise _fail(dataset, layout, "not found", base)
    train_dir, split_dir = base / "train", base / split
    for d in (train_dir, split_dir):
        if not d.is_dir():
            raise _fail(dataset, layout, "split folder not found", d)
    classes = [p.name for p in _class_dirs(train_dir)]
    if not classes:
        raise _fail(dataset, layout, "no class folders in", train_dir)
    dirs = _class_dirs(split_dir)
    here = [p.name for p in dirs]
    if here != classes:
        missing = sorted(set(classes) - set(here))[:5]
        extra = sorted(set(here) - set(classes))[:5]
        raise _fail(dataset, layout,
                    f"the {split} classes differ from the train classes (missing {missing}, "
                    f"extra {extra}) in", split_dir)
    paths: list[Path] = []
    labels: list[int] = []
    for k, d in enumerate(dirs):
        files = sorted((p for p in d.iterdir() if _is_image(p)), key=lambda p: p.name)
        if not files:
            raise _fail(dataset, layout,
                        f"no images ({'/'.join(sorted(IMAGE_EXTENSIONS))}) in class folder", d)
        paths.extend(files)
        labels.extend([k] * len(files))
    return ImageSet(labels=np.asarray(labels, dtype=np.int64), class_names=classes, paths=paths,
                    name=dataset, split=split, info={"source": str(split_dir)})


def _folder_layout(dirname: str, example: str) -> str:
    return (f"a folder tree <root>/{dirname}/{{train,test}}/<class>/{example} "
            "with the same class folders in train and test")


_FOLDER_DATASETS = {
    # registry name: (folder under root, example file pattern, label)
    "cub": ("cub", "*.jpg", "CUB"),
    "imagenet_a": ("imagenet-a", "*", "ImageNet-A"),
    "omnibenchmark": ("omnibenchmark", "*", "OmniBenchmark"),
}


def _make_folder_loader(name: str, dirname: str, layout: str):
    def loader(root: Path, split: str) -> ImageSet:
        return load_image_folder(name, root / dirname, split, layout)

    loader.__name__ = f"load_{name}"
    loader.__doc__ = f"{name}: read {layout}."
    return loader


for _name, (_dirname, _example, _label) in _FOLDER_DATASETS.items():
    _layout = _folder_layout(_dirname, _example)
    register_dataset(_name, _layout, label=_label)(_make_folder_loader(_name, _dirname, _layout))


# ----------------------------------------------------------------------------- digits

DIGITS_LAYOUT = "nothing on disk (scikit-learn's bundled load_digits)"


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split; returns sorted (train_idx, test_idx).

    Written out rather than borrowed from sklearn so the split cannot shift between
    library versions.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.RandomState(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """The file behind sklearn.datasets.load_digits, read without importing scikit-learn.

    Importing sklearn costs about a second, paid by every cached run of the pipeline; the data is
    a 1797 x 65 CSV (64 pixels, then the label) inside the installed package.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("digits: scikit-learn is not installed; it bundles this dataset", dataset="digits")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1], data[:, -1].astype(np.int64)


@register_dataset("digits", DIGITS_LAYOUT, needs_root=False, label="Digits")
def load_digits_set(root, split: str, seed: int = 0, test_fraction: float = 0.25) -> ImageSet:
    pixels, labels = _bundled_digits()
    # pixel values are counts 0..16 of a 4x4 block; map to the full 8-bit range, grey -> RGB
    gray = np.round(pixels.reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    images = np.repeat(gray[..., None], 3, axis=-1)
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    idx = train_idx if split == "train" else test_idx
    return ImageSet(labels=labels[idx], class_names=[str(i) for i in range(10)],
                    images=np.ascontiguousarray(images[idx]), name="digits", split=split,
                    info={"seed": seed, "test_fraction": test_fraction})
