"""Where a result comes from: the package version, the git commit, whether the tree has local edits, and the
hash of params.yaml. One definition serves every notebook's banner and every page's stamp, so the two cannot
disagree about whether the code was edited."""
from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from zeroflow_core import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]
# What "local edits" means: a change to the code, the notebooks, the book's pages or the pipeline since the
# commit (params.yaml has a hash of its own).
TRACKED_PATHS = ("zeroflow_core", "notebooks", "book", "dvc.yaml")


@dataclass(frozen=True)
class Provenance:
    version: str
    commit_full: str  # "unknown" outside a git checkout
    dirty: bool
    params_hash: str

    @property
    def commit(self) -> str:
        return self.commit_full[:10] if self.commit_full != "unknown" else "unknown"

    @property
    def code_version(self) -> str:
        """`0.1.0 (a1b2c3d4e5+dirty)`: what a notebook's banner prints."""
        return f"{self.version} ({self.commit}{'+dirty' if self.dirty else ''})"


def params_hash(path: str | Path = "params.yaml") -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def section_hash(params: dict, section: str) -> str:
    """The hash of what a page takes from params.yaml: the profile and its section (the same values, whatever the
    file's comments, order and other sections)."""
    taken = {"profile": params["profile"], section: params[section]}
    return hashlib.sha256(json.dumps(taken, sort_keys=True, default=str).encode()).hexdigest()[:12]


def provenance(params_path: str | Path = "params.yaml") -> Provenance:
    commit = _git("rev-parse", "HEAD") or "unknown"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", *TRACKED_PATHS))
    return Provenance(__version__, commit, dirty, params_hash(params_path))


def _git(*args) -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
