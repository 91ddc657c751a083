"""Progress on long work: `zeroflow train` says each epoch and a resume, a stage says done / running / left and
when it will end, also while no cell finishes."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from zeroflow_core.pipeline.progress import StageProgress
from zeroflow_core.run.progress import RunProgress

ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TINY = ["--set", "epochs=2", "--set", "max_steps_per_epoch=2", "--set", "n_tasks=2", "--set", "threads=1",
        "--set", "heldout_every=0", "--set", "backbone_weights=",
        "--set", "dataset_options={n_shapes: 4, n_hues: 2, n_train: 6, n_test: 3}"]


def test_train_prints_a_line_per_epoch_off_a_terminal_and_says_when_it_resumes(tmp_path):
    argv = [sys.executable, "-m", "zeroflow_core.cli", "train", "--method", "ease", "--optimizer", "zo-sgd",
            "--dataset", "hues", "--out", str(tmp_path / "run"), *TINY]
    done = subprocess.run(argv, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    epochs = [line for line in done.stderr.splitlines() if line.startswith("task ")]
    assert [line.split(":")[0] for line in epochs] == ["task 1/2 epoch 1/2", "task 1/2 epoch 2/2",
                                                       "task 2/2 epoch 1/2", "task 2/2 epoch 2/2"], done.stderr
    assert all(": 2 steps, loss " in line for line in epochs) and "\r" not in done.stderr
    (tmp_path / "run" / "metrics.json").unlink()  # as if killed after its last checkpoint
    again = subprocess.run(argv, env=ENV, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert f"resuming from {tmp_path / 'run' / 'checkpoint.pt'} after task 2/2" in again.stderr
    assert "epoch" not in again.stderr  # nothing left to train


def test_run_progress_draws_bars_on_a_terminal_and_is_silent_in_a_stage():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    progress = RunProgress(None, terminal)
    # disable=False: tests/conftest.py turns tqdm off (TQDM_DISABLE) for the other tests
    assert list(progress.bar(range(3), desc="tasks", disable=False)) == [0, 1, 2] and "tasks" in terminal.getvalue()
    progress.epoch_done(0, 2, 0, 1, [1.0], 0.5)
    assert "epoch 1/1" not in terminal.getvalue()  # the bars say it
    quiet = io.StringIO()
    silent = RunProgress(False, quiet)
    assert list(silent.bar(range(2))) == [0, 1]
    silent.epoch_done(0, 2, 0, 1, [1.0], 0.5)
    silent.resumed("checkpoint.pt", 1, 2)
    assert quiet.getvalue() == ""


def test_a_stage_counts_cells_and_estimates_from_the_finished_ones():
    now = [0.0]
    progress = StageProgress(total=5, slots=2, clock=lambda: now[0])
    assert progress.line() == "0 done, 2 running, 3 left; no cell finished yet, 0 s so far"
    now[0] = 120.0
    progress.finished()
    assert progress.line() == "1 done, 2 running, 2 left; ETA 8 min 00 s"
    for _ in range(4):
        progress.finished()
    assert progress.line() == "5 done, 0 running, 0 left; all done in 2 min 00 s"


STAGE = """
    import json, sys, time
    from pathlib import Path

    from zeroflow_core.pipeline import executor, progress
    from zeroflow_core.pipeline.cells import Cell


    def slow(cell):
        time.sleep(3)
        (cell.out / "metrics.json").write_text(json.dumps({"avg_acc": 50.0, "forgetting": 1.0}))
        return {"avg_acc": 50.0, "forgetting": 1.0}


    if __name__ == "__main__":
        progress.STATUS_SECONDS = 1.0
        executor.run_cell = slow
        folder = Path(sys.argv[1])
        executor.run_cells(folder, [Cell(n, {"seed": i}, folder / n) for i, n in enumerate("abc")],
                           {"backend": "local", "workers": 2})
"""


def test_a_stage_says_where_it_is_while_no_cell_finishes(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(textwrap.dedent(STAGE))
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "runs")], env=ENV, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(re.fullmatch(r".*/runs: 0 done, 2 running, 1 left; no cell finished yet, \d+ s so far", line)
               for line in lines), lines
    finished = [line for line in lines if line.startswith("[")]
    assert len(finished) == 3, lines
    assert re.fullmatch(r"\[1/3\] [abc]: avg_acc 50.00  forgetting 1.00  \(1 done, 2 running, 0 left; ETA \d+ s\)",
                        finished[0]), finished
    assert re.fullmatch(r"\[3/3\] .*\(3 done, 0 running, 0 left; all done in \d+ s\)", finished[-1]), finished
