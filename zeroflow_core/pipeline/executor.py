"""Run many cells (fully resolved run configurations) on warm workers: local processes or a Ray cluster.

Every run of the pipeline, a grid cell or a sweep cell, is a cell: a name, a configuration and a
folder. `run_cells` gives a stage's cells to the backend of params.yaml's `execution` section:
- local: `workers` spawned processes that each import torch and timm once and then run cell after
  cell, so the fixed cost per cell is building its model and data, not starting Python; with
  `gpus_per_cell`, worker i sees only its own GPUs;
- ray: one Ray task per cell (`cpus_per_cell`, `gpus_per_cell`) on the cluster at `ray_address`,
  whose workers are warm in the same way; the nodes share the checkout (see `_execute_on_ray`).
A stage's folder always matches its cells, and one executor at a time runs it (lifetime.folder_lock; a second one
is refused with who holds it); local workers die with their stage (lifetime.die_with_parent):
- a cell whose folder holds its metrics.json and the same configuration is kept, not rerun, once verified: when
  a cell finishes, its metrics must parse and its checkpoint load, and the sha256 of each of its files is recorded
  (finished.json); a later stage keeps it only while every file still has that hash. A file that does not is
  named in the stage's log and its cell runs again (resuming from its checkpoint when that is intact);
- a cell whose folder holds another configuration (an earlier params.yaml) is started afresh;
- an interrupted cell resumes from its last task checkpoint (zeroflow_core.run.train);
- folders of cells no longer in the stage are removed.
A worker that dies mid-cell (killed, out of memory, its Ray node lost) loses nothing finished: the
finished cells are on disk, and the unfinished ones run again (Ray retries the task itself; a
broken local pool is started again), up to `retries` times; a cell run again resumes from its
last task checkpoint.

A cell is its configuration *and* the code and backbone that compute it: each cell folder records a fingerprint
of the package files a run imports (`imports.run_code`) and of the backbone weights file it loads (its seed's, where
backbone_weights is a folder of per-seed pretrainings), and a cell made by other code or on another backbone is
started afresh. So when DVC reruns a stage because its code changed, every cell reruns; because one seed's backbone
changed, that seed's cells; because one value of params.yaml changed, only the cells with that value do.
A cell's seconds and memory go to its timing file (zeroflow_core.run.timing), outside its folder; the executor removes
it with the cell.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import yaml

from zeroflow_core.io import file_sha256, write_json
from zeroflow_core.pipeline import progress as stage_progress
from zeroflow_core.pipeline.cells import Cell
from zeroflow_core.pipeline.lifetime import LOCK_FILE, die_with_parent, folder_lock
from zeroflow_core.run.config import identity
from zeroflow_core.run.timing import timing_folder

CODE_FILE = "code.txt"
RECORD_FILE = "finished.json"  # the sha256 of every file of a finished cell, written when it finished


def code_fingerprint(files=None) -> str:
    """sha256 over the given package files, by default those a cell's run imports (imports.run_code)."""
    from zeroflow_core.pipeline.imports import PACKAGE, run_code

    digest = hashlib.sha256()
    for file in sorted(run_code() if files is None else files):
        digest.update(str(Path(file).relative_to(PACKAGE)).encode())
        digest.update(Path(file).read_bytes())
    return digest.hexdigest()[:16]


_weights_digests: dict[tuple, str] = {}


def cell_fingerprint(cell: Cell, code: str) -> str:
    """What a cell's results depend on beyond its configuration: the code its run imports, and the sha256 of the
    backbone weights file it loads (the configuration names a path, whose content a pretraining may change)."""
    from zeroflow_core.models.pretrained import WeightsNotFoundError, weights_file

    weights = cell.config.get("backbone_weights")
    try:
        path = weights_file(weights, cell.config.get("seed", 0)) if weights else None
    except WeightsNotFoundError:
        path = None  # the run says what is missing
    if path is None or not path.is_file():
        return code
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _weights_digests:
        _weights_digests[key] = file_sha256(path)[:16]
    return f"{code} backbone {_weights_digests[key]}"


def saved_config(out: Path) -> dict | None:
    path = Path(out) / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def made_by_this_code(out: Path, code: str) -> bool:
    path = Path(out) / CODE_FILE
    return path.is_file() and path.read_text().strip() == code


