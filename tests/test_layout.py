"""How the code is laid out: which modules may import which, no import cycle, and no
`sys.path` edits.

Read from the source with `ast`, nothing is imported. Entry points (the console scripts
of pyproject.toml, the `python -m` modules, and the `zoom-ingest` command behind its
guard) import only shared modules, never each other; and the tests, benchmarks and
scripts import their support as packages instead of editing `sys.path`.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
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


def imported_modules(path: Path, source: str | None = None) -> Iterator[str]:
    """Every module `path` imports (or `source`, read as if it were `path`'s), anywhere in
    it (lazy imports in functions too), as absolute names; `from . import x` yields both
    the package and `package.x`."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    text = path.read_text() if source is None else source
    for node in ast.walk(ast.parse(text, str(path))):
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


# -- the house as drawn: each stage knows only its neighbours ---------------------------
#
# Each rule is held twice: against the source (every import a module of the group makes,
# lazy ones in functions too) and against a fresh interpreter (every module that importing
# the group loads), since a package's face can pull in what no direct import names.

#: group (a module, or a package and everything in it) → the product modules it may
#: import or load, by name or package prefix.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    # 1. The simulator stands alone: Zoom's rules are all it shares with the product.
    "zoom_ingest.simulator": ("zoom_ingest.simulator", "zoom_ingest.zoom.rules"),
    # 2. Settings are plain validated values: nothing of the Zoom client.
    "zoom_ingest.settings": (
        "zoom_ingest.setting_values",
        "zoom_ingest.tables",
        "zoom_ingest.masking",
    ),
    # 3. The option table knows no SQL: values, their checks and Zoom's allowed values.
    "zoom_ingest.options": (
        "zoom_ingest.settings",
        "zoom_ingest.setting_values",
        "zoom_ingest.tables",
        "zoom_ingest.masking",
        "zoom_ingest.zoom.rules",
    ),
    # 4. The source hands raw pages on: zoom/ knows Zoom, the table registry (what each
    #    stream fills), secrets' masking and URL checks; nothing of rows, keys or engines.
    "zoom_ingest.zoom": (
        "zoom_ingest.zoom",
        "zoom_ingest.tables",
        "zoom_ingest.masking",
        "zoom_ingest.setting_values",
    ),
}
#: module → product modules it must not load at import, directly or through another.
MUST_NOT_LOAD: dict[str, tuple[str, ...]] = {
    # 3. Queries and detections are SQL text and its results: the Spark engine comes in
    #    only where a detection runs on Spark (a lazy import in that function).
    "zoom_ingest.queries": ("zoom_ingest.engines.spark", "zoom_ingest.engines.spark_session"),
    "zoom_ingest.detections": ("zoom_ingest.engines.spark", "zoom_ingest.engines.spark_session"),
    # 4. Nothing of the job's side is the source's business.
    "zoom_ingest.zoom.fetcher": ("zoom_ingest.normalise", "zoom_ingest.job", "zoom_ingest.plan"),
}
#: Libraries a group must not load: the simulator, the settings and the option table
#: come without the Zoom client's HTTP stack (the simulator without Arrow too).
MUST_NOT_LOAD_LIBRARIES = {
    "zoom_ingest.simulator": ("requests", "tenacity", "pyarrow"),
    "zoom_ingest.settings": ("requests", "tenacity"),
    "zoom_ingest.options": ("requests", "tenacity"),
}


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    """`name` is within `prefixes`, or a package on the way to one (a package's face is
    loaded with any of its modules: zoom_ingest.zoom's is lazy for that reason)."""
    return _within(name, prefixes) or any(p.startswith(name + ".") for p in prefixes)


def _group_files(group: str) -> list[Path]:
    path = PACKAGE.parent / group.replace(".", "/")
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def _product_modules(names: Iterable[str]) -> set[str]:
    """The product modules among `names`, each as the module itself (a `from m import x`
    yields m and m.x: x is a module only when m.x is a file or package)."""
    found = set()
    for name in names:
        if not name.startswith("zoom_ingest"):
            continue
        relative = PACKAGE.parent / name.replace(".", "/")
        if relative.with_suffix(".py").is_file() or (relative / "__init__.py").is_file():
            found.add(name)
    return found


def _loaded_by(module: str) -> set[str]:
    """Every module a fresh interpreter holds after `import module`."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout))


def test_each_group_imports_only_its_neighbours_in_the_source() -> None:
    broken = []
    for group, allowed in MAY_IMPORT.items():
        for path in _group_files(group):
            for name in sorted(_product_modules(imported_modules(path))):
                if not _allowed(name, (group, *allowed)):
                    broken.append(f"{path.relative_to(ROOT)} imports {name}")
    for module, forbidden in MUST_NOT_LOAD.items():
        # At load time only: what a function imports when it runs is its own business.
        (path,) = _group_files(module)
        tree = ast.parse(path.read_text())
        top = "\n".join(
            ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)
        )
        names = _product_modules(imported_modules(path, top))
        broken += [f"{path.relative_to(ROOT)} imports {n}" for n in names if _within(n, forbidden)]
    assert broken == []


def test_each_group_loads_only_its_neighbours() -> None:
    broken = []
    for group, allowed in MAY_IMPORT.items():
        loaded = _loaded_by(group)
        product = {n for n in loaded if n.startswith("zoom_ingest")}
        broken += [
            f"{group} loads {n}" for n in sorted(product) if not _allowed(n, (group, *allowed))
        ]
        libraries = MUST_NOT_LOAD_LIBRARIES.get(group, ())
        broken += [f"{group} loads {n}" for n in libraries if n in loaded]
    for module, forbidden in MUST_NOT_LOAD.items():
        loaded = _loaded_by(module)
        broken += [f"{module} loads {n}" for n in sorted(loaded) if _within(n, forbidden)]
    assert broken == []


def test_the_rules_see_a_broken_import() -> None:
    """The checks above are only as good as their reading of imports: a lazy import of
    a forbidden neighbour, in a function, is caught."""
    source = "def f():\n    from ..settings import Settings\n    return Settings\n"
    path = PACKAGE / "simulator" / "server.py"
    names = _product_modules(imported_modules(path, source))
    assert names == {"zoom_ingest.settings"}
    assert not _allowed("zoom_ingest.settings", MAY_IMPORT["zoom_ingest.simulator"])


def test_the_zoom_package_face_names_each_of_its_names_once() -> None:
    """The face is lazy: each name in __all__ has its home, and is found there."""
    import zoom_ingest.zoom as zoom

    assert set(zoom.__all__) == set(zoom._HOMES)
    for name in zoom.__all__:
        home = importlib.import_module(f"zoom_ingest.zoom.{zoom._HOMES[name]}")
        assert getattr(zoom, name) is getattr(home, name)
