"""A dataset's fingerprint: what the `prepare` stage records and every run of that dataset depends on.

Loading both splits up front checks that a dataset is where the profile expects it before any
training starts, and the content hash makes DVC rerun a dataset's runs when its data changes
(a regenerated set, a replaced folder) and only then.
"""
from __future__ import annotations

import hashlib

import numpy as np

from zeroflow_core.data.datasets import ImageSet, expected_layout, load_dataset


def fingerprint(imageset: ImageSet) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(imageset.labels).tobytes())
    digest.update("\n".join(imageset.class_names).encode())
    if imageset.images is not None:
        digest.update(np.ascontiguousarray(imageset.images).tobytes())
    else:  # image files: their names and bytes
        for path in imageset.paths:
            digest.update(str(path.name).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def dataset_manifest(name: str, root, **options) -> dict:
    splits = {}
    for split in ("train", "test"):
        imageset = load_dataset(name, root, split, **options)
        splits[split] = {"images": len(imageset), "classes": imageset.n_classes, "sha256": fingerprint(imageset)}
    return {"dataset": name, "options": options, "layout": expected_layout(name), "splits": splits}
