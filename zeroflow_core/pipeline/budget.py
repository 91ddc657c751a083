"""What a grid costs before it runs: optimizer steps and passes per run, from each cell's configuration and its
dataset's size, and GPU-hours where Table 2 has measured a step on the GPU (`zeroflow budget`).

Training dominates a run: evaluation and prototypes see each image once per adapter set, and held-out records
take at most a tenth of the training forwards (train.HELDOUT_SHARE).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from zeroflow_core.pipeline.cells import grid_cells, run_config
from zeroflow_core.run.bench import EFFICIENCY_DIR
from zeroflow_core.run.config import NO_OPTIMIZER


def passes_per_step(optimizer: str, hyper: dict) -> dict:
    """Forward, backward and forward-mode (jvp) passes of one step, from the optimizer the run would build."""
    from torch import nn

    from zeroflow_core.optim import create_optimizer, optimizer_spec

    probe = nn.Linear(1, 1)
    built = create_optimizer(optimizer, probe.parameters(), model=probe, **hyper)
    family = optimizer_spec(optimizer).family
    if family == "backprop":
        return {"forward": 1, "backward": 1, "jvp": 0}
    if family == "forward-grad":
        return {"forward": 0, "backward": 0, "jvp": built.forwards_per_step}
    return {"forward": built.forwards_per_step, "backward": 0, "jvp": 0}


def run_budget(config: dict, train_images: int) -> dict:
    """Steps and image-passes of one run's training, with `train_images` training images in the dataset."""
    from zeroflow_core.methods import METHODS

    method = METHODS[config["method"]]
    per_task = train_images // config["n_tasks"]
    steps_per_epoch = math.ceil(per_task / config["batch_size"])
    if config["max_steps_per_epoch"]:
        steps_per_epoch = min(steps_per_epoch, config["max_steps_per_epoch"])
    # a method that trains nothing, and a method's zero-step control, take no step
    stepping = method.trains and config["optimizer"] != NO_OPTIMIZER
    trained = sum(method.trains_on(task) for task in range(config["n_tasks"])) if stepping else 0
    steps = trained * config["epochs"] * steps_per_epoch
    passes = passes_per_step(config["optimizer"], config["optimizer_hyper"]) if config["optimizer"] != NO_OPTIMIZER \
        else {"forward": 0, "backward": 0, "jvp": 0}
    return {"steps": steps, **{f"image_{kind}s": steps * config["batch_size"] * n for kind, n in passes.items()}}


def dataset_sizes(prepared_dir: Path = Path("data/prepared")) -> dict[str, int]:
    """Training images per dataset, from the manifests that `dvc repro prepare@<dataset>` writes."""
    return {path.stem: json.loads(path.read_text())["splits"]["train"]["images"]
            for path in sorted(Path(prepared_dir).glob("*.json"))}


def measured_seconds_per_image(model: str, efficiency_dir: Path = EFFICIENCY_DIR) -> dict[str, float]:
    """Seconds of a step per image of its batch, per optimizer at q = 1, as Table 2's stage measured them for
    `model` on a GPU (empty if it has not; CPU measurements say nothing of GPU-hours); a step's time grows about
    linearly with its batch."""
    path = Path(efficiency_dir) / f"{model}.json"
    if not path.is_file():
        return {}
    return {row["optimizer"]: row["step_seconds"] / row["batch_size"] for row in json.loads(path.read_text())
            if row.get("q") in (None, 1) and str(row.get("device", "")).startswith("cuda")}


def grid_budget(params: dict, sizes: dict[str, int], seconds_per_image: dict[str, float] | None = None) -> list[dict]:
    """One row per grid cell: its steps, image-passes and, where a step was measured, its hours."""
    unsized = [dataset for dataset in params["grid"]["datasets"] if dataset not in sizes]
    if unsized:  # every one at once, with the two ways to give it
        raise ValueError(f"no size for {', '.join(unsized)}: run `dvc repro {' '.join(f'prepare@{d}' for d in unsized)}` "
                         f"or pass --images {','.join(f'{d}=N' for d in unsized)}")
    rows = []
    for method, optimizer, dataset, seed in grid_cells(params):
        config = run_config(params, method, optimizer, dataset, seed)
        row = {"method": method, "optimizer": optimizer, "dataset": dataset, "seed": seed,
               **run_budget(config, sizes[dataset])}
        seconds = (seconds_per_image or {}).get(optimizer)
        row["hours"] = None if seconds is None else row["steps"] * config["batch_size"] * seconds / 3600
        rows.append(row)
    return rows
