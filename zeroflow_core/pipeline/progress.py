"""Progress of one stage's cells, in the stage's log: done / running / left and an ETA from the cells finished so
far, on every finished cell and, while none finishes, every STATUS_SECONDS (a paper-scale cell takes hours)."""
from __future__ import annotations

import time

from zeroflow_core.run.progress import duration

STATUS_SECONDS = 300.0


class StageProgress:
    """Counts a stage's cells as they finish; `line` says done / running / left and, from the rate at which cells
    have finished since the stage started, when the rest will be done."""

    def __init__(self, total: int, slots: int, clock=time.monotonic):
        self.total = total      # cells this stage runs (not the ones kept from before)
        self.slots = slots      # cells that run side by side
        self.done = 0
        self.clock = clock
        self.started = clock()

    def finished(self) -> None:
        self.done += 1

    def line(self) -> str:
        left = self.total - self.done
        running = min(self.slots, left)
        elapsed = self.clock() - self.started
        if not left:
            eta = f"all done in {duration(elapsed)}"
        elif self.done:
            eta = f"ETA {duration(elapsed / self.done * left)}"
        else:
            eta = f"no cell finished yet, {duration(elapsed)} so far"
        return f"{self.done} done, {running} running, {left - running} left; {eta}"
