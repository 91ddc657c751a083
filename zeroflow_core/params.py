"""params.yaml: load it, check every section, and resolve it into the cells the stages run.

Every stage of dvc.yaml reads params.yaml through `load_params`, so the file has one reader and one
validator. A cell (zeroflow_core.executor.Cell) is one fully resolved run: `train_cells` gives those
of one `train@<method>-<dataset>` stage, `sweep_cells` those of one sweep (`ablation@<name>`).
"""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from zeroflow_core.config import (GRID_CHOSEN_KEYS, NO_OPTIMIZER, PRETRAIN_DEFAULTS, ConfigError, check_run_settings,
                                  check_section, check_seeds, did_you_mean, resolve_config, validate)
from zeroflow_core.cells import Cell
from zeroflow_core.io import load_yaml

SECTIONS = {"profile": str, "grid": dict, "train": dict, "optimizers": dict, "methods": dict, "datasets": dict,
            "execution": dict, "pretrain": dict, "efficiency": dict, "ablations": dict, "landscape": dict}
GRID_KEYS = ("methods", "optimizers", "datasets", "seeds")
# `execution`: how cells run, never what they compute. local: `workers` warm processes on this machine;
# ray: one Ray task per cell on the cluster at `ray_address`, with these resources each.
EXECUTION_DEFAULTS = {"backend": "local", "workers": 1, "ray_address": "auto", "cpus_per_cell": 1,
                      "gpus_per_cell": 0}
BACKENDS = ("local", "ray")
ABLATION_KEYS = {"method": str, "dataset": str, "seeds": list, "train": dict, "optimizers": dict, "sweeps": dict}
SWEEP_KEYS = {"hyper": str, "optimizers": list, "values": list}
# optional: `with`, settings fixed for every cell of the sweep (named as `hyper` is); `official`, which of
# `values` the official code uses: a sweep that names it is a switch of the "official code vs ours" page.
SWEEP_OPTIONAL = {"with": dict, "official": (str, int, float)}
PRETRAIN_KEYS = ("epochs", "classes", "seed", "threads", "grayscale")  # types: config.PRETRAIN_DEFAULTS
EFFICIENCY_KEYS = {"threads": int, "attention": str, "optimizers": list, "extra_q": list, "models": dict}
EFFICIENCY_MODEL_KEYS = {"batch_size": 1, "steps": 1, "warmup": 0}  # key → smallest value
EFFICIENCY_MODEL_LISTS = ("optimizers", "extra_q")  # a model may measure its own subset
LANDSCAPE_KEYS = {"steps": int, "seeds": list}
RUNS_DIR = Path("runs/train")
EFFICIENCY_DIR = Path("runs/efficiency")
RESULTS_DIR = Path("results")
ABLATIONS_DIR = Path("runs/ablation")


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such parameters file")
    params = load_yaml(path.read_text())
    check_params(params, str(path))
    return params


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
    """The optimizer axis of a method: the given optimizers, or the single `none` for one that trains nothing."""
    from zeroflow_core.methods import METHODS

    return list(optimizers) if METHODS[method].trains else [NO_OPTIMIZER]


def grid_cells(params: dict):
    """(method, optimizer, dataset, seed) of every run of the grid, the no-training baseline first."""
    grid = params["grid"]
    for method in [grid["baseline"], *grid["methods"]]:
        for optimizer in optimizers_of(method, params["grid"]["optimizers"]):
            for dataset in grid["datasets"]:
                for seed in grid["seeds"]:
                    yield method, optimizer, dataset, seed


def execution(params: dict) -> dict:
    """The `execution` section with its defaults filled in."""
    return {**EXECUTION_DEFAULTS, **params["execution"]}


