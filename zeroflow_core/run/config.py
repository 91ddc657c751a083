"""A run's configuration: one resolver that merges its layers in order and records which layer set each key.

A run is one (method, optimizer, dataset, seed) under a profile. Its configuration is built from these
layers, in order; a later layer wins, and mappings (optimizer_hyper, method_config, dataset_options) merge
key by key:

  registry    the run keys' defaults (RUN_SETTINGS), the method's settings, the optimizer's hyper-parameters
  profile     the profile's run settings (profiles.yaml)
  run         the run's own method, optimizer, dataset and seed (the optimizer's direction seed is the run's)
  rules       each rule of the profile whose `when` matches the run (by dataset, method, optimizer), in file order
  then what the caller adds: params.yaml's sections (pipeline/cells.py), a sweep's settings, `--set` overrides

`resolve` returns the configuration and `set_by`, the layer that set each key (dotted for mappings), which a
run writes into its config.yaml. Every key, type and name is checked before any work, so a typo stops a run
with one message naming the key and the layer that gave it.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

from zeroflow_core.data import available_datasets
from zeroflow_core.io import load_yaml
from zeroflow_core.methods import METHODS
from zeroflow_core.models import BACKBONES
from zeroflow_core.optim import FAMILIES, OPTIMIZERS, resolve_hyper
from zeroflow_core.optim.registry import backprop_counterpart
from zeroflow_core.settings import ConfigError, Setting, check_values, declared, defaults_of, did_you_mean

# The profiles (smoke: the embedded default; paper: the official settings) are data: profiles.yaml, beside
# this file, with a source for every value taken from the official code.
PROFILES_FILE = Path(__file__).with_name("profiles.yaml")
PROFILES = load_yaml(PROFILES_FILE.read_text())
# The optimizer of a method that trains nothing (SimpleCIL): its runs have no optimizer axis.
NO_OPTIMIZER = "none"
ZO_SCOPES = ("trainable", "official")
# INFTY's main.py merges examples/infty_configs/gradient_bans/zeroflow.yaml into the method's arguments
# (args.update); its `alpha: 0.9` (the history-mixing weight) replaces EASE's own α (0.1 in exps/ease.json),
# which models/ease.py and EaseNet read for the subspace reweighting: every official ZO and Forward-Grad run of
# EASE evaluates with α = 0.9, backprop with the config's.
EASE_ALPHA_UNDER_ZO = 0.9
EASE_ALPHA_CHOICES = ("release", "official")
HEAD_OPTIMIZERS = ("same", "backprop")

# Keys that decide where and how fast a cell runs, not what it computes: a run finished with other
# values of these is the same run (CPU threads and loader workers do not change our results).
PLACEMENT_KEYS = ("threads", "workers")
# config.yaml's record of the layer that set each key: no part of what a run computes either.
SET_BY = "set_by"


def _at_least(low):
    return dict(check=lambda value: value >= low, requirement=f"must be >= {low}")


RUN_SETTINGS = declared(
    Setting("profile", "smoke", "the defaults a run starts from (profiles.yaml)", choices=tuple(PROFILES)),
    Setting("method", "ease", "continual-learning method", choices=tuple(METHODS)),
    Setting("optimizer", "zo-sgd", "optimizer of the trained parameters (`zeroflow optimizers`), or none: the "
            "method's zero-step control (its adapters and heads built, every step skipped)",
            choices=(*OPTIMIZERS, NO_OPTIMIZER)),
    Setting("dataset", "synthetic", "continual dataset (README: Datasets and weights)",
            choices=tuple(available_datasets())),
    Setting("seed", 0, "seed of the run: initialisation, data order, directions, and its backbone where "
            "backbone_weights is a folder of per-seed pretrainings"),
    Setting("backbone", "vit-smoke", "the ViT (zeroflow_core.models.BACKBONES)", choices=tuple(BACKBONES)),
    Setting("backbone_weights", "", "the backbone's weights file, or a folder of per-seed pretrainings whose "
            "seed<k>/backbone.pt a run of seed k loads (the smoke profile's runs/pretrain); empty: random init (tests "
            "and benchmarks only)"),
    Setting("data_root", "data", "folder the real datasets are read from"),
    Setting("n_tasks", 10, "tasks the classes are split into", **_at_least(1)),
    Setting("class_order_seed", 1993, "seed of the class order (the reference code's 1993)"),
    Setting("epochs", 3, "passes over each task's training images", **_at_least(1)),
    Setting("batch_size", 48, "training images per step", **_at_least(1)),
    Setting("transforms", "light", "image transforms: light (small images) or reference (PILOT's)",
            choices=("light", "reference")),
    Setting("flip", True, "horizontal flips in the training augmentation"),
    Setting("schedule", "auto", "learning-rate schedule; auto: cosine for backprop, constant for forward passes "
            "(the official code's ZO base optimizer never sees its scheduler)", choices=("auto", "cosine", "constant")),
    Setting("min_lr", 1e-8, "floor of the cosine schedule (eta_min); PILOT's configs set 0, 1e-8 is PILOT's value "
            "when a config sets none", **_at_least(0)),
    Setting("optimizer_hyper", {}, "the optimizer's hyper-parameters (`zeroflow optimizers`)"),
    Setting("method_config", {}, "the method's settings (`zeroflow train --help`)"),
    Setting("dataset_options", {}, "options of the dataset's loader, e.g. {n_classes: 50} for a generated set"),
    Setting("max_steps_per_epoch", 0, "cap on the steps of an epoch; 0: the whole epoch", **_at_least(0)),
    Setting("heldout_every", 10, "steps between held-out loss records (Figure 7); 0: never", **_at_least(0)),
    Setting("heldout_batch", 32, "held-out images per seen task in a record", **_at_least(1)),
    Setting("eval_batch", 256, "images per evaluation batch", **_at_least(1)),
    Setting("adapter_bottleneck", 64, "AdaptFormer adapters' bottleneck (PILOT's EASE/APER: 64)", **_at_least(1)),
    Setting("adapter_scale", 0.1, "AdaptFormer adapters' output scale (PILOT: 0.1)", check=lambda value: value > 0,
            requirement="must be > 0"),
    Setting("zo_scope", "trainable", "what a forward-pass step perturbs: trainable (the adapters and heads the "
            "method trains) or official (also EASE's evaluation classifier, its stored prototypes and its σ, as "
            "INFTY's ZeroFlow)", choices=ZO_SCOPES),
    Setting("ease_alpha_under_zo", "release", "EASE's α under a forward-pass optimizer: release (method_config.alpha, "
            f"as backprop) or official ({EASE_ALPHA_UNDER_ZO}, which INFTY's zeroflow.yaml `alpha`, meant for its "
            "history mixing, writes over EASE's α in every ZO and Forward-Grad run)", choices=EASE_ALPHA_CHOICES),
    Setting("head_optimizer", "same", "what trains the method's classifier head under a forward-pass optimizer: same "
            "(the optimizer, as every trained parameter) or backprop (the hybrid head, after ZO-FC, arXiv 2510.21019: "
            "each forward of the step also backpropagates through the head alone, the features read without a graph, "
            "and the head steps along the mean of those gradients with the optimizer's rule and rate; the adapters "
            "stay the forward-pass optimizer's; optim/hybrid_head.py)", choices=HEAD_OPTIMIZERS),
    Setting("fo_epochs", 0, "the hybrid schedule (Enhancement 1 of the paper's ICML version, arXiv 2501.01045v4): "
            "the first fo_epochs epochs of each task train by backprop, with the first-order optimizer of the run's "
            "descent rule (fo-sgd, fo-adam) at fo_hyper and backprop's schedule over those epochs, then the run's "
            "forward-pass optimizer, fresh, takes the rest of `epochs`; 0: none (beside optimizer_hyper.fo_every, an "
            "exact step every k-th step)", **_at_least(0)),
    Setting("fo_hyper", {}, "the hybrid schedule's backprop phase: its optimizer's hyper-parameters over those of "
            "that optimizer's own run (its registry defaults, the profile's rules and params.yaml's optimizers "
            "section); filled in when fo_epochs > 0, empty otherwise"),
    Setting("update_probe", False, "after each task, record how far the adapters and the heads moved and the cosine "
            "of that update with the backprop gradient at the task's starting point on held-out images (one backward "
            "per task: the smoke book's 'where training goes'; off in the paper profile, whose forward-pass runs "
            "must not need backprop's memory)"),
    Setting("device", "auto", "auto picks CUDA when present", choices=("auto", "cpu", "cuda")),
    Setting("autocast", "off", "bf16: forward-pass optimizers evaluate their losses under bf16 autocast (weights, "
            "perturbations and restores stay fp32); backprop runs are never autocast", choices=("off", "bf16")),
    Setting("threads", 0, "torch CPU threads; 0: torch's default", **_at_least(0)),
    Setting("workers", 0, "DataLoader worker processes (decoding and augmenting images)", **_at_least(0)),
)
RUN_KEYS = defaults_of(RUN_SETTINGS)
# What identifies a run; params.yaml's sections, sweeps and --set hold only the other keys.
IDENTITY_KEYS = ("profile", "method", "optimizer", "dataset", "seed")
# The run keys that hold a method's settings and an optimizer's hyper-parameters.
NESTED = ("method_config", "optimizer_hyper")
RULE_KEYS = ("method", "optimizer", "dataset")

# The smoke backbone's pretraining (`zeroflow pretrain` and the `pretrain` section of params.yaml).
PRETRAIN_SETTINGS = declared(
    Setting("backbone", "vit-smoke", "the backbone to pretrain", choices=tuple(BACKBONES)),
    Setting("epochs", 10, "passes over the pretext set", **_at_least(1)),
    Setting("batch_size", 64, "images per step", **_at_least(1)),
    Setting("lr", 1e-3, "AdamW learning rate", check=lambda value: value > 0, requirement="must be > 0"),
    Setting("classes", 64, "pretext classes", **_at_least(2)),
    Setting("seed", 0, "seed of the pretext classes, the initialisation and the data order (the pipeline: each seed "
            "of grid.seeds, pretrain@<seed>)"),
    Setting("threads", 0, "torch threads; 0: torch's default", **_at_least(0)),
    Setting("grayscale", False, "pretrain on grey images (the smoke book's backbone)"),
)
PRETRAIN_DEFAULTS = defaults_of(PRETRAIN_SETTINGS)


# ------------------------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class Layer:
    """Values of run keys that one source sets, e.g. ("params.yaml optimizers.zo-sgd", {"optimizer_hyper": ...})."""

    name: str
    values: dict


class Resolved(NamedTuple):
    config: dict
    set_by: dict  # key (dotted inside a mapping) → the name of the layer that set it


def resolve(run: dict, layers: Sequence[Layer] = ()) -> Resolved:
    """The configuration of a run: its identity (`run`: any of profile, method, optimizer, dataset, seed; the
    others take their defaults) under the registry, profile, run and rule layers, then `layers`, then checked."""
    unknown = sorted(set(run) - set(IDENTITY_KEYS))
    if unknown:
        raise ConfigError(f"{unknown[0]!r} is not part of a run's identity ({', '.join(IDENTITY_KEYS)})")
    for layer in layers:
        _check_layer(layer)
    profile = run.get("profile", RUN_KEYS["profile"])
    _check_choice("profile", profile)
    profiles = checked_profiles()
    identity = {key: run.get(key, profiles[profile]["run"].get(key, RUN_KEYS[key])) for key in IDENTITY_KEYS}
    _check_choice("method", identity["method"])
    if not METHODS[identity["method"]].trains:
        identity["optimizer"] = run.get("optimizer", NO_OPTIMIZER)
    for key in ("optimizer", "dataset"):
        _check_choice(key, identity[key])
    method, optimizer, dataset = identity["method"], identity["optimizer"], identity["dataset"]
    spec = OPTIMIZERS.get(optimizer)
    given = {key: identity[key] for key in IDENTITY_KEYS if key in run or key == "optimizer"}
    if spec is not None and "seed" in spec.hyper:
        given["optimizer_hyper"] = {"seed": identity["seed"]}  # each run draws its own directions
    registry = {**RUN_KEYS, "method_config": METHODS[method].defaults,
                "optimizer_hyper": spec.defaults if spec is not None else {}}
    rules = [Layer(f"profile {profile}: when {_when_text(rule['when'])}", rule["set"])
             for rule in profiles[profile]["rules"] if rule_matches(rule["when"], method, optimizer, dataset)]
    resolved = merge([Layer("registry", _plain(registry)), Layer(f"profile {profile}", profiles[profile]["run"]),
                      Layer("run", given), *rules, *layers])
    return Resolved(validate(_hybrid_schedule(_ease_alpha_under_zo(resolved), identity).config), resolved.set_by)


def hybrid_phase_optimizer(config: dict) -> str | None:
    """The backprop phase's optimizer of a run with the hybrid schedule (fo_epochs > 0), or None."""
    spec = OPTIMIZERS.get(config.get("optimizer"))
    if not config.get("fo_epochs") or spec is None or not spec.forward_pass_only:
        return None
    try:
        return backprop_counterpart(config["optimizer"], **config["optimizer_hyper"])
    except (ValueError, TypeError):
        return None  # validate names the bad hyper-parameter


