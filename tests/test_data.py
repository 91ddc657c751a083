import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from miniatures import rng_images, make_cifar, make_folder

from zeroflow_core.data import (
    PRETEXT,
    SYNTHETIC,
    ClassIncrementalScenario,
    DatasetError,
    ImageSet,
    TaskDataset,
    TensorCache,
    available_datasets,
    build_transforms,
    class_parameters,
    generate_images,
    load_dataset,
    sample_crop_box,
    stratified_split,
)

# ----------------------------------------------------------------------------- real loaders


def test_cifar100_roundtrip(tmp_path):
    ref = make_cifar(tmp_path)
    for split in ("train", "test"):
        s = load_dataset("cifar100", tmp_path, split)
        imgs, labels = ref[split]
        assert isinstance(s, ImageSet) and s.in_memory
        assert len(s) == len(imgs)
        assert s.class_names == [f"class{k}" for k in range(5)]
        assert s.labels.dtype == np.int64
        np.testing.assert_array_equal(s.labels, labels)
        np.testing.assert_array_equal(s.images, imgs)
        np.testing.assert_array_equal(np.asarray(s.get_pil(2)), imgs[2])


def test_png_folder_roundtrip_exact(tmp_path):
    tree = {
        split: {"zebra": ["b.png", "a.PNG"], "ant": ["x.png"], "mole": ["m1.png", "m2.png"]}
        for split in ("train", "test")
    }
    arrays = make_folder(tmp_path / "omnibenchmark", tree)
    s = load_dataset("omnibenchmark", tmp_path, "test")
    assert s.class_names == ["ant", "mole", "zebra"]
    np.testing.assert_array_equal(s.labels, [0, 1, 1, 2, 2])
    assert [p.name for p in s.paths] == ["x.png", "m1.png", "m2.png", "a.PNG", "b.png"]
    for i, p in enumerate(s.paths):
        cls = s.class_names[s.labels[i]]
        img = s.get_pil(i)
        assert img.mode == "RGB" and img.size == (12, 10)
        np.testing.assert_array_equal(np.asarray(img), arrays[("test", cls, p.name)])


def test_cub_jpeg_folder(tmp_path):
    tree = {split: {"001.Albatross": ["1.jpg", "2.jpg"], "002.Auklet": ["3.JPEG"]}
            for split in ("train", "test")}
    arrays = make_folder(tmp_path / "cub", tree, size=(16, 16))
    s = load_dataset("cub", tmp_path, "train")
    assert len(s) == 3 and s.n_classes == 2
    np.testing.assert_array_equal(s.labels, [0, 0, 1])
    got = s.get_array(2)
    want = arrays[("train", "002.Auklet", "3.JPEG")]
    assert got.shape == (16, 16, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 4  # lossy but flat colour


def test_imagenet_a_mixed_files_and_grayscale(tmp_path):
    tree = {split: {"n01": ["a.bmp", "b.webp"], "n02": ["c.jpeg"]} for split in ("train", "test")}
    make_folder(tmp_path / "imagenet-a", tree)
    d = tmp_path / "imagenet-a" / "train"
    (d / "n01" / "notes.txt").write_text("not an image")
    (d / "n01" / ".hidden.png").write_bytes(b"")
    (d / ".cache").mkdir()
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(d / "n02" / "gray.png")
    s = load_dataset("imagenet_a", tmp_path, "train")
    assert s.class_names == ["n01", "n02"]
    assert sorted(p.name for p in s.paths) == ["a.bmp", "b.webp", "c.jpeg", "gray.png"]
    gray = s.get_pil([p.name for p in s.paths].index("gray.png"))
    assert gray.mode == "RGB"
    assert len(load_dataset("imagenet_a", tmp_path, "test")) == 3


# ----------------------------------------------------------------------------- errors


def _assert_clear(err: DatasetError, dataset: str, path: Path, hint: str):
    msg = str(err)
    assert dataset in msg and str(path) in msg and hint in msg, msg


def test_cifar_missing_root_and_split(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar100", tmp_path / "nowhere", "train")
    _assert_clear(e.value, "cifar100", tmp_path / "nowhere" / "cifar-100-python" / "train",
                  "<root>/cifar-100-python/{train,test,meta}")
    assert "cifar-100-python.tar.gz" in str(e.value)
    make_cifar(tmp_path)
    (tmp_path / "cifar-100-python" / "test").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar100", tmp_path, "test")
    _assert_clear(e.value, "cifar100", tmp_path / "cifar-100-python" / "test",
                  "cifar-100-python/{train,test,meta}")


@pytest.mark.parametrize("corruption", ["garbage", "no_labels", "bad_shape", "bad_meta"])
def test_cifar_malformed(tmp_path, corruption):
    make_cifar(tmp_path)
    base = tmp_path / "cifar-100-python"
    target = base / ("meta" if corruption == "bad_meta" else "train")
    if corruption == "garbage":
        target.write_bytes(b"this is not a pickle")
    elif corruption == "no_labels":
        with open(target, "wb") as f:
            pickle.dump({b"data": np.zeros((2, 3072), np.uint8)}, f, protocol=2)
    elif corruption == "bad_shape":
        with open(target, "wb") as f:
            pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]}, f)
    else:
        with open(target, "wb") as f:
            pickle.dump({b"coarse_label_names": []}, f)
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar100", tmp_path, "train")
    _assert_clear(e.value, "cifar100", target, "cifar-100-python/{train,test,meta}")
    assert "malformed" in str(e.value)


