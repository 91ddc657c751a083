"""params.yaml's reference, for the book's Guide ("params.yaml", book/guide-params.md): every section and key with its
default, meaning and allowed values, written from the declarations that `zeroflow check-params` checks against,
and the dvc.yaml stages an edit of each section reruns. Apart from params.py so that the stages that check params
(every stage) do not depend on the book's pages (`zeroflow_core.book.pages`): only the book stage imports this."""
from __future__ import annotations

from pathlib import Path

from zeroflow_core.book.pages import BOOK
from zeroflow_core.io import load_yaml
from zeroflow_core.methods import METHODS
from zeroflow_core.optim import OPTIMIZERS
from zeroflow_core.optim.hyper import SETTINGS as HYPER
from zeroflow_core.pipeline.cells import EXECUTION_SETTINGS
from zeroflow_core.pipeline.params import (ABLATION_SETTINGS, GRID_SETTINGS, LANDSCAPE_SETTINGS, SECTION_RUN_KEYS,
                                           SECTIONS, SWEEP_SETTINGS)
from zeroflow_core.run.bench import EFFICIENCY_SETTINGS, MODEL_SETTINGS
from zeroflow_core.run.config import PRETRAIN_SETTINGS, PROFILES, RUN_SETTINGS
from zeroflow_core.settings import Setting, type_name

# What each section is for, in one line; its keys come from their declarations.
SECTION_HELP = {
    "profile": "the defaults every run starts from (`zeroflow_core/run/profiles.yaml`): `smoke` or `paper`",
    "grid": "the training grid: one run per method × optimizer × dataset × seed, and the no-training baseline",
    "execution": "where the cells of a stage run; never what they compute, so no edit here reruns a finished cell",
    "train": "run settings shared by every run of the grid and the sweeps (the run keys of `zeroflow train --set`)",
    "optimizers": "per optimizer (`optimizers.<name>`): hyper-parameters over the registry's defaults",
    "methods": "per method (`methods.<name>`): its settings",
    "datasets": "per dataset (`datasets.<name>`): run settings that differ by dataset (the run keys of `train`)",
    "pretrain": "the smoke backbone's pretraining (the `pretrain` stage)",
    "efficiency": "Table 2's measurements (`efficiency@<model>` stages), and per model `efficiency.models.<model>`",
    "ablations": "the sweeps (`ablation@<name>`): their method, dataset, seeds and settings, and per sweep "
                 "`ablations.sweeps.<name>`",
    "landscape": "Figures 3 and 6: the optimizers' trajectories on the two-task toy problem",
}


def _allowed(setting: Setting) -> str:
    if setting.choices:
        return "one of " + ", ".join(f"`{choice}`" for choice in setting.choices)
    return setting.requirement or (type_name(setting.default) if setting.default is not None else "")


def _settings_table(settings, prefix: str = "", taken_by: dict | None = None) -> str:
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    head = "| key | default | what it is | values |" + (" taken by |" if taken_by else "")
    lines = [head, "|---|---|---|---|" + ("---|" if taken_by else "")]
    for name, setting in settings.items():
        row = [f"`{prefix}{name}`", f"`{setting.default!r}`", cell(setting.help), cell(_allowed(setting))]
        if taken_by:
            row.append(cell(taken_by[name]))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _readers(dvc_file: Path) -> dict[str, list[str]]:
    """params.yaml section → the dvc.yaml stages that declare it (a stage that loops: `name@…`)."""
    stages = load_yaml(dvc_file.read_text())["stages"]
    readers: dict[str, list[str]] = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        label = f"{name}@…" if ("foreach" in stage or "matrix" in stage) else name
        for entry in body.get("params", []):
            sections = ({page.section for page in BOOK.notebooks.values()} if entry == "${item.section}"
                        else {str(entry).split(".")[0]})
            for section in sections:
                readers.setdefault(section, [])
                if label not in readers[section]:
                    readers[section].append(label)
    return readers


def reference(dvc_file: str | Path = "dvc.yaml") -> str:
    """params.yaml's reference (Markdown), derived from the declarations that check it: every section, each key with
    its default, meaning and allowed values, and the dvc.yaml stages that an edit of the section reruns."""
    readers = _readers(Path(dvc_file))
    parts = []
    for section in SECTIONS:
        stages = readers.get(section, [])
        what = SECTION_HELP[section]
        parts.append(f"### `{section}`\n\n{what[0].upper() + what[1:]}. An edit reruns: "
                     + (", ".join(f"`{stage}`" for stage in stages) if stages else "only `check_params`") + ".")
        if section == "profile":
            parts.append("Profiles: " + ", ".join(f"`{name}`" for name in PROFILES) + ".")
        elif section == "grid":
            parts.append(_settings_table(GRID_SETTINGS, "grid."))
        elif section == "execution":
            parts.append(_settings_table(EXECUTION_SETTINGS, "execution."))
        elif section in ("train", "datasets"):
            keys = {key: RUN_SETTINGS[key] for key in SECTION_RUN_KEYS}
            parts.append(_settings_table(keys, "train." if section == "train" else "datasets.<name>."))
        elif section == "optimizers":
            takers = {name: [o for o, spec in OPTIMIZERS.items() if name in spec.settings] for name in HYPER}
            taken_by = {name: "every optimizer" if len(who) == len(OPTIMIZERS) else ", ".join(who)
                        for name, who in takers.items()}
            parts.append(_settings_table({name: HYPER[name] for name in HYPER}, "optimizers.<name>.", taken_by)
                         + "\n\nEach optimizer's own defaults: `zeroflow optimizers NAME`.")
        elif section == "methods":
            for name, method in METHODS.items():
                parts.append(f"`methods.{name}` ({method.label})" + (": no settings." if not method.settings else
                             "\n\n" + _settings_table(method.settings, f"methods.{name}.")))
        elif section == "pretrain":
            parts.append(_settings_table(PRETRAIN_SETTINGS, "pretrain."))
        elif section == "efficiency":
            parts.append(_settings_table(EFFICIENCY_SETTINGS, "efficiency.") + "\n\n"
                         + _settings_table(MODEL_SETTINGS, "efficiency.models.<model>."))
        elif section == "ablations":
            parts.append(_settings_table(ABLATION_SETTINGS, "ablations.") + "\n\n"
                         + _settings_table(SWEEP_SETTINGS, "ablations.sweeps.<name>."))
        elif section == "landscape":
            parts.append(_settings_table(LANDSCAPE_SETTINGS, "landscape."))
    return "\n\n".join(parts) + "\n"
