"""`zeroflow compare OTHER`: every number and verdict of this build's book that differs from another build's.

A build's book is its results/: each page's tables (results/<page>/*.csv) and statements (results/<page>/
statements.md), all written by the page's notebook from the runs. OTHER is
- a folder with a results/ folder: another clone that ran `dvc repro`, or a version of the published book
  (site/versions/<id>/, which holds the results and params.yaml it was built from);
- or a git revision whose dvc.lock was committed and whose outputs were pushed to a DVC remote: its results/ come from
  the remote (`dvc get`), and `dvc params diff` and `dvc metrics diff` show its parameters and the train stages'
  summaries beside this checkout's.

Cell by cell, a table's text with its numbers masked must be equal: a verdict ("**confirmed**"), a status ("did not
train") or a sentence that differs is listed whatever the tolerance. Each number is compared with its counterpart and
listed when they differ by more than the tolerance (absolute, in the number's own unit: points of accuracy for most);
a mean beside its standard deviation (`<x>_mean`, `<x>_std`) also says whether it moved by more than the two builds'
spreads together, the book's own rule for calling a difference. Time and memory (MEASURED) depend on the machine: they
are counted apart and never fail a comparison.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from zeroflow_core.book.pages import RESULTS_DIR

NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
# What the machine decides, not the runs: a column of time or memory, and every number of a page of measurements (its
# text, such as a claim's verdict, is still compared).
MEASURED_COLUMN = re.compile(r"second|peak|memory|\bMB\b|\bGB\b|s / |time", re.IGNORECASE)
MEASURED_PAGES = ("table_2",)
STATEMENTS = "statements.md"


@dataclass(frozen=True)
class Difference:
    file: str          # relative to results/
    where: str         # the row's label and the column, or the line
    kind: str          # "text" (a verdict, status or sentence), "number", "measured", or "file"
    this: str
    other: str
    delta: float = 0.0               # |this − other| for a number
    beyond_spread: bool | None = None  # for a mean beside its std: moved by more than the two stds together


@dataclass
class Comparison:
    files: int
    numbers: int
    texts: int
    differences: list[Difference]
    tolerance: float

    def of(self, kind: str) -> list[Difference]:
        return [d for d in self.differences if d.kind == kind]

    def numbers_over(self) -> list[Difference]:
        return sorted((d for d in self.of("number") if d.delta > self.tolerance), key=lambda d: -d.delta)

    def largest(self) -> Difference | None:
        numbers = self.of("number")
        return max(numbers, key=lambda d: d.delta) if numbers else None

    @property
    def same(self) -> bool:
        """No verdict, statement or file differs and no number beyond the tolerance."""
        return not (self.of("text") or self.of("file") or self.numbers_over())

    def summary(self) -> dict:
        largest = self.largest()
        return {"files": self.files, "numbers": self.numbers, "texts": self.texts, "tolerance": self.tolerance,
                "texts_differing": len(self.of("text")), "files_differing": len(self.of("file")),
                "numbers_differing": len(self.of("number")), "numbers_over_tolerance": len(self.numbers_over()),
                "means_beyond_spread": sum(bool(d.beyond_spread) for d in self.of("number")),
                "measured_differing": len(self.of("measured")),
                "largest": asdict(largest) if largest else None,
                "text_differences": [asdict(d) for d in self.of("text") + self.of("file")]}


# ----------------------------------------------------------------------------------------------- reading
def book_files(results: Path) -> dict[str, Path]:
    """The tables and statements of a build's results/, by path relative to it."""
    results = Path(results)
    found = [*results.glob("*/*.csv"), *results.glob(f"*/{STATEMENTS}")]
    return {str(path.relative_to(results)): path for path in sorted(found)}


def results_of(folder: Path) -> Path:
    """The results/ of a build folder (a clone or a published version), or the folder itself if it is one."""
    folder = Path(folder)
    if (folder / RESULTS_DIR).is_dir():
        return folder / RESULTS_DIR
    if folder.is_dir() and book_files(folder):
        return folder
    raise FileNotFoundError(f"{folder}: no results/ with a page's tables in it: give a clone that ran `dvc repro`, a "
                            f"version of the book (site/versions/<id>/, site/latest/) or a git revision")


def _rows(path: Path) -> list[list[str]]:
    if path.name == STATEMENTS:
        return [[line] for line in path.read_text().splitlines()]
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def _label(header: list[str], row: list[str], index: int) -> str:
    """A row's name: its first few cells that hold no number (method, optimizer, claim ...), else its position."""
    words = [cell for cell in row if cell and not NUMBER.search(cell) and len(cell) <= 60][:4]
    return " ".join(words) if words else f"row {index + 1}"


# ---------------------------------------------------------------------------------------------- comparing
def compare_results(this: Path, other: Path, tolerance: float = 0.0) -> Comparison:
    """Every difference between two results/ folders (see the module's docstring)."""
    mine, theirs = book_files(this), book_files(other)
    differences = [Difference(name, "the whole file", "file", "present" if name in mine else "absent",
                              "present" if name in theirs else "absent")
                   for name in sorted(set(mine) ^ set(theirs))]
    counts = {"numbers": 0, "texts": 0}
    for name in sorted(set(mine) & set(theirs)):
        differences += _compare_file(name, _rows(mine[name]), _rows(theirs[name]), counts)
    return Comparison(len(set(mine) & set(theirs)), counts["numbers"], counts["texts"], differences, tolerance)