def test_folder_missing_root(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("cub", tmp_path, "train")
    _assert_clear(e.value, "cub", tmp_path / "cub", "<root>/cub/{train,test}/<class>/*.jpg")
    assert e.value.dataset == "cub" and e.value.path == str(tmp_path / "cub")


def test_folder_missing_split(tmp_path):
    make_folder(tmp_path / "omnibenchmark", {"train": {"a": ["1.png"]}})
    with pytest.raises(DatasetError) as e:
        load_dataset("omnibenchmark", tmp_path, "test")
    _assert_clear(e.value, "omnibenchmark", tmp_path / "omnibenchmark" / "test",
                  "<root>/omnibenchmark/{train,test}/<class>/")


def test_folder_empty_class(tmp_path):
    make_folder(tmp_path / "imagenet-a", {"train": {"a": ["1.png"]}})
    empty = tmp_path / "imagenet-a" / "train" / "b"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError) as e:
        load_dataset("imagenet_a", tmp_path, "train")
    _assert_clear(e.value, "imagenet_a", empty, "<root>/imagenet-a/{train,test}/<class>/")
    assert "no images" in str(e.value)


def test_folder_no_classes(tmp_path):
    (tmp_path / "cub" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError) as e:
        load_dataset("cub", tmp_path, "train")
    _assert_clear(e.value, "cub", tmp_path / "cub" / "train", "<root>/cub/{train,test}")


def test_folder_class_mismatch(tmp_path):
    make_folder(tmp_path / "cub", {"train": {"a": ["1.png"], "b": ["2.png"]},
                                   "test": {"a": ["3.png"], "c": ["4.png"]}})
    assert len(load_dataset("cub", tmp_path, "train")) == 2
    with pytest.raises(DatasetError) as e:
        load_dataset("cub", tmp_path, "test")
    _assert_clear(e.value, "cub", tmp_path / "cub" / "test", "same class folders in train and test")
    assert "'b'" in str(e.value) and "'c'" in str(e.value)


