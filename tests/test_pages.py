"""The book's pages are records (book/pages.yaml). dvc.yaml's notebook stages, the table of contents, the
notebooks and their parameter cells follow from them; these tests tie each of those to the records."""
from pathlib import Path

import nbformat
import pytest

from zeroflow_core.book.pages import BOOK, NOTEBOOKS, PAGES_FILE, check_pages_against, load_pages, notebook_parameters
from zeroflow_core.io import load_yaml
from zeroflow_core.settings import ConfigError

ROOT = Path(__file__).parents[1]


def _params():
    return load_yaml((ROOT / "params.yaml").read_text())


def test_dvc_yaml_runs_one_notebook_stage_per_record_with_its_inputs():
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        stages = {stage.addressing.partition("@")[2]: stage for stage in repo.index.stages
                  if stage.addressing.startswith("notebook@")}
    assert list(stages) == list(NOTEBOOKS)
    for name, page in BOOK.notebooks.items():
        stage = stages[name]
        deps = [str(dep.def_path) for dep in stage.deps]
        assert stage.cmd == f"zeroflow notebook {name}"
        assert {f"notebooks/{name}.ipynb", page.draws, page.beside, "reference"} <= set(deps), name
        params = {key for dep in stage.deps if hasattr(dep, "params") for key in dep.params}
        assert params == {"profile", page.section}, name
        assert [str(out.def_path) for out in stage.outs] == [f"results/{name}"]


def test_every_notebook_and_written_page_of_the_book_is_declared_once():
    assert {path.stem for path in (ROOT / "notebooks").glob("*.ipynb")} == set(BOOK.notebooks)
    assert {path.stem for path in (ROOT / "book").glob("*.md")} == {BOOK.root, *BOOK.texts}
    assert not (ROOT / "book" / "_toc.yml").exists()  # derived from the records when the book is built


def test_the_table_of_contents_lists_every_page_once_in_the_records_order():
    toc = BOOK.toc()
    chapters = [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]
    assert toc["root"] == "intro" and sorted(chapters) == sorted([*BOOK.notebooks, *BOOK.texts])
    parts = {part["caption"]: [chapter["file"] for chapter in part["chapters"]] for part in toc["parts"]}
    assert parts["Results"] == [name for name, page in BOOK.notebooks.items() if page.part == "Results"]
    assert parts["About these results"] == ["official-vs-paper", "official_vs_ours", "reproducibility", "learning-rates"]
    assert parts["Beyond the paper"] == ["where_training_goes", "cost"]


def test_every_notebook_declares_exactly_the_parameters_it_is_given():
    params = _params()
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name
        defaults = {}
        exec(code[0].source, {}, defaults)
        given = notebook_parameters(params, name, ROOT / "params.yaml")
        assert set(defaults) == set(given), name
        for key, value in given.items():
            # hashes and the code version are papermill's to give: a notebook's default is "unknown"
            if key not in ("code_version", "params_hash", "section_hash"):
                assert defaults[key] == value, (name, key)  # the defaults are the shipped params.yaml


def test_a_page_takes_the_parameters_of_what_it_draws():
    params = _params()
    assert notebook_parameters(params, "table_3", ROOT / "params.yaml")["hyper"] == "history"
    assert notebook_parameters(params, "figure_5", ROOT / "params.yaml")["values"] == {"zo-sgd": [1, 2, 4, 8], "zo-adam": [1, 4]}
    assert set(notebook_parameters(params, "official_vs_ours", ROOT / "params.yaml")["switches"]) == {
        name for name, sweep in params["ablations"]["sweeps"].items() if "official" in sweep}
    assert notebook_parameters(params, "figure_3", ROOT / "params.yaml")["steps"] == params["landscape"]["steps"]


@pytest.mark.parametrize("edit,message", [
    (lambda nb: nb["table_3"].update(section="grid"), "its section is 'ablations'"),
    (lambda nb: nb["table_1"].update(draws="runs/elsewhere"), "draws 'runs/elsewhere'"),
    (lambda nb: nb["figure_3"].update(beside="runs/train"), "drawn beside 'zeroflow_core/book/landscape.py'"),
    (lambda nb: nb["table_1"].pop("part"), "must have exactly part, draws, beside, section"),
])
def test_a_record_that_contradicts_what_it_draws_is_refused(tmp_path, edit, message):
    import yaml

    data = load_yaml(PAGES_FILE.read_text())
    edit(data["notebooks"])
    path = tmp_path / "pages.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_pages(path)


def test_a_page_that_draws_an_undeclared_sweep_is_refused():
    params = _params()
    del params["ablations"]["sweeps"]["history"]
    with pytest.raises(ConfigError, match="the page table_3 draws the sweep 'history'.*declare it under 'ablations.sweeps'"):
        check_pages_against(params)
