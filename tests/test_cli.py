"""The command line explains itself: every sub-command and option has a description, train asks for
what it needs, and the defaults are the pipeline's."""
from __future__ import annotations

import argparse

import pytest

from zeroflow_core import cli
from zeroflow_core.run.config import PRETRAIN_DEFAULTS


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_and_option_is_described():
    parser = cli.build_parser()
    assert parser.description.startswith("ZeroFlow companion")
    undescribed = [f"{name} {option.dest}" for name, sub in subcommands().items() for option in sub._actions
                   if not option.help and option.help != argparse.SUPPRESS]
    assert undescribed == []
    assert all(sub.description for sub in subcommands().values())


@pytest.mark.parametrize("argv,message", [
    (["train", "--dataset", "hues", "--out", "x"], "the following arguments are required: --method"),
    (["train", "--method", "ease", "--out", "x"], "the following arguments are required: --dataset"),
    (["train", "--method", "eaze", "--dataset", "hues", "--out", "x"], "invalid choice: 'eaze'"),
])
def test_train_refuses_a_missing_or_unknown_choice(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_train_needs_an_optimizer_unless_the_method_trains_nothing(tmp_path, capsys):
    assert cli.main(["train", "--method", "ease", "--dataset", "hues", "--out", str(tmp_path)]) == 2
    assert "--optimizer is required" in capsys.readouterr().err


def test_pretrain_defaults_are_the_pipelines(capsys):
    args = cli.build_parser().parse_args(["pretrain", "--out", "x"])
    assert {key: getattr(args, key if key != "classes" else "classes") for key in PRETRAIN_DEFAULTS} == PRETRAIN_DEFAULTS


def test_the_optimizer_list_is_aligned(capsys):
    from zeroflow_core.optim import OPTIMIZERS

    cli.main(["optimizers"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(OPTIMIZERS)
    summaries = {line.index(summary) for line, summary in zip(lines, _summaries())}
    assert len(summaries) == 1  # every summary starts in the same column


def _summaries():
    from zeroflow_core.optim import OPTIMIZERS

    return [spec.summary for spec in OPTIMIZERS.values()]


def test_version_is_the_packages():
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    root = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, "-m", "zeroflow_core.cli", "--version"], capture_output=True, text=True)
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    assert done.returncode == 0 and done.stdout.strip() == f"zeroflow {version}"