def test_unknown_name_bad_split_and_no_root(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("imagenet21k", tmp_path)
    for known in ("cifar100", "cub", "imagenet_a", "omnibenchmark", "digits", "synthetic",
                  "pretext"):
        assert known in str(e.value) and known in available_datasets()
    with pytest.raises(DatasetError, match="split"):
        load_dataset("digits", None, "val")
    with pytest.raises(DatasetError, match="cifar-100-python"):
        load_dataset("cifar100", None, "train")


# ----------------------------------------------------------------------------- bundled digits


def test_digits_split():
    from sklearn.datasets import load_digits

    tr = load_dataset("digits", split="train")
    te = load_dataset("digits", split="test")
    assert len(tr) + len(te) == 1797
    reference = load_digits()  # the same bundled file, read by scikit-learn itself
    train_idx, _ = stratified_split(reference.target, 0.25, 0)
    assert np.array_equal(tr.labels, reference.target[train_idx])
    assert np.array_equal(tr.images[..., 0], np.round(reference.images[train_idx] * 255 / 16).astype(np.uint8))
    assert tr.n_classes == te.n_classes == 10
    assert tr.images.shape[1:] == (8, 8, 3) and tr.images.dtype == np.uint8
    assert tr.images.max() == 255 and tr.images.min() == 0
    assert np.array_equal(tr.images[..., 0], tr.images[..., 2])
    # stratified: every class keeps about a quarter of its images for test
    counts_te = np.bincount(te.labels, minlength=10)
    counts_all = counts_te + np.bincount(tr.labels, minlength=10)
    assert np.all(np.abs(counts_te - 0.25 * counts_all) <= 1)
    again = load_dataset("digits", split="test")
    np.testing.assert_array_equal(again.images, te.images)
    other = load_dataset("digits", split="test", seed=1)
    assert not np.array_equal(other.images, te.images)
    # the split underneath is a partition of all 1797 indices
    labels = np.arange(1797) % 10
    a, b = stratified_split(labels, 0.25, seed=0)
    assert len(np.intersect1d(a, b)) == 0 and len(a) + len(b) == 1797


# ----------------------------------------------------------------------------- generated


SMALL = dict(n_classes=12, n_train=6, n_test=3, image_size=16)


def test_generated_deterministic_and_sized():
    a = load_dataset("synthetic", split="train", seed=3, **SMALL)
    b = load_dataset("synthetic", split="train", seed=3, **SMALL)
    c = load_dataset("synthetic", split="train", seed=4, **SMALL)
    assert a.images.shape == (72, 16, 16, 3) and a.images.dtype == np.uint8
    assert a.images.tobytes() == b.images.tobytes()
    assert not np.array_equal(a.images, c.images)
    np.testing.assert_array_equal(a.labels, np.repeat(np.arange(12), 6))
    te = load_dataset("synthetic", split="test", seed=3, **SMALL)
    assert len(te) == 36 and te.class_names == a.class_names
    assert not np.array_equal(te.images, a.images[:36])
    # the test split does not depend on the train size
    te2 = load_dataset("synthetic", split="test", seed=3, **{**SMALL, "n_train": 9})
    np.testing.assert_array_equal(te.images, te2.images)
    p = load_dataset("pretext", split="train", seed=3, **SMALL)
    assert p.images.shape == a.images.shape


def test_hues_are_shapes_in_colours_a_grey_eye_cannot_tell_apart():
    from zeroflow_core.data.generated import hue_rotation

    options = dict(n_shapes=3, n_hues=4, n_train=5, n_test=2, image_size=16)
    hues = load_dataset("hues", split="train", seed=1, **options)
    assert hues.n_classes == 12 and len(hues) == 60 and hues.class_names[5] == "syn-001-hue1"
    np.testing.assert_array_equal(hues.labels, np.repeat(np.arange(12), 5))
    assert load_dataset("hues", split="train", seed=1, **options).images.tobytes() == hues.images.tobytes()
    # rotating about the grey axis keeps every pixel's grey level and is a true rotation
    rotation = hue_rotation(2.0)
    np.testing.assert_allclose(rotation @ np.ones(3), np.ones(3), atol=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    # hue 0 of each shape is the synthetic family's own rendering; another hue of the same rendering has the
    # same grey image up to clipping and rounding, and a different colour image
    shapes, _ = generate_images(SYNTHETIC, "train", seed=1, n_classes=3, n_per_class=20, image_size=16)
    np.testing.assert_array_equal(hues.images[hues.labels == 0], shapes[:5])
    colour = shapes[:5].astype(np.float64)
    rotated = np.clip(colour @ rotation.T, 0, 255)
    assert np.abs(rotated - colour).mean() > 10
    assert np.abs(rotated.mean(-1) - colour.mean(-1)).mean() < 2


def test_light_transforms_from_an_array_equal_the_pil_path():
    from PIL import Image

    from zeroflow_core.data.transforms import LightTest, LightTrain

    rng = np.random.default_rng(0)
    for shape, transform in (((32, 32, 3), LightTrain(32)), ((32, 32, 3), LightTest(32)), ((8, 8, 3), LightTrain(32))):
        array = rng.integers(0, 256, shape, dtype=np.uint8)
        for seed in range(5):
            via_pil = transform(Image.fromarray(array), generator=torch.Generator().manual_seed(seed))
            direct = transform.from_array(array, generator=torch.Generator().manual_seed(seed))
            assert torch.equal(via_pil, direct), (shape, transform, seed)


def test_pretext_disjoint_from_synthetic():
    syn = load_dataset("synthetic", split="train", seed=0, **SMALL)
    pre = load_dataset("pretext", split="train", seed=0, **SMALL)
    assert not set(syn.class_names) & set(pre.class_names)
    assert all(n.startswith("syn-") for n in syn.class_names)
    assert all(n.startswith("pre-") for n in pre.class_names)
    assert not np.array_equal(syn.images, pre.images)
    ps, pp = class_parameters(SYNTHETIC, 10, 0), class_parameters(PRETEXT, 10, 0)
    # different layouts: a pretext class can never coincide with a synthetic one
    assert ps["blob_xy"].shape[1] != pp["blob_xy"].shape[1]
    assert ps["grating_theta"].shape[1] != pp["grating_theta"].shape[1]


@pytest.fixture(scope="module")
def default_synthetic():
    return load_dataset("synthetic", split="train"), load_dataset("synthetic", split="test")


def _ncm_accuracy(tr, te):
    x = tr.images.reshape(len(tr), -1).astype(np.float32) / 255
    xt = te.images.reshape(len(te), -1).astype(np.float32) / 255
    means = np.stack([x[tr.labels == c].mean(0) for c in range(tr.n_classes)])
    d = (xt ** 2).sum(1)[:, None] - 2 * xt @ means.T + (means ** 2).sum(1)[None]
    return float((d.argmin(1) == te.labels).mean())


def test_synthetic_defaults_are_separable(default_synthetic):
    tr, te = default_synthetic
    assert tr.n_classes == 100 and len(tr) == 6000 and len(te) == 2000
    assert tr.images.shape[1:] == (32, 32, 3)
    # measured 0.50 (chance 0.01): clearly learnable from pixels, but far from trivial
    acc = _ncm_accuracy(tr, te)
    assert 0.25 < acc < 0.8, acc


def test_pretext_defaults_separable():
    tr = load_dataset("pretext", split="train")
    te = load_dataset("pretext", split="test")
    assert tr.n_classes == 64 and len(te) == 64 * 20
    acc = _ncm_accuracy(tr, te)  # measured 0.47, chance 0.016
    assert 0.2 < acc < 0.8, acc


# ----------------------------------------------------------------------------- transforms


def _photo(w=300, h=200, seed=0):
    return Image.fromarray(rng_images(1, h, w, seed)[0])


def test_reference_train_shape_range_reproducible():
    train_tf, _ = build_transforms("reference", 224)
    img = _photo()
    x1 = train_tf(img, generator=torch.Generator().manual_seed(7))
    x2 = train_tf(img, generator=torch.Generator().manual_seed(7))
    x3 = train_tf(img, generator=torch.Generator().manual_seed(8))
    assert x1.shape == (3, 224, 224) and x1.dtype == torch.float32
    assert 0.0 <= x1.min() and x1.max() <= 1.0
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    # no generator: the global torch RNG, so torch.manual_seed reproduces it
    torch.manual_seed(0)
    y1 = train_tf(img)
    torch.manual_seed(0)
    assert torch.equal(y1, train_tf(img))


def test_reference_test_resize_and_center_crop():
    _, test_tf = build_transforms("reference", 224)
    arr = np.zeros((256, 512, 3), np.uint8)
    arr[:, :256, 0] = 255  # left half red, right half blue
    arr[:, 256:, 2] = 255
    x = test_tf(Image.fromarray(arr))
    assert x.shape == (3, 224, 224)
    # shorter side already 256, so the 224 crop starts at column 144: half red, half blue
    assert torch.all(x[0, :, :112] == 1) and torch.all(x[2, :, :112] == 0)
    assert torch.all(x[2, :, 112:] == 1) and torch.all(x[0, :, 112:] == 0)
    img = _photo(500, 333)
    assert torch.equal(test_tf(img), test_tf(img))
    assert test_tf(img, generator=torch.Generator().manual_seed(1)).shape == (3, 224, 224)


def test_crop_box_within_bounds():
    g = torch.Generator().manual_seed(0)
    w, h = 500, 400
    fractions = []
    for _ in range(2000):
        top, left, bh, bw = sample_crop_box(w, h, (0.05, 1.0), (3 / 4, 4 / 3), g)
        assert 0 <= top and 0 <= left and top + bh <= h and left + bw <= w
        fractions.append(bh * bw / (w * h))
        assert 3 / 4 - 0.02 <= bw / bh <= 4 / 3 + 0.02
    fractions = np.array(fractions)
    assert fractions.min() >= 0.05 - 0.005 and fractions.max() <= 1.0
    assert fractions.min() < 0.1 and fractions.max() > 0.7  # the range is actually explored


def test_crop_box_fallback_is_central():
    g = torch.Generator().manual_seed(0)
    # an area fraction above 1 never fits: the central fallback with clamped aspect ratio
    assert sample_crop_box(100, 10, (1.5, 2.0), (3 / 4, 4 / 3), g) == (0, 43, 10, 13)
    assert sample_crop_box(60, 60, (1.5, 2.0), (3 / 4, 4 / 3), g) == (0, 0, 60, 60)
    with pytest.raises(ValueError):
        sample_crop_box(10, 10, (0.5, 0.2))


def test_light_transforms_on_digits():
    train_tf, test_tf = build_transforms("light", 32)
    digits = load_dataset("digits", split="test")
    img = digits.get_pil(0)
    assert img.size == (8, 8)
    x = test_tf(img)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    a = train_tf(img, generator=torch.Generator().manual_seed(3))
    b = train_tf(img, generator=torch.Generator().manual_seed(3))
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    outs = {train_tf(img, generator=torch.Generator().manual_seed(s)).sum().item()
            for s in range(20)}
    assert len(outs) > 1  # the crop / flip actually vary
    plain, _ = build_transforms("light", 32, padding=0, flip=False)
    assert torch.equal(plain(img, generator=torch.Generator().manual_seed(0)), x)
    with pytest.raises(ValueError, match="light"):
        build_transforms("heavy", 32)


# ----------------------------------------------------------------------------- scenario


def _toy_sets(n_classes=20, per_class=3, size=8):
    names = [f"c{k}" for k in range(n_classes)]
    labels = np.repeat(np.arange(n_classes), per_class)
    # pixel value encodes the original class, so remapping can be checked through the images
    imgs = np.repeat(labels.astype(np.uint8)[:, None, None, None], size * size * 3, axis=1)
    imgs = imgs.reshape(-1, size, size, 3)
    tr = ImageSet(labels=labels, class_names=names, images=imgs, name="toy", split="train")
    te = ImageSet(labels=labels[::-1].copy(), class_names=names, images=imgs[::-1].copy(),
                  name="toy", split="test")
    return tr, te


def test_scenario_order_and_partition():
    tr, te = _toy_sets()
    sc = ClassIncrementalScenario(tr, te, n_tasks=4, seed=1993)
    np.testing.assert_array_equal(sc.class_order, np.random.RandomState(1993).permutation(20))
    assert sc.n_classes == 20 and sc.classes_per_task == 5
    other = ClassIncrementalScenario(tr, te, n_tasks=4, seed=1)
    assert not np.array_equal(other.class_order, sc.class_order)
    seen = np.concatenate([sc.task_classes(t) for t in range(4)])
    np.testing.assert_array_equal(seen, np.arange(20))
    np.testing.assert_array_equal(np.concatenate([sc.original_classes(t) for t in range(4)]),
                                  sc.class_order)
    for t in range(4):
        idx = sc.train_indices(t)
        assert len(idx) == 15
        assert set(tr.labels[idx]) == set(sc.original_classes(t))
        assert set(sc.train_labels[idx]) == set(sc.task_classes(t))
    # remapping: original class order[j] becomes label j
    for j, c in enumerate(sc.class_order):
        assert np.all(sc.train_labels[tr.labels == c] == j)
    assert sc.class_names[0] == f"c{sc.class_order[0]}"
    # cumulative test sets
    for t in range(4):
        idx = sc.test_indices(t)
        assert len(idx) == 15 * (t + 1)
        assert sc.test_labels[idx].max() == 5 * (t + 1) - 1
        assert set(sc.task_test_indices(t)) <= set(idx)
    with pytest.raises(IndexError):
        sc.task_classes(4)


def test_scenario_reference_cifar_order():
    # the first CIFAR-100 task of the reference code with seed 1993
    tr, te = _toy_sets(n_classes=100, per_class=1, size=2)
    sc = ClassIncrementalScenario(tr, te, n_tasks=10)
    np.testing.assert_array_equal(sc.original_classes(0), [68, 56, 78, 8, 23, 84, 90, 65, 74, 76])


def test_scenario_unequal_split_raises():
    tr, te = _toy_sets(n_classes=20)
    with pytest.raises(ValueError, match=r"20 classes .* 3 tasks"):
        ClassIncrementalScenario(tr, te, n_tasks=3)


def test_task_dataset_items_and_epochs():
    tr, te = _toy_sets()
    sc = ClassIncrementalScenario(tr, te, n_tasks=4)
    train_tf, test_tf = build_transforms("reference", 8, scale=(0.2, 1.0))
    ds = sc.train_dataset(1, train_tf, seed=5)
    assert isinstance(ds, TaskDataset) and len(ds) == 15
    x, y = ds[0]
    assert x.shape == (3, 8, 8) and isinstance(y, int) and y in sc.task_classes(1)
    # the pixel value encodes the original class: the label must be its remapped index
    orig = int(round(x.mean().item() * 255))
    assert sc.label_map[orig] == y
    # item augmentation depends on (seed, epoch, index), not on access order
    last = ds[14][0]
    ds2 = sc.train_dataset(1, build_transforms("reference", 8, scale=(0.2, 1.0))[0], seed=5)
    assert torch.equal(ds2[14][0], last)
    big = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, -1) * 16
    aug = TaskDataset(ImageSet(labels=[0], class_names=["a"], images=big[None]), [0], [0],
                      train_tf, seed=5)
    e0 = [aug[0][0] for _ in range(2)]
    assert torch.equal(e0[0], e0[1])
    variants = set()
    for epoch in range(8):
        aug.set_epoch(epoch)
        variants.add(aug[0][0].numpy().tobytes())
    assert len(variants) > 1
    test_ds = sc.test_dataset(3, test_tf)
    cache = TensorCache(test_ds)
    assert cache.x.shape == (60, 3, 8, 8)
    xs, ys = test_ds[7]
    assert torch.equal(cache[7][0], xs) and cache[7][1] == ys
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch[0].shape == (4, 3, 8, 8) and batch[1].dtype == torch.int64
    with pytest.raises(ValueError, match="aligned"):
        TaskDataset(tr, [0], [0, 1], test_tf)
