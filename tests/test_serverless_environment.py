"""The wheel's requirements never change what a serverless environment pre-installs.

A python_wheel_task installs the wheel with its `Requires-Dist` into the serverless
environment. A requirement whose specifier rejects the pre-installed version makes pip
replace the runtime's own copy (pyarrow, requests, databricks-sdk are the platform's), which
can break Databricks Connect. The pre-installed versions are Databricks' published pins
(tests/data/serverless-preinstalled.txt, with its source).
"""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from support.wheel import base_requirements

PINS = Path(__file__).parent / "data" / "serverless-preinstalled.txt"


def preinstalled() -> dict[str, Version]:
    """name → the pre-installed version (a `==X.Y.*` pin counts as X.Y.0)."""
    versions = {}
    for line in PINS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            versions[canonicalize_name(requirement.name)] = Version(spec.version.rstrip(".*"))
    return versions


def test_the_pins_file_is_read_whole() -> None:
    pins = preinstalled()
    assert pins["pyarrow"] == Version("21.0.0") and pins["databricks-sdk"] == Version("0.67.0")
    assert len(pins) == 22


def test_every_base_requirement_accepts_the_preinstalled_version(built_wheel: Path) -> None:
    pins = preinstalled()
    requirements = base_requirements(built_wheel)
    shared = [r for r in requirements if canonicalize_name(r.name) in pins]
    # The platform's own packages that the job uses: if none matched, the check checks nothing.
    assert {canonicalize_name(r.name) for r in shared} >= {"pyarrow", "requests", "databricks-sdk"}
    for requirement in shared:
        version = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{requirement} would replace the pre-installed {requirement.name} {version}"
        )


def test_no_base_requirement_caps_a_preinstalled_package(built_wheel: Path) -> None:
    """An upper bound would make pip downgrade the runtime's copy once Databricks moves on."""
    pins = preinstalled()
    for requirement in base_requirements(built_wheel):
        if canonicalize_name(requirement.name) in pins:
            assert not any(
                s.operator in ("<", "<=", "==", "~=", "===") for s in requirement.specifier
            ), requirement
