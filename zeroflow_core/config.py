"""Run configuration: profiles, `--set key=value` overrides, and validation before any work.

A run is one (method, optimizer, dataset, seed). Its configuration is the profile's defaults,
then the profile's per-dataset and per-method entries, then the user's overrides. Every key and
type is checked up front, so a typo stops the run with one message naming the key.
"""
from __future__ import annotations

import copy
from typing import Any

from zeroflow_core.io import load_yaml

RUN_KEYS: dict[str, Any] = {
    "profile": "smoke",
    "method": "ease",
    "optimizer": "zo-sgd",
    "dataset": "synthetic",
    "seed": 0,
    "backbone": "vit-smoke",          # a name of zeroflow_core.models.BACKBONES
    "backbone_weights": "",           # checkpoint path; "" = random init (tests and benchmarks only)
    "data_root": "data",
    "n_tasks": 10,
    "class_order_seed": 1993,         # the reference code's class-order seed
    "epochs": 3,
    "batch_size": 48,
    "transforms": "light",            # light | reference
    "flip": True,                     # horizontal flips in training augmentation
    "schedule": "auto",               # auto (cosine for backprop, constant for forward-pass) | cosine | constant
    "optimizer_hyper": {},            # overrides of the optimizer's defaults
    "method_config": {},              # the method's settings
    "dataset_options": {},            # e.g. {n_classes: 50} for the generated set
    "max_steps_per_epoch": 0,         # 0 = whole epoch; a cap keeps smoke grids small
    "heldout_every": 10,              # steps between held-out loss records (0 = never)
    "heldout_batch": 32,
    "eval_batch": 256,
    "adapter_bottleneck": 64,         # AdaptFormer adapters (PILOT's EASE/APER: bottleneck 64, scale 0.1)
    "adapter_scale": 0.1,
    "device": "auto",                 # auto | cpu | cuda
    "threads": 0,                     # torch CPU threads; 0 = torch's default
    "workers": 0,                     # DataLoader worker processes (decoding and augmenting images)
}
# The optimizer of a method that trains nothing (SimpleCIL): its runs have no optimizer axis.
NO_OPTIMIZER = "none"

# The embedded default. Its continual set (`hues`) holds a factor that the grey-pretrained backbone
# does not separate, so that training the adapters, and so the optimizer, decides the accuracy (the
# book's introduction gives the measurements). Three passes of batch 16 per task (75 steps) give a
# first-order optimizer room to move; the adapters' scale is 1 instead of PILOT's 0.1 because at 0.1
# a 64-wide adapter learns too slowly for a 75-step task (a setting of the small model, not of the method).
SMOKE = {
    "profile": "smoke", "backbone": "vit-smoke", "backbone_weights": "runs/pretrain/backbone.pt",
    "dataset": "hues", "epochs": 3, "batch_size": 16, "transforms": "light", "adapter_scale": 1.0,
    # a held-out record every 8 of the 75 steps of a task: Figure 7's curves at a tenth of the training forwards
    "heldout_every": 8,
}
PAPER = {
    "profile": "paper", "backbone": "vit-b16",
    "backbone_weights": "weights/vit_base_patch16_224.augreg_in21k.safetensors",
    "epochs": 20, "batch_size": 48, "transforms": "reference", "n_tasks": 10,
}

