"""docs/api.md, the API contract, says what the service does: its state machine is the domain's,
it names every endpoint the OpenAPI document has, and its error table has every code with its
HTTP status. Wording is free; these facts are not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.core.domain import ALLOWED_TRANSITIONS, FINAL_STATUSES, Status
from app.http.errors import ApiError
from app.main import create_app
from app.settings import load_settings
from tests.support.servers import REPO_ROOT

API_DOC = REPO_ROOT / "docs" / "api.md"


@pytest.fixture(scope="module")
def doc() -> str:
    return API_DOC.read_text(encoding="utf-8")


def section(doc: str, name: str) -> list[list[str]]:
    """The rows of the Markdown table between `<!-- name:begin -->` and `<!-- name:end -->`,
    header and rule left out, each cell stripped of backticks."""
    found = re.search(rf"<!-- {name}:begin[^>]*-->(.*?)<!-- {name}:end -->", doc, re.S)
    assert found, f"docs/api.md lost its {name} markers"
    rows = [line for line in found.group(1).splitlines() if line.startswith("|")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_the_status_table_is_the_domains(doc: str) -> None:
    yes_no = {True: "yes", False: "no"}
    table = [(row[0], row[1], row[3], row[4], row[5]) for row in section(doc, "statuses")]
    assert table == [
        (
            str(int(s)),
            s.name,
            str(s.is_settled).lower(),
            str(s.needs_polling).lower(),
            yes_no[s in FINAL_STATUSES],
        )
        for s in Status
    ]


def test_the_transition_table_is_the_state_machine(doc: str) -> None:
    documented = [(Status(int(row[0])), Status(int(row[1]))) for row in section(doc, "transitions")]
    assert len(documented) == len(set(documented)), "a transition is listed twice"
    assert set(documented) == ALLOWED_TRANSITIONS, (
        f"missing: {sorted(ALLOWED_TRANSITIONS - set(documented))}; "
        f"not in the state machine: {sorted(set(documented) - ALLOWED_TRANSITIONS)}"
    )


def test_every_error_code_is_listed_with_its_http_status(doc: str) -> None:
    documented = {row[0]: row[1] for row in section(doc, "error-codes")}
    wanted = {code.value: str(code.status) for code in ApiError}
    assert documented == wanted, "docs/api.md's error table is not app/http/errors.py's ApiError"


def test_every_endpoint_of_the_openapi_document_is_described(doc: str, tmp_path: Path) -> None:
    settings = load_settings({"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'doc.sqlite3'}"})
    document = create_app(settings).openapi_schema.to_schema()
    missing = []
    for path, operations in document["paths"].items():
        shown = path.replace("{transaction_id}", "{transactionId}")
        for method in operations:
            if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"} and (
                f"{method.upper()} {shown}" not in doc
            ):
                missing.append(f"{method.upper()} {shown}")
    assert not missing, f"docs/api.md does not describe: {missing}"
    for also in ("GET /metrics", "/schema/openapi.json", "/demo/"):
        assert also in doc, also


def test_the_readme_points_to_the_contract() -> None:
    assert "(docs/api.md)" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
