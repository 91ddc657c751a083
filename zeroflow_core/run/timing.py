"""What a run or a pretraining spent on the machine that ran it: seconds, peak memory and device.

They are kept out of the files that are functions of their inputs (backbone.pt, checkpoint.pt, metrics.json and
the summaries made from them): those are DVC outputs that later stages depend on, and a duration in them would
give two identical runs different bytes, so that DVC reruns everything downstream of a forced stage. DVC hashes a
stage's output folder whole, so a timing file cannot sit inside it either: the timing of a folder under `runs/`
lies in the same place under `timing/` (runs/train/ease-hues/<cell>/ → timing/train/ease-hues/<cell>/timing.json),
a folder that stages write as an output of their own and that no stage depends on. A folder outside any `runs/`
(`zeroflow train --out somewhere`) keeps its timing.json beside its metrics.json.
"""
from __future__ import annotations

import json
from pathlib import Path

from zeroflow_core.io import write_json

RUNS = "runs"
TIMING = "timing"
TIMING_FILE = "timing.json"
# the keys a reader gets for a run without a timing file (a build pulled from a remote that holds no timings)
RUN_TIMING_KEYS = ("task_seconds", "epoch_seconds", "seconds_per_epoch", "peak_memory_mb", "device")


def timing_folder(folder: str | Path) -> Path:
    """Where the timings of `folder` go: its mirror under timing/ when it lies under runs/, else itself."""
    parts = Path(folder).parts
    if RUNS not in parts:
        return Path(folder)
    at = len(parts) - 1 - parts[::-1].index(RUNS)  # the innermost runs/: a checkout may sit in a folder named runs
    return Path(*parts[:at], TIMING, *parts[at + 1:])


def timing_file(folder: str | Path) -> Path:
    return timing_folder(folder) / TIMING_FILE


def write_timing(folder: str | Path, record: dict) -> None:
    write_json(timing_file(folder), record)


def read_timing(folder: str | Path) -> dict:
    """The timing record of `folder`, or {} when there is none."""
    try:
        record = json.loads(timing_file(folder).read_text())
    except FileNotFoundError:
        return {}
    except ValueError as error:
        raise ValueError(f"{timing_file(folder)}: not valid JSON ({error}); remove it (a timing file is no input "
                         f"of any stage) or rerun the stage that wrote it") from None
    return record if isinstance(record, dict) else {}
