"""Cells: the fully resolved runs that params.yaml's grid and sweeps consist of, and where each one writes.

A cell is one run (a name, its configuration with the layer that set each key, a folder), the unit the
executor runs. A pipeline run's configuration is config.resolve's (registry, profile, run, profile rules)
under the layers params.yaml adds, in this order:

  params.yaml train, datasets.<dataset>, methods.<method>, optimizers.<optimizer>
  a sweep's      ablations.train, ablations.optimizers.<optimizer>, its `with` settings, its value
  execution      the cell's CPU threads where it runs (a placement key: no part of what the cell computes)

This module does not import the executor, so that what resolves cells and a run do not import the code that
schedules them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from zeroflow_core.methods import METHODS
from zeroflow_core.optim.registry import grid_row
from zeroflow_core.run.config import (NO_OPTIMIZER, RUN_SETTINGS, ConfigError, Layer, Resolved, hybrid_phase_optimizer,
                                      resolve, setting_layer)
from zeroflow_core.settings import Setting, declared, defaults_of, is_number

RUNS_DIR = Path("runs/train")
ABLATIONS_DIR = Path("runs/ablation")

# `execution` of params.yaml: how cells run, never what they compute.
EXECUTION_SETTINGS = declared(
    Setting("backend", "local", "local: warm worker processes on this machine; ray: one Ray task per cell",
            choices=("local", "ray")),
    Setting("workers", 1, "local worker processes side by side", check=lambda value: value >= 1,
            requirement="must be >= 1"),
    Setting("ray_address", "auto", "the Ray cluster ('auto': the one `ray start` made here, or host:port)",
            check=bool, requirement="must name a cluster address such as 'auto' or '10.0.0.1:6379'"),
    Setting("cpus_per_cell", 1.0, "CPUs a Ray task reserves (its torch threads)", check=lambda value: value >= 1,
            requirement="must be a number >= 1"),
    Setting("gpus_per_cell", 0.0, "GPUs a cell gets (a local worker sees only its own)",
            check=lambda value: value >= 0, requirement="must be a number >= 0"),
)


@dataclass(frozen=True)
class Cell:
    name: str
    config: dict
    out: Path
    set_by: dict = field(default_factory=dict, compare=False)


def execution(params: dict) -> dict:
    """The `execution` section with its defaults filled in."""
    return {**defaults_of(EXECUTION_SETTINGS), **params["execution"]}


def placed(resolved: Resolved, settings: dict) -> Resolved:
    """The cell's CPU threads where it runs: its share of `train.threads` among the local workers side by
    side, or the CPUs a Ray task reserves (so cells never oversubscribe the cores they are given)."""
    config = resolved.config
    if settings["backend"] == "ray":
        threads = max(1, int(settings["cpus_per_cell"]))
    elif config["threads"] and settings["workers"] > 1:
        threads = max(1, config["threads"] // settings["workers"])
    else:
        return resolved
    return Resolved({**config, "threads": threads}, {**resolved.set_by, "threads": "execution"})


# ------------------------------------------------------------------------------------------- the grid
def run_name(method: str, optimizer: str, dataset: str, seed: int) -> str:
    if optimizer == NO_OPTIMIZER:
        return f"{method}-{dataset}-{seed}"
    return f"{method}-{optimizer}-{dataset}-{seed}"


def stage_folder(method: str, dataset: str, runs_dir: Path = RUNS_DIR) -> Path:
    """The folder of the `train@<method>-<dataset>` stage: one sub-folder per cell (run_name)."""
    return Path(runs_dir) / f"{method}-{dataset}"


def run_folder(method: str, optimizer: str, dataset: str, seed: int, runs_dir: Path = RUNS_DIR) -> Path:
    return stage_folder(method, dataset, runs_dir) / run_name(method, optimizer, dataset, seed)


def optimizers_of(method: str, optimizers) -> list[str]:
    """The optimizer axis of a method: the given optimizers and `none`, its zero-step control (every step
    skipped: what the method's structure gives without training), or only `none` for one that trains nothing."""
    return [*optimizers, NO_OPTIMIZER] if METHODS[method].trains else [NO_OPTIMIZER]


def grid_rows(grid: dict) -> list[str]:
    """The optimizer rows of the grid: the paper's (grid.optimizers), then the opt-in rows beyond it (later
    optimizers, `<optimizer>+head`: grid.beyond_paper)."""
    return [*grid["optimizers"], *grid.get("beyond_paper", [])]


def grid_cells(params: dict):
    """(method, optimizer row, dataset, seed) of every run of the grid, the no-training baseline first."""
    grid = params["grid"]
    for method in [grid["baseline"], *grid["methods"]]:
        for optimizer in optimizers_of(method, grid_rows(grid)):
            for dataset in grid["datasets"]:
                for seed in grid["seeds"]:
                    yield method, optimizer, dataset, seed


def params_layers(params: dict, method: str, optimizer: str, dataset: str) -> list[Layer]:
    """What params.yaml sets for a run: train, then its dataset's, method's and optimizer's sections."""
    layers = [Layer("params.yaml train", params["train"]),
              Layer(f"params.yaml datasets.{dataset}", params["datasets"].get(dataset, {})),
              Layer(f"params.yaml methods.{method}", {"method_config": params["methods"].get(method, {})})]
    if optimizer != NO_OPTIMIZER:
        layers.append(Layer(f"params.yaml optimizers.{optimizer}",
                            {"optimizer_hyper": params["optimizers"].get(optimizer, {})}))
    return layers


def resolve_run(params: dict, method: str, optimizer: str, dataset: str, seed: int, extra=()) -> Resolved:
    """A run of params.yaml: the profile's layers, params.yaml's sections, then `extra` layers. `optimizer` may be a
    grid row (`<optimizer>+head`: registry.grid_row), whose settings come after params.yaml's sections. With the
    hybrid schedule, its backprop phase takes params.yaml's section of that optimizer (fo_hyper) too."""
    row = optimizer
    if optimizer != NO_OPTIMIZER:
        try:
            spec, row_settings = grid_row(row)
        except ValueError as error:
            raise ConfigError(str(error).strip('"')) from None
        optimizer = spec.name
    run = {"profile": params["profile"], "method": method, "optimizer": optimizer, "dataset": dataset, "seed": seed}
    layers = params_layers(params, method, optimizer, dataset)
    if row != optimizer:
        layers.append(Layer(f"grid row {row}", row_settings))
    resolved = resolve(run, [*layers, *extra])
    fo = hybrid_phase_optimizer(resolved.config)
    if fo is None or not params["optimizers"].get(fo):
        return resolved
    phase = Layer(f"params.yaml optimizers.{fo} (the hybrid schedule's backprop phase)",
                  {"fo_hyper": params["optimizers"][fo]})
    return resolve(run, [*layers, phase, *extra])


def run_config(params: dict, method: str, optimizer: str, dataset: str, seed: int) -> dict:
    return resolve_run(params, method, optimizer, dataset, seed).config


def train_cells(params: dict, method: str, dataset: str) -> list[Cell]:
    """The cells of the stage `train@<method>-<dataset>`: its optimizers × seeds."""
    settings = execution(params)
    cells = []
    for optimizer in optimizers_of(method, grid_rows(params["grid"])):
        for seed in params["grid"]["seeds"]:
            resolved = placed(resolve_run(params, method, optimizer, dataset, seed), settings)
            cells.append(Cell(run_name(method, optimizer, dataset, seed), resolved.config,
                              run_folder(method, optimizer, dataset, seed), resolved.set_by))
    return cells


# ------------------------------------------------------------------------------------------- sweeps
# Run keys that change nothing in a run without steps: a sweep over one of them shares one zero-step control.
STEP_ONLY_KEYS = ("epochs", "batch_size", "schedule", "min_lr", "max_steps_per_epoch", "heldout_every",
                  "heldout_batch", "zo_scope", "ease_alpha_under_zo", "update_probe", "autocast", "head_optimizer",
                  "fo_epochs", "fo_hyper")
MATCHED_DIR = "matched"  # a sweep's step-matched controls, in a folder of their own (they run second)
# The `hyper` of a sweep whose values name its `variants` (params.yaml ablations.sweeps.<name>.variants).
VARIANT = "variant"


def sweep_cell_name(method: str, optimizer: str, dataset: str, hyper: str, value, seed: int) -> str:
    shown = f"{value:g}" if is_number(value) else str(value)
    return f"{method}-{optimizer}-{dataset}-{hyper}{shown}-{seed}"


def sweep_values(sweep: dict, optimizer: str) -> list:
    """The values `hyper` takes for one optimizer: `values`, or its entry when `values` maps optimizers to lists."""
    values = sweep["values"]
    return list(values[optimizer]) if isinstance(values, dict) else list(values)


def swept_settings(sweep: dict, value) -> dict:
    """What one value of a sweep sets: `hyper` at that value, or for a sweep of variants (hyper `variant`), the
    settings that variant names, which vary together (the enhancements alone and combined)."""
    if sweep["hyper"] == VARIANT:
        return dict(sweep["variants"][value])
    return {sweep["hyper"]: value}


def sweep_layers(params: dict, name: str, optimizer: str, value) -> list[Layer]:
    """What a sweep sets over the grid's layers: its run and optimizer settings, its `with`, its value."""
    section = params["ablations"]
    sweep, method = section["sweeps"][name], section["method"]
    where = f"params.yaml ablations.sweeps.{name}"
    if optimizer == NO_OPTIMIZER:  # a zero-step control takes what applies to a run without an optimizer
        fixed = {k: v for k, v in sweep.get("with", {}).items() if _applies_without_steps(k, method)}
        varied = {k: v for k, v in swept_settings(sweep, value).items() if _applies_without_steps(k, method)}
        return [Layer("params.yaml ablations.train", section["train"]),
                setting_layer(f"{where}.with", fixed, method, optimizer),
                setting_layer(f"{where}.values", varied, method, optimizer)]
    return [Layer("params.yaml ablations.train", section["train"]),
            Layer(f"params.yaml ablations.optimizers.{optimizer}",
                  {"optimizer_hyper": section["optimizers"].get(optimizer, {})}),
            setting_layer(f"{where}.with", sweep.get("with", {}), method, optimizer),
            setting_layer(f"{where}.values", swept_settings(sweep, value), method, optimizer)]


def _applies_without_steps(key: str, method: str) -> bool:
    return key in METHODS[method].defaults or (key in RUN_SETTINGS and key not in STEP_ONLY_KEYS)


def _value_applies_without_steps(sweep: dict, value, method: str) -> bool:
    return any(_applies_without_steps(key, method) for key in swept_settings(sweep, value))


def sweep_cells(params: dict, name: str, root: Path = ABLATIONS_DIR) -> list[Cell]:
    """Every optimizer × value × seed of the sweep `ablations.sweeps.<name>`, in that order, then the zero-step
    control of the ablations' method (optimizer `none`: every step skipped) per seed, and per value where the
    value applies to a run without steps: runs of the ablations' method and dataset with `hyper` set, over the
    sweeps' own run and optimizer settings."""
    section = params["ablations"]
    if name not in section["sweeps"]:
        raise ConfigError(f"unknown sweep {name!r}; ablations.sweeps has: {', '.join(section['sweeps'])}")
    sweep = section["sweeps"][name]
    method, dataset = section["method"], section["dataset"]
    settings = execution(params)
    cells, controls = [], {}
    for optimizer in [*sweep["optimizers"], NO_OPTIMIZER]:
        values = sweep_values(sweep, sweep["optimizers"][0]) if optimizer == NO_OPTIMIZER else \
            sweep_values(sweep, optimizer)
        for value in values:
            for seed in section["seeds"]:
                try:
                    resolved = resolve_run(params, method, optimizer, dataset, seed,
                                           sweep_layers(params, name, optimizer, value))
                except ConfigError as error:
                    raise ConfigError(f"'ablations.sweeps.{name}': {optimizer} with {sweep['hyper']}={value}: "
                                      f"{error}") from None
                resolved = placed(resolved, settings)
                if optimizer == NO_OPTIMIZER:
                    applies = _value_applies_without_steps(sweep, value, method)
                    cell = control_cell_name(method, dataset, sweep["hyper"] if applies else None, value, seed)
                    if cell in controls:
                        continue
                    controls[cell] = True
                else:
                    cell = sweep_cell_name(method, optimizer, dataset, sweep["hyper"], value, seed)
                cells.append(Cell(cell, resolved.config, Path(root) / name / cell, resolved.set_by))
    return cells


def control_cell_name(method: str, dataset: str, hyper: str | None, value, seed: int) -> str:
    """A sweep's zero-step control: one per seed, or per value and seed where the value applies to it."""
    if hyper is None:
        return f"{method}-{dataset}-{seed}"
    return sweep_cell_name(method, NO_OPTIMIZER, dataset, hyper, value, seed)


def matched_cell_name(method: str, optimizer: str, dataset: str, hyper: str, value, seed: int) -> str:
    return sweep_cell_name(method, optimizer, dataset, hyper, value, seed).rsplit("-", 1)[0] + f"-matched-{seed}"


def mean_step(metrics: dict) -> float:
    """A run's mean step size: the mean over its trained tasks of the mean ‖θ_{t+1} − θ_t‖."""
    norms = [n for n in metrics.get("step_norms", []) if n is not None]
    return sum(norms) / len(norms) if norms else float("nan")


def matched_cells(params: dict, name: str, results: dict[str, dict], root: Path = ABLATIONS_DIR) -> list[Cell]:
    """The step-matched controls of a sweep with `step_matched`: for each optimizer and each value other than the
    first (plain, e.g. p = 0), the first value's cell again at the learning rate that scales its measured mean
    step to the value's (lr × step(value) / step(first), each the mean over seeds): a value that only shrinks the
    step then meets a plain run that takes steps of the same size. `results` maps the sweep's cell names to their
    metrics.json."""
    section = params["ablations"]
    sweep = section["sweeps"][name]
    method, dataset, hyper = section["method"], section["dataset"], sweep["hyper"]
    settings = execution(params)
    cells = []
    for optimizer in sweep["optimizers"]:
        first, *others = sweep_values(sweep, optimizer)

        def step(value) -> float:
            return sum(mean_step(results[sweep_cell_name(method, optimizer, dataset, hyper, value, seed)])
                       for seed in section["seeds"]) / len(section["seeds"])

        base = step(first)
        for value in others:
            for seed in section["seeds"]:
                plain = resolve_run(params, method, optimizer, dataset, seed,
                                    sweep_layers(params, name, optimizer, first))
                lr = float(f"{plain.config['optimizer_hyper']['lr'] * step(value) / base:.4g}")
                resolved = resolve_run(params, method, optimizer, dataset, seed,
                                       [*sweep_layers(params, name, optimizer, first),
                                        Layer(f"step-matched to {hyper} = {value}", {"optimizer_hyper": {"lr": lr}})])
                resolved = placed(resolved, settings)
                cell = matched_cell_name(method, optimizer, dataset, hyper, value, seed)
                cells.append(Cell(cell, resolved.config, Path(root) / name / MATCHED_DIR / cell, resolved.set_by))
    return cells
