"""The mock Toss as a distribution of its own, checked statically: its pyproject declares exactly what
mock_toss imports, and the Dockerfile's `mock-toss` target installs that wheel and nothing else.

(tests/e2e/mock_toss/test_mocktoss_e2e_wheel.py builds the wheel and runs it from a fresh venv; no
Docker engine is needed here, nor available on the build machines.)
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from tests.support.servers import REPO_ROOT

PACKAGE = REPO_ROOT / "mock_toss"
PROJECT = REPO_ROOT / "packaging" / "mock-toss" / "pyproject.toml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
# Import name → distribution name, where they differ in case.
DISTRIBUTION_OF = {"jinja2": "jinja2"}


def third_party_imports() -> set[str]:
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name != "mock_toss"}


def project() -> dict[str, Any]:
    meta: dict[str, Any] = tomllib.loads(PROJECT.read_text())["project"]
    return meta


def test_the_mock_distribution_declares_exactly_what_the_mock_imports() -> None:
    declared = {
        re.split(r"[^A-Za-z0-9_.-]", requirement)[0].lower() for requirement in project()["dependencies"]
    }
    imported = {DISTRIBUTION_OF.get(name, name).lower() for name in third_party_imports()}
    assert imported == declared, f"imported {sorted(imported)}, declared {sorted(declared)}"
    assert "app" not in third_party_imports()  # the mock never reaches into the payment service


def test_the_mock_distribution_has_its_script_and_data_files() -> None:
    meta = project()
    assert meta["name"] == "asyncsite-mock-toss"
    assert meta["scripts"] == {"mock-toss": "mock_toss.__main__:main"}
    config = tomllib.loads(PROJECT.read_text())["tool"]["setuptools"]
    assert config["packages"]["find"]["include"] == ["mock_toss*"]
    for package, patterns in config["package-data"].items():
        folder = REPO_ROOT / package.replace(".", "/")
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{package}: {pattern} matches no file"
    assert (PACKAGE / "__main__.py").is_file() and (PACKAGE / "README.md").is_file()


def stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's stages (name → its instructions), continuation lines joined."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in re.sub(r"\\\n", " ", DOCKERFILE.read_text()).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            current = found.setdefault(arguments.split()[-1], [])
        current.append((instruction.upper(), arguments.strip()))
    return found


def test_the_dockerfile_has_a_mock_toss_target_that_installs_only_the_mock_wheel() -> None:
    all_stages = stages()
    assert list(all_stages)[-1] == "runtime"  # still the default target of `docker build`
    build, image = all_stages["mock-build"], all_stages["mock-toss"]
    copied = [arguments.split()[0] for instruction, arguments in build if instruction == "COPY"]
    assert sorted(copied) == ["mock_toss", "packaging/mock-toss", "scripts/build_mock_wheel.py"]
    for source in copied:
        assert (REPO_ROOT / source).exists(), source
    assert ("RUN", "python scripts/build_mock_wheel.py --out /mock-wheels") in build
    assert [args for instruction, args in image if instruction == "COPY"] == [
        "--from=mock-build /mock-wheels /mock-wheels"
    ]
    runs = [arguments for instruction, arguments in image if instruction == "RUN"]
    assert any("pip install" in run and "/mock-wheels/*.whl" in run for run in runs), runs
    assert not any("app" in run.split() for run in runs)
    users = [arguments for instruction, arguments in image if instruction == "USER"]
    assert users and users[-1] not in ("root", "0")
    cmd = [arguments for instruction, arguments in image if instruction == "CMD"][-1]
    assert cmd.startswith('["mock-toss", "--host", "0.0.0.0"'), cmd
    assert ("EXPOSE", "8090") in image


def test_the_build_script_stages_the_packaging_project() -> None:
    script = (REPO_ROOT / "scripts" / "build_mock_wheel.py").read_text()
    assert 'ROOT / "packaging" / "mock-toss" / "pyproject.toml"' in script
    assert Path(PROJECT).is_file()
