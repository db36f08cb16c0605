"""Validation errors in words: what msgspec (the body) and Litestar (query, header and path
parameters) refuse, as Problems that name the field as the client sent it, with a reason in both
languages (app.messages).

msgspec says `Expected `int` >= 1 - at `$.amount``, `Object missing required field `reason``,
`Invalid enum value 'X' - at `$.productType``; Litestar adds the Python parameter's name
(`idempotency_key`, `transaction_id`) and where it came from. Here they become `amount must be an
integer greater than 0`, `reason is required`, `productType must be one of STUDY, AI_RESUME`, and
the `Idempotency-Key` header or the `transactionId` path parameter.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.params import ParameterKwarg

from app import messages as texts
from app.core.domain import Problem
from app.messages import Text

BODY = "body"  # the field naming the whole body
_MAX_FIELD = 100  # characters of a field's name echoed back

# msgspec's messages (its C core's formats), without the " - at `$…`" suffix.
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]+)`")
_WRONG_TYPE = re.compile(r"Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`")
_INT_BOUND = re.compile(r"Expected `int` (?P<op>>=|<=) (?P<n>-?[0-9]+)")
_STR_LENGTH = re.compile(r"Expected `str` of length (?P<op>>=|<=) (?P<n>[0-9]+)")
_PATTERN = re.compile(r"Expected `str` matching regex (?P<pattern>'.*'|\".*\")")
_ENUM = re.compile(r"Invalid enum value ")
_RANGE = re.compile(r"(Integer value|Number) out of range")
# Litestar's own words for a required parameter that is absent.
_MISSING_PARAMETER = re.compile(r"Missing required (?P<location>\w+) parameter '(?P<name>[^']+)'")


def body_problem(error: msgspec.ValidationError, body_type: Any) -> Problem:
    """A body msgspec refused (decoding `body_type`), field by wire name."""
    message = str(error)
    at = _AT.search(message)
    path = at["path"] if at else ""
    what = message[: at.start()] if at else message
    field = _field_path(path)
    if named := _MISSING.fullmatch(what) or _UNKNOWN.fullmatch(what):
        field = _join(field, named["name"])[:_MAX_FIELD]  # an unknown field's name is the client's
        reason = texts.REQUIRED if _MISSING.fullmatch(what) else texts.UNKNOWN_FIELD
        return Problem(field, reason.format(field=field))
    if not field:
        wrong = _WRONG_TYPE.fullmatch(what)
        if wrong and "object" in wrong["expected"].split(" | "):
            return Problem(BODY, texts.BODY_NOT_OBJECT)
        return Problem(BODY, texts.INVALID.format(field=BODY))
    return Problem(field, reason_for(what, field, allowed=_enum_values(body_type, path)))


def reason_for(what: str, field: str, *, allowed: Sequence[str] = ()) -> Text:
    """msgspec's complaint about one value (without its path) in words, naming `field`."""
    if wrong := _WRONG_TYPE.fullmatch(what):
        expected = [kind for kind in wrong["expected"].split(" | ") if kind != "null"]
        kind = texts.KINDS.get(expected[0]) if len(expected) == 1 else None
        return texts.WRONG_TYPE.format(field=field, kind=kind) if kind else texts.INVALID.format(field=field)
    if bound := _INT_BOUND.fullmatch(what):
        n = int(bound["n"])
        if bound["op"] == ">=":
            if n == 1:
                return texts.INT_POSITIVE.format(field=field)
            return texts.INT_AT_LEAST.format(field=field, n=f"{n:,}")
        return texts.INT_AT_MOST.format(field=field, n=f"{n:,}")
    if length := _STR_LENGTH.fullmatch(what):
        n = int(length["n"])
        if length["op"] == ">=":
            return (
                texts.STR_EMPTY.format(field=field) if n == 1 else texts.STR_AT_LEAST.format(field=field, n=n)
            )
        return texts.STR_AT_MOST.format(field=field, n=n)
    if pattern := _PATTERN.fullmatch(what):
        expected_format = texts.FORMATS.get(ast.literal_eval(pattern["pattern"]))
        if expected_format is not None:
            return texts.MATCHES.format(field=field, format=expected_format)
        return texts.BAD_FORMAT.format(field=field)
    if _ENUM.match(what) and allowed:
        return texts.ONE_OF.format(field=field, values=", ".join(allowed))
    if _RANGE.fullmatch(what):
        return texts.OUT_OF_RANGE.format(field=field)
    return texts.INVALID.format(field=field)


