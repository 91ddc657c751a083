"""Datasets (real, bundled, generated), transforms and the class-incremental scenario.

Science core: imports nothing else of zeroflow_core (tests/test_layers.py)."""

from .datasets import (
    IMAGE_EXTENSIONS,
    SPLITS,
    DatasetError,
    ImageSet,
    available_datasets,
    dataset_label,
    expected_layout,
    load_dataset,
    load_image_folder,
    needs_files,
    register_dataset,
    stratified_split,
)
# imported for its registrations of "synthetic" and "pretext"
from .generated import PRETEXT, SYNTHETIC, Family, class_parameters, generate_images
from .scenario import ClassIncrementalScenario, TaskDataset, TensorCache, item_seed
from .transforms import (
    TRANSFORM_KINDS,
    LightTest,
    LightTrain,
    ReferenceTest,
    ReferenceTrain,
    build_transforms,
    center_crop,
    pil_to_tensor,
    resize_shorter,
    sample_crop_box,
)

__all__ = [
    "IMAGE_EXTENSIONS", "SPLITS", "DatasetError", "ImageSet", "available_datasets", "dataset_label",
    "expected_layout", "load_dataset", "load_image_folder", "needs_files", "register_dataset",
    "stratified_split", "PRETEXT", "SYNTHETIC", "Family", "class_parameters", "generate_images",
    "ClassIncrementalScenario", "TaskDataset", "TensorCache", "item_seed", "TRANSFORM_KINDS",
    "LightTest", "LightTrain", "ReferenceTest", "ReferenceTrain", "build_transforms",
    "center_crop", "pil_to_tensor", "resize_shorter", "sample_crop_box",
]