def placed(config: dict, settings: dict) -> dict:
    """The cell's CPU threads where it runs: its share of `train.threads` among the local workers side by
    side, or the CPUs a Ray task reserves (so cells never oversubscribe the cores they are given)."""
    if settings["backend"] == "ray":
        return {**config, "threads": max(1, int(settings["cpus_per_cell"]))}
    if config["threads"] and settings["workers"] > 1:
        return {**config, "threads": max(1, config["threads"] // settings["workers"])}
    return config


def train_cells(params: dict, method: str, dataset: str) -> list[Cell]:
    """The cells of the stage `train@<method>-<dataset>`: its optimizers × seeds."""
    settings = execution(params)
    return [Cell(run_name(method, optimizer, dataset, seed),
                 placed(run_config(params, method, optimizer, dataset, seed), settings),
                 run_folder(method, optimizer, dataset, seed))
            for optimizer in optimizers_of(method, params["grid"]["optimizers"]) for seed in params["grid"]["seeds"]]


def sweep_cell_name(method: str, optimizer: str, dataset: str, hyper: str, value, seed: int) -> str:
    shown = f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    return f"{method}-{optimizer}-{dataset}-{hyper}{shown}-{seed}"


def set_sweep_setting(config: dict, optimizer: str, name: str, value) -> None:
    """Set what a sweep varies: an optimizer hyper-parameter (`zeroflow optimizers`), a setting of the sweeps'
    method (`head_scale`) or a run key (`zo_scope`), in that order of lookup."""
    from zeroflow_core.config import RUN_KEYS
    from zeroflow_core.methods import METHODS
    from zeroflow_core.optim import optimizer_spec

    if name in optimizer_spec(optimizer).hyper:
        config["optimizer_hyper"][name] = _sweep_value(optimizer, name, value)
    elif name in METHODS[config["method"]].defaults:
        config["method_config"][name] = value
    elif name in RUN_KEYS and name not in GRID_CHOSEN_KEYS + ("optimizer_hyper", "method_config"):
        config[name] = value
    else:
        raise ConfigError(f"{name!r} is no hyper-parameter of {optimizer} (`zeroflow optimizers`), no setting of "
                          f"{config['method']} and no run key")


def sweep_cells(params: dict, name: str, root: Path = ABLATIONS_DIR) -> list[Cell]:
    """Every optimizer × value × seed of the sweep `ablations.sweeps.<name>`, in that order: runs of the
    ablations' method and dataset with `hyper` set, over the sweeps' own run and optimizer settings."""
    section = params["ablations"]
    if name not in section["sweeps"]:
        raise ConfigError(f"unknown sweep {name!r}; ablations.sweeps has: {', '.join(section['sweeps'])}")
    sweep = section["sweeps"][name]
    hyper, method, dataset = sweep["hyper"], section["method"], section["dataset"]
    settings = execution(params)
    result = []
    for optimizer in sweep["optimizers"]:
        for value in sweep["values"]:
            for seed in section["seeds"]:
                config = run_config(params, method, optimizer, dataset, seed)
                config.update(section["train"])
                config["optimizer_hyper"].update(section["optimizers"].get(optimizer, {}))
                try:
                    for fixed, setting in {**sweep.get("with", {}), hyper: value}.items():
                        set_sweep_setting(config, optimizer, fixed, setting)
                    validate(config)
                except ConfigError as error:
                    raise ConfigError(f"'ablations.sweeps.{name}': {optimizer} with {hyper}={value}: {error}") from None
                cell = sweep_cell_name(method, optimizer, dataset, hyper, value, seed)
                result.append(Cell(cell, placed(config, settings), Path(root) / name / cell))
    return result


def _sweep_value(optimizer: str, hyper: str, value):
    # a float hyper-parameter written as 0 in params.yaml is still 0.0, so the cell's identity is stable
    from zeroflow_core.optim import optimizer_spec

    default = optimizer_spec(optimizer).defaults.get(hyper)
    return float(value) if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool) else value


def run_config(params: dict, method: str, optimizer: str, dataset: str, seed: int) -> dict:
    """The run of one grid cell: train settings ← dataset's ← optimizer's hyper ← method's settings."""
    overrides = {**params["train"], **params["datasets"].get(dataset, {})}
    overrides.update(profile=params["profile"], method=method, optimizer=optimizer, dataset=dataset, seed=seed,
                     optimizer_hyper=dict(params["optimizers"].get(optimizer, {})),
                     method_config=dict(params["methods"].get(method, {})))
    return resolve_config(overrides)


def check_params(params, where: str = "params.yaml") -> None:
    """Refuse an unknown section or key, a wrong type, or a grid cell that would not run."""
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: expected a mapping of sections")
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section {unknown[0]!r}{did_you_mean(unknown[0], SECTIONS)}; "
                          f"known: {', '.join(SECTIONS)}")
    for section, kind in SECTIONS.items():
        if section not in params:
            raise ConfigError(f"{where}: missing section {section!r}")
        if not isinstance(params[section], kind):
            raise ConfigError(f"{where}: {section!r} must be a {kind.__name__}, got {params[section]!r}")
    grid = params["grid"]
    for key in sorted(set(grid) - {*GRID_KEYS, "baseline"}):
        raise ConfigError(f"{where}: unknown key 'grid.{key}'; known: {', '.join(GRID_KEYS)}, baseline")
    for key in GRID_KEYS:
        if not isinstance(grid.get(key), list) or not grid[key]:
            raise ConfigError(f"{where}: 'grid.{key}' must be a non-empty list")
    _check_grid_methods(grid, where)
    check_execution(params["execution"], where)
    for key, value in params["pretrain"].items():
        if key not in PRETRAIN_KEYS:
            raise ConfigError(f"{where}: unknown key 'pretrain.{key}'; known: {', '.join(PRETRAIN_KEYS)}")
        kind = type(PRETRAIN_DEFAULTS[key])
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"{where}: 'pretrain.{key}' must be {kind.__name__}, got {value!r}")
    for section in ("optimizers", "methods", "datasets"):
        for name, value in params[section].items():
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: '{section}.{name}' must be a mapping, got {value!r}")
    weights = params["train"].get("backbone_weights")
    if not isinstance(weights, str) or not weights:
        raise ConfigError(f"{where}: 'train.backbone_weights' must name the backbone's weights file (dvc.yaml makes it "
                          f"a dependency of every stage that runs cells), got {weights!r}")
    # every section entry is checked, used by the grid or not, so a typo never waits for a later edit
    for name, settings in [("train", params["train"])] + [(f"datasets.{d}", s) for d, s in params["datasets"].items()]:
        check_run_settings(settings, name, where)
    from zeroflow_core.methods import METHODS
    from zeroflow_core.optim import resolve_hyper

    for name, hyper in params["optimizers"].items():
        try:
            resolve_hyper(name, **hyper)
        except ValueError as error:
            raise ConfigError(f"{where}: 'optimizers.{name}': {error}") from None
    for name, settings in params["methods"].items():
        if name not in METHODS:
            raise ConfigError(f"{where}: 'methods.{name}': unknown method; known: {', '.join(METHODS)}")
        unknown = sorted(set(settings) - set(METHODS[name].defaults))
        if unknown:
            raise ConfigError(f"{where}: unknown key 'methods.{name}.{unknown[0]}'; "
                              f"{name} takes: {', '.join(METHODS[name].defaults) or 'no settings'}")
    cells = list(grid_cells(params))
    checked = {(m, o, d) for m, o, d, _ in cells}
    for method in params["methods"]:
        checked.add((method, optimizers_of(method, params["grid"]["optimizers"])[0], grid["datasets"][0]))
    for optimizer in params["optimizers"]:
        checked.add((grid["methods"][0], optimizer, grid["datasets"][0]))
    for method, optimizer, dataset in sorted(checked):
        try:
            run_config(params, method, optimizer, dataset, grid["seeds"][0])
        except ConfigError as error:
            raise ConfigError(f"{where}: {error} (in the run {run_name(method, optimizer, dataset, grid['seeds'][0])})") from None
    check_seeds(grid["seeds"], "grid.seeds", where)
    check_efficiency(params["efficiency"], where)
    check_ablations(params["ablations"], where)
    if params["ablations"]["dataset"] not in grid["datasets"]:
        raise ConfigError(f"{where}: 'ablations.dataset' {params['ablations']['dataset']!r} must be one of "
                          f"grid.datasets ({', '.join(grid['datasets'])}), whose prepare stage checks it")
    for name in params["ablations"]["sweeps"]:
        sweep_cells(params, name)
    for page, kind in NOTEBOOK_INPUTS.items():
        if kind not in ("grid", "efficiency", "landscape", "switches") and kind not in params["ablations"]["sweeps"]:
            raise ConfigError(f"{where}: the page {page} draws the sweep {kind!r}: declare it under "
                              f"'ablations.sweeps'")
    check_section(params["landscape"], "landscape", LANDSCAPE_KEYS, where)
    if params["landscape"]["steps"] < 1:
        raise ConfigError(f"{where}: 'landscape.steps' must be >= 1")
    check_seeds(params["landscape"]["seeds"], "landscape.seeds", where)