def _hybrid_schedule(resolved: Resolved, identity: dict) -> Resolved:
    """fo_hyper of a run with the hybrid schedule: the backprop phase's optimizer as its own run of this method and
    dataset takes it (registry, profile and rules), under what the layers set in fo_hyper."""
    config = resolved.config
    fo = hybrid_phase_optimizer(config)
    if fo is None or not isinstance(config.get("fo_hyper"), dict):
        return resolved
    own = resolve({**identity, "optimizer": fo}).config["optimizer_hyper"]
    for key in own:
        resolved.set_by.setdefault(f"fo_hyper.{key}", f"{fo}'s own run (profile {identity['profile']})")
    config["fo_hyper"] = {**own, **config["fo_hyper"]}
    return resolved


def _ease_alpha_under_zo(resolved: Resolved) -> Resolved:
    """`ease_alpha_under_zo: official`: an EASE run with a forward-pass optimizer takes INFTY's α = 0.9 over
    whatever layer set method_config.alpha, as INFTY's args.update does over the method's config."""
    config = resolved.config
    spec = OPTIMIZERS.get(config.get("optimizer"))
    if (config.get("method") == "ease" and spec is not None and spec.forward_pass_only
            and config.get("ease_alpha_under_zo") == "official" and isinstance(config.get("method_config"), dict)):
        config["method_config"]["alpha"] = EASE_ALPHA_UNDER_ZO
        resolved.set_by["method_config.alpha"] = (f"ease_alpha_under_zo: official (set by "
                                                  f"{resolved.set_by.get('ease_alpha_under_zo')})")
    return resolved


