"""A cell: one fully resolved run, the unit that params.yaml resolves into and the executor runs.

Kept apart from the executor so that what resolves and checks cells (zeroflow_core.params) and a run
(zeroflow_core.train) do not import the code that schedules them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Keys that decide where and how fast a cell runs, not what it computes: a cell finished with other
# values of these is the same cell (CPU threads and loader workers do not change our results).
PLACEMENT_KEYS = ("threads", "workers")



@dataclass(frozen=True)
class Cell:
    name: str
    config: dict
    out: Path


def identity(config: dict) -> dict:
    """The part of a configuration that decides a cell's results."""
    return {key: value for key, value in config.items() if key not in PLACEMENT_KEYS}


