"""One executor per stage folder, and no process of a stage outliving what started it.

- `folder_lock`: an exclusive fcntl.flock on `<folder>/.executor.lock` while an executor runs the folder's cells.
  The kernel drops the lock when its holder dies however it dies, so a killed stage never leaves a stale lock;
  a second executor is refused at once with who holds it (pid, host, start, command), read from the file.
- `exit_with_parent`: a stage started by `dvc repro` exits when dvc dies (SIGKILL too). dvc starts the stage, so
  the stage cannot ask the kernel for a parent-death signal before it runs; a watchdog thread notices instead
  that it was re-parented (os.getppid() changed) and exits, which ends its workers below.
- `die_with_parent`: a worker process dies with the process that started it: the kernel's parent-death signal
  (Linux prctl PR_SET_PDEATHSIG), and the same watchdog where there is no prctl.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import errno
import json
import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".executor.lock"
WATCH_SECONDS = 0.5  # how often a watchdog looks at its parent: how long an orphan can live, at most
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class FolderBusy(RuntimeError):
    """Another executor holds the folder's lock."""


@contextmanager
def folder_lock(folder: Path):
    """Hold `folder`'s executor lock for the block; FolderBusy (naming the holder) if another process holds it.

    The file is removed when the block ends, so a finished stage's folder (a DVC output) holds no pid or time."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                handle.close()
                raise
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise FolderBusy(f"{folder} is being run by another executor ({holder}); two would write the same cells. "
                             f"Wait for it to end, or stop it and run again: finished cells are kept") from None
        # the holder before us may have removed the file between our open and our lock: lock the file that is there
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                             "command": " ".join(sys.argv)}) + "\n")
    handle.flush()
    try:
        yield
    finally:
        try:
            path.unlink()  # before the lock is released: a waiting executor then finds no file, or a new one
        except FileNotFoundError:
            pass
        handle.close()


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        return (f"pid {holder['pid']} on {holder['host']}, started {holder['started']}: {holder['command']}")
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet said who it is"


def watch_parent(on_death, interval: float = WATCH_SECONDS) -> threading.Thread:
    """Call on_death(pid of the parent that died) from a daemon thread once this process is re-parented."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        on_death(parent)

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread


_watched = False


def exit_with_parent(log=print) -> None:
    """In a stage: exit (ending its workers) when the process that started it dies. Once per process."""
    global _watched
    if _watched:
        return
    _watched = True

    def exit_now(parent: int) -> None:
        log(f"the process that started this stage (pid {parent}) died: stopping, finished cells are kept")
        sys.stdout.flush()
        os._exit(1)  # the workers' parent-death signal fires; the folder lock goes with this process

    watch_parent(exit_now)


def die_with_parent(parent: int) -> None:
    """In a worker: die when `parent` (the process that started it) dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the signal was asked for: nothing would send it
        os._exit(1)
    watch_parent(lambda _: os._exit(1))
