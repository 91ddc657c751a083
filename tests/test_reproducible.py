"""Outputs that are functions of their inputs, and a spread that includes the backbone.

Every file a later stage reads (a backbone, a cell's checkpoint and metrics.json, a stage's summaries) holds no time,
date or duration: a stage run twice writes the same bytes, so DVC sees no change after a forced rerun. What runs spend
goes to timing/ (zeroflow_core.run.timing). Each seed pretrains its own smoke backbone and each run loads its seed's; a
cell runs again when the backbone it loaded changes.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from zeroflow_core import cli

from zeroflow_core.io import file_sha256
from zeroflow_core.models.pretrained import WeightsNotFoundError, seed_folder, weights_file
from zeroflow_core.pipeline import executor
from zeroflow_core.pipeline.cells import Cell
from zeroflow_core.pipeline.params import load_params
from zeroflow_core.run.timing import read_timing, timing_file, timing_folder

ROOT = Path(__file__).parents[1]


def test_timings_of_a_folder_under_runs_lie_in_the_same_place_under_timing():
    assert timing_folder("runs/train/ease-hues/cell") == Path("timing/train/ease-hues/cell")
    assert timing_file(Path("/x/runs/pretrain/seed0")) == Path("/x/timing/pretrain/seed0/timing.json")
    # the innermost runs/: a checkout inside a folder named runs keeps its timings in the checkout
    assert timing_folder("/home/runs/repo/runs/ablation/q") == Path("/home/runs/repo/timing/ablation/q")
    assert timing_folder("my-run") == Path("my-run")  # outside runs/: beside metrics.json


def test_each_seed_loads_its_own_backbone(tmp_path):
    folder = tmp_path / "pretrain"
    for seed in (0, 1):
        (seed_folder(seed, folder)).mkdir(parents=True)
        (seed_folder(seed, folder) / "backbone.pt").write_bytes(b"seed %d" % seed)
    assert weights_file(folder, 1) == folder / "seed1" / "backbone.pt"
    assert weights_file(folder / "seed0" / "backbone.pt", 5) == folder / "seed0" / "backbone.pt"  # a file: every seed
    with pytest.raises(WeightsNotFoundError, match=r"holds no pretraining of seed 2 .*dvc repro pretrain@2"):
        weights_file(folder, 2)


def _tiny_params(tmp_path: Path) -> Path:
    params = yaml.safe_load((ROOT / "tests" / "ci-params.yaml").read_text())
    params["grid"].update(methods=["ease"], optimizers=["zo-sgd"], seeds=[0, 1])
    params["execution"]["workers"] = 1
    params["train"].update(max_steps_per_epoch=2, threads=1, heldout_every=0)
    params["pretrain"].update(epochs=1, classes=8, threads=1)
    params["ablations"]["seeds"] = [0]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _hashes(*paths: Path) -> dict[str, str]:
    """sha256 of every file under the given files and folders, by path: what DVC's hash of each output covers."""
    files = [p for path in paths for p in ([path] if path.is_file() else sorted(path.rglob("*"))) if p.is_file()]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_a_pretraining_and_a_train_stage_run_twice_write_the_same_bytes(tmp_path, monkeypatch):
    from zeroflow_core.pipeline import stages

    monkeypatch.chdir(tmp_path)
    params_path = _tiny_params(tmp_path)
    for seed in (0, 1):
        assert cli.main(["stage-pretrain", str(seed), "--params", str(params_path)]) == 0
    first = {seed: file_sha256(f"runs/pretrain/seed{seed}/backbone.pt") for seed in (0, 1)}
    assert first[0] != first[1]  # each seed its own backbone
    pretrained = _hashes(Path("runs/pretrain"))
    spent = read_timing("runs/pretrain/seed0")
    assert spent["seconds"] > 0 and not list(Path("runs").rglob("timing.json"))
    assert cli.main(["stage-pretrain", "0", "--params", str(params_path)]) == 0
    assert _hashes(Path("runs/pretrain")) == pretrained  # the same bytes, both files: no seconds in either
    assert cli.main(["stage-pretrain", "7", "--params", str(params_path)]) == 2  # no run of seed 7 would load it
    assert not Path("runs/pretrain/seed7").exists()

    params = load_params(params_path)
    outputs = [Path("runs/train/ease-hues"), Path("runs/metrics/ease-hues.json"), Path("runs/plots")]
    stages.train(params, "ease", "hues", log=lambda *_: None)
    once = _hashes(*outputs)
    cell = Path("runs/train/ease-hues/ease-zo-sgd-hues-1")
    # what the run spent is in its timing file, none of it in metrics.json
    spent = read_timing(cell)
    assert not {"peak_memory_mb", "seconds_per_epoch", "task_seconds", "epoch_seconds", "device"} \
        & set(json.loads((cell / "metrics.json").read_text()))
    assert spent["peak_memory_mb"] > 0 and spent["seconds_per_epoch"] > 0 and spent["device"] == "cpu"
    assert len(spent["task_seconds"]) == len(spent["epoch_seconds"]) == params["datasets"]["hues"]["n_tasks"]
    for output in outputs:  # as a forced `dvc repro` would: every cell runs again
        executor.shutil.rmtree(output) if output.is_dir() else output.unlink()
    stages.train(params, "ease", "hues", log=lambda *_: None)
    assert _hashes(*outputs) == once


def test_a_cell_runs_again_when_the_backbone_it_loaded_changes(tmp_path, monkeypatch):
    folder = tmp_path / "pretrain"
    for seed in (0, 1):
        seed_folder(seed, folder).mkdir(parents=True)
        (seed_folder(seed, folder) / "backbone.pt").write_bytes(b"weights of seed %d" % seed)
    ran = []

    def run(cell):
        ran.append(cell.name)
        (cell.out / "config.yaml").write_text(yaml.safe_dump(cell.config))
        (cell.out / "metrics.json").write_text(json.dumps({"avg_acc": 1.0, "forgetting": 0.0}))
        return {"avg_acc": 1.0, "forgetting": 0.0}

    monkeypatch.setattr(executor, "run_cell", run)
    cells = [Cell(f"s{seed}", {"seed": seed, "backbone_weights": str(folder)}, tmp_path / "stage" / f"s{seed}")
             for seed in (0, 1)]
    executor.run_cells(tmp_path / "stage", cells, log=lambda *_: None)
    executor.run_cells(tmp_path / "stage", cells, log=lambda *_: None)
    assert ran == ["s0", "s1"]  # kept the second time
    (folder / "seed1" / "backbone.pt").write_bytes(b"seed 1 pretrained again, other kernels")
    executor.run_cells(tmp_path / "stage", cells, log=lambda *_: None)
    assert ran == ["s0", "s1", "s1"]  # the seed whose backbone changed, and only it
