"""Request bodies, decoded once: straight from the bytes, by msgspec, strictly.

Litestar's own conversion of a `data` parameter is lenient (it takes "50000" for an int), so no
handler lets it run: a handler names its body's type in a DTO, `dto=StrictBody[IssueRequest]`, and
Litestar hands the raw bytes to `StrictBody.decode_bytes` and nothing else. The OpenAPI document
still describes `data` exactly as Litestar would without a DTO.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from litestar import Request
from litestar.dto import AbstractDTO
from litestar.typing import FieldDefinition

from app import messages as texts
from app.core.domain import Problem, ValidationFailed
from app.http.validation import BODY, body_problem

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.dto._backend import DTOBackend
    from litestar.dto.data_structures import DTOFieldDefinition
    from litestar.openapi.spec import Reference, Schema

# Larger bodies get 413 before they are read whole: webhook_events.raw_body is a TEXT column
# (65,535 bytes), and an issue or refund body (metadata ≤ 4 KB) never comes near it.
MAX_BODY_BYTES = 65_535

BodyT = TypeVar("BodyT")


def strict_body(raw: bytes, kind: type[BodyT]) -> BodyT:
    """Decode a JSON body strictly (no "50000" for an int; the Struct refuses unknown fields)."""
    try:
        return msgspec.json.decode(raw, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(body_problem(exc, kind)) from None  # the field and reason in words
    except msgspec.DecodeError:
        raise ValidationFailed(Problem(BODY, texts.BODY_NOT_JSON)) from None
    except RecursionError:
        raise _nested_too_deeply() from None


def _nested_too_deeply() -> ValidationFailed:
    return ValidationFailed(Problem(BODY, texts.BODY_TOO_DEEP))


class _BodyOnly(AbstractDTO[BodyT]):
    """A DTO that only reads a request body, with no transfer model: Litestar calls `decode_bytes`
    with the raw body (an empty body stays a missing `data`), and asks `create_openapi_schema`
    for the document."""

    @classmethod
    def generate_field_definitions(cls, model_type: type[Any]) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()  # no transfer model

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    @classmethod
    def is_supported_model_type_field(cls, field_definition: FieldDefinition) -> bool:
        return False  # never a return DTO: responses are encoded as usual

    @classmethod
    def create_for_field_definition(
        cls,
        field_definition: FieldDefinition,
        handler_id: str,
        backend_cls: type[DTOBackend] | None = None,
    ) -> None:
        """No backend to build: `decode_bytes` does the whole job."""


class StrictBody(_BodyOnly[BodyT]):
    """`dto=StrictBody[IssueRequest]`: `data` is `strict_body(raw, IssueRequest)`, documented as
    the Struct itself (a `$ref` to its component, as without a DTO)."""

    def decode_bytes(self, value: bytes) -> BodyT:
        return strict_body(value, self.model_type)

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        return schema_creator.for_field_definition(field_definition)


class RawBody(_BodyOnly[BodyT]):
    """`dto=RawBody[dict[str, Any]]` with `data: bytes`: the body as sent, for an adapter that
    verifies and decodes it itself (a PG's signed webhook); documented as the given shape."""

    def decode_bytes(self, value: bytes) -> bytes:
        return value

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        documented = FieldDefinition.from_annotation(
            cls.model_type, kwarg_definition=field_definition.kwarg_definition
        )
        return schema_creator.for_field_definition(documented)


class PaymentsRequest(Request[Any, Any, Any]):
    """Litestar's Request; a JSON body nested past the decoder's recursion limit is PAY_000, not a
    500. Our handlers read bodies through StrictBody or RawBody, never `json()`: this covers any
    other reader of `request.json()`."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise _nested_too_deeply() from None
