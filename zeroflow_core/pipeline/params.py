"""params.yaml: load it and check every section before any stage runs.

Every stage of dvc.yaml reads params.yaml through `load_params`, so the file has one reader and one
validator. Each section has one check (SECTION_CHECKS); a value is checked against the `Setting` that
declares it (settings.check_values), and every run of the grid and every sweep cell is resolved once
(zeroflow_core.pipeline.cells), so a typo anywhere stops `dvc repro` at its first stage with one message naming the key.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from zeroflow_core.data import available_datasets
from zeroflow_core.io import load_yaml
from zeroflow_core.methods import METHODS
from zeroflow_core.models.pretrained import PRETRAIN_DIR
from zeroflow_core.optim import OPTIMIZERS, resolve_hyper
from zeroflow_core.optim.registry import grid_row
from zeroflow_core.pipeline.cells import (EXECUTION_SETTINGS, VARIANT, grid_cells, grid_rows, optimizers_of, run_config,
                                          run_name, sweep_cells, sweep_values)
from zeroflow_core.run.bench import check_efficiency
from zeroflow_core.run.config import IDENTITY_KEYS, NESTED, PRETRAIN_SETTINGS, RUN_SETTINGS, PROFILES
from zeroflow_core.settings import ConfigError, Setting, check_values, declared, did_you_mean, is_integer

SECTIONS = {"profile": str, "grid": dict, "train": dict, "optimizers": dict, "methods": dict, "datasets": dict,
            "execution": dict, "pretrain": dict, "efficiency": dict, "ablations": dict, "landscape": dict}


def _seeds(values) -> bool:
    return isinstance(values, list) and bool(values) and all(is_integer(seed) for seed in values)


def _names(values) -> bool:
    return isinstance(values, list) and bool(values) and all(isinstance(name, str) for name in values)


SEEDS = dict(check=_seeds, requirement="must be a non-empty list of integers")


def _values(values) -> bool:
    if isinstance(values, dict):
        return bool(values) and all(isinstance(v, list) and v for v in values.values())
    return isinstance(values, list) and bool(values)
GRID_SETTINGS = declared(
    Setting("baseline", "simplecil", "the no-training row of every table: a method that trains nothing"),
    Setting("methods", ["ease"], "the methods of the grid (each trains)", check=_names,
            requirement="must be a non-empty list"),
    Setting("optimizers", ["zo-sgd"], "the optimizers of the grid", check=_names, requirement="must be a non-empty list"),
    Setting("datasets", ["hues"], "the datasets of the grid", check=_names, requirement="must be a non-empty list"),
    Setting("seeds", [0], "the seeds of every run", **SEEDS),
    Setting("beyond_paper", [], "rows beyond the paper, opt in: later optimizers and `<optimizer>+head` (a "
            "forward-pass optimizer with the classifier head by backprop, head_optimizer: backprop), run on the grid's "
            "methods, datasets and seeds and shown after the paper's rows", check=lambda values: isinstance(values, list)
            and all(isinstance(name, str) for name in values), requirement="must be a list of rows"),
)
ABLATION_SETTINGS = declared(
    Setting("method", "ease", "the method of every sweep"),
    Setting("dataset", "hues", "the dataset of every sweep (one of grid.datasets)"),
    Setting("seeds", [0], "the seeds of every sweep cell", **SEEDS),
    Setting("train", {}, "run settings of the sweeps' runs, over params.yaml's train and datasets"),
    Setting("optimizers", {}, "optimizer hyper-parameters of the sweeps' runs, over params.yaml's optimizers"),
    Setting("sweeps", {}, "one DVC stage each (`ablation@<name>`): hyper, optimizers, values, with, official"),
)
SWEEP_SETTINGS = declared(
    Setting("hyper", "q", "what the sweep varies: an optimizer hyper-parameter, a setting of the method or a run key; "
            f"or `{VARIANT}`, whose values name `variants`"),
    Setting("optimizers", ["zo-sgd"], "the optimizers swept", check=_names, requirement="must be a non-empty list"),
    Setting("values", None, "the values `hyper` takes: a list, or a list per optimizer ({optimizer: [...]})",
            check=_values, requirement="must be a non-empty list, or a mapping of each optimizer to one"),
    Setting("with", {}, "settings fixed for every cell of the sweep, named as `hyper` is"),
    Setting("official", None, "which of `values` the official code uses: the sweep is then a switch of the page "
            "'Official code vs ours, measured'", check=lambda value: isinstance(value, (str, int, float)),
            requirement="must be one of the sweep's values"),
    Setting("variants", {}, f"with hyper `{VARIANT}`: each value's settings, named as `with`'s are ({{name: "
            "{setting: value}}), so that one value can change several settings at once",
            check=lambda value: isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()),
            requirement="must map each variant's name to its settings"),
    Setting("step_matched", False, "also run the first value (plain) at the learning rate that matches each other "
            "value's measured mean step (Tables 3 and 4: does the direction help beyond a smaller step?)"),
)
SWEEP_REQUIRED = ("hyper", "optimizers", "values")
LANDSCAPE_SETTINGS = declared(
    Setting("steps", 150, "optimizer steps of each trajectory (Figures 3 and 6)", check=lambda value: value >= 1,
            requirement="must be >= 1"),
    Setting("seeds", [0], "seeds of the zeroth-order trajectories", **SEEDS),
)
# The run keys a section of params.yaml may set: the grid and `profile` choose the run's identity.
SECTION_RUN_KEYS = [key for key in RUN_SETTINGS if key not in IDENTITY_KEYS]


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such parameters file")
    try:
        params = load_yaml(path.read_text())
    except yaml.YAMLError as error:  # the parser's own message names the line and column
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    check_params(params, str(path))
    return params


def missing_inputs(params: dict) -> list[str]:
    """Every file the grid and sweeps read that is not there, one line each: a dataset read from files (its test
    split is loaded, so a wrong layout counts too) and a backbone weights file that no stage of dvc.yaml makes (the
    smoke backbones of runs/pretrain, one per seed, are the pretrain@<seed> stages')."""
    from zeroflow_core.data import DatasetError, load_dataset, needs_files
    from zeroflow_core.run.config import NO_OPTIMIZER

    grid = params["grid"]
    datasets = dict.fromkeys([*grid["datasets"], params["ablations"]["dataset"]])
    configs = [run_config(params, grid["baseline"], NO_OPTIMIZER, dataset, grid["seeds"][0]) for dataset in datasets]
    missing = []
    for config in configs:
        if needs_files(config["dataset"]):
            try:
                load_dataset(config["dataset"], config["data_root"], "test", **config["dataset_options"])
            except DatasetError as error:
                missing.append(str(error))
    for weights in dict.fromkeys(config["backbone_weights"] for config in configs):
        if weights and Path(weights) != PRETRAIN_DIR and not Path(weights).is_file():
            missing.append(f"{weights}: no such file (train.backbone_weights, a dependency of every stage that "
                           f"runs cells)")
    return missing


def known_names(names, known, key: str, what: str, where: str) -> None:
    """Refuse the first of `names` that is not in `known`, at the key the user wrote, with the closest name."""
    for name in names:
        if name not in known:
            raise ConfigError(f"{where}: '{key}': unknown {what} {name!r}{did_you_mean(name, known)}; "
                              f"known: {', '.join(map(str, known))}")


def check_params(params, where: str = "params.yaml") -> None:
    """Refuse an unknown section or key, a wrong type, or a grid or sweep cell that would not run."""
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
    for check in SECTION_CHECKS:
        check(params, where)
    # every entry of the sections is resolved into a run, used by the grid or not, so a typo never waits for a
    # later edit; then every cell of the grid and of each sweep
    grid = params["grid"]
    first = (grid["methods"][0], grid["datasets"][0], grid["seeds"][0])
    runs = {(m, o, d) for m, o, d, _ in grid_cells(params)}
    runs |= {(method, optimizers_of(method, grid["optimizers"])[0], first[1]) for method in params["methods"]}
    runs |= {(first[0], optimizer, first[1]) for optimizer in params["optimizers"]}
    for method, optimizer, dataset in sorted(runs):
        try:
            run_config(params, method, optimizer, dataset, first[2])
        except ConfigError as error:
            raise ConfigError(f"{where}: {error} (in the run {run_name(method, optimizer, dataset, first[2])})") from None
    for name in params["ablations"]["sweeps"]:
        sweep_cells(params, name)


def _check_profile(params: dict, where: str) -> None:
    if params["profile"] not in PROFILES:
        raise ConfigError(f"{where}: unknown profile {params['profile']!r}{did_you_mean(params['profile'], PROFILES)}; "
                          f"known: {', '.join(PROFILES)}")


def _check_grid(params: dict, where: str) -> None:
    grid = params["grid"]
    check_values(grid, GRID_SETTINGS, where, prefix="grid.", required=[k for k in GRID_SETTINGS if k != "beyond_paper"])
    baseline = grid["baseline"]
    if baseline not in METHODS or METHODS[baseline].trains:
        untrained = [name for name, method in METHODS.items() if not method.trains]
        raise ConfigError(f"{where}: 'grid.baseline' must name a method that trains nothing "
                          f"({', '.join(untrained)}), got {baseline!r}{did_you_mean(baseline, untrained)}")
    known_names(grid["methods"], METHODS, "grid.methods", "method", where)
    known_names(grid["optimizers"], OPTIMIZERS, "grid.optimizers", "optimizer", where)
    known_names(grid["datasets"], available_datasets(), "grid.datasets", "dataset", where)
    for row in grid.get("beyond_paper", []):
        try:
            grid_row(row)
        except ValueError as error:
            raise ConfigError(f"{where}: 'grid.beyond_paper': {str(error).strip(chr(34))}") from None
    repeated = [row for row in grid_rows(grid) if grid_rows(grid).count(row) > 1]
    if repeated:
        raise ConfigError(f"{where}: the grid lists {repeated[0]!r} twice (grid.optimizers and grid.beyond_paper)")
    for method in grid["methods"]:
        if not METHODS[method].trains:
            raise ConfigError(f"{where}: 'grid.methods' lists {method!r}, which trains nothing and so has no "
                              f"optimizer axis: it belongs in 'grid.baseline'")


def _check_run_sections(params: dict, where: str) -> None:
    """train and datasets.<name>: run keys other than the run's identity (config.RUN_SETTINGS)."""
    weights = params["train"].get("backbone_weights")
    if not isinstance(weights, str) or not weights:
        raise ConfigError(f"{where}: 'train.backbone_weights' must name the backbone's weights file (dvc.yaml makes it "
                          f"a dependency of every stage that runs cells), got {weights!r}")
    for name in params["datasets"]:
        if name not in available_datasets():
            raise ConfigError(f"{where}: 'datasets.{name}': unknown dataset{did_you_mean(name, available_datasets())}; "
                              f"known: {', '.join(available_datasets())}")
    sections = [("train", params["train"])] + [(f"datasets.{name}", s) for name, s in params["datasets"].items()]
    for name, settings in sections:
        check_run_keys(settings, name, where)


def check_run_keys(settings, name: str, where: str, chosen=()) -> None:
    """A section of run settings: known run keys only (not the identity, nor `chosen`), each of its type."""
    if not isinstance(settings, dict):
        raise ConfigError(f"{where}: '{name}' must be a mapping, got {settings!r}")
    allowed = {key: RUN_SETTINGS[key] for key in SECTION_RUN_KEYS if key not in chosen}
    for key in settings:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key '{name}.{key}'{did_you_mean(key, allowed)}; "
                              f"run settings are: {', '.join(allowed)}")
    check_values(settings, allowed, where, prefix=f"{name}.")


