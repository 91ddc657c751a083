"""Every stage of dvc.yaml depends on exactly the zeroflow_core files its command imports, and on the data
files those modules read (profiles.yaml).

A stage whose code is missing from its deps stays "up to date" in `dvc status` after an edit that
changes its results; a file in its deps that it never imports reruns it for nothing. The imports are
read from the source (zeroflow_core.pipeline.imports): the sub-command's handler in cli.py, transitively, plus
the code cells of the notebook that `zeroflow notebook NAME` executes. A data file that dvc.yaml itself loads
(its `vars`, e.g. book/pages.yaml) may be left out: DVC reruns the stages whose definition it changes.
"""
from __future__ import annotations

import ast
import json
import shlex
from pathlib import Path

import pytest
import yaml

from zeroflow_core.pipeline.imports import PACKAGE, closure, data_files, function_closure, imports_in, run_code

REPO = PACKAGE.parent


def command_code(argv: list[str]) -> set[Path]:
    """What the command line `zeroflow ...` imports."""
    from zeroflow_core.cli import build_parser

    assert argv[0] == "zeroflow", f"not a zeroflow command: {' '.join(argv)!r}"
    args = build_parser().parse_args(argv[1:])
    files = function_closure(PACKAGE / "cli.py", args.run.__name__)
    if args.command == "notebook":
        files |= notebook_code(REPO / "notebooks" / f"{args.name}.ipynb")
    return files


def notebook_code(path: Path) -> set[Path]:
    """The package files that the code cells of a notebook import (IPython magics skipped)."""
    found = set()
    for cell in json.loads(Path(path).read_text())["cells"]:
        if cell["cell_type"] == "code":
            lines = [line for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith(("%", "!"))]
            found |= imports_in(ast.parse("\n".join(lines)), PACKAGE / "notebook.py")
    return closure(found)


def stages():
    """Every stage of dvc.yaml, resolved (foreach and matrix expanded) by DVC itself."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        return [(stage.addressing, stage.cmd, [str(dep.def_path) for dep in stage.deps]) for stage in repo.index.stages]


def dvc_vars() -> set[str]:
    return set(yaml.safe_load((REPO / "dvc.yaml").read_text())["vars"])


def coverage_errors(command: str, deps: list[str]) -> list[str]:
    """What is wrong with a stage's code deps: a file its command imports (or a data file an imported module
    reads) that no dep covers, or a dep that covers nothing it needs."""
    code = command_code(shlex.split(command))
    read = {str(path.relative_to(REPO)) for path in data_files(code)}
    optional = read & dvc_vars()
    needed = {str(path.relative_to(REPO)) for path in code} | (read - optional)
    declared = [dep for dep in deps if dep == PACKAGE.name or dep.startswith(PACKAGE.name + "/") or dep in read]

    def covers(dep: str, file: str) -> bool:
        return file == dep or file.startswith(dep.rstrip("/") + "/")

    errors = [f"imports {file}, which no dep covers" for file in sorted(needed)
              if not any(covers(dep, file) for dep in declared)]
    errors += [f"depends on {dep}, which it does not import" for dep in declared
               if dep not in optional and not any(covers(dep, file) for file in needed)]
    return errors


STAGES = stages()


@pytest.mark.parametrize("name,command,deps", STAGES, ids=[name for name, _, _ in STAGES])
def test_a_stage_depends_on_exactly_the_code_its_command_imports(name, command, deps):
    errors = coverage_errors(command, deps)
    assert not errors, f"{name}: " + "; ".join(errors)


def test_removing_any_code_dep_of_a_stage_is_caught():
    name, command, deps = next(stage for stage in STAGES if stage[0].startswith("train@"))
    code_deps = [dep for dep in deps if dep.startswith(PACKAGE.name + "/")]
    assert len(code_deps) > 10
    for dep in code_deps:
        errors = coverage_errors(command, [d for d in deps if d != dep])
        assert errors and all("no dep covers" in error for error in errors), dep


def test_the_import_reader_follows_relative_imports_and_function_bodies(tmp_path):
    package = tmp_path / "zeroflow_core"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .leaf import x\n")
    (package / "sub" / "leaf.py").write_text("x = 1\n")
    (package / "lazy.py").write_text("y = 2\n")
    (package / "unused.py").write_text("z = 3\n")
    (package / "main.py").write_text("import os\n\ndef run():\n    from zeroflow_core import lazy\n"
                                     "    from zeroflow_core.sub import x\n\ndef other():\n"
                                     "    from zeroflow_core import unused\n")
    found = {path.relative_to(package).as_posix() for path in function_closure(package / "main.py", "run", package)}
    assert found == {"__init__.py", "main.py", "lazy.py", "sub/__init__.py", "sub/leaf.py"}


def test_a_cells_code_fingerprint_covers_what_its_run_imports():
    files = {path.relative_to(PACKAGE).as_posix() for path in run_code()}
    assert {"run/train.py", "methods/ease.py", "optim/zeroth_order.py", "data/generated.py", "models/vit.py"} <= files
    assert "cli.py" not in files and not any(file.startswith("book/") for file in files)


def test_no_module_of_the_package_imports_back_a_module_that_imports_it():
    """No import cycle, counting every import (in functions too): each module can be read after what it imports."""
    modules = sorted(PACKAGE.rglob("*.py"))
    graph = {file: imports_in(ast.parse(file.read_text()), file) - {file} for file in modules}
    order, state = [], {}

    def visit(file, path):
        if state.get(file) == "done":
            return
        assert state.get(file) != "open", "import cycle: " + " → ".join(
            str(f.relative_to(PACKAGE)) for f in path[path.index(file):] + [file])
        state[file] = "open"
        for imported in sorted(graph[file]):
            visit(imported, path + [file])
        state[file] = "done"
        order.append(file)

    for file in modules:
        visit(file, [])
    assert len(order) == len(modules)


def test_every_name_imported_from_the_package_exists():
    """Imports inside functions run only when the function does (a command line's handler, say): each one names
    something its module has."""
    import importlib

    sources = sorted(PACKAGE.rglob("*.py")) + sorted((REPO / "tests").glob("*.py"))
    missing = []
    for file in sources:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith(PACKAGE.name):
                module = importlib.import_module(node.module)
                missing += [f"{file.relative_to(REPO)}: {node.module}.{alias.name}" for alias in node.names
                            if not hasattr(module, alias.name)
                            and importlib.util.find_spec(f"{node.module}.{alias.name}") is None]
    assert not missing, missing