def _check_grid_methods(grid: dict, where: str) -> None:
    from zeroflow_core.methods import METHODS

    baseline = grid.get("baseline")
    if baseline not in METHODS or METHODS[baseline].trains:
        untrained = [name for name, method in METHODS.items() if not method.trains]
        raise ConfigError(f"{where}: 'grid.baseline' must name a method that trains nothing "
                          f"({', '.join(untrained)}), got {baseline!r}")
    for method in grid["methods"]:
        if method not in METHODS:
            raise ConfigError(f"{where}: 'grid.methods': unknown method {method!r}; known: {', '.join(METHODS)}")
        if not METHODS[method].trains:
            raise ConfigError(f"{where}: 'grid.methods' lists {method!r}, which trains nothing and so has no "
                              f"optimizer axis: it belongs in 'grid.baseline'")


def check_execution(section: dict, where: str = "params.yaml") -> None:
    for key in section:
        if key not in EXECUTION_DEFAULTS:
            raise ConfigError(f"{where}: unknown key 'execution.{key}'; known: {', '.join(EXECUTION_DEFAULTS)}")
    settings = {**EXECUTION_DEFAULTS, **section}
    if settings["backend"] not in BACKENDS:
        raise ConfigError(f"{where}: 'execution.backend' must be one of {', '.join(BACKENDS)}, "
                          f"got {settings['backend']!r}")
    workers = settings["workers"]
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"{where}: 'execution.workers' must be an integer >= 1, got {workers!r}")
    if not isinstance(settings["ray_address"], str) or not settings["ray_address"]:
        raise ConfigError(f"{where}: 'execution.ray_address' must be a cluster address such as 'auto' or "
                          f"'10.0.0.1:6379', got {settings['ray_address']!r}")
    for key, low in (("cpus_per_cell", 1), ("gpus_per_cell", 0)):
        value = settings[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{where}: 'execution.{key}' must be a number >= {low}, got {value!r}")


def check_ablations(section, where: str = "params.yaml") -> None:
    """Shape and types of the `ablations` section (each cell's run settings are checked by sweep_cells)."""
    check_section(section, "ablations", ABLATION_KEYS, where)
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
    if not section["sweeps"]:
        raise ConfigError(f"{where}: 'ablations.sweeps' must declare at least one sweep")
    for name, sweep in section["sweeps"].items():
        if not isinstance(sweep, dict):
            raise ConfigError(f"{where}: 'ablations.sweeps.{name}' must be a mapping, got {sweep!r}")
        required = {key: value for key, value in sweep.items() if key not in SWEEP_OPTIONAL}
        check_section(required, f"ablations.sweeps.{name}", SWEEP_KEYS, where)
        for key, kind in SWEEP_OPTIONAL.items():
            if key in sweep and (not isinstance(sweep[key], kind) or isinstance(sweep[key], bool)):
                raise ConfigError(f"{where}: 'ablations.sweeps.{name}.{key}' must be a {kind}, got {sweep[key]!r}")
        for key in ("optimizers", "values"):
            if not sweep[key]:
                raise ConfigError(f"{where}: 'ablations.sweeps.{name}.{key}' must be a non-empty list")
        if "official" in sweep and sweep["official"] not in sweep["values"]:
            raise ConfigError(f"{where}: 'ablations.sweeps.{name}.official' must be one of its values, "
                              f"got {sweep['official']!r}")


def check_efficiency(section: dict, where: str = "params.yaml") -> None:
    from zeroflow_core.bench import ATTENTION
    from zeroflow_core.models import BACKBONES

    check_section(section, "efficiency", EFFICIENCY_KEYS, where)
    if section["threads"] < 1:
        raise ConfigError(f"{where}: 'efficiency.threads' must be >= 1")
    if section["attention"] not in ATTENTION:
        raise ConfigError(f"{where}: 'efficiency.attention': unknown value {section['attention']!r}; "
                          f"known: {', '.join(ATTENTION)}")
    _check_efficiency_lists(section, "efficiency", where)
    if not section["models"]:
        raise ConfigError(f"{where}: 'efficiency.models' must name at least one model")
    for model, settings in section["models"].items():
        if model not in BACKBONES:
            raise ConfigError(f"{where}: 'efficiency.models.{model}': unknown model; known: {', '.join(BACKBONES)}")
        if not isinstance(settings, dict):
            raise ConfigError(f"{where}: 'efficiency.models.{model}' must be a mapping")
        for key, value in settings.items():
            if key not in EFFICIENCY_MODEL_KEYS and key not in EFFICIENCY_MODEL_LISTS:
                raise ConfigError(f"{where}: unknown key 'efficiency.models.{model}.{key}'; "
                                  f"known: {', '.join([*EFFICIENCY_MODEL_KEYS, *EFFICIENCY_MODEL_LISTS])}")
        _check_efficiency_lists(settings, f"efficiency.models.{model}", where)
        for key, low in EFFICIENCY_MODEL_KEYS.items():
            value = settings.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{where}: 'efficiency.models.{model}.{key}' must be an integer >= {low}, "
                                  f"got {value!r}")


