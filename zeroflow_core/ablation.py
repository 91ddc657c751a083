"""The paper's section 4–6 sweeps: one hyper-parameter of a ZO optimizer varied over values × seeds.

Each ablation of params.yaml (`ablations.<name>`) is one DVC stage (`zeroflow stage-ablation NAME`)
whose cells are ordinary runs (zeroflow_core.train) of the ablation's method and dataset with one
optimizer hyper-parameter set, written to runs/ablation/<name>/<cell>/ and run by the executor's
warm workers (zeroflow_core.executor): finished cells with the same configuration are kept, an
interrupted cell resumes, and cells no longer in params.yaml are removed.
"""
from __future__ import annotations

from pathlib import Path

from zeroflow_core.config import (GRID_CHOSEN_KEYS, ConfigError, check_run_settings, check_section, check_seeds,
                                  validate)
from zeroflow_core.executor import Cell, run_cells

ABLATIONS_DIR = Path("runs/ablation")
# ablation name → (the optimizer hyper-parameter it varies, its value type)
SWEEPS = {"query_budget": ("q", int), "history": ("history", float), "sparsity": ("sparsity", float)}
COMMON_KEYS = {"method": str, "dataset": str, "seeds": list, "train": dict, "optimizers": dict}
SWEEP_KEYS = {"optimizers": list, "values": list}


def check_ablations(section, where: str = "params.yaml") -> None:
    """Shape and types of the `ablations` section (run settings are checked per cell by run_config)."""
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: 'ablations' must be a mapping, got {section!r}")
    check_section(section, "ablations", {**COMMON_KEYS, **{name: dict for name in SWEEPS}}, where)
    check_seeds(section["seeds"], "ablations.seeds", where)
    # the sweep chooses the optimizer's hyper-parameters too
    check_run_settings(section["train"], "ablations.train", where, chosen=GRID_CHOSEN_KEYS + ("optimizer_hyper",))
    from zeroflow_core.optim import resolve_hyper

    for optimizer, hyper in section["optimizers"].items():
        if not isinstance(hyper, dict):
            raise ConfigError(f"{where}: 'ablations.optimizers.{optimizer}' must be a mapping, got {hyper!r}")
        try:
            resolve_hyper(optimizer, **hyper)
        except ValueError as error:
            raise ConfigError(f"{where}: 'ablations.optimizers.{optimizer}': {error}") from None
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


def cells(params: dict, name: str) -> list[Cell]:
    """Every optimizer × value × seed of ablation `name`, in that order."""
    from zeroflow_core.pipeline import placed, run_config

    if name not in SWEEPS:
        raise ConfigError(f"unknown ablation {name!r}; known: {', '.join(SWEEPS)}")
    section = params["ablations"]
    hyper, kind = SWEEPS[name]
    method, dataset = section["method"], section["dataset"]
    result = []
    for optimizer in section[name]["optimizers"]:
        for value in section[name]["values"]:
            for seed in section["seeds"]:
                config = run_config(params, method, optimizer, dataset, seed)
                config.update(section["train"])
                config["optimizer_hyper"].update(section["optimizers"].get(optimizer, {}))
                config["optimizer_hyper"][hyper] = kind(value)
                try:
                    validate(config)
                except ConfigError as error:
                    raise ConfigError(f"'ablations.{name}': {optimizer} with {hyper}={value}: {error}") from None
                cell = cell_name(method, optimizer, dataset, hyper, value, seed)
                result.append(Cell(cell, placed(config, params["execution"]["workers"]), ABLATIONS_DIR / name / cell))
    return result


def run_ablation(params: dict, name: str, root: Path = ABLATIONS_DIR, log=print) -> Path:
    """Run every cell of one ablation not already finished with the same configuration."""
    folder = Path(root) / name
    todo = [Cell(cell.name, cell.config, folder / cell.name) for cell in cells(params, name)]
    run_cells(folder, todo, params["execution"]["workers"], log=log)
    return folder
