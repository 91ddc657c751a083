"""`zeroflow book`: the executed notebooks of results/ and the pages of book/ → one more version under site/.

book/ is a DVC dependency, so nothing is written into it: sources are staged in build/book-src/ (stamped,
reproducibility page filled in, the table of contents derived from book/pages.yaml), Jupyter Book renders them
into build/book-html/ without executing anything, and the HTML is moved into site/versions/<version-id>/.
Earlier versions stay; site/index.html lists them all and site/latest/ is a copy of the newest. Each version also
holds the tables and statements its pages were made from (results/<page>/*.csv, statements.md) and its params.yaml,
so that `zeroflow compare` can check a rebuild against a published version.

A version is named by its content: the hash of the staged sources without their build date and version id (and of
the executed notebooks' cells, not their execution times). A build whose content equals an earlier version's reuses
that version (site/latest/ shows it again) instead of adding a copy; `zeroflow book --prune N` keeps the N newest.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import yaml

from zeroflow_core.book.compare import KERNELS, book_files, kernels_section
from zeroflow_core.book.pages import BOOK, DOWNLOADS, NOTEBOOKS, RESULTS_DIR
from zeroflow_core.book.params_reference import reference
from zeroflow_core.io import file_sha256, write_atomically, write_yaml
from zeroflow_core.pipeline.cells import grid_cells, run_folder, sweep_cells
from zeroflow_core.pipeline.provenance import REPO_ROOT, provenance
from zeroflow_core.run.bench import EFFICIENCY_DIR
from zeroflow_core.run.timing import read_timing

STAMP_FILE = "zeroflow-version.json"
PARAMS_REFERENCE = "{{ params_reference }}"
EXTRA = "_extra"  # staged files Sphinx copies as they are into the HTML's root (book/_config.yml: html_extra_path)
# the stamp links back to the list of versions; pages sit two folders below site/ (versions/<id>/)
INDEX_LINK = 'href="../../index.html"'
ENVIRONMENT_PACKAGES = ("torch", "timm", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib", "seaborn",
                        "papermill", "nbformat", "jupyter-book", "sphinx", "myst-nb", "dvc")


def build_book(params: dict, params_path="params.yaml", *, root=None, book_dir=None, results_dir=None,
               build_dir=None, site_dir=None, now: dt.datetime | None = None) -> Path:
    """Build one new version of the book and return the path of its index.html."""
    root = Path(root).resolve() if root is not None else Path.cwd().resolve()
    book_dir = Path(book_dir) if book_dir is not None else root / "book"
    results_dir = Path(results_dir) if results_dir is not None else root / RESULTS_DIR
    build_dir = Path(build_dir) if build_dir is not None else root / "build"
    site_dir = Path(site_dir) if site_dir is not None else root / "site"
    params_path = Path(params_path) if Path(params_path).is_absolute() else root / params_path

    notebooks = {}
    for name in NOTEBOOKS:
        path = results_dir / name / f"{name}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no executed notebook; run `dvc repro notebook@{name}` "
                                    f"(or `zeroflow notebook {name}`) first")
        notebooks[name] = path
    pages = [BOOK.root, *BOOK.texts]
    for required in ["_config.yml", *(f"{page}.md" for page in pages)]:
        if not (book_dir / required).is_file():
            raise FileNotFoundError(f"{book_dir / required}: the book's sources are incomplete")

    source = build_dir / "book-src"
    output = build_dir / "book-html"
    for stale in (source, output):
        if stale.exists():
            shutil.rmtree(stale)
    # stage once without the build's date and id: what the content hash covers
    info = _version_info(params, params_path, now)
    _stage(book_dir, notebooks, source, {**info, "version_id": "", "built": ""}, params, params_path, root,
           results_dir)
    info["version_id"] = f"{info['version_id']}-{content_hash(source)[:12]}"
    earlier = site_dir / "versions" / info["version_id"]
    if (earlier / STAMP_FILE).is_file():  # this content was built before: show that version again
        _set_latest(site_dir, earlier)
        return earlier / "index.html"
    shutil.rmtree(source)
    _stage(book_dir, notebooks, source, info, params, params_path, root, results_dir)
    html_dir = _jupyter_book(source, output, build_dir / "book-build.log")
    return _publish(html_dir, site_dir, info, results_dir, params_path)


def content_hash(source: Path) -> str:
    """sha256 of a staged book: every file's path and bytes, and of a notebook its cells' sources and outputs only
    (papermill's metadata holds execution times, which are no part of what the book shows)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(source).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(source)).encode() + b"\0")
        if path.suffix == ".ipynb":
            cells = [[cell.cell_type, cell.source, cell.get("outputs", [])]
                     for cell in nbformat.read(path, as_version=4).cells]
            digest.update(json.dumps(cells, sort_keys=True).encode())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- stamp
def _version_info(params: dict, params_path: Path, now) -> dict:
    """The stamp of a build; its version_id is completed with the content hash (build_book)."""
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    origin = provenance(params_path)
    version_id = f"v{origin.version}-{origin.commit}{'-dirty' if origin.dirty else ''}-{origin.params_hash}"
    grid = params["grid"]
    return {"version_id": version_id, "version": origin.version, "commit": origin.commit,
            "commit_full": origin.commit_full, "dirty": origin.dirty, "params_hash": origin.params_hash,
            "profile": params["profile"],
            "built": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "datasets": list(grid["datasets"]),
            "methods": list(grid["methods"]), "optimizers": list(grid["optimizers"]), "seeds": list(grid["seeds"])}


def _stamp_html(info: dict) -> str:
    commit = info["commit"] + (" (with local edits)" if info["dirty"] else "")
    return (f'<div class="zeroflow-stamp">Profile <b>{html.escape(info["profile"])}</b> · ZeroFlow companion '
            f'v{info["version"]} · commit <code>{html.escape(commit)}</code> · params <code>{info["params_hash"]}'
            f'</code> · built {info["built"].replace("T", " ").replace("Z", " UTC")} · version '
            f'<code>{info["version_id"]}</code> · <a {INDEX_LINK}>all versions</a></div>\n')


def _after_title(text: str, insert: str) -> str:
    """Put the stamp right under the page's first heading, so the navigation title stays the heading."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("# "):
            return "".join(lines[: i + 1]) + "\n" + insert + "\n" + "".join(lines[i + 1:])
    return insert + "\n" + text


# ------------------------------------------------------------------------------------------- staging
def _stage(book_dir: Path, notebooks: dict, source: Path, info: dict, params: dict, params_path: Path,
           root: Path, results_dir: Path) -> None:
    shutil.copytree(book_dir, source, ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints"))
    write_yaml(source / "_toc.yml", BOOK.toc())
    _stage_downloads(source, notebooks, results_dir, root / "reference")
    stamp = _stamp_html(info)
    template = source / "reproducibility.md"
    if template.is_file():
        values = _reproducibility(info, params, params_path, root, results_dir, notebooks)
        values["rebuild_differences"] = kernels_section(book_dir / KERNELS)
        template.write_text(_fill(template.read_text(), values))
    for page in source.glob("*.md"):  # the guide's params.yaml reference, from the declarations that check it
        if PARAMS_REFERENCE in page.read_text():
            dvc_file = root / "dvc.yaml" if (root / "dvc.yaml").is_file() else REPO_ROOT / "dvc.yaml"
            page.write_text(page.read_text().replace(PARAMS_REFERENCE, reference(dvc_file)))
    for page in source.glob("*.md"):
        page.write_text(_after_title(page.read_text(), stamp))
    for name, path in notebooks.items():
        nb = nbformat.read(path, as_version=4)
        executed = nb.metadata.get("papermill", {}).get("parameters", {})
        note = stamp
        if executed.get("params_hash") not in (None, info["params_hash"]):
            note += (f'<div class="zeroflow-stamp">⚠ This notebook was executed with params '
                     f'<code>{html.escape(str(executed["params_hash"]))}</code>, not the params.yaml of this '
                     f'build: rerun <code>dvc repro</code>.</div>\n')
        for cell in nb.cells:
            tags = cell.metadata.setdefault("tags", [])
            # the defaults of the parameters cell are not what ran; the injected cell is, kept folded
            if "parameters" in tags:
                tags.append("remove-cell")
            elif "injected-parameters" in tags:
                tags.append("hide-cell")
            elif cell.cell_type == "code":
                tags.append("hide-input")
        first = nb.cells[0] if nb.cells and nb.cells[0].cell_type == "markdown" else None
        if first is not None:
            first.source = _after_title(first.source, note)
        else:
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
        nbformat.write(nb, source / f"{name}.ipynb")


def _stage_downloads(source: Path, notebooks: dict, results_dir: Path, reference_dir: Path) -> None:
    """What each page's provenance lines link to, shipped with the site (Sphinx copies the staged _extra/ into the
    HTML's root, `html_extra_path`): data/<page>/ holds everything the page wrote (its CSVs, figures and executed
    notebook), data/reference/ the paper's numbers that pages read."""
    downloads = source / EXTRA / DOWNLOADS
    for name in notebooks:
        shutil.copytree(results_dir / name, downloads / name)
    (downloads / "reference").mkdir(parents=True)
    for path in sorted(reference_dir.glob("*.csv")):
        shutil.copy2(path, downloads / "reference" / path.name)


