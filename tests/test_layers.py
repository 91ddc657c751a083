"""The package's three layers import only downwards, and the science core is usable on its own.

  core      optim/, methods/, models/, data/, run/, settings.py, io.py, __init__.py: imports only the core
  pipeline  pipeline/: imports the core and itself
  book      book/: imports the core, the pipeline and itself
  cli       cli.py: the command line, over all three

Every import counts, those inside functions too (zeroflow_core.pipeline.imports reads them from the source), and so
do the names the package's __init__ resolves on first use (its ENTRY_POINTS, which no import statement names).
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap

from zeroflow_core.pipeline.imports import PACKAGE, imports_in, module_file

ALLOWED = {"core": {"core"}, "pipeline": {"core", "pipeline"}, "book": {"core", "pipeline", "book"},
           "cli": {"core", "pipeline", "book", "cli"}}


def layer(file, root=PACKAGE) -> str:
    parts = file.relative_to(root).parts
    if parts == ("cli.py",):
        return "cli"
    return parts[0] if parts[0] in ("pipeline", "book") else "core"


def upward_imports(root=PACKAGE) -> list[str]:
    """'a.py (core) imports b.py (book)' for every import of a module from a layer its own may not import."""
    found = []
    for file in sorted(root.rglob("*.py")):
        for imported in sorted(imports_in(ast.parse(file.read_text()), file, root)):
            if layer(imported, root) not in ALLOWED[layer(file, root)]:
                found.append(f"{file.relative_to(root)} ({layer(file, root)}) imports "
                             f"{imported.relative_to(root)} ({layer(imported, root)})")
    return found


def test_no_module_imports_a_layer_above_its_own():
    assert not upward_imports(), "\n".join(upward_imports())


def test_the_layering_check_finds_an_upward_import_inside_a_function(tmp_path):
    package = tmp_path / "zeroflow_core"
    for folder in ("optim", "pipeline", "book"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "book" / "report.py").write_text("from zeroflow_core.pipeline import cells\n")
    (package / "pipeline" / "cells.py").write_text("from zeroflow_core.optim import sgd\n")
    (package / "optim" / "sgd.py").write_text("def step():\n    from zeroflow_core.book import report\n")
    assert upward_imports(package) == ["optim/sgd.py (core) imports book/__init__.py (book)",
                                       "optim/sgd.py (core) imports book/report.py (book)"]
    (package / "pipeline" / "cells.py").write_text("from zeroflow_core.book.report import table\n")
    assert "pipeline/cells.py (pipeline) imports book/report.py (book)" in upward_imports(package)


def test_the_packages_entry_points_are_names_of_the_science_core():
    import zeroflow_core

    for name, module in zeroflow_core.ENTRY_POINTS.items():
        file = module_file(module)
        assert file is not None and layer(file) == "core", f"{name} comes from {module}, outside the science core"
        assert getattr(zeroflow_core, name) is getattr(sys.modules[module], name)
    assert set(zeroflow_core.ENTRY_POINTS) <= set(dir(zeroflow_core))


def readme_example() -> str:
    """The README's Python block: the science core used on its own."""
    blocks = re.findall(r"```python\n(.*?)```", (PACKAGE.parent / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


REPORT = textwrap.dedent("""
    print(json.dumps({"modules": sorted(sys.modules), "methods": sorted(METHODS), "train": train.__module__,
                      "moved": weight.detach().tolist() != [1.0, -2.0]}))
""")


def test_the_science_core_imports_and_steps_without_the_pipeline_or_the_book():
    """The README's example, run in a fresh process: what `from zeroflow_core import METHODS, create_optimizer, train`
    loads, and that the step it takes moves the weight."""
    done = subprocess.run([sys.executable, "-c", "import json, sys\n" + readme_example() + REPORT], capture_output=True, text=True, check=True,
                          cwd=PACKAGE.parent)
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["moved"] and found["train"] == "zeroflow_core.run.train"
    assert {"ease", "aper", "simplecil"} <= set(found["methods"])
    loaded = set(found["modules"])
    assert "zeroflow_core.optim.zeroth_order" in loaded
    heavy = {"dvc", "papermill", "matplotlib", "seaborn", "pandas", "ray", "jupyter_book", "nbformat"}
    assert not {name.split(".")[0] for name in loaded} & heavy
    assert not [name for name in loaded if name.startswith(("zeroflow_core.pipeline", "zeroflow_core.book",
                                                             "zeroflow_core.cli"))]
