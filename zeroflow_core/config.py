"""Run configuration: profiles, `--set key=value` overrides, and validation before any work.

A run is one (method, optimizer, dataset, seed). Its configuration is RUN_KEYS, then the profile's
run settings and its rules that match the run (profiles.yaml), then the user's overrides. Every key and
type is checked up front, so a typo stops the run with one message naming the key.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path
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
    # trainable: forward-pass optimizers perturb the trained adapters and heads; official: also every other tensor the
    # official code gives requires_grad, i.e. the stored prototypes (methods/base.py, stored_classifier_trainable)
    "zo_scope": "trainable",
    "device": "auto",                 # auto | cpu | cuda
    # off | bf16: forward-pass optimizers evaluate their losses under bf16 autocast (parameters, perturbations and
    # restores stay in fp32); backprop runs are never autocast
    "autocast": "off",
    "threads": 0,                     # torch CPU threads; 0 = torch's default
    "workers": 0,                     # DataLoader worker processes (decoding and augmenting images)
}
ZO_SCOPES = ("trainable", "official")
# The optimizer of a method that trains nothing (SimpleCIL): its runs have no optimizer axis.
NO_OPTIMIZER = "none"

# The profiles (smoke: the embedded default; paper: the official settings) are data: profiles.yaml, beside
# this file, with a source for every value taken from the official code.
PROFILES_FILE = Path(__file__).with_name("profiles.yaml")
RULE_KEYS = ("method", "optimizer", "dataset")


def check_profiles(profiles: dict, path: Path = PROFILES_FILE) -> dict:
    """{profile: {"run": {...}, "rules": [{when, set, source}, ...]}} with every key and name checked."""
    from zeroflow_core.data import available_datasets
    from zeroflow_core.methods import METHODS
    from zeroflow_core.optim import FAMILIES, OPTIMIZERS

    # a misspelled name in `when` would silently never match
    names = {"method": set(METHODS), "optimizer": set(OPTIMIZERS) | set(FAMILIES), "dataset": set(available_datasets())}
    for name, profile in profiles.items():
        where = f"{path.name}: profile {name!r}"
        if set(profile) != {"run", "rules"}:
            raise ConfigError(f"{where} must have exactly 'run' and 'rules', got {sorted(profile)}")
        _check_keys(profile["run"], f"{where} run: ")
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
            _check_keys(rule["set"], f"{where} rule {index} set: ")
    return profiles


@functools.cache
def checked_profiles() -> dict:
    return check_profiles(PROFILES)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def rule_matches(when: dict, method: str, optimizer: str, dataset: str) -> bool:
    from zeroflow_core.optim import OPTIMIZERS

    family = OPTIMIZERS[optimizer].family if optimizer in OPTIMIZERS else None
    run = {"method": {method}, "optimizer": {optimizer, family}, "dataset": {dataset}}
    return all(run[key] & set(_as_list(names)) for key, names in when.items())


PROFILES = load_yaml(PROFILES_FILE.read_text())  # checked on first use (checked_profiles): it needs the registry


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
    """RUN_KEYS ← the profile's run settings ← its matching rules (profiles.yaml) ← overrides, then validated."""
    _check_keys(overrides, "")
    profile = overrides.get("profile", RUN_KEYS["profile"])
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    profiles = checked_profiles()
    config = _merge(RUN_KEYS, profiles[profile]["run"])
    config["profile"] = profile
    dataset = overrides.get("dataset", config["dataset"])
    optimizer = overrides.get("optimizer", config["optimizer"])
    method = overrides.get("method", config["method"])
    from zeroflow_core.methods import METHODS

    if method in METHODS and not METHODS[method].trains:
        config["optimizer"] = NO_OPTIMIZER
        optimizer = overrides.get("optimizer", NO_OPTIMIZER)
    for rule in profiles[profile]["rules"]:
        if rule_matches(rule["when"], method, optimizer, dataset):
            config = _merge(config, rule["set"])
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
               "device": ["auto", "cpu", "cuda"], "profile": list(PROFILES), "zo_scope": list(ZO_SCOPES),
               "autocast": ["off", "bf16"]}
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