def resolve_config(overrides: dict) -> dict:
    """The configuration of a run given as one dict: its identity keys, and any other run keys as the last
    layer (what `zeroflow train --set` gives)."""
    identity = {key: value for key, value in overrides.items() if key in IDENTITY_KEYS}
    rest = {key: value for key, value in overrides.items() if key not in IDENTITY_KEYS}
    return resolve(identity, [Layer("--set", rest)] if rest else []).config


def merge(layers: Sequence[Layer]) -> Resolved:
    """Deep-merge the layers in order, recording which layer set each leaf key."""
    config: dict = {}
    set_by: dict = {}
    for layer in layers:
        _merge_into(config, set_by, layer.values, layer.name, "")
    return Resolved(config, set_by)


def _merge_into(target: dict, set_by: dict, values: dict, name: str, prefix: str) -> None:
    for key, value in values.items():
        path = prefix + key
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            if value:  # the mapping is no longer the empty one a layer set: its keys have their own layers
                set_by.pop(path, None)
            _merge_into(target[key], set_by, value, name, path + ".")
            continue
        for stale in [k for k in set_by if k.startswith(path + ".")]:
            del set_by[stale]
        target[key] = copy.deepcopy(value)
        set_by.update({leaf: name for leaf in _leaves(value, path)})