def _check_efficiency_lists(section: dict, name: str, where: str) -> None:
    from zeroflow_core.optim import OPTIMIZERS

    for key in EFFICIENCY_MODEL_LISTS:
        if key in section and not isinstance(section[key], list):
            raise ConfigError(f"{where}: '{name}.{key}' must be a list, got {section[key]!r}")
    for optimizer in section.get("optimizers", []):
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"{where}: '{name}.optimizers': unknown optimizer {optimizer!r}; "
                              f"known: {', '.join(OPTIMIZERS)}")
    for q in section.get("extra_q", []):
        if not isinstance(q, int) or isinstance(q, bool) or q < 1:
            raise ConfigError(f"{where}: '{name}.extra_q' must hold integers >= 1, got {q!r}")


def efficiency_pairs(params: dict, model: str) -> tuple[list, dict]:
    """Table 2's measurements for one model: (optimizer, q) pairs, its optimizers (the model's list, else
    the section's) then ZO-SGD at each extra q, and the model's settings."""
    section = params["efficiency"]
    if model not in section["models"]:
        raise ConfigError(f"'efficiency.models' has no entry {model!r}; it has: {', '.join(section['models'])}")
    settings = section["models"][model]
    optimizers, extra_q = (settings.get(key, section[key]) for key in EFFICIENCY_MODEL_LISTS)
    return [(name, None) for name in optimizers] + [("zo-sgd", q) for q in extra_q], settings


