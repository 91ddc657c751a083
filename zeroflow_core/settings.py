"""Declared settings: a name, a default, what it means and which values it takes, checked in one place.

Run keys (run/config.py), each method's settings (methods/) and each optimizer's hyper-parameters (optim/) are
declared as `Setting` records beside the code that reads them. `check_values` is the only place that checks
a value against its declaration, so a wrong type or an unknown name is refused with the same message
wherever it is given (params.yaml, `zeroflow train --set`, or the Python API), and `--help` pages and the
the guide list the same names, defaults and help.

Science core, under every layer: imports nothing of zeroflow_core.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key."""


def did_you_mean(name, known: Iterable, prefix: str = "") -> str:
    """' (did you mean 'x'?)' for the closest known name (written after `prefix`, e.g. 'ablations.'), or ''
    when none is close."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.7)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def is_integer(value) -> bool:
    """An int that is not a bool (YAML's `true` is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def type_name(default) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, (list, tuple)):
        return "list"
    return type(default).__name__


def has_type_of(value, default) -> bool:
    """Whether `value` has the type of `default`: a float setting takes an int, a bool only a bool, a list or
    tuple either, and an int setting no bool; a setting without a default (None) leaves the type to its check."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return is_number(value)
    if isinstance(default, int):
        return is_integer(value)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


@dataclass(frozen=True)
class Setting:
    """One setting: its default (whose type the value must have), what it means, and its allowed values
    (`choices`, or `check` with the `requirement` it states)."""

    name: str
    default: Any
    help: str
    choices: tuple = ()
    check: Callable[[Any], bool] | None = None
    requirement: str = ""

    def normalise(self, value):
        """The value as the setting stores it: an int given for a float setting becomes a float, so that
        `lr: 1` and `lr: 1.0` are one configuration."""
        if isinstance(self.default, float) and is_integer(value):
            return float(value)
        return value

    def problem(self, value) -> str | None:
        """What is wrong with `value`, or None."""
        if not has_type_of(value, self.default):
            return f"must be {type_name(self.default)} like its default {self.default!r}, got {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        if self.check is not None and not self.check(value):
            return f"{self.requirement}, got {value!r}"
        return None

    def describe(self) -> str:
        """`name` (default ...): help; choices: ... — one line for --help pages."""
        allowed = f"; one of {', '.join(map(str, self.choices))}" if self.choices else ""
        return f"{self.name} (default {self.default!r}): {self.help}{allowed}"


def declared(*settings: Setting) -> dict[str, Setting]:
    """{name: setting}, refusing a name declared twice."""
    table: dict[str, Setting] = {}
    for setting in settings:
        if setting.name in table:
            raise ValueError(f"setting {setting.name!r} is declared twice")
        table[setting.name] = setting
    return table


def defaults_of(settings: Mapping[str, Setting]) -> dict:
    return {name: setting.default for name, setting in settings.items()}


def check_values(values: Mapping, settings: Mapping[str, Setting], where: str, *, prefix: str = "",
                 required: Iterable[str] = (), error=ConfigError) -> dict:
    """Refuse a name that `settings` does not declare (with the closest one), a value of the wrong type or
    range, and a missing `required` name; return the values normalised (Setting.normalise). `where` names the
    owner in the message, e.g. "optimizer 'zo-sgd'" or "params.yaml"; `prefix` is put before each name, e.g.
    "methods.ease."."""
    if not isinstance(values, Mapping):
        raise error(f"{where}: {prefix.rstrip('.') or 'settings'} must be a mapping, got {values!r}")
    # unknown names first: a misspelled required name is then reported as written, with the closest name
    for name in values:
        if name not in settings:
            known = ", ".join(settings) or "no settings"
            raise error(f"{where}: unknown setting '{prefix}{name}'{did_you_mean(name, settings, prefix)}; "
                        f"it takes: {known}")
    missing = [name for name in required if name not in values]
    if missing:
        raise error(f"{where}: '{prefix}{missing[0]}' is missing")
    checked = {}
    for name, value in values.items():
        problem = settings[name].problem(value)
        if problem:
            raise error(f"{where}: '{prefix}{name}' {problem}")
        checked[name] = settings[name].normalise(value)
    return checked


def help_lines(settings: Mapping[str, Setting], indent: str = "  ") -> str:
    return "\n".join(indent + setting.describe() for setting in settings.values())