def _fill(template: str, values: dict) -> str:
    for key, value in values.items():
        template = template.replace("{{ " + key + " }}", str(value))
    return template



def _lock_hash(path: Path) -> str:
    """sha256 of dvc.lock without the `book` stage: that entry records the previous build's site/, so with it no
    two builds of the same results could ever show the same page (and share a version)."""
    if not path.is_file():
        return "absent"
    lock = yaml.safe_load(path.read_text()) or {}
    lock.get("stages", {}).pop("book", None)
    return f"`{hashlib.sha256(yaml.safe_dump(lock, sort_keys=True).encode()).hexdigest()}`"


def _hash_or_absent(path: Path) -> str:
    return f"`{file_sha256(path)}`" if path.is_file() else "absent"


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _environment() -> str:
    rows = [("python", sys.version.split()[0]), ("platform", platform.platform()),
            ("machine", platform.machine())]
    rows += [(name, _package_version(name)) for name in ENVIRONMENT_PACKAGES]
    try:
        import torch

        cuda = (f"yes: {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}" if torch.cuda.is_available()
                else f"no (torch built {'with CUDA ' + torch.version.cuda if torch.version.cuda else 'for CPU'})")
    except Exception as error:  # the book must build even where torch is broken; say so instead
        cuda = f"unknown ({error})"
    rows.append(("CUDA at build time", cuda))
    return ("The machine that built the book (the runs name their own device below).\n\n"
            + _md_table(["", "version"], rows))


