"""The workflow under faults: a finished cell whose files were damaged is named and run again, one executor at a
time runs a stage's folder, and no worker outlives its stage or the dvc that started the stage."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml

from zeroflow_core.pipeline import executor
from zeroflow_core.pipeline.cells import Cell
from zeroflow_core.pipeline.lifetime import LOCK_FILE, FolderBusy, folder_lock

ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


# ------------------------------------------------------------------------------- verified finished cells
def fake_run(ran: list):
    """A cell's run as train writes it: config, checkpoint, dvclive log, then metrics."""
    def run(cell):
        ran.append(cell.name)
        (cell.out / "config.yaml").write_text(yaml.safe_dump(cell.config))
        torch.save({"task": 1, "history": {"acc_seen": [50.0, 40.0]}}, cell.out / "checkpoint.pt")
        (cell.out / "dvclive").mkdir(exist_ok=True)
        (cell.out / "dvclive" / "metrics.json").write_text('{"step": 3}\n')
        result = {"avg_acc": 45.0, "forgetting": 10.0}
        (cell.out / "metrics.json").write_text(json.dumps(result))
        return result
    return run


@pytest.fixture
def two_cells(tmp_path, monkeypatch):
    ran, logged = [], []
    monkeypatch.setattr(executor, "run_cell", fake_run(ran))
    cells = [Cell(name, {"seed": seed}, tmp_path / name) for seed, name in enumerate("ab")]

    def run():
        ran.clear()
        executor.run_cells(tmp_path, cells, log=logged.append)
        return list(ran)

    assert run() == ["a", "b"]
    return tmp_path, run, logged


def test_a_finished_cell_records_the_hash_of_each_file_and_nothing_else(two_cells):
    folder, run, _ = two_cells
    record = json.loads((folder / "a" / executor.RECORD_FILE).read_text())
    assert sorted(record) == ["files"]  # no time, no host: the folder is a DVC output
    assert sorted(record["files"]) == ["checkpoint.pt", "code.txt", "config.yaml", "dvclive/metrics.json",
                                       "metrics.json"]
    assert not (folder / LOCK_FILE).exists()
    assert run() == []  # intact: kept


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.mark.parametrize("damage,file,removed", [
    (truncate, "metrics.json", False),
    (truncate, "checkpoint.pt", True),
    (Path.unlink, "checkpoint.pt", True),
    (Path.unlink, "metrics.json", False),
    (Path.unlink, "dvclive/metrics.json", False),
    (lambda path: path.write_text('{"step": 4}\n'), "dvclive/metrics.json", False),
])
def test_a_damaged_file_of_a_finished_cell_is_named_once_and_the_cell_runs_again(two_cells, monkeypatch, damage, file,
                                                                                removed):
    folder, run, logged = two_cells
    damage(folder / "b" / file)
    removed_before_rerun = []
    real = executor.run_cell
    monkeypatch.setattr(executor, "run_cell",
                        lambda cell: removed_before_rerun.append(not (cell.out / "checkpoint.pt").exists()) or real(cell))
    logged.clear()
    assert run() == ["b"]
    named = [line for line in logged if str(folder / "b" / file) in line]
    assert len(named) == 1 and "the cell b runs again" in named[0], logged
    # a damaged checkpoint makes the cell start again; otherwise it resumes from it and rebuilds the rest
    assert removed_before_rerun == [removed]
    assert run() == []


def test_a_finished_cell_whose_checkpoint_does_not_load_fails_by_name(tmp_path, monkeypatch):
    def broken(cell):
        fake_run([])(cell)
        truncate(cell.out / "checkpoint.pt")
        return {"avg_acc": 45.0, "forgetting": 10.0}

    monkeypatch.setattr(executor, "run_cell", broken)
    with pytest.raises(RuntimeError, match=r"checkpoint.pt: does not load"):
        executor.run_cells(tmp_path, [Cell("a", {"seed": 0}, tmp_path / "a")], log=lambda *_: None)


