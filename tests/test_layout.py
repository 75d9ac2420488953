"""How the code is laid out: which modules may import which, no import cycle, and no
`sys.path` edits.

Read from the source with `ast`, nothing is imported. Entry points (the console scripts
of pyproject.toml, the `python -m` modules, and the `zoom-ingest` command behind its
guard) import only shared modules, never each other; and the tests, benchmarks and
scripts import their support as packages instead of editing `sys.path`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "zoom_ingest"
#: `console.py` exists only to import `cli.py` behind a check that the local extra is
#: installed: the two are one entry point, `zoom-ingest`.
GUARDED = {"zoom_ingest.console": "zoom_ingest.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def console_script_modules() -> set[str]:
    """The modules named in pyproject.toml's [project.scripts]."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r'^\S+\s*=\s*"([\w.]+):\w+"', section, flags=re.MULTILINE))


def entry_points() -> set[str]:
    scripts = console_script_modules()
    mains = {module_name(path) for path in PACKAGE.rglob("__main__.py")}
    return scripts | mains | set(GUARDED.values())


def imported_modules(path: Path) -> Iterator[str]:
    """Every module `path` imports, anywhere in it (lazy imports in functions too), as
    absolute names; `from . import x` yields both the package and `package.x`."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def test_the_entry_points_are_found() -> None:
    # The rule below is only as good as this list.
    assert {
        "zoom_ingest.console",
        "zoom_ingest.cli",
        "zoom_ingest.databricks_job",
        "zoom_ingest.detections",
        "zoom_ingest.simulator.__main__",
        "zoom_ingest.dashboards.__main__",
    } <= entry_points()


def test_no_module_imports_an_entry_point() -> None:
    """An entry point imports shared modules only, and nothing else leans on one."""
    targets = entry_points()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for imported in set(imported_modules(path)):
            if imported in targets and imported != importer:
                if GUARDED.get(importer) == imported:
                    continue
                found.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert found == []


def test_imported_modules_resolves_relative_imports() -> None:
    source = PACKAGE / "detections.py"
    names = set(imported_modules(source))
    assert "zoom_ingest.engines.spark" in names
    assert "zoom_ingest.engines.spark.SparkEngine" in names


def test_the_spark_engine_imports_nothing_from_the_local_engine() -> None:
    # The Spark engine runs on Databricks, where the local engine's deltalake is absent.
    spark = PACKAGE / "engines" / "spark.py"
    imported = set(imported_modules(spark))
    assert not {name for name in imported if name.startswith("zoom_ingest.engines.local")}
    assert "deltalake" not in {name.split(".")[0] for name in imported}


def test_the_engines_package_imports_no_engine_until_asked() -> None:
    init = PACKAGE / "engines" / "__init__.py"
    tree = ast.parse(init.read_text())
    top_level = {
        node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module
    }
    assert top_level.isdisjoint({"local", "spark"})


#: The list methods that leave `sys.path` as it is.
READ_ONLY_METHODS = {"index", "count", "copy"}


def is_sys_path(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


def sys_path_edits(source: str) -> list[int]:
    """Lines of `source` that change `sys.path`: a call of one of its methods that edits
    the list, an assignment to it or to a slice of it, or `+=`."""
    edits = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and is_sys_path(node.func.value)
            and node.func.attr not in READ_ONLY_METHODS
        ):
            edits.append(node.lineno)
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            if is_sys_path(target) or (
                isinstance(target, ast.Subscript) and is_sys_path(target.value)
            ):
                edits.append(node.lineno)
    return edits


def test_no_sys_path_edits_in_tests_benchmarks_or_scripts() -> None:
    """Support code is imported as a package (pytest's `pythonpath`, `PYTHONPATH=tests`
    in the Makefile, `python -m benchmarks.…`), never by editing `sys.path`."""
    found = []
    for folder in ("tests", "benchmarks", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = path.read_text()
            lines = source.splitlines()
            found.extend(
                f"{path.relative_to(ROOT)}:{n}: {lines[n - 1].strip()}"
                for n in sys_path_edits(source)
            )
    assert found == []


def test_the_sys_path_check_catches_the_usual_edits() -> None:
    for edit in (
        "import sys\nsys.path.insert(0, str(ROOT))",
        "import sys\nsys.path.append('scripts')",
        "import sys\nsys.path[:0] = [here]",
        "import sys\nsys.path += [here]",
        "import sys\nsys.path = [here, *sys.path]",
    ):
        assert sys_path_edits(edit) == [2], edit
    assert sys_path_edits("import sys\nprint(sys.path, sys.path.index('x'))") == []


def test_the_package_has_no_import_cycle() -> None:
    """Modules form layers: no module reaches itself through imports, counting the ones
    made for type checking or inside functions (a cycle hidden that way is still one)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    # `from . import sibling` names the package too; a module inside a package does not
    # lean on the package's face that way, so edges to an enclosing package are left out.
    graph = {
        name: {
            m
            for m in imported_modules(path)
            if m in modules and m != name and not name.startswith(m + ".")
        }
        for name, path in modules.items()
    }
    cycles = []
    state: dict[str, str] = {}  # name → "open" while on the path, "done" after

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for imported in sorted(graph[name]):
            if state.get(imported) == "open":
                cycles.append(" → ".join([*path[path.index(imported) :], imported]))
            elif imported not in state:
                visit(imported, [*path, imported])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_module_map_in_developers_md_matches_the_tree() -> None:
    """Every module of the package is in DEVELOPERS.md's module map, and every file the
    map names exists: the map is how a newcomer finds their way, so it must not drift."""
    text = (ROOT / "DEVELOPERS.md").read_text()
    block = text.split("## Modules and their contracts", 1)[1].split("```", 2)[1]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if path.name == "__init__.py":
            if len(relative.parts) > 1 and f"{relative.parts[0]}/" not in block:
                missing.append(str(relative.parent) + "/")
        elif not re.search(rf"(^|[\s(/]){re.escape(path.name)}\b", block):
            missing.append(str(relative))
    assert not missing, f"not in DEVELOPERS.md's module map: {missing}"
    files = {
        p.name
        for folder in ("src", "tests", "benchmarks", "scripts")
        for p in (ROOT / folder).rglob("*.py")
    }
    stale = sorted(n for n in set(re.findall(r"[\w/]+\.py\b", block)) if Path(n).name not in files)
    assert not stale, f"DEVELOPERS.md's module map names files that do not exist: {stale}"


def test_every_module_opens_with_what_it_is_for() -> None:
    """A module's docstring opens with its one job: a newcomer reads that line first."""
    silent = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if len((ast.get_docstring(ast.parse(path.read_text())) or "").split()) < 4
    ]
    assert not silent, f"modules without a docstring saying what they do: {silent}"