def _compare_file(name: str, rows: list[list[str]], others: list[list[str]], counts: dict) -> list[Difference]:
    if name.endswith(STATEMENTS):
        header = ["statement"]
    else:
        header, rows, others = (rows[0] if rows else []), rows[1:], others[1:]
    if len(rows) != len(others) or any(len(a) != len(b) for a, b in zip(rows, others)):
        return [Difference(name, "its rows", "file", f"{len(rows)} rows", f"{len(others)} rows")]
    page = name.split("/")[0]
    found = []
    for index, (row, other) in enumerate(zip(rows, others)):
        label = _label(header, row, index) if len(header) > 1 else f"line {index + 1}"
        measured_row = page in MEASURED_PAGES or any(f"{p}.ipynb" in cell for p in MEASURED_PAGES for cell in row)
        for column, (a, b) in enumerate(zip(row, other)):
            heading = header[column] if column < len(header) else str(column)
            masked_a, masked_b = NUMBER.sub("#", a), NUMBER.sub("#", b)
            numbers_a, numbers_b = NUMBER.findall(a), NUMBER.findall(b)
            counts["numbers"] += len(numbers_a)
            if masked_a.strip("# ") or not numbers_a:
                counts["texts"] += 1
            if a == b:
                continue
            where = f"{label} · {heading}" if len(header) > 1 else label
            if masked_a != masked_b or len(numbers_a) != len(numbers_b):
                found.append(Difference(name, where, "text", a, b))
                continue
            measured = measured_row or bool(MEASURED_COLUMN.search(heading))
            for x, y in zip(numbers_a, numbers_b):
                if x != y:
                    found.append(Difference(name, where, "measured" if measured else "number", x, y,
                                            abs(float(x) - float(y)),
                                            _beyond_spread(header, row, other, heading, float(x), float(y))))
    return found


def _beyond_spread(header: list[str], row: list[str], other: list[str], heading: str, x: float, y: float):
    """For a `<metric>_mean` column with its `<metric>_std` beside it: whether the two means differ by more than the
    two builds' stds together; None for any other number."""
    if not heading.endswith("_mean") or heading[:-5] + "_std" not in header:
        return None
    at = header.index(heading[:-5] + "_std")
    try:
        spread = float(row[at]) + float(other[at])
    except ValueError:  # one seed: no spread measured
        return None
    return abs(x - y) > spread


# ------------------------------------------------------------------------------------ params, revisions
def params_differences(this: Path, other: Path) -> list[tuple[str, object, object]]:
    """(dotted key, this value, other value) of every parameter of params.yaml that differs, as `dvc params diff`."""
    from zeroflow_core.run.config import changed_keys

    mine, theirs = (yaml.safe_load(Path(path).read_text()) or {} for path in (this, other))
    return [(key, here, there) for key, there, here in changed_keys(theirs, mine)]


def fetch_revision(rev: str, into: Path, repo: str = ".") -> Path:
    """results/ of git revision `rev` of `repo`, from its DVC remote (the revision must hold its dvc.lock)."""
    out = Path(into) / RESULTS_DIR
    done = subprocess.run([sys.executable, "-m", "dvc", "get", repo, str(RESULTS_DIR), "--rev", rev, "-o", str(out)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise FileNotFoundError(f"`dvc get {repo} results --rev {rev}` failed: {done.stderr.strip()[-600:]}; a revision "
                                f"can be compared when its dvc.lock is committed and its outputs were pushed "
                                f"(`dvc push`) to the default remote of that revision's .dvc/config")
    return out


def dvc_diffs(rev: str) -> str:
    """`dvc params diff REV` and `dvc metrics diff REV` against this checkout, as DVC prints them."""
    parts = []
    for what in (["params", "diff", rev], ["metrics", "diff", rev, "--precision", "4"]):
        done = subprocess.run([sys.executable, "-m", "dvc", *what], capture_output=True, text=True)
        parts.append(f"$ dvc {' '.join(what)}\n{(done.stdout + done.stderr).strip() or '(no difference)'}")
    return "\n\n".join(parts)


# ------------------------------------------------------------------------------------------------ report
def report(comparison: Comparison, params: list | None, limit: int = 20) -> str:
    """What a reader reads: the verdicts first, then the numbers over the tolerance, largest first."""
    c = comparison
    lines = [f"{c.files} tables and statement files compared: {c.numbers} numbers, {c.texts} texts."]
    if params is not None:
        lines.append("params.yaml: identical." if not params else
                     f"params.yaml: {len(params)} parameters differ (the builds ran different settings): "
                     + "; ".join(f"{key} {here!r} here, {there!r} there" for key, here, there in params[:10]))
    texts = c.of("text") + c.of("file")
    lines.append("Verdicts, statuses and statements: identical." if not texts else
                 f"Verdicts, statuses and statements: {len(texts)} differ:")
    lines += [f"  {d.file} [{d.where}]: {d.this!r} here, {d.other!r} there" for d in texts[:limit]]
    largest = c.largest()
    if largest is None:
        lines.append("Numbers: identical.")
    else:
        over = c.numbers_over()
        beyond = [d for d in c.of("number") if d.beyond_spread]
        lines.append(f"Numbers: {len(c.of('number'))} differ; the largest by {largest.delta:.4g} ({largest.file} "
                     f"[{largest.where}]: {largest.this} here, {largest.other} there); {len(over)} by more than the "
                     f"tolerance {c.tolerance:g}; {len(beyond)} means moved by more than their two spreads together.")
        lines += [f"  {d.delta:10.4g}  {d.file} [{d.where}]: {d.this} here, {d.other} there"
                  + (" (beyond the spread)" if d.beyond_spread else "") for d in over[:limit]]
        if len(over) > limit:
            lines.append(f"  ... and {len(over) - limit} more (--limit N)")
    measured = c.of("measured")
    if measured:
        lines.append(f"Time and memory, this machine's own (not compared): {len(measured)} numbers differ.")
    lines.append("Same book within the tolerance." if c.same else "The books differ (above).")
    return "\n".join(lines)


def is_revision(name: str) -> bool:
    done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], capture_output=True)
    return done.returncode == 0