# Per-dataset and per-optimizer entries of each profile (applied after the profile, before overrides).
PROFILE_DATASETS = {
    "smoke": {"hues": {"n_tasks": 5},
              "digits": {"n_tasks": 5, "flip": False},
              # 40 training / 10 test images per class keep a 10-task EASE run well under a minute
              "synthetic": {"n_tasks": 10, "dataset_options": {"n_train": 40, "n_test": 10}}},
    "paper": {"cifar100": {}, "cub": {}, "imagenet_a": {}, "omnibenchmark": {}},
}
# The smoke profile's learning rate per optimizer, from one search (`zeroflow search-lr`, README
# "Smoke learning rates"): EASE on `hues`, seed 0, lr in {1e-4, 3e-4, ..., 0.3}; the largest lr whose
# average accuracy is within 1 point of the optimizer's best (lr_search.chosen_learning_rates). Among
# rates that a single seed cannot tell apart this takes the one that moves the adapters most, so a
# row is never "trained" at a rate that amounts to switching the optimizer off. One value for every seed.
SMOKE_LEARNING_RATES = {
    "fo-sgd": 0.1, "fo-adam": 1e-2, "zo-sgd": 1e-3, "zo-sgd-sign": 1e-3, "zo-sgd-conserve": 3e-3,
    "zo-adam": 1e-2, "zo-adam-sign": 1e-2, "zo-adam-conserve": 1e-2, "forward-grad": 1e-2,
}
# Backprop learning rates of the reference EASE/APER configs (CIFAR-100: SGD lr 0.025, 20 epochs);
# forward-pass optimizers keep the registry defaults (ZO lr 1e-4 for SGD, 1e-3 for Adam).
PROFILE_METHODS = {
    "smoke": {name: {"optimizer_hyper": {"lr": lr}} for name, lr in SMOKE_LEARNING_RATES.items()},
    "paper": {"fo-sgd": {"optimizer_hyper": {"lr": 0.025}}},
}
PROFILES = {"smoke": SMOKE, "paper": PAPER}


# The smoke backbone's pretraining (`zeroflow pretrain` and the `pretrain` section of params.yaml).
PRETRAIN_DEFAULTS = {"backbone": "vit-smoke", "epochs": 10, "batch_size": 64, "lr": 1e-3, "classes": 64, "seed": 0,
                     "threads": 0, "grayscale": False}


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key."""


def did_you_mean(name: str, known) -> str:
    """' (did you mean 'x'?)' for the closest known name, or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


# The grid and `profile` choose these per run; the sections of params.yaml hold only the others.
GRID_CHOSEN_KEYS = ("method", "optimizer", "dataset", "seed", "profile")


def check_section(section: dict, name: str, keys: dict, where: str) -> None:
    """Every key of `keys` present with its type, and no other key (params.yaml section `name`)."""
    for key in section:
        if key not in keys:
            raise ConfigError(f"{where}: unknown key '{name}.{key}'{did_you_mean(key, keys)}; known: {', '.join(keys)}")
    for key, kind in keys.items():
        value = section.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{where}: '{name}.{key}' must be a {kind.__name__}, got {value!r}")


def check_run_settings(settings: dict, name: str, where: str, chosen=GRID_CHOSEN_KEYS) -> None:
    """Only run keys that the pipeline does not choose itself (`chosen`)."""
    settable = [k for k in RUN_KEYS if k not in chosen]
    for key in settings:
        if key not in settable:
            raise ConfigError(f"{where}: unknown key '{name}.{key}'{did_you_mean(key, settable)}; "
                              f"run settings are: {', '.join(settable)}")


def check_seeds(seeds, name: str, where: str) -> None:
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"{where}: '{name}' must be a non-empty list of integers, got {seeds!r}")


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


