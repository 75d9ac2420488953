"""How the code is laid out: which modules may import which.

Read from the source with `ast`, nothing is imported. Entry points (the console scripts
of pyproject.toml, the `python -m` modules, and the `zoom-ingest` command behind its
guard) import only shared modules, never each other.
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