def compare(other: str, this: str = ".", tolerance: float = 0.0, limit: int = 20, json_out: str | None = None,
            log=print) -> bool:
    """`zeroflow compare`: OTHER a folder or a git revision; prints the report and returns whether the books agree."""
    this_results = results_of(Path(this))
    with tempfile.TemporaryDirectory(prefix="zeroflow-compare-") as scratch:
        if Path(other).exists():
            other_results = results_of(Path(other))
            mine, theirs = Path(this) / "params.yaml", other_results.parent / "params.yaml"
            params = params_differences(mine, theirs) if mine.is_file() and theirs.is_file() else None
        elif is_revision(other):
            log(dvc_diffs(other) + "\n")  # its params and metrics, as DVC reads them from the revision
            other_results, params = fetch_revision(other, Path(scratch)), None
        else:
            raise FileNotFoundError(f"{other}: neither a folder nor a git revision of this repository")
        comparison = compare_results(this_results, other_results, tolerance)
    log(report(comparison, params, limit))
    if json_out:
        Path(json_out).write_text(json.dumps({"this": str(this), "other": str(other), **comparison.summary(),
                                              "params": [list(p) for p in params or []]}, indent=2, default=str) + "\n")
    return comparison.same


# ------------------------------------------------------------------------ the two-kernel build, recorded
KERNELS = "kernels.json"  # in book/: the last `make kernels-check`, read by the Reproducibility page


def record_kernels(native: str, summaries: dict[str, Path], out: Path) -> dict:
    """book/kernels.json from `make kernels-check`: each kernel set's comparison (its --json summary) against the
    default kernels' build, with what was built and where."""
    import platform

    import torch

    against = {kernel.upper(): json.loads(Path(path).read_text()) for kernel, path in summaries.items()}
    # the commit the builds were made from: the one checked out in the reference build's clone (`this` of each
    # comparison), which the checkout recording them may have moved past
    built = next((Path(row["this"]) for row in against.values() if row.get("this") and Path(row["this"]).is_dir()),
                 Path("."))
    commit = subprocess.run(["git", "-C", str(built), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    for row in against.values():  # the scratch folders' paths: this machine's, no part of the record
        row.pop("this", None), row.pop("other", None)
    record = {"grid": "tests/ci-params.yaml", "commit": commit, "torch": torch.__version__,
              "machine": platform.machine(), "default_kernels": native,
              "against": against}
    Path(out).write_text(json.dumps(record, indent=2) + "\n")
    return record


def kernels_section(path: Path) -> str:
    """The Reproducibility page's account of the last `make kernels-check`: per kernel set, how many numbers and
    verdicts moved against the default kernels' build and by how much."""
    if not Path(path).is_file():
        return "Not measured in this checkout (`make kernels-check` writes `book/kernels.json`)."
    record = json.loads(Path(path).read_text())
    rows = []
    for kernel, row in record["against"].items():
        largest = row["largest"]
        rows.append(f"| {record['default_kernels']} → {kernel} | {row['numbers_differing']} of {row['numbers']} | "
                    + (f"{largest['delta']:.3g} ({largest['file']}, {largest['where']}) | " if largest else "0 | ")
                    + f"{row['means_beyond_spread']} | "
                    + (f"{row['texts_differing']}: " + "; ".join(f"{d['file']} [{d['where']}]"
                                                                 for d in row['text_differences'][:5])
                       if row["texts_differing"] else "none") + " |")
    return ("| kernels | numbers that differ | largest difference | means moved beyond their spread | verdicts, "
            "statuses and statements that differ |\n|---|---|---|---|---|\n" + "\n".join(rows)
            + f"\n\nMeasured on the tiny grid of `{record['grid']}` (commit `{record['commit']}`, torch "
              f"{record['torch']}, {record['machine']}) by `make kernels-check`.")