def parameter_problems(request: Request[Any, Any, Any], error: ValidationException) -> list[Problem]:
    """What Litestar refused before the handler ran: its query, header and path parameters (and an
    absent body, which it reports as its `data` parameter)."""
    problems = []
    for item in error.extra if isinstance(error.extra, list) else []:
        if isinstance(item, dict):
            problems.append(_parameter_problem(request, item))
    if not problems and (missing := _MISSING_PARAMETER.search(error.detail or "")):
        location, name = missing["location"], missing["name"]
        field = _camel(name) if location == "path" else name
        problems.append(Problem(field, _parameter_text(location, field, "required"), location))
    return problems


def _parameter_problem(request: Request[Any, Any, Any], item: dict[str, Any]) -> Problem:
    key = str(item.get("key") or "")
    source = item.get("source") or ""
    location = str(getattr(source, "value", source))  # Litestar's ParamType, or "body"
    message = str(item.get("message") or "")
    if location == "body" or key == "data":
        # A handler's body that is absent: Litestar leaves `data` unset, then cannot build it.
        return Problem(BODY, texts.BODY_EMPTY)
    field = _wire_name(request, key, location)
    return Problem(field, _parameter_text(location, field, message), location or "query")


def _parameter_text(location: str, field: str, message: str) -> Text:
    fixed = texts.PARAMETER_TEXTS.get((location, field))
    if fixed is not None:
        return fixed
    if message == "required":
        return texts.REQUIRED.format(field=field)
    return reason_for(message, field)


def _wire_name(request: Request[Any, Any, Any], key: str, location: str) -> str:
    """A handler parameter's name as the client sends it: its header or query alias, a path
    parameter in camelCase (as the API's bodies spell the same ids)."""
    if location == "path":
        return _camel(key)
    try:
        parameter = request.route_handler.parsed_fn_signature.parameters.get(key)
    except Exception:  # no handler (routing failed): keep the key
        parameter = None
    kwarg = parameter.kwarg_definition if parameter is not None else None
    if isinstance(kwarg, ParameterKwarg):
        alias = kwarg.header if location == "header" else kwarg.query if location == "query" else None
        if alias:
            return alias
    return key


def _enum_values(body_type: Any, path: str) -> list[str]:
    """The values an enum field at `path` (`.productType`) of `body_type` allows, or none."""
    info: Any = msgspec.inspect.type_info(body_type)
    for name in (part for part in path.split(".") if part):
        while isinstance(info, msgspec.inspect.UnionType):
            options = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
            if len(options) != 1:
                return []
            info = options[0]
        if not isinstance(info, msgspec.inspect.StructType):
            return []
        info = next((f.type for f in info.fields if f.encode_name == name), None)
        if info is None:
            return []
    while isinstance(info, msgspec.inspect.UnionType):
        options = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        info = options[0] if len(options) == 1 else None
    if isinstance(info, msgspec.inspect.EnumType):
        return [str(member.value) for member in info.cls]
    return []


def _field_path(path: str) -> str:
    """msgspec's `$.refundReceiveAccount.bank` (given as `.refundReceiveAccount.bank`) as the field
    `refundReceiveAccount.bank`; `$` (the body itself) as ''."""
    return path[1:] if path.startswith(".") else path


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