def _check_optimizers(params: dict, where: str) -> None:
    for name, hyper in params["optimizers"].items():
        check_hyper(name, hyper, f"optimizers.{name}", where)


def check_hyper(optimizer: str, hyper, name: str, where: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"{where}: '{name}': unknown optimizer{did_you_mean(optimizer, OPTIMIZERS)}; "
                          f"known: {', '.join(OPTIMIZERS)}")
    if not isinstance(hyper, dict):
        raise ConfigError(f"{where}: '{name}' must be a mapping, got {hyper!r}")
    try:
        resolve_hyper(optimizer, **hyper)
    except ValueError as error:
        raise ConfigError(f"{where}: '{name}': {error}") from None


def _check_methods(params: dict, where: str) -> None:
    for name, settings in params["methods"].items():
        if name not in METHODS:
            raise ConfigError(f"{where}: 'methods.{name}': unknown method{did_you_mean(name, METHODS)}; "
                              f"known: {', '.join(METHODS)}")
        METHODS[name].check_settings(settings, where, prefix=f"methods.{name}.")


def _check_execution(params: dict, where: str) -> None:
    check_values(params["execution"], EXECUTION_SETTINGS, where, prefix="execution.")


def _check_pretrain(params: dict, where: str) -> None:
    # the stage sets the backbone, batch and rate of the smoke pretraining itself, and its seed: pretrain@<seed>
    # pretrains the backbone of each seed of grid.seeds with that seed
    if "seed" in params["pretrain"]:
        raise ConfigError(f"{where}: 'pretrain.seed' is no longer a setting: the pipeline pretrains one backbone per "
                          f"seed of grid.seeds (pretrain@<seed>, each with its own seed), and each run loads its "
                          f"seed's; remove the key")
    allowed = {key: PRETRAIN_SETTINGS[key] for key in ("epochs", "classes", "threads", "grayscale")}
    check_values(params["pretrain"], allowed, where, prefix="pretrain.")