def _md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _reproducibility(info: dict, params: dict, params_path: Path, root: Path, results_dir: Path,
                     notebooks: dict) -> dict:
    files = [run_folder(*cell) / "metrics.json" for cell in grid_cells(params)]
    files += [cell.out / "metrics.json" for name in params["ablations"]["sweeps"] for cell in sweep_cells(params, name)]
    files += [EFFICIENCY_DIR / f"{model}.json" for model in params["efficiency"]["models"]]
    runs = []
    for relative in files:
        path = root / relative
        if path.is_file():
            try:
                metrics = json.loads(path.read_text())
            except json.JSONDecodeError:
                metrics = {}
            if isinstance(metrics, list):  # efficiency rows: one device for all
                metrics = {"profile": "—", "device": metrics[0].get("device", "?") if metrics else "?"}
            else:  # a run names its device in its timing file (metrics.json holds only what the run computed)
                metrics = {**metrics, "device": read_timing(path.parent).get("device", "not recorded here")}
            runs.append((f"`{relative}`", metrics.get("profile", "?"), metrics.get("device", "?"),
                         f"`{file_sha256(path)[:16]}`"))
        else:
            runs.append((f"`{relative}`", "—", "—", "missing"))
    results = []
    for name in notebooks:
        for path in sorted((results_dir / name).iterdir()):
            if path.is_file():
                results.append((f"`results/{name}/{path.name}`", path.stat().st_size, f"`{file_sha256(path)[:16]}`"))
    state = [(f"`{name}`", _hash_or_absent(root / name)) for name in ("dvc.yaml", "reference/table1_accuracy.csv")]
    state.insert(1, ("`dvc.lock` (less the book stage's own entry)", _lock_hash(root / "dvc.lock")))
    state += [(f"`notebooks/{name}.ipynb`", _hash_or_absent(root / "notebooks" / f"{name}.ipynb"))
              for name in notebooks]
    lock_note = ("" if (root / "dvc.lock").is_file() else
                 "\n\nNo `dvc.lock`: these results were not produced by `dvc repro` in this checkout.")
    return {
        "version_id": info["version_id"], "build_date": info["built"].replace("T", " ").replace("Z", " UTC"),
        "code_version": f"v{info['version']}" + (" with local edits" if info["dirty"] else ""),
        "git_commit": info["commit"], "git_commit_full": info["commit_full"], "profile": info["profile"],
        "environment": _environment(), "params_sha256": file_sha256(params_path), "params_hash": info["params_hash"],
        "params_yaml": params_path.read_text().rstrip(),
        "pipeline_state": _md_table(["file", "sha256"], state) + lock_note,
        "runs_table": _md_table(["metrics file", "profile", "device", "sha256 (first 16)"], runs),
        "results_table": _md_table(["file", "bytes", "sha256 (first 16)"], results),
    }


# ------------------------------------------------------------------------------------------ building
def _jupyter_book(source: Path, output: Path, log: Path) -> Path:
    command = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
               "build", str(source), "--path-output", str(output), "--builder", "html"]
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(result.stdout + result.stderr)
    html_dir = output / "_build" / "html"
    if result.returncode != 0 or not (html_dir / "index.html").is_file():
        tail = (result.stdout + result.stderr)[-3000:]
        raise RuntimeError(f"jupyter-book build failed (exit {result.returncode}); full log in {log}:\n{tail}")
    return html_dir


