"""The project's wheel as Databricks installs it: built, read, and its import boundary.

On Databricks only the wheel and its base requirements (`Requires-Dist` without an
extra) are installed, next to the runtime's own packages. `allowed_top_level_modules`
turns those requirements into the top-level module names a process may import: the
requirements' distributions and everything they require in turn, as installed in a given
environment, read with importlib.metadata (no hand-written list to fall out of date).
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from email.message import Message
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
#: What the wheel is built from (the rest of the repository is not part of it).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "src")
BUILD_SECONDS = 300


def build_wheel(dest: Path) -> Path:
    """`pip wheel --no-deps` of a copy of the project's sources into `dest`; the wheel.

    Offline and without build isolation: the build backend (setuptools, the dev extra)
    comes from the running environment. A copy, so the build leaves nothing in the tree."""
    source = dest / "source"
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    out = dest / "dist"
    pip_wheel = ["pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run(
        [sys.executable, "-m", *pip_wheel, "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip wheel failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    [wheel] = out.glob("*.whl")
    return wheel


def wheel_metadata(wheel: Path) -> Message:
    """The wheel's METADATA (Name, Version, Requires-Dist, ...)."""
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))


def base_requirements(wheel: Path) -> list[Requirement]:
    """The wheel's Requires-Dist that no extra asks for: what Databricks installs."""
    lines = wheel_metadata(wheel).get_all("Requires-Dist", [])
    requirements = [Requirement(line) for line in lines]
    return [r for r in requirements if not _needs_an_extra(r)]


def console_scripts(wheel: Path) -> dict[str, str]:
    """name → `module:function` of the wheel's console_scripts entry points."""
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(name).decode("utf-8")
    scripts: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and section == "console_scripts":
            key, value = (part.strip() for part in line.split("=", 1))
            scripts[key] = value
    return scripts


def allowed_top_level_modules(
    requirements: Iterable[Requirement | str], path: Sequence[str] | None = None
) -> set[str]:
    """The top-level modules of `requirements` and of everything they require, as
    installed in the environment whose import path is `path` (default: this one).

    A requirement that is not installed there is left out (a marker excluded it, or it is
    missing, which the import itself then shows)."""
    installed = {
        canonicalize_name(d.metadata["Name"]): d
        for d in importlib.metadata.distributions(path=list(path) if path else sys.path)
        if d.metadata["Name"]
    }
    seen: set[str] = set()
    pending = [r if isinstance(r, Requirement) else Requirement(r) for r in requirements]
    modules: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or name not in installed:
            continue
        seen.add(name)
        distribution = installed[name]
        modules |= top_level_modules(distribution)
        for text in distribution.requires or []:
            required = Requirement(text)
            if not _needs_an_extra(required, requirement.extras):
                pending.append(required)
    return modules


def top_level_modules(distribution: importlib.metadata.Distribution) -> set[str]:
    """The names a distribution's files make importable at the top level."""
    listed = distribution.read_text("top_level.txt")
    if listed:
        return {line.strip() for line in listed.splitlines() if line.strip()}
    names: set[str] = set()
    for file in distribution.files or []:
        first = file.parts[0]
        if first.endswith((".dist-info", ".data")) or first in ("..", "__pycache__"):
            continue
        if len(file.parts) > 1:
            names.add(first)
        elif first.endswith(".py"):
            names.add(first[:-3])
        elif first.endswith((".so", ".pyd")):
            names.add(first.split(".", 1)[0])
    return names


def _needs_an_extra(requirement: Requirement, extras: Iterable[str] = ()) -> bool:
    """Whether `requirement` applies only with an extra not in `extras`."""
    marker = requirement.marker
    if marker is None or "extra" not in str(marker):
        return False
    return not any(marker.evaluate({"extra": extra}) for extra in extras)