def params_hash(path: str | Path = "params.yaml") -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def code_version() -> str:
    """Package version plus the git commit (and '+dirty' when the tree has local edits)."""
    from zeroflow_core import __version__

    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "--short=10", "HEAD") or "unknown"
    dirty = "+dirty" if git("status", "--porcelain", "--untracked-files=no", "--", "zeroflow_core") else ""
    return f"{__version__} ({commit}{dirty})"


# Every notebook in the book's order, with the results it reads: the train grid, the efficiency measurements,
# one sweep of params.yaml by name (ablations.sweeps), the switches (every sweep with an `official` value), or
# nothing (`landscape`: the toy problem is computed in the notebook).
NOTEBOOK_INPUTS = {
    "table_1": "grid", "figure_2": "grid", "figure_4": "grid", "table_2": "efficiency", "figure_5": "query_budget",
    "figure_3": "landscape", "figure_6": "landscape", "figure_7": "grid", "table_3": "history", "table_4": "sparsity",
    "official_vs_ours": "switches",
}


def switches(params: dict) -> dict:
    """The sweeps that name their `official` value: the switches of the "official code vs ours" page."""
    return {name: sweep for name, sweep in params["ablations"]["sweeps"].items() if "official" in sweep}


def notebook_parameters(params: dict, name: str, params_path: str | Path = "params.yaml") -> dict:
    """What papermill gives notebook `name`: where to read and write, and the settings it shows."""
    kind = NOTEBOOK_INPUTS[name]
    grid = params["grid"]
    parameters = {"profile": params["profile"], "out_dir": str(RESULTS_DIR / name), "code_version": code_version(),
                  "params_hash": params_hash(params_path)}
    if kind in ("grid", "efficiency"):
        parameters.update(baseline=grid["baseline"], methods=grid["methods"], optimizers=grid["optimizers"],
                          datasets=grid["datasets"], seeds=grid["seeds"], runs_dir=str(RUNS_DIR),
                          reference_dir="reference")
    if kind == "efficiency":
        section = params["efficiency"]
        parameters.update(efficiency_dir=str(EFFICIENCY_DIR), models=list(section["models"]),
                          attention=section["attention"])
    elif kind in params["ablations"]["sweeps"]:
        section, sweep = params["ablations"], params["ablations"]["sweeps"][kind]
        parameters.update(ablation_dir=str(ABLATIONS_DIR / kind), method=section["method"], dataset=section["dataset"],
                          seeds=section["seeds"], optimizers=sweep["optimizers"], values=sweep["values"],
                          hyper=sweep["hyper"], run_settings=section["train"],
                          sweep_optimizers=section["optimizers"], baseline=grid["baseline"], runs_dir=str(RUNS_DIR),
                          reference_dir="reference")
    elif kind == "switches":
        section = params["ablations"]
        parameters.update(ablation_dir=str(ABLATIONS_DIR), method=section["method"], dataset=section["dataset"],
                          seeds=section["seeds"], switches=switches(params), run_settings=section["train"],
                          sweep_optimizers=section["optimizers"], baseline=grid["baseline"], runs_dir=str(RUNS_DIR),
                          grid_methods=grid["methods"], grid_optimizers=grid["optimizers"],
                          grid_datasets=grid["datasets"], grid_seeds=grid["seeds"])
    elif kind == "landscape":
        parameters.update(steps=params["landscape"]["steps"], seeds=params["landscape"]["seeds"])
    return parameters
