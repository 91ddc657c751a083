"""Run many cells (fully resolved run configurations) in a pool of warm worker processes.

Every run of the pipeline, a grid cell or a sweep cell, is a cell: a name, a configuration and a
folder. `run_cells` gives a stage's cells to `workers` spawned processes that each import torch and
timm once and then run cell after cell, so the fixed cost per cell is building its model and data,
not starting Python. A stage's folder always matches its cells:
- a cell whose folder holds its metrics.json and the same configuration is kept, not rerun;
- a cell whose folder holds another configuration (an earlier params.yaml) is started afresh;
- an interrupted cell resumes from its last task checkpoint (zeroflow_core.train);
- folders of cells no longer in the stage are removed.
A worker that dies mid-cell (killed, out of memory) breaks the pool: the finished cells are on disk,
so the pool is started again for the cells that are not, up to `retries` times.

A cell is its configuration *and* the code that computes it: each cell folder records a fingerprint
of the package files a run imports (`RUN_CODE`), and a cell made by other code is started afresh.
So when DVC reruns a stage because its code changed, every cell reruns; when it reruns because one
value of params.yaml changed, only the cells with that value do.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import yaml

# Keys that decide where and how fast a cell runs, not what it computes: a cell finished with other
# values of these is the same cell (CPU threads and loader workers do not change our results).
PLACEMENT_KEYS = ("threads", "workers")


# The parts of zeroflow_core that decide a run's results (also the deps of the train, baseline and
# ablation stages in dvc.yaml; tests/test_pipeline.py checks that they agree).
RUN_CODE = ("optim", "methods", "models", "data", "train.py", "executor.py", "config.py", "metrics.py", "_timm.py",
            "io.py", "runtime.py")
PACKAGE = Path(__file__).resolve().parent
CODE_FILE = "code.txt"


def code_fingerprint(parts=RUN_CODE, root: Path = PACKAGE) -> str:
    """sha256 over the Python files of `parts` (paths relative to the package), in a fixed order."""
    digest = hashlib.sha256()
    for part in parts:
        path = root / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    name: str
    config: dict
    out: Path


def identity(config: dict) -> dict:
    """The part of a configuration that decides a cell's results."""
    return {key: value for key, value in config.items() if key not in PLACEMENT_KEYS}


def saved_config(out: Path) -> dict | None:
    path = Path(out) / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def made_by_this_code(out: Path, code: str) -> bool:
    path = Path(out) / CODE_FILE
    return path.is_file() and path.read_text().strip() == code


def is_finished(cell: Cell, code: str) -> bool:
    saved = saved_config(cell.out)
    return ((cell.out / "metrics.json").is_file() and saved is not None and identity(saved) == identity(cell.config)
            and made_by_this_code(cell.out, code))


def prepare_folder(folder: Path, cells: list[Cell], code: str) -> list[Cell]:
    """Remove what no cell owns any more; return the cells still to run, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {cell.out.name for cell in cells}
    for stale in sorted(p for p in folder.iterdir() if p.name not in names):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    pending = []
    for cell in cells:
        if is_finished(cell, code):
            continue
        saved = saved_config(cell.out)
        if cell.out.exists() and (saved is None or identity(saved) != identity(cell.config)
                                  or not made_by_this_code(cell.out, code)):
            shutil.rmtree(cell.out)  # made by an earlier params.yaml or earlier code: nothing to resume
        cell.out.mkdir(parents=True, exist_ok=True)
        (cell.out / CODE_FILE).write_text(code + "\n")
        pending.append(cell)
    return pending


def run_cells(folder: Path, cells: list[Cell], workers: int = 1, log=print, retries: int = 2) -> list[Cell]:
    """Run every cell not finished before (with this configuration and this code); returns those that ran."""
    code = code_fingerprint()
    pending = prepare_folder(Path(folder), cells, code)
    kept = len(cells) - len(pending)
    if kept:
        log(f"{folder}: {kept} of {len(cells)} cells finished before, kept")
    ran = list(pending)
    done = 0
    for attempt in range(retries + 1):
        try:
            for cell, result in _execute(pending, workers):
                done += 1
                log(f"[{done}/{len(ran)}] {cell.name}: avg_acc {result['avg_acc']:.2f}  "
                    f"forgetting {result['forgetting']:.2f}")
            return ran
        except BrokenProcessPool:
            pending = [cell for cell in pending if not is_finished(cell, code)]
            if attempt == retries:
                raise RuntimeError(f"{folder}: a worker died {retries + 1} times; {len(pending)} cells unfinished "
                                   f"(first: {pending[0].name}); rerun the stage to resume them") from None
            log(f"a worker died; restarting the pool for the {len(pending)} unfinished cells")
    return ran


def _execute(cells: list[Cell], workers: int):
    if workers <= 1 or len(cells) <= 1:
        for cell in cells:
            yield cell, run_cell(cell)
        return
    # spawned, not forked: no torch state (threads, RNG) is inherited from the parent
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(cells)), mp_context=context) as pool:
        futures = {pool.submit(run_cell, cell): cell for cell in cells}
        for future in as_completed(futures):
            yield futures[future], future.result()


def run_cell(cell: Cell) -> dict:
    from zeroflow_core.train import train

    return train(cell.config, cell.out, progress=False)
