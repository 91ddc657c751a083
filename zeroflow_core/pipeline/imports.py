"""Which files of zeroflow_core a piece of code imports, read from the source (nothing is imported).

Used twice: the executor fingerprints the files a cell's run imports (`run_code`), and a test checks
that every stage of dvc.yaml depends on exactly the files its command imports, and on the data files those
modules read (`data_files`). The reading is
whole-module: an import anywhere in a module, in a function too, counts, so a module's closure may be
a little larger than what one call needs, never smaller.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
NAME = PACKAGE.name


def module_file(module: str, root: Path = PACKAGE) -> Path | None:
    """The file of `zeroflow_core.a.b` (a module or a package's __init__), or None if there is none."""
    parts = module.split(".")[1:]
    path = root.joinpath(*parts)
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(file: Path, root: Path = PACKAGE) -> str:
    parts = file.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((NAME, *parts))


def imports_in(tree: ast.AST, file: Path, root: Path = PACKAGE) -> set[Path]:
    """The package files that the import statements anywhere in `tree` (the source of `file`) name."""
    package = module_name(file, root) if file.name == "__init__.py" else module_name(file, root).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from .scenario import X` inside zeroflow_core.data
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from zeroflow_core import report` names a module; `from zeroflow_core.x import f` a name in x
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == NAME or name.startswith(NAME + "."):
                file = module_file(name, root)
                if file is not None:
                    found.add(file)
    return found


def closure(files, root: Path = PACKAGE) -> set[Path]:
    """`files` and everything they import, transitively, with the __init__.py of every package on the way
    (importing `zeroflow_core.optim.sgd` runs zeroflow_core/__init__.py and optim/__init__.py first)."""
    seen, todo = set(), list(files)
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        todo.extend(imports_in(ast.parse(file.read_text()), file, root))
        for parent in file.relative_to(root).parents:
            init = root / parent / "__init__.py"
            if init.is_file():
                todo.append(init)
    return seen


def function_closure(file: Path, function: str, root: Path = PACKAGE) -> set[Path]:
    """What calling `function` of `file` imports: its module's top-level imports and its own, transitively."""
    tree = ast.parse(file.read_text())
    top = ast.Module(body=[node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))],
                     type_ignores=[])
    body = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function)
    own = {file} | {root / parent / "__init__.py" for parent in file.relative_to(root).parents}
    return closure(imports_in(top, file, root) | imports_in(body, file, root), root) | {f for f in own if f.is_file()}


def run_code(root: Path = PACKAGE) -> list[Path]:
    """The files that decide a cell's results: what the executor's run of a cell imports."""
    return sorted(function_closure(root / "pipeline" / "executor.py", "run_cell", root))



def data_files(files) -> set[Path]:
    """The data files that the given modules read, as each module names them: a module-level Path constant whose
    name ends in _FILE (config.PROFILES_FILE, pages.PAGES_FILE). The modules are imported to read them."""
    import importlib

    found = set()
    for file in files:
        module = importlib.import_module(module_name(Path(file)))
        found |= {value.resolve() for name, value in vars(module).items()
                  if name.endswith("_FILE") and isinstance(value, Path) and value.is_file()}
    return found