def _leaves(value, path: str) -> list[str]:
    """The dotted keys under `path` that hold a value (a mapping's own path when it is empty)."""
    if not isinstance(value, dict) or not value:
        return [path]
    return [leaf for key, item in value.items() for leaf in _leaves(item, f"{path}.{key}")]


def _when_text(when: dict) -> str:
    return ", ".join(f"{key}={'|'.join(_as_list(names))}" for key, names in when.items()) or "every run"


def _plain(value):
    """Tuples as lists, as YAML and JSON keep them, so that a configuration equals its config.yaml."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def setting_layer(name: str, values: dict, method: str, optimizer: str) -> Layer:
    """A layer of settings named as a sweep names them: each an optimizer hyper-parameter (`zeroflow
    optimizers`), a setting of the method or a run key, looked up in that order, put where it belongs."""
    placed: dict = {}
    for key, value in values.items():
        if optimizer in OPTIMIZERS and key in OPTIMIZERS[optimizer].hyper:
            placed.setdefault("optimizer_hyper", {})[key] = value
        elif key in METHODS[method].defaults:
            placed.setdefault("method_config", {})[key] = value
        elif key in RUN_SETTINGS and key not in IDENTITY_KEYS + NESTED:
            placed[key] = value
        else:
            raise ConfigError(f"{key!r} is no hyper-parameter of {optimizer} (`zeroflow optimizers`), no setting of "
                              f"{method} and no run key")
    return Layer(name, placed)


# ------------------------------------------------------------------------------------------- checks
def _check_choice(key: str, value) -> None:
    choices = RUN_SETTINGS[key].choices
    if value not in choices:
        raise ConfigError(f"configuration key {key!r}: unknown value {value!r}{did_you_mean(value, choices)}; "
                          f"known: {', '.join(choices)}")


def _check_layer(layer: Layer) -> None:
    """A layer sets only run keys other than the run's identity; an optimizer's or a method's setting given as a
    run key is pointed to where it belongs."""
    for key in layer.values:
        if key in IDENTITY_KEYS:
            raise ConfigError(f"{layer.name}: {key!r} is part of the run's identity (given by the grid, or by "
                              f"`zeroflow train --{key}`), not a setting")
        if key in RUN_SETTINGS:
            continue
        hint = did_you_mean(key, RUN_SETTINGS)
        if not hint:
            if any(key in spec.hyper for spec in OPTIMIZERS.values()):
                hint = f" (did you mean 'optimizer_hyper.{key}'?)"
            elif any(key in method.defaults for method in METHODS.values()):
                hint = f" (did you mean 'method_config.{key}'?)"
        raise ConfigError(f"{layer.name}: unknown configuration key {key!r}{hint}; known keys: {', '.join(RUN_SETTINGS)}")


def validate(config: dict) -> dict:
    """Every key, type and name of a resolved configuration, checked without building anything heavy (no model,
    no data); returns it normalised (an int given for a float setting as a float, everywhere)."""
    missing = sorted(set(RUN_SETTINGS) - set(config))
    if missing:
        raise ConfigError(f"configuration key {missing[0]!r} is missing")
    config = check_values(config, RUN_SETTINGS, "configuration")
    method = METHODS[config["method"]]
    config["method_config"] = method.check_settings(config["method_config"], f"method {config['method']!r}",
                                                    prefix="method_config.")
    if not method.trains:
        if config["optimizer"] != NO_OPTIMIZER or config["optimizer_hyper"]:
            raise ConfigError(f"method {config['method']!r} trains nothing: its optimizer is {NO_OPTIMIZER!r} "
                              f"(got {config['optimizer']!r}) and it takes no optimizer_hyper")
        return config
    forward_pass = config["optimizer"] in OPTIMIZERS and OPTIMIZERS[config["optimizer"]].forward_pass_only
    for key, off in (("head_optimizer", "same"), ("fo_epochs", 0)):
        if config[key] != off and not forward_pass:
            raise ConfigError(f"configuration key {key!r}: {config[key]!r} is for a forward-pass optimizer, and "
                              f"{config['optimizer']!r} is {'a zero-step control' if config['optimizer'] == NO_OPTIMIZER else 'backprop'}"
                              f" (set {key}: {off!r})")
    if config["fo_epochs"] > config["epochs"]:
        raise ConfigError(f"configuration key 'fo_epochs': {config['fo_epochs']} is more than epochs "
                          f"({config['epochs']}): the backprop phase is the first part of each task's epochs")
    if config["optimizer"] == NO_OPTIMIZER:  # the method's zero-step control: its structure, every step skipped
        if config["optimizer_hyper"]:
            raise ConfigError(f"the zero-step control of {config['method']!r} (optimizer {NO_OPTIMIZER!r}) takes no "
                              "optimizer_hyper")
        return _no_fo_hyper(config)
    try:
        hyper = resolve_hyper(config["optimizer"], **config["optimizer_hyper"])
    except ValueError as error:
        raise ConfigError(f"configuration key 'optimizer_hyper' / 'optimizer': {error}") from None
    config["optimizer_hyper"] = _plain({key: hyper[key] for key in config["optimizer_hyper"]})
    fo = hybrid_phase_optimizer(config)
    if fo is None:
        return _no_fo_hyper(config)
    try:
        fo_hyper = resolve_hyper(fo, **config["fo_hyper"])
    except ValueError as error:
        raise ConfigError(f"configuration key 'fo_hyper' (the hybrid schedule's {fo}): {error}") from None
    config["fo_hyper"] = _plain({key: fo_hyper[key] for key in config["fo_hyper"]})
    return config


def _no_fo_hyper(config: dict) -> dict:
    if config["fo_hyper"]:
        raise ConfigError("configuration key 'fo_hyper': the backprop phase of the hybrid schedule, read only with "
                          f"fo_epochs > 0 and a forward-pass optimizer (got {config['fo_hyper']!r})")
    return config


# ------------------------------------------------------------------------------------------- profiles
def check_profiles(profiles: dict, path: Path = PROFILES_FILE) -> dict:
    """{profile: {"run": {...}, "rules": [{when, set, source}, ...]}} with every key and name checked."""
    # a misspelled name in `when` would silently never match
    names = {"method": set(METHODS), "optimizer": set(OPTIMIZERS) | set(FAMILIES), "dataset": set(available_datasets())}
    for name, profile in profiles.items():
        where = f"{path.name}: profile {name!r}"
        if set(profile) != {"run", "rules"}:
            raise ConfigError(f"{where} must have exactly 'run' and 'rules', got {sorted(profile)}")
        _check_layer(Layer(f"{where} run", {k: v for k, v in profile["run"].items() if k not in IDENTITY_KEYS}))
        for index, rule in enumerate(profile["rules"]):
            if not set(rule) <= {"when", "set", "source"} or not {"when", "set"} <= set(rule):
                raise ConfigError(f"{where} rule {index}: expected when, set and source, got {sorted(rule)}")
            unknown = set(rule["when"]) - set(RULE_KEYS)
            if unknown:
                raise ConfigError(f"{where} rule {index}: 'when' matches on {', '.join(RULE_KEYS)}, got {sorted(unknown)}")
            for key, allowed in names.items():
                bad = [v for v in _as_list(rule["when"].get(key, [])) if v not in allowed]
                if bad:
                    raise ConfigError(f"{where} rule {index}: unknown {key} {bad[0]!r}")
            _check_layer(Layer(f"{where} rule {index} set", rule["set"]))
    return profiles


@functools.cache
def checked_profiles() -> dict:
    return check_profiles(PROFILES)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def rule_matches(when: dict, method: str, optimizer: str, dataset: str) -> bool:
    family = OPTIMIZERS[optimizer].family if optimizer in OPTIMIZERS else None
    run = {"method": {method}, "optimizer": {optimizer, family}, "dataset": {dataset}}
    return all(run[key] & set(_as_list(names)) for key, names in when.items())


# ------------------------------------------------------------------------------------------- --set
def parse_overrides(pairs: list[str]) -> dict:
    """`["epochs=2", "optimizer_hyper.lr=1e-3"]` → nested dict, values parsed as YAML scalars."""
    result: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        value = load_yaml(raw) if raw else ""
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {pair!r}: {part!r} is not a section")
        node[leaf] = value
    return result


def identity(config: dict) -> dict:
    """The part of a configuration (or of a config.yaml) that decides a cell's results."""
    return {key: value for key, value in config.items() if key not in PLACEMENT_KEYS + (SET_BY,)}


def changed_keys(previous: dict, current: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, previous value, current value) of every leaf that differs, in key order: a nested section
    such as optimizer_hyper is compared key by key, so a message names `optimizer_hyper.lr`, not two mappings."""
    changed = []
    for key in sorted(set(previous) | set(current), key=str):
        old, new = previous.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += changed_keys(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append((f"{prefix}{key}", old, new))
    return changed