def _same_cell(cell: Cell, code: str) -> bool:
    """Whether the folder holds this cell: its configuration, made by this code on the same backbone."""
    saved = saved_config(cell.out)
    return (saved is not None and identity(saved) == identity(cell.config)
            and made_by_this_code(cell.out, cell_fingerprint(cell, code)))


def _looks_finished(out: Path) -> bool:
    return (out / "metrics.json").exists() or (out / RECORD_FILE).exists()


def is_finished(cell: Cell, code: str) -> bool:
    """This cell, finished, and every file as it was when it finished."""
    return _same_cell(cell, code) and _looks_finished(cell.out) and check_finished(cell.out) is None


def _cell_files(out: Path) -> list[Path]:
    return sorted(path for path in out.rglob("*") if path.is_file() and path.name != RECORD_FILE)


def readable(out: Path) -> str | None:
    """None when the cell's metrics.json parses and its checkpoint (if it has one) loads; else what is wrong."""
    from zeroflow_core.run.train import CHECKPOINT

    metrics = out / "metrics.json"
    try:
        if not isinstance(json.loads(metrics.read_text()), dict):
            return f"{metrics}: not a JSON object"
    except FileNotFoundError:
        return f"{metrics}: missing"
    except ValueError as error:
        return f"{metrics}: not valid JSON ({error})"
    checkpoint = out / CHECKPOINT
    if checkpoint.is_file():
        import torch

        try:  # mmap: the structure is read and checked, the tensors' bytes are only mapped
            torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
        except Exception as error:  # truncated or garbled: torch raises RuntimeError, EOFError, pickle errors
            return f"{checkpoint}: does not load ({type(error).__name__}: {str(error)[:120]})"
    return None


def record_finished(out: Path) -> None:
    """After a cell finished: check that its metrics parse and its checkpoint loads, then record each file's sha256."""
    problem = readable(out)
    if problem:
        raise RuntimeError(f"the cell finished but {problem}")
    files = {str(path.relative_to(out)): file_sha256(path) for path in _cell_files(out)}
    write_json(out / RECORD_FILE, {"files": files})


def check_finished(out: Path) -> str | None:
    """None when the finished cell in `out` is intact, else what is wrong, naming the file. With a record, every
    recorded file must still have its sha256 (checked to parse and load when recorded); a cell finished before
    records existed must parse and load, and is then recorded."""
    record = out / RECORD_FILE
    if not record.exists():
        problem = readable(out)
        if problem is None:
            record_finished(out)
        return problem
    try:
        files = json.loads(record.read_text())["files"]
    except (ValueError, KeyError, TypeError) as error:
        return f"{record}: unreadable ({type(error).__name__}: {error})"
    for name, digest in sorted(files.items()):
        path = out / name
        if not path.is_file():
            return f"{path}: missing (it was there when the cell finished)"
        if file_sha256(path) != digest:
            return (f"{path}: not the file the cell finished with (its sha256 differs from {RECORD_FILE}'s: "
                    f"truncated or edited)")
    return None


def _unfinish(out: Path, problem: str) -> None:
    """Make a cell whose finished files failed the check run again: it resumes from its checkpoint when that is not
    the file at fault (the metrics and dvclive logs are rebuilt from it), else it starts again from task 0."""
    from zeroflow_core.run.train import CHECKPOINT

    doomed = [RECORD_FILE, "metrics.json"] + ([CHECKPOINT] if problem.startswith(str(out / CHECKPOINT)) else [])
    for name in doomed:
        (out / name).unlink(missing_ok=True)