def _publish(html_dir: Path, site_dir: Path, info: dict, results_dir: Path, params_path: Path) -> Path:
    versions = site_dir / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    for partial in list(versions.glob(".*.partial")) + list(site_dir.glob(".latest.*")):
        shutil.rmtree(partial)  # left by a build that was killed half-way
    staged = versions / f".{info['version_id']}.partial"
    shutil.copytree(html_dir, staged)
    # what `zeroflow compare` reads of a published version (the Reproducibility page lists each file's sha256)
    for name, path in book_files(results_dir).items():
        (staged / RESULTS_DIR / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, staged / RESULTS_DIR / name)
    shutil.copy2(params_path, staged / "params.yaml")
    (staged / STAMP_FILE).write_text(json.dumps(info, indent=2) + "\n")
    final = versions / info["version_id"]
    os.replace(staged, final)
    _set_latest(site_dir, final)
    return final / "index.html"


def _set_latest(site_dir: Path, final: Path) -> None:
    """site/latest/: a copy of the version `final`; then the index."""
    latest = site_dir / ".latest.partial"
    shutil.copytree(final, latest)
    for page in latest.rglob("*.html"):  # one folder shallower than versions/<id>/
        text = page.read_text()
        if INDEX_LINK in text:
            page.write_text(text.replace(INDEX_LINK, 'href="../index.html"'))
    current = site_dir / "latest"
    if current.exists():
        old = site_dir / ".latest.old"
        os.replace(current, old)
        os.replace(latest, current)
        shutil.rmtree(old)
    else:
        os.replace(latest, current)
    write_index(site_dir)


def list_versions(site_dir) -> list[dict]:
    """Every version under site/versions/, newest first (by build time, then id)."""
    found = []
    for path in (Path(site_dir) / "versions").glob(f"*/{STAMP_FILE}"):
        try:
            info = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        info["version_id"] = path.parent.name
        found.append(info)
    return sorted(found, key=lambda i: (i.get("built", ""), i["version_id"]), reverse=True)


def latest_version(site_dir) -> str | None:
    """The id of the version site/latest/ shows (the last build, which may have reused an older version)."""
    try:
        return json.loads((Path(site_dir) / "latest" / STAMP_FILE).read_text())["version_id"]
    except (OSError, ValueError, KeyError):
        return None


def prune_versions(site_dir, keep: int) -> list[str]:
    """Remove every version but the `keep` newest and the one site/latest/ shows; rewrite the index. Returns the
    ids removed."""
    if keep < 1:
        raise ValueError(f"--prune must keep at least 1 version, got {keep}")
    site_dir = Path(site_dir)
    versions = [info["version_id"] for info in list_versions(site_dir)]
    kept = set(versions[:keep]) | {latest_version(site_dir)}
    removed = [version for version in versions if version not in kept]
    for version in removed:
        shutil.rmtree(site_dir / "versions" / version)
    write_index(site_dir)
    return removed


def write_index(site_dir) -> Path:
    site_dir = Path(site_dir)
    versions = list_versions(site_dir)
    shown = latest_version(site_dir)
    rows = []
    for info in versions:
        vid = html.escape(info["version_id"])
        badge = ' <span class="latest">latest</span>' if info["version_id"] == shown else ""
        commit = html.escape(info.get("commit", "?")) + (" +edits" if info.get("dirty") else "")
        rows.append(
            f'<tr><td><a href="versions/{vid}/index.html">{vid}</a>{badge}</td>'
            f'<td>{html.escape(info.get("built", "?").replace("T", " ").replace("Z", " UTC"))}</td>'
            f'<td>{html.escape(info.get("profile", "?"))}</td><td>v{html.escape(info.get("version", "?"))}</td>'
            f"<td><code>{commit}</code></td><td><code>{html.escape(info.get('params_hash', '?'))}</code></td>"
            f"<td>{html.escape(', '.join(info.get('datasets', [])))}</td>"
            f"<td>{len(info.get('methods', []))} × {len(info.get('optimizers', []))} × "
            f"{len(info.get('seeds', []))} seeds</td></tr>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ZeroFlow companion: all versions of the book</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9rem; }}
th, td {{ text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid #ddd; }}
.latest {{ background: #2a7; color: white; border-radius: 3px; padding: 0 0.3rem; font-size: 0.75rem; }}
</style></head><body>
<h1>ZeroFlow companion</h1>
<p>Every build of the book, newest first. <a href="latest/index.html">Open the latest</a>.
Each version is stamped with the profile, code commit and params.yaml hash that produced it.</p>
<table><thead><tr><th>version</th><th>built</th><th>profile</th><th>code</th><th>commit</th><th>params</th>
<th>datasets</th><th>grid (methods × optimizers × seeds)</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    index = site_dir / "index.html"
    write_atomically(index, lambda tmp: tmp.write_text(page))
    return index
