"""The TypeScript client (clients/typescript) follows the contract: its checked-in openapi.json is
the document the service serves now, its src/schema.d.ts is what openapi-typescript makes of it,
and client.ts and events.ts type-check against those types.

Needs node and the folder's devDependencies (`make clients`: `npm install --prefix
clients/typescript --no-package-lock`). When a test here fails because the API changed, run
`make client` and commit the regenerated files.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import REPO_ROOT

CLIENT = REPO_ROOT / "clients" / "typescript"
REGENERATE = "make client"
INSTALL = "npm install --prefix clients/typescript --no-package-lock (make clients)"


def _tool(*parts: str) -> Path:
    path = CLIENT.joinpath("node_modules", *parts)
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO_ROOT)} is missing: run {INSTALL}", pytrace=False)
    return path


def _run(command: list[str | Path], *, cwd: Path = CLIENT) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def _differs(name: str, checked_in: str, current: str) -> str:
    diff = difflib.unified_diff(
        checked_in.splitlines(keepends=True),
        current.splitlines(keepends=True),
        fromfile=f"{name} (checked in)",
        tofile=f"{name} (from the code now)",
        n=1,
    )
    shown = "".join(list(diff)[:60])
    return f"{name} is out of date with the API: run `{REGENERATE}` and commit it.\n{shown}"


@pytest.fixture(scope="module")
def document() -> str:
    """What `payments openapi` prints now."""
    return _run([sys.executable, "-m", "app.cli", "openapi"], cwd=REPO_ROOT)


def test_the_checked_in_document_is_the_served_one(document: str) -> None:
    checked_in = (CLIENT / "openapi.json").read_text()
    if checked_in != document:
        pytest.fail(_differs("clients/typescript/openapi.json", checked_in, document), pytrace=False)


def test_the_checked_in_types_are_generated_from_it(document: str, tmp_path: Path) -> None:
    cli = _tool("openapi-typescript", "bin", "cli.js")
    (tmp_path / "openapi.json").write_text(document)
    _run(["node", cli, tmp_path / "openapi.json", "--output", tmp_path / "schema.d.ts"])

    generated = (tmp_path / "schema.d.ts").read_text()
    checked_in = (CLIENT / "src" / "schema.d.ts").read_text()
    if checked_in != generated:
        pytest.fail(_differs("clients/typescript/src/schema.d.ts", checked_in, generated), pytrace=False)


def test_the_client_type_checks_against_the_types() -> None:
    tsc = _tool("typescript", "bin", "tsc")
    _run(["node", tsc, "--noEmit", "-p", CLIENT])