def prepare_folder(folder: Path, cells: list[Cell], code: str, log=print, keep=()) -> list[Cell]:
    """Remove what no cell owns any more (but the entries named in `keep`); return the cells still to run, in
    order."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {cell.out.name for cell in cells} | {LOCK_FILE} | set(keep)
    timings = timing_folder(folder)
    for parent in dict.fromkeys([folder, timings]):
        for stale in sorted(p for p in parent.iterdir() if p.name not in names) if parent.is_dir() else []:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    pending = []
    for cell in cells:
        if _same_cell(cell, code):
            if _looks_finished(cell.out):
                problem = check_finished(cell.out)
                if problem is None:
                    continue
                log(f"{problem}; the cell {cell.name} runs again")
                _unfinish(cell.out, problem)
        elif cell.out.exists():
            shutil.rmtree(cell.out)  # made by an earlier params.yaml, earlier code or backbone: nothing to resume
            if timing_folder(cell.out) != cell.out:
                shutil.rmtree(timing_folder(cell.out), ignore_errors=True)
        cell.out.mkdir(parents=True, exist_ok=True)
        (cell.out / CODE_FILE).write_text(cell_fingerprint(cell, code) + "\n")
        pending.append(cell)
    return pending


def run_cells(folder: Path, cells: list[Cell], settings: dict | None = None, log=print, retries: int = 2,
              keep=()) -> list[Cell]:
    """Run every cell not finished before (with this configuration and this code); returns those that ran.
    Entries of `folder` that no cell owns are removed, but those named in `keep`.

    `settings` is the `execution` section of params.yaml (zeroflow_core.pipeline.cells.execution); None runs
    the cells one by one in this process."""
    settings = {"backend": "local", "workers": 1, **(settings or {})}
    code = code_fingerprint()
    with folder_lock(Path(folder)):
        return _run_cells(Path(folder), cells, settings, log, retries, code, keep)


def _run_cells(folder: Path, cells: list[Cell], settings: dict, log, retries: int, code: str, keep) -> list[Cell]:
    from zeroflow_core.run.train import CHECKPOINT

    pending = prepare_folder(folder, cells, code, log, keep)
    kept = len(cells) - len(pending)
    resuming = sum((cell.out / CHECKPOINT).is_file() for cell in pending)
    if kept or resuming:
        log(f"{folder}: {kept} of {len(cells)} cells finished before, kept"
            + (f"; {resuming} resume from their last task checkpoint" if resuming else ""))
    ran = list(pending)
    execute = _execute_on_ray if settings["backend"] == "ray" else _execute_locally
    slots = len(pending) if settings["backend"] == "ray" else max(1, min(settings["workers"], len(pending)))
    progress = stage_progress.StageProgress(len(ran), slots)
    for attempt in range(retries + 1):
        try:
            for event in execute(pending, settings, code, retries, progress):
                if event is None:  # nothing finished for a while: say where the stage is
                    log(f"{folder}: {progress.line()}")
                    continue
                cell, result = event
                _outcome(cell, lambda: record_finished(cell.out))
                progress.finished()
                log(f"[{progress.done}/{len(ran)}] {cell.name}: avg_acc {result['avg_acc']:.2f}  "
                    f"forgetting {result['forgetting']:.2f}  ({progress.line()})")
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


def _execute_locally(cells: list[Cell], settings: dict, code: str, retries: int, progress=None):
    """(cell, result) as each cell finishes, and None after progress.STATUS_SECONDS without one."""
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
                                 initargs=(slots, settings.get("gpus_per_cell", 0), os.getpid())) as pool:
            futures = {pool.submit(run_cell, cell): cell for cell in cells}
            waiting = set(futures)
            while waiting:
                done, waiting = wait(waiting, timeout=stage_progress.STATUS_SECONDS, return_when=FIRST_COMPLETED)
                if not done:
                    yield None
                for future in done:
                    yield futures[future], _outcome(futures[future], future.result)
    except BrokenProcessPool:
        raise WorkerLost("a local worker died") from None


def _start_worker(slots, gpus_per_cell: int, parent: int) -> None:
    """Die with the stage that started this worker; pin local worker i to its own GPUs (before torch is imported
    in it), when cells take GPUs."""
    die_with_parent(parent)
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
    from zeroflow_core.run.train import train

    return train(cell.config, cell.out, progress=False, set_by=cell.set_by)


# -- Ray ---------------------------------------------------------------------------------------------
def _execute_on_ray(cells: list[Cell], settings: dict, code: str, retries: int, progress=None):
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
    if progress is not None:  # the cells that fit on the cluster at once
        progress.slots = max(1, int(ray.cluster_resources().get("CPU", 1) // settings["cpus_per_cell"]))
    root = str(Path.cwd())
    refs = {task.remote(cell, root, code): cell for cell in cells}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=stage_progress.STATUS_SECONDS)
        if not ready:
            yield None
            continue
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