def _check_efficiency(params: dict, where: str) -> None:
    check_efficiency(params["efficiency"], where)


def _check_ablations(params: dict, where: str) -> None:
    """Shape and types of the `ablations` section (each cell's run settings are resolved by check_params)."""
    section = params["ablations"]
    check_values(section, ABLATION_SETTINGS, where, prefix="ablations.", required=ABLATION_SETTINGS)
    known_names([section["method"]], [name for name, method in METHODS.items() if method.trains], "ablations.method",
                "method", where)  # a method that trains: the sweeps vary its optimizer
    if section["dataset"] not in params["grid"]["datasets"]:
        raise ConfigError(f"{where}: 'ablations.dataset' {section['dataset']!r} must be one of grid.datasets "
                          f"({', '.join(params['grid']['datasets'])}), whose prepare stage checks it"
                          f"{did_you_mean(section['dataset'], params['grid']['datasets'])}")
    outside = [seed for seed in section["seeds"] if seed not in params["grid"]["seeds"]]
    if outside and Path(params["train"]["backbone_weights"]) == PRETRAIN_DIR:
        raise ConfigError(f"{where}: 'ablations.seeds' has {outside[0]!r}, which grid.seeds lacks: every run loads its "
                          f"seed's own smoke backbone ({PRETRAIN_DIR}/seed<k>/), and dvc.yaml pretrains one per seed of "
                          f"grid.seeds ({', '.join(map(str, params['grid']['seeds']))})")
    # the sweep sets the optimizer's hyper-parameters itself (ablations.optimizers)
    check_run_keys(section["train"], "ablations.train", where, chosen=NESTED)
    for optimizer, hyper in section["optimizers"].items():
        check_hyper(optimizer, hyper, f"ablations.optimizers.{optimizer}", where)
    if not section["sweeps"]:
        raise ConfigError(f"{where}: 'ablations.sweeps' must declare at least one sweep")
    for name, sweep in section["sweeps"].items():
        check_values(sweep, SWEEP_SETTINGS, where, prefix=f"ablations.sweeps.{name}.", required=SWEEP_REQUIRED)
        known_names(sweep["optimizers"], OPTIMIZERS, f"ablations.sweeps.{name}.optimizers", "optimizer", where)
        if isinstance(sweep["values"], dict) and set(sweep["values"]) != set(sweep["optimizers"]):
            raise ConfigError(f"{where}: 'ablations.sweeps.{name}.values' maps optimizers to values: it must name "
                              f"exactly the sweep's optimizers ({', '.join(sweep['optimizers'])}), got "
                              f"{', '.join(sweep['values'])}")
        if (sweep["hyper"] == VARIANT) != bool(sweep.get("variants")):
            raise ConfigError(f"{where}: 'ablations.sweeps.{name}': `variants` and hyper `{VARIANT}` go together "
                              f"(got hyper {sweep['hyper']!r} and {len(sweep.get('variants', {}))} variants)")
        unnamed = [value for optimizer in sweep["optimizers"] for value in sweep_values(sweep, optimizer)
                   if sweep["hyper"] == VARIANT and value not in sweep["variants"]]
        if unnamed:
            raise ConfigError(f"{where}: 'ablations.sweeps.{name}.values' names {unnamed[0]!r}, which is none of its "
                              f"variants ({', '.join(sweep['variants'])})")
        if "official" in sweep and sweep["official"] not in sweep["values"]:
            raise ConfigError(f"{where}: 'ablations.sweeps.{name}.official' must be one of its values, "
                              f"got {sweep['official']!r}")


def _check_landscape(params: dict, where: str) -> None:
    check_values(params["landscape"], LANDSCAPE_SETTINGS, where, prefix="landscape.", required=LANDSCAPE_SETTINGS)


# One check per section of params.yaml, in this order (the grid first: the others name its methods and datasets).
SECTION_CHECKS = (_check_profile, _check_grid, _check_execution, _check_pretrain, _check_run_sections,
                  _check_optimizers, _check_methods, _check_efficiency, _check_ablations, _check_landscape)

