"""The paper's section 4–6 sweeps: one hyper-parameter of a ZO optimizer varied over values × seeds.

Each ablation of params.yaml (`ablations.<name>`) is one DVC stage that runs all its cells in one
process (`zeroflow stage-ablation NAME`): a cell is an ordinary run (zeroflow_core.train) of the
ablation's method and dataset with one optimizer hyper-parameter set, written to
runs/ablation/<name>/<cell>/. One process per ablation, not one stage per cell, because the smoke
cells are seconds of work and a process start-up (torch, timm) would cost as much as the run.
The folder persists between `dvc repro`s: a cell whose config.yaml equals its configuration and has
its metrics.json is not run again, an interrupted cell resumes from its task checkpoint, and cells
no longer in params.yaml are removed, so the folder always matches the parameters. `workers` cells
run at a time, in separate processes.
"""
from __future__ import annotations

import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import yaml

from zeroflow_core.config import (GRID_CHOSEN_KEYS, ConfigError, check_run_settings, check_section, check_seeds,
                                  validate)

ABLATIONS_DIR = Path("runs/ablation")
# ablation name → (the optimizer hyper-parameter it varies, its value type)
SWEEPS = {"query_budget": ("q", int), "history": ("history", float), "sparsity": ("sparsity", float)}
COMMON_KEYS = {"method": str, "dataset": str, "seeds": list, "workers": int, "train": dict}
SWEEP_KEYS = {"optimizers": list, "values": list}


def check_ablations(section, where: str = "params.yaml") -> None:
    """Shape and types of the `ablations` section (run settings are checked per cell by run_config)."""
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: 'ablations' must be a mapping, got {section!r}")
    check_section(section, "ablations", {**COMMON_KEYS, **{name: dict for name in SWEEPS}}, where)
    check_seeds(section["seeds"], "ablations.seeds", where)
    if section["workers"] < 1:
        raise ConfigError(f"{where}: 'ablations.workers' must be an integer >= 1, got {section['workers']!r}")
    # the sweep chooses the optimizer's hyper-parameters too
    check_run_settings(section["train"], "ablations.train", where, chosen=GRID_CHOSEN_KEYS + ("optimizer_hyper",))
    for name, (hyper, kind) in SWEEPS.items():
        sweep = section[name]
        check_section(sweep, f"ablations.{name}", SWEEP_KEYS, where)
        for key in SWEEP_KEYS:
            if not sweep[key]:
                raise ConfigError(f"{where}: 'ablations.{name}.{key}' must be a non-empty list")
        for value in sweep["values"]:
            ok = isinstance(value, int) if kind is int else isinstance(value, (int, float))
            if not ok or isinstance(value, bool):
                raise ConfigError(f"{where}: 'ablations.{name}.values' must hold {kind.__name__}s "
                                  f"(values of {hyper}), got {value!r}")


def cell_name(method: str, optimizer: str, dataset: str, hyper: str, value, seed: int) -> str:
    return f"{method}-{optimizer}-{dataset}-{hyper}{value:g}-{seed}"


def cells(params: dict, name: str):
    """(cell name, run configuration) for every optimizer × value × seed of ablation `name`."""
    from zeroflow_core.pipeline import run_config

    if name not in SWEEPS:
        raise ConfigError(f"unknown ablation {name!r}; known: {', '.join(SWEEPS)}")
    section = params["ablations"]
    hyper, kind = SWEEPS[name]
    method, dataset, workers = section["method"], section["dataset"], section["workers"]
    for optimizer in section[name]["optimizers"]:
        for value in section[name]["values"]:
            for seed in section["seeds"]:
                config = run_config(params, method, optimizer, dataset, seed)
                config.update(section["train"])
                config["optimizer_hyper"][hyper] = kind(value)
                if config["threads"]:  # cells run `workers` at a time: share the threads, do not oversubscribe
                    config["threads"] = max(1, config["threads"] // workers)
                try:
                    validate(config)
                except ConfigError as error:
                    raise ConfigError(f"'ablations.{name}': {optimizer} with {hyper}={value}: {error}") from None
                yield cell_name(method, optimizer, dataset, hyper, value, seed), config


def run_ablation(params: dict, name: str, root: Path = ABLATIONS_DIR, log=print) -> Path:
    """Run every cell of one ablation not already finished with the same configuration."""
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    todo = dict(cells(params, name))
    for stale in sorted(p for p in folder.iterdir() if p.name not in todo):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    pending = []
    for cell, config in todo.items():
        out = folder / cell
        if _finished_with(out, config):
            log(f"{cell}: done before, kept")
            continue
        if (out / "config.yaml").exists() and _saved_config(out) != config:
            shutil.rmtree(out)  # made by an earlier version of params.yaml
        pending.append((cell, config, out))
    workers = params["ablations"]["workers"]
    if workers == 1 or len(pending) <= 1:
        results = ((cell, _run_cell(config, out)) for cell, config, out in pending)
        for index, (cell, result) in enumerate(results, 1):
            _log_cell(log, index, len(pending), cell, result)
        return folder
    # The smoke cells are seconds of single-threaded work each: `workers` processes (spawned, so no
    # torch state is forked) run them side by side, each with its share of the threads.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_run_cell, config, out): cell for cell, config, out in pending}
        for index, future in enumerate(as_completed(futures), 1):
            _log_cell(log, index, len(pending), futures[future], future.result())
    return folder


def _run_cell(config: dict, out: Path) -> dict:
    from zeroflow_core.train import train

    return train(config, out, progress=False)


def _log_cell(log, index: int, total: int, cell: str, result: dict) -> None:
    log(f"[{index}/{total}] {cell}: avg_acc {result['avg_acc']:.2f}  forgetting {result['forgetting']:.2f}")


def _saved_config(out: Path):
    return yaml.safe_load((out / "config.yaml").read_text())


def _finished_with(out: Path, config: dict) -> bool:
    return (out / "metrics.json").exists() and (out / "config.yaml").exists() and _saved_config(out) == config
