#!/usr/bin/env python3
"""Build the mock Toss's own wheel, asyncsite-mock-toss: the mock alone, with its own dependencies.

    python scripts/build_mock_wheel.py                   # → dist/asyncsite_mock_toss-<version>-py3-none-any.whl
    python scripts/build_mock_wheel.py --out wheels      # another folder
    python scripts/build_mock_wheel.py --no-build-isolation   # use this Python's setuptools (offline)

setuptools cannot package a folder above its project, and packaging/mock-toss/pyproject.toml lives
two levels below mock_toss/. So this script stages a clean project in a temporary folder —
packaging/mock-toss/pyproject.toml, mock_toss/README.md as README.md, mock_toss/ without caches —
and runs `pip wheel --no-deps` there. Nothing is written into the work tree but the wheel. Needs
only the standard library and pip; prints the wheel's path.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mock_toss"
PROJECT = ROOT / "packaging" / "mock-toss" / "pyproject.toml"
DISTRIBUTION = "asyncsite_mock_toss"
# Files the mock reads at run time; a wheel without them starts but cannot serve its window or SDK.
REQUIRED_DATA = ("mock_toss/templates/checkout.html", "mock_toss/sdk/tosspayments.js")


def version() -> str:
    found = re.search(r'^__version__ = "([^"]+)"', (PACKAGE / "__init__.py").read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit("mock_toss/__init__.py has no __version__")
    return found.group(1)


def stage(folder: Path) -> None:
    """A standalone project: pyproject.toml, README.md and the mock_toss package."""
    shutil.copy2(PROJECT, folder / "pyproject.toml")
    shutil.copy2(PACKAGE / "README.md", folder / "README.md")
    shutil.copytree(PACKAGE, folder / "mock_toss", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def check(wheel: Path) -> None:
    """The wheel holds the mock, its data files, and nothing of the payment service."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = [name for name in REQUIRED_DATA if name not in names]
    foreign = sorted(
        {name.split("/")[0] for name in names} - {"mock_toss", f"{DISTRIBUTION}-{version()}.dist-info"}
    )
    if missing or foreign:
        raise SystemExit(f"{wheel.name}: missing {missing}, unexpected top-level entries {foreign}")


def build(out: Path, *, isolation: bool = True) -> Path:
    """Build the wheel into `out`; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{DISTRIBUTION}-{version()}-py3-none-any.whl"
    with tempfile.TemporaryDirectory(prefix="mock-toss-wheel-") as temporary:
        project = Path(temporary) / "project"
        project.mkdir()
        stage(project)
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out)]
        if not isolation:
            command.append("--no-build-isolation")
        subprocess.run([*command, str(project)], check=True, cwd=temporary)
    if not wheel.is_file():
        raise SystemExit(f"pip built no {wheel.name} in {out}")
    check(wheel)
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "dist", help="where the wheel goes (default: dist/)"
    )
    parser.add_argument(
        "--no-build-isolation",
        action="store_true",
        help="build with this Python's setuptools (>= 68) instead of fetching one",
    )
    arguments = parser.parse_args()
    print(build(arguments.out.resolve(), isolation=not arguments.no_build_isolation))


if __name__ == "__main__":
    main()
