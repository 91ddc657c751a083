"""Run many cells (fully resolved run configurations) on warm workers: local processes or a Ray cluster.

Every run of the pipeline, a grid cell or a sweep cell, is a cell: a name, a configuration and a
folder. `run_cells` gives a stage's cells to the backend of params.yaml's `execution` section:
- local: `workers` spawned processes that each import torch and timm once and then run cell after
  cell, so the fixed cost per cell is building its model and data, not starting Python; with
  `gpus_per_cell`, worker i sees only its own GPUs;
- ray: one Ray task per cell (`cpus_per_cell`, `gpus_per_cell`) on the cluster at `ray_address`,
  whose workers are warm in the same way; the nodes share the checkout (see `_execute_on_ray`).
A stage's folder always matches its cells:
- a cell whose folder holds its metrics.json and the same configuration is kept, not rerun;
- a cell whose folder holds another configuration (an earlier params.yaml) is started afresh;
- an interrupted cell resumes from its last task checkpoint (zeroflow_core.train);
- folders of cells no longer in the stage are removed.
A worker that dies mid-cell (killed, out of memory, its Ray node lost) loses nothing finished: the
finished cells are on disk, and the unfinished ones run again (Ray retries the task itself; a
broken local pool is started again), up to `retries` times; a cell run again resumes from its
last task checkpoint.

A cell is its configuration *and* the code that computes it: each cell folder records a fingerprint
of the package files a run imports (`imports.run_code`), and a cell made by other code is started afresh.
So when DVC reruns a stage because its code changed, every cell reruns; when it reruns because one
value of params.yaml changed, only the cells with that value do.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import yaml

from zeroflow_core.cells import Cell, identity

CODE_FILE = "code.txt"


def code_fingerprint(files=None) -> str:
    """sha256 over the given package files, by default those a cell's run imports (imports.run_code)."""
    from zeroflow_core.imports import PACKAGE, run_code

    digest = hashlib.sha256()
    for file in sorted(run_code() if files is None else files):
        digest.update(str(Path(file).relative_to(PACKAGE)).encode())
        digest.update(Path(file).read_bytes())
    return digest.hexdigest()[:16]


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


def prepare_folder(folder: Path, cells: list[Cell], code: str, keep=()) -> list[Cell]:
    """Remove what no cell owns any more (but the entries named in `keep`); return the cells still to run, in
    order."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {cell.out.name for cell in cells} | set(keep)
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


def run_cells(folder: Path, cells: list[Cell], settings: dict | None = None, log=print, retries: int = 2,
              keep=()) -> list[Cell]:
    """Run every cell not finished before (with this configuration and this code); returns those that ran.
    Entries of `folder` that no cell owns are removed, but those named in `keep`.

    `settings` is the `execution` section of params.yaml (zeroflow_core.cells.execution); None runs
    the cells one by one in this process."""
    settings = {"backend": "local", "workers": 1, **(settings or {})}
    code = code_fingerprint()
    pending = prepare_folder(Path(folder), cells, code, keep)
    kept = len(cells) - len(pending)
    if kept:
        log(f"{folder}: {kept} of {len(cells)} cells finished before, kept")
    ran = list(pending)
    execute = _execute_on_ray if settings["backend"] == "ray" else _execute_locally
    done = 0
    for attempt in range(retries + 1):
        try:
            for cell, result in execute(pending, settings, code, retries):
                done += 1
                log(f"[{done}/{len(ran)}] {cell.name}: avg_acc {result['avg_acc']:.2f}  "
                    f"forgetting {result['forgetting']:.2f}")
            return ran
        except WorkerLost as lost:
            pending = [cell for cell in pending if not is_finished(cell, code)]
            if attempt == retries:
                raise RuntimeError(f"{folder}: {lost}, {retries + 1} times; {len(pending)} cells unfinished "
                                   f"(first: {pending[0].name}); rerun the stage to resume them") from None
            log(f"{lost}; starting again for the {len(pending)} unfinished cells")
        except CellFailed as failed:
            # the error would repeat on a resume: leave nothing of the cell for a later stage to read
            shutil.rmtree(failed.cell.out, ignore_errors=True)
            raise RuntimeError(f"{folder}: the cell {failed.cell.name} failed ({type(failed.error).__name__}: "
                               f"{failed.error}); its folder was removed, the finished cells are kept") from failed.error
    return ran


class WorkerLost(Exception):
    """A process running cells died (killed, out of memory, its node lost): its cells are not finished."""


class CellFailed(Exception):
    """A cell's run raised an error: the cell, and the error."""

    def __init__(self, cell: Cell, error: BaseException):
        super().__init__(cell.name)
        self.cell, self.error = cell, error