def _merge(base: dict, update: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_config(overrides: dict) -> dict:
    """Defaults ← profile ← profile's dataset/optimizer entries ← overrides, then validated."""
    _check_keys(overrides, "")
    profile = overrides.get("profile", RUN_KEYS["profile"])
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    config = _merge(RUN_KEYS, PROFILES[profile])
    dataset = overrides.get("dataset", config["dataset"])
    optimizer = overrides.get("optimizer", config["optimizer"])
    method = overrides.get("method", config["method"])
    from zeroflow_core.methods import METHODS

    if method in METHODS and not METHODS[method].trains:
        config["optimizer"] = NO_OPTIMIZER
        optimizer = overrides.get("optimizer", NO_OPTIMIZER)
    config = _merge(config, PROFILE_DATASETS[profile].get(dataset, {}))
    config = _merge(config, PROFILE_METHODS[profile].get(optimizer, {}))
    config = _merge(config, overrides)
    validate(config)
    return config


def _check_keys(config: dict, where: str) -> None:
    unknown = sorted(set(config) - set(RUN_KEYS))
    if unknown:
        key = unknown[0]
        hint = did_you_mean(key, RUN_KEYS)
        if not hint and not where:  # an optimizer's or a method's setting given as a run key
            from zeroflow_core.methods import METHODS
            from zeroflow_core.optim import OPTIMIZERS

            if any(key in spec.hyper for spec in OPTIMIZERS.values()):
                hint = f" (did you mean 'optimizer_hyper.{key}'?)"
            elif any(key in method.defaults for method in METHODS.values()):
                hint = f" (did you mean 'method_config.{key}'?)"
        raise ConfigError(f"unknown configuration key {where}{key!r}{hint}; known keys: {', '.join(RUN_KEYS)}")


def validate(config: dict) -> None:
    """Check every key, type and name; also builds nothing heavy (no model, no data)."""
    from zeroflow_core.data import available_datasets
    from zeroflow_core.methods import METHODS
    from zeroflow_core.models import BACKBONES
    from zeroflow_core.optim import resolve_hyper

    _check_keys(config, "")
    for key, default in RUN_KEYS.items():
        value = config[key]
        expected = (int, float) if isinstance(default, float) else type(default)
        if isinstance(value, bool) and not isinstance(default, bool) or not isinstance(value, expected):
            raise ConfigError(f"configuration key {key!r} must be {type(default).__name__}, "
                              f"got {type(value).__name__} {value!r}")
    choices = {"method": list(METHODS), "dataset": available_datasets(), "backbone": list(BACKBONES),
               "transforms": ["light", "reference"], "schedule": ["auto", "cosine", "constant"],
               "device": ["auto", "cpu", "cuda"], "profile": list(PROFILES)}
    for key, allowed in choices.items():
        if config[key] not in allowed:
            raise ConfigError(f"configuration key {key!r}: unknown value {config[key]!r}; known: {', '.join(allowed)}")
    for key in ("n_tasks", "epochs", "batch_size", "eval_batch", "heldout_batch"):
        if config[key] < 1:
            raise ConfigError(f"configuration key {key!r} must be >= 1, got {config[key]}")
    for key in ("max_steps_per_epoch", "heldout_every", "threads", "workers"):
        if config[key] < 0:
            raise ConfigError(f"configuration key {key!r} must be >= 0, got {config[key]}")
    method = METHODS[config["method"]]
    if not method.trains:
        if config["optimizer"] != NO_OPTIMIZER or config["optimizer_hyper"]:
            raise ConfigError(f"method {config['method']!r} trains nothing: its optimizer is {NO_OPTIMIZER!r} "
                              f"(got {config['optimizer']!r}) and it takes no optimizer_hyper")
    else:
        if config["optimizer"] == NO_OPTIMIZER:
            raise ConfigError(f"method {config['method']!r} trains adapters: name an optimizer (`zeroflow optimizers`)")
        try:
            resolve_hyper(config["optimizer"], **config["optimizer_hyper"])
        except ValueError as error:
            raise ConfigError(f"configuration key 'optimizer_hyper' / 'optimizer': {error}") from None
    if config["adapter_bottleneck"] < 1 or config["adapter_scale"] <= 0:
        raise ConfigError("configuration keys 'adapter_bottleneck' and 'adapter_scale' must be positive")
    unknown = sorted(set(config["method_config"]) - set(method.defaults))
    if unknown:
        raise ConfigError(f"configuration key 'method_config.{unknown[0]}': method {config['method']!r} "
                          f"takes: {', '.join(method.defaults) or 'no settings'}")