def test_a_real_cell_with_truncated_metrics_is_rebuilt_from_its_checkpoint(tmp_path, monkeypatch):
    from zeroflow_core.run.config import resolve_config

    config = resolve_config({"method": "ease", "optimizer": "zo-sgd", "dataset": "hues", "epochs": 1,
                             "max_steps_per_epoch": 2, "n_tasks": 2, "threads": 1, "backbone_weights": "",
                             "heldout_every": 0, "dataset_options": {"n_shapes": 4, "n_hues": 2, "n_train": 6,
                                                                     "n_test": 3}})
    cell = Cell("ease-zo-sgd-hues-0", config, tmp_path / "cell")
    logged = []
    executor.run_cells(tmp_path, [cell], log=logged.append)
    before = json.loads((cell.out / "metrics.json").read_text())
    truncate(cell.out / "metrics.json")
    logged.clear()
    assert executor.run_cells(tmp_path, [cell], log=logged.append) == [cell]
    assert any("metrics.json: not the file the cell finished with" in line for line in logged), logged
    after = json.loads((cell.out / "metrics.json").read_text())
    assert after["acc_matrix"] == before["acc_matrix"] and after["loss_curves"] == before["loss_curves"]
    assert executor.check_finished(cell.out) is None


# ------------------------------------------------------------------------------------- one executor
def test_a_second_executor_on_a_folder_is_refused_naming_the_holder(tmp_path, monkeypatch):
    monkeypatch.setattr(executor, "run_cell", fake_run([]))
    cells = [Cell("a", {"seed": 0}, tmp_path / "a")]
    with folder_lock(tmp_path):
        with pytest.raises(FolderBusy) as busy:
            executor.run_cells(tmp_path, cells, log=lambda *_: None)
        assert (tmp_path / LOCK_FILE).exists()
    message = str(busy.value)
    assert f"pid {os.getpid()} on {socket.gethostname()}, started " in message and str(tmp_path) in message
    assert not (tmp_path / LOCK_FILE).exists() and not (tmp_path / "a").exists()  # nothing was touched
    executor.run_cells(tmp_path, cells, log=lambda *_: None)  # free again
    assert (tmp_path / "a" / "metrics.json").exists() and not (tmp_path / LOCK_FILE).exists()


def test_the_stage_command_says_who_holds_its_folder(tmp_path):
    shutil.copy(ROOT / "tests" / "ci-params.yaml", tmp_path / "params.yaml")
    with folder_lock(tmp_path / "runs" / "train" / "ease-hues"):
        done = subprocess.run([sys.executable, "-m", "zeroflow_core.cli", "stage-train", "ease", "hues"], cwd=tmp_path,
                              env=ENV, capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"runs/train/ease-hues is being run by another executor (pid {os.getpid()} on" in done.stderr


# ---------------------------------------------------------------------------------------------- orphans
STAGE = """
    import os, sys, time
    from pathlib import Path

    from zeroflow_core.pipeline import executor
    from zeroflow_core.pipeline.cells import Cell
    from zeroflow_core.pipeline.lifetime import exit_with_parent


    def slow(cell):
        (cell.out / "pid").write_text(str(os.getpid()))
        time.sleep(300)


    if __name__ == "__main__":
        exit_with_parent()  # what `zeroflow stage-train` does first
        executor.run_cell = slow
        folder = Path(sys.argv[1])
        executor.run_cells(folder, [Cell(n, {"seed": i}, folder / n) for i, n in enumerate("ab")],
                           {"backend": "local", "workers": 2})
"""


def start_stage(tmp_path: Path, with_parent: bool):
    """A stage with two workers each in a cell, started as dvc starts one (with a parent between, if asked):
    (the process to kill, the stage's pid, the workers' pids)."""
    script = tmp_path / "stage.py"
    script.write_text(textwrap.dedent(STAGE))
    argv = [sys.executable, str(script), str(tmp_path / "runs")]
    if with_parent:  # a stand-in for dvc: it runs the stage's command and waits
        argv = [sys.executable, "-c", f"import subprocess; subprocess.run({argv!r})"]
    top = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    pids = [tmp_path / "runs" / name / "pid" for name in "ab"]
    while not all(path.is_file() and path.read_text() for path in pids):
        assert top.poll() is None and time.monotonic() < deadline, "the workers never started their cells"
        time.sleep(0.2)
    stage = psutil.Process(top.pid).children()[0].pid if with_parent else top.pid
    return top, stage, [int(path.read_text()) for path in pids]


def gone_within(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive (not zombies) after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@pytest.mark.parametrize("kill", ["the stage's parent (dvc)", "the stage"])
def test_no_worker_survives_its_stage_or_the_dvc_that_started_it(tmp_path, kill):
    top, stage, workers = start_stage(tmp_path, with_parent=kill.startswith("the stage's parent"))
    try:
        os.kill(top.pid, signal.SIGKILL)
        top.wait()
        assert gone_within([stage, *workers], 5) == []
    finally:
        for pid in [stage, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
