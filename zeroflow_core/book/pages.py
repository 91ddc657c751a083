"""The book's pages as records (book/pages.yaml), and what papermill gives each notebook page.

A notebook page declares the results it draws (`draws`). That says its kind (KINDS): the grid, Table 2's
measurements, one sweep of params.yaml, every switch, or the toy problem; the kind says which section of
params.yaml it takes, what it is compared with (`beside`), which parameters papermill gives its notebook, and
which inputs must exist before a kernel starts. dvc.yaml loads the same file, so a page is one record plus its
notebook: the stage, the table of contents and the parameters follow from it (report.execute_notebook runs it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zeroflow_core.io import load_yaml
from zeroflow_core.pipeline.cells import ABLATIONS_DIR, RUNS_DIR, VARIANT, grid_rows
from zeroflow_core.pipeline.provenance import REPO_ROOT, provenance, section_hash
from zeroflow_core.run.bench import EFFICIENCY_DIR
from zeroflow_core.settings import ConfigError

PAGES_FILE = REPO_ROOT / "book" / "pages.yaml"
RESULTS_DIR = Path("results")
# where the built book keeps each page's CSVs and executed notebook (data/<page>/) and the paper's (data/reference/)
DOWNLOADS = "data"
ALL_RUNS = Path("runs")  # what the Claims page draws: the grid, Table 2's measurements and the sweeps
LANDSCAPE_CODE = "zeroflow_core/book/landscape.py"
# kind → (the params.yaml section it takes, what it is drawn beside)
KINDS = {"grid": ("grid", str(RUNS_DIR)), "efficiency": ("efficiency", str(RUNS_DIR)),
         "sweep": ("ablations", str(RUNS_DIR)), "switches": ("ablations", str(RUNS_DIR)),
         "landscape": ("landscape", LANDSCAPE_CODE), "claims": ("grid", str(RUNS_DIR))}
NOTEBOOK_FIELDS = ("part", "draws", "beside", "section")
PLACES = ("first", "last")


@dataclass(frozen=True)
class Page:
    name: str
    part: str
    draws: str
    beside: str
    section: str

    @property
    def kind(self) -> str:
        return kind_of(self.draws)[0]

    @property
    def sweep(self) -> str | None:
        """The sweep of params.yaml it draws (ablations.sweeps), for a sweep page."""
        return kind_of(self.draws)[1]


def kind_of(draws: str) -> tuple[str, str | None]:
    """(kind, sweep) of a page from the results it draws."""
    fixed = {str(RUNS_DIR): "grid", str(EFFICIENCY_DIR): "efficiency", str(ABLATIONS_DIR): "switches",
             LANDSCAPE_CODE: "landscape", str(ALL_RUNS): "claims"}
    if draws in fixed:
        return fixed[draws], None
    parent, _, sweep = draws.rpartition("/")
    if parent == str(ABLATIONS_DIR) and sweep:
        return "sweep", sweep
    raise ConfigError(f"{PAGES_FILE.name}: a page draws {draws!r}, which is none of {', '.join(fixed)} or "
                      f"{ABLATIONS_DIR}/<sweep>")


@dataclass(frozen=True)
class Book:
    root: str
    notebooks: dict  # name → Page, in the book's order
    texts: dict      # name → (part, place)

    def toc(self) -> dict:
        """Jupyter Book's _toc.yml: the root, then each part (in order of first appearance) with its texts
        placed first, its notebooks in order, and its texts placed last."""
        parts = list(dict.fromkeys([page.part for page in self.notebooks.values()]
                                   + [part for part, _ in self.texts.values()]))

        def texts(part, place):
            return [name for name, (p, where) in self.texts.items() if p == part and where == place]

        return {"format": "jb-book", "root": self.root, "parts": [
            {"caption": part, "chapters": [{"file": name} for name in
                                           texts(part, "first")
                                           + [n for n, page in self.notebooks.items() if page.part == part]
                                           + texts(part, "last")]}
            for part in parts]}


def load_pages(path: Path = PAGES_FILE) -> Book:
    """The records of book/pages.yaml, each field checked (a page's section and `beside` follow from its kind)."""
    data = load_yaml(Path(path).read_text())
    where = Path(path).name
    if set(data) != {"root", "notebooks", "texts"}:
        raise ConfigError(f"{where}: expected root, notebooks and texts, got {sorted(data)}")
    notebooks = {}
    for name, record in data["notebooks"].items():
        if not isinstance(record, dict) or set(record) != set(NOTEBOOK_FIELDS):
            raise ConfigError(f"{where}: notebook page {name!r} must have exactly {', '.join(NOTEBOOK_FIELDS)}")
        page = Page(name, **record)
        section, beside = KINDS[page.kind]
        if (page.section, page.beside) != (section, beside):
            raise ConfigError(f"{where}: page {name!r} draws {page.draws} ({page.kind}): its section is {section!r} "
                              f"and it is drawn beside {beside!r}, got {page.section!r} and {page.beside!r}")
        notebooks[name] = page
    texts = {}
    for name, record in data["texts"].items():
        if not isinstance(record, dict) or set(record) != {"part", "place"} or record["place"] not in PLACES:
            raise ConfigError(f"{where}: text page {name!r} must have a part and a place ({', '.join(PLACES)})")
        texts[name] = (record["part"], record["place"])
    return Book(data["root"], notebooks, texts)


BOOK = load_pages()
NOTEBOOKS = tuple(BOOK.notebooks)


def check_pages_against(params: dict, where: str = "params.yaml") -> None:
    """Every sweep a page draws is declared in params.yaml."""
    for page in BOOK.notebooks.values():
        if page.kind == "sweep" and page.sweep not in params["ablations"]["sweeps"]:
            raise ConfigError(f"{where}: the page {page.name} draws the sweep {page.sweep!r} ({PAGES_FILE.name}): "
                              f"declare it under 'ablations.sweeps'")


def switches(params: dict) -> dict:
    """The sweeps that name their `official` value: the switches of the "official code vs ours" page."""
    return {name: sweep for name, sweep in params["ablations"]["sweeps"].items() if "official" in sweep}


# ------------------------------------------------------------------------------------------ parameters
def _grid(params: dict) -> dict:
    grid = params["grid"]
    return dict(baseline=grid["baseline"], methods=grid["methods"], optimizers=grid_rows(grid),
                datasets=grid["datasets"], seeds=grid["seeds"], runs_dir=str(RUNS_DIR), reference_dir="reference")


def _efficiency(params: dict, page: Page) -> dict:
    section = params["efficiency"]
    return dict(_grid(params), efficiency_dir=str(EFFICIENCY_DIR), models=list(section["models"]),
                attention=section["attention"])


def _sweep(params: dict, page: Page) -> dict:
    section, sweep = params["ablations"], params["ablations"]["sweeps"][page.sweep]
    return dict(ablation_dir=page.draws, method=section["method"], dataset=section["dataset"], seeds=section["seeds"],
                optimizers=sweep["optimizers"], values=sweep["values"], hyper=sweep["hyper"],
                step_matched=sweep.get("step_matched", False), run_settings=section["train"],
                sweep_optimizers=section["optimizers"], reference_dir="reference",
                **({"variants": sweep["variants"]} if sweep["hyper"] == VARIANT else {}))


def _switches(params: dict, page: Page) -> dict:
    section, grid = params["ablations"], params["grid"]
    return dict(ablation_dir=page.draws, method=section["method"], dataset=section["dataset"], seeds=section["seeds"],
                switches=switches(params), run_settings=section["train"], sweep_optimizers=section["optimizers"],
                runs_dir=str(RUNS_DIR), grid_methods=grid["methods"], grid_optimizers=grid["optimizers"],
                grid_datasets=grid["datasets"], grid_seeds=grid["seeds"])


def _claims(params: dict, page: Page) -> dict:
    """The Claims page reads every result: the grid, Table 2's measurements and the sweeps the claims rest on."""
    section = params["ablations"]
    sweeps = {name: section["sweeps"][name] for name in CLAIM_SWEEPS if name in section["sweeps"]}
    return dict(_efficiency(params, page), ablations_dir=str(ABLATIONS_DIR), sweep_method=section["method"],
                sweep_dataset=section["dataset"], sweep_seeds=section["seeds"], sweeps=sweeps)


def _landscape(params: dict, page: Page) -> dict:
    return dict(steps=params["landscape"]["steps"], seeds=params["landscape"]["seeds"])


PARAMETERS = {"grid": lambda params, page: _grid(params), "efficiency": _efficiency, "sweep": _sweep,
              "switches": _switches, "landscape": _landscape, "claims": _claims}
# the sweeps the Claims page judges claims on (Figure 5, Tables 3, 4 and 5), when params.yaml declares them
CLAIM_SWEEPS = ("query_budget", "history", "sparsity", "enhancements")


def notebook_parameters(params: dict, name: str, params_path: str | Path = "params.yaml") -> dict:
    """What papermill gives notebook `name`: where to read and write, the settings it shows, and its provenance."""
    page = BOOK.notebooks[name]
    origin = provenance(params_path)
    return {"profile": params["profile"], "out_dir": str(RESULTS_DIR / name), "code_version": origin.code_version,
            "params_hash": origin.params_hash, "params_section": page.section,
            "section_hash": section_hash(params, page.section), **PARAMETERS[page.kind](params, page)}