def _outcome(cell: Cell, get):
    """The cell's result from `get()`, its own error raised as CellFailed."""
    try:
        return get()
    except (WorkerLost, BrokenProcessPool):
        raise
    except Exception as error:
        raise CellFailed(cell, error) from error


def _execute_locally(cells: list[Cell], settings: dict, code: str, retries: int):
    workers = min(settings["workers"], len(cells))
    if workers <= 1 and not settings.get("gpus_per_cell"):
        for cell in cells:
            yield cell, _outcome(cell, lambda: run_cell(cell))
        return
    # spawned, not forked: no torch state (threads, RNG) is inherited from the parent
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for index in range(workers):
        slots.put(index)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                                 initargs=(slots, settings.get("gpus_per_cell", 0))) as pool:
            futures = {pool.submit(run_cell, cell): cell for cell in cells}
            for future in as_completed(futures):
                yield futures[future], _outcome(futures[future], future.result)
    except BrokenProcessPool:
        raise WorkerLost("a local worker died") from None


def _start_worker(slots, gpus_per_cell: int) -> None:
    """Pin local worker i to its own GPUs (before torch is imported in it), when cells take GPUs."""
    if gpus_per_cell:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = gpu_slot(slots.get(), int(gpus_per_cell), visible.split(",") if visible else None)
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)


def gpu_slot(worker: int, gpus_per_cell: int, visible: list[str] | None) -> list[str]:
    """The GPUs of local worker `worker`: the next `gpus_per_cell` of the visible ones (0, 1, ... if unset)."""
    first = worker * gpus_per_cell
    ids = visible if visible is not None else [str(i) for i in range(first + gpus_per_cell)]
    if first + gpus_per_cell > len(ids):
        raise RuntimeError(f"worker {worker} needs GPUs {first}..{first + gpus_per_cell - 1} but only "
                           f"{len(ids)} are visible (CUDA_VISIBLE_DEVICES): lower execution.workers")
    return ids[first:first + gpus_per_cell]


def run_cell(cell: Cell) -> dict:
    from zeroflow_core.train import train

    return train(cell.config, cell.out, progress=False, set_by=cell.set_by)


# -- Ray ---------------------------------------------------------------------------------------------
def _execute_on_ray(cells: list[Cell], settings: dict, code: str, retries: int):
    """Each cell a Ray task. The nodes share this checkout (data, weights and runs/) at the same path,
    as on a cluster's shared filesystem: a task writes its cell folder in place, so a task that Ray
    retries on another worker resumes from the cell's last task checkpoint."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("execution.backend is 'ray' but Ray is not installed: pip install -e '.[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=settings["ray_address"], log_to_driver=False, configure_logging=False)
        except ConnectionError as error:
            raise RuntimeError(f"no Ray cluster at execution.ray_address={settings['ray_address']!r} ({error}); "
                               f"start one (`ray start --head`) or give its address") from None
    task = ray.remote(_run_on_ray).options(num_cpus=settings["cpus_per_cell"], num_gpus=settings["gpus_per_cell"],
                                           max_retries=retries, retry_exceptions=False)
    root = str(Path.cwd())
    refs = {task.remote(cell, root, code): cell for cell in cells}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            result = _outcome(refs[ready[0]], lambda: _ray_result(ray, ready[0]))
        except (WorkerLost, CellFailed):
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        yield refs[ready[0]], result


def _ray_result(ray, ref):
    try:
        return ray.get(ref)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError) as error:
        raise WorkerLost(f"a Ray worker died ({type(error).__name__})") from None


def _run_on_ray(cell: Cell, root: str, code: str) -> dict:
    import socket

    if not Path(root).is_dir():
        raise RuntimeError(f"{socket.gethostname()} has no folder {root}: the Ray backend needs the checkout "
                           f"at the same path on every node (a shared filesystem)")
    os.chdir(root)
    if not (cell.out / CODE_FILE).is_file():
        raise RuntimeError(f"{socket.gethostname()} does not see {root}/{cell.out}, which the driver prepared: "
                           f"the Ray backend needs the checkout on a filesystem shared by every node")
    if code_fingerprint() != code:
        raise RuntimeError(f"{socket.gethostname()}'s zeroflow_core ({code_fingerprint()}) is not the driver's "
                           f"({code}): every node must run the same checkout")
    return run_cell(cell)
