"""Progress of one run (`zeroflow train`), on stderr: tqdm bars for tasks, epochs and steps on a terminal; otherwise
one line per epoch (a log file or a pipe gets no carriage-return bars); a resumed run says from which task. A stage's
progress over its cells is the pipeline's (pipeline/progress.py)."""
from __future__ import annotations

import statistics
import sys

from tqdm import tqdm


class RunProgress:
    """`mode` True: tqdm bars; None: bars on a terminal, else one line per epoch; False: silent (a stage's cells)."""

    def __init__(self, mode: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.bars = self.stream.isatty() if mode is None else bool(mode)
        self.lines = mode is None and not self.bars

    def bar(self, iterable, **options):
        """`iterable` with a tqdm bar (tqdm's own options), or unchanged without bars."""
        return tqdm(iterable, file=self.stream, **options) if self.bars else iterable

    def epoch_done(self, task: int, n_tasks: int, epoch: int, epochs: int, losses: list, seconds: float) -> None:
        if self.lines:
            loss = f"loss {statistics.fmean(losses):.4f}" if losses else "no steps"
            print(f"task {task + 1}/{n_tasks} epoch {epoch + 1}/{epochs}: {len(losses)} steps, {loss}, {seconds:.1f} s",
                  file=self.stream, flush=True)

    def resumed(self, checkpoint, first: int, n_tasks: int) -> None:
        if first and (self.bars or self.lines):
            state = "every task done, writing its metrics" if first >= n_tasks else f"task {first + 1}/{n_tasks} next"
            print(f"resuming from {checkpoint} after task {first}/{n_tasks}: {state}", file=self.stream, flush=True)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
